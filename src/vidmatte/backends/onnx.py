"""ONNX Runtime runner for the official RVM graph, on the CPU or CUDA (``backends.device``).

On CUDA the runners use I/O binding: the recurrent state stays on the GPU between frames as OrtValues (the
matter carries it opaquely), each frame's input is uploaded once, and only the outputs the matte needs come back
(the guided filter's coefficients, or fgr and pha). The same bound path runs on the CPU provider when asked
(``io_binding=True``), which is how it is tested without a GPU; by default the CPU keeps ``session.run``, measured
no slower (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .device import CPU, Device, resolve_ort

STATE_INPUTS = ("r1i", "r2i", "r3i", "r4i")
OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")


def open_session(model: str | os.PathLike | bytes, threads: int | None = None, device=CPU):
    """An ONNX Runtime session on ``device`` (``backends.device``: a Device or its text, e.g. "auto", "cuda:0")
    with the options the pipeline needs (a path, or a serialized model)."""
    import onnxruntime as ort

    device = resolve_ort(device)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The memory pattern pre-plans one block per input shape: ~430 MB more peak memory at 4K (1153 vs 722 MiB
    # for the bare session) and no speed gain. The arena itself stays: without it 1080p runs ~20% slower and
    # 4K end to end half as fast (measured side by side on 2 cores).
    options.enable_mem_pattern = False
    # ORT's idle worker threads spin by default, burning the cycles the decode and encode threads need; without
    # spinning the pipeline ran ~30% faster end to end on 2 cores (and the bare loop no slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors reach the user as one-line exceptions, not as coloured log lines
    try:
        session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                       providers=device.providers())
    except Exception as exc:  # onnxruntime raises its own exception types; one line is enough here
        where = "the coarse RVM graph" if isinstance(model, bytes) else model
        raise ModelError(f"cannot load ONNX model {where}: {str(exc).splitlines()[0]}") from None
    if device.kind == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        # ORT would quietly run this session on the CPU; the user asked for the GPU (device.py probed it loads)
        raise ModelError(f"ONNX Runtime did not place the model on {device.name} (its CUDA provider failed to load)")
    if device.kind == "cuda":
        import logging

        logging.getLogger("vidmatte").debug(f"ONNX Runtime session on {session.get_providers()[0]} ({device.name})")
    return session


class BoundRun:
    """One session run through I/O binding: numpy inputs are uploaded once, OrtValue inputs (the state a previous
    run left on the device) are used where they are, ``fetch`` outputs come back as numpy and ``keep`` outputs stay
    on the device as OrtValues."""

    def __init__(self, session, device: Device, fetch: tuple[str, ...], keep: tuple[str, ...]):
        self.session, self.fetch, self.keep = session, tuple(fetch), tuple(keep)
        self.device_type, self.device_id = device.ort_device()

    def __call__(self, inputs: dict) -> tuple[list[np.ndarray], list]:
        binding = self.session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self.fetch:
            binding.bind_output(name, "cpu")
        for name in self.keep:
            binding.bind_output(name, self.device_type, self.device_id)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        return [o.numpy() for o in outputs[:len(self.fetch)]], list(outputs[len(self.fetch):])


def state_to_numpy(state) -> list[np.ndarray]:
    """A runner's state as numpy arrays (OrtValues on any device are copied to the host)."""
    return [s if isinstance(s, np.ndarray) else s.numpy() for s in state]


class OnnxRunner:
    """The official graph run whole: float frame in, full-size fgr and pha out."""

    name = "onnxruntime-whole"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device=CPU,
                 io_binding: bool | None = None):
        self.device = resolve_ort(device)
        self.session = open_session(path, threads, self.device)
        names = {i.name for i in self.session.get_inputs()}
        missing = {"src", "downsample_ratio", *STATE_INPUTS} - names
        if missing:
            raise ModelError(f"{path} is not an RVM graph (missing inputs {sorted(missing)})")
        self.path = Path(path)
        self.threads = threads
        self._ratio = np.zeros(1, np.float32)
        self.io_binding = self.device.is_gpu if io_binding is None else bool(io_binding)
        self._bound = BoundRun(self.session, self.device, OUTPUTS[:2], OUTPUTS[2:]) if self.io_binding else None

    @classmethod
    def from_model(cls, model: str, threads: int | None = None, cache: str | None = None, device=CPU,
                   io_binding: bool | None = None) -> "OnnxRunner":
        return cls(model_file(model, cache), threads, device, io_binding)

    def initial_state(self) -> list[np.ndarray]:
        return [np.zeros((1, 1, 1, 1), np.float32) for _ in STATE_INPUTS]

    def __call__(self, src, state, downsample_ratio):
        self._ratio[0] = downsample_ratio
        feed = {"src": src, "downsample_ratio": self._ratio}
        feed.update(zip(STATE_INPUTS, state))
        if self._bound is not None:
            (fgr, pha), new_state = self._bound(feed)
            return fgr, pha, new_state
        fgr, pha, *new_state = self.session.run(OUTPUTS, feed)
        return fgr, pha, new_state


def model_file(model: str, cache: str | None = None) -> Path:
    """A path to an .onnx file as given, or a registered model's weights (fetched once)."""
    if str(model).endswith(".onnx") and Path(model).exists():
        return Path(model)
    from ..models.registry import fetch_model

    return Path(fetch_model(model, cache))


class SplitOnnxRunner(OnnxRunner):
    """The official graph cut before its full-resolution tail; the tail runs in ``vidmatte.models.rvm_tail``.

    ``shrink`` makes the network's small input from a uint8 frame (no full-size float copy), ``coarse`` runs the
    network on it and returns the guided filter's coefficients (the only output brought back from a GPU: 8 small
    planes). Called as a plain runner (float frame in, fgr and pha out) it runs the whole official graph, which it
    loads on first use.
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, coarse_model: bytes, threads: int | None = None, device=CPU,
                 io_binding: bool | None = None):
        from ..models.rvm_graph import COEFFICIENTS, STATE_OUTPUTS

        self.path, self.threads = Path(path), threads
        self.device = resolve_ort(device)
        self.coarse_session = open_session(coarse_model, threads, self.device)
        self.io_binding = self.device.is_gpu if io_binding is None else bool(io_binding)
        self._bound = (BoundRun(self.coarse_session, self.device, COEFFICIENTS, STATE_OUTPUTS) if self.io_binding
                       else None)
        self._whole: OnnxRunner | None = None

    @classmethod
    def from_model(cls, model: str, threads: int | None = None, cache: str | None = None, device=CPU,
                   io_binding: bool | None = None) -> OnnxRunner:
        """The split runner when the graph can be cut, else the whole graph (same results, slower)."""
        path = model_file(model, cache)
        device = resolve_ort(device)
        try:
            # numba and onnx are dependencies, but numba lags new Python releases: without it, run the graph whole.
            import numba  # noqa: F401

            from ..models.rvm_graph import split_model

            coarse = split_model(path)
        except Exception:  # not an ONNX file we can parse: let the whole-graph runner say what is wrong
            coarse = None
        if coarse is None:
            return OnnxRunner(path, threads, device, io_binding)
        return cls(path, coarse, threads, device, io_binding)

    def shrink(self, frame: np.ndarray, downsample_ratio: float) -> np.ndarray:
        from ..models.rvm_tail import shrink

        return shrink(frame, downsample_ratio)

    def coarse(self, small: np.ndarray, state) -> tuple[np.ndarray, list]:
        """small float32 [1,3,h,w] -> (coefficients float32 [8,h,w]: A then b, new state)."""
        from ..models.rvm_graph import COEFFICIENTS, SMALL_INPUT, STATE_OUTPUTS

        feed = {SMALL_INPUT: small}
        feed.update(zip(STATE_INPUTS, state))
        if self._bound is not None:
            (coef_a, coef_b), new_state = self._bound(feed)
        else:
            coef_a, coef_b, *new_state = self.coarse_session.run([*COEFFICIENTS, *STATE_OUTPUTS], feed)
        return np.concatenate([coef_a[0], coef_b[0]]), new_state

    def __call__(self, src, state, downsample_ratio):
        if self._whole is None:
            self._whole = OnnxRunner(self.path, self.threads, self.device, self.io_binding)
        return self._whole(src, state, downsample_ratio)
