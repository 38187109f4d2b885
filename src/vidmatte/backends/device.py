"""Where the networks run: ``--device auto|cpu|cuda[:N]`` turned into ONNX Runtime providers or a torch device.

The one place that decides. ``auto`` takes the GPU only when it can really be used (the CUDA provider loads AND a
device is present), else the CPU; an explicit ``cuda`` that cannot be used is a one-line ``UsageError`` (exit 2)
naming what is missing (the onnxruntime-gpu package, the CUDA/cuDNN libraries, the driver or the device), never a
silent CPU fallback. What was chosen is logged (``--debug``) and reported as the run's ``"device"`` (``--json``).

The probes are cached per process: they describe the machine, not a job, and a CUDA session costs a second to make.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from ..errors import UsageError

log = logging.getLogger("vidmatte")

CHOICES = "auto, cpu, cuda or cuda:N"
GPU_EXTRA = "pip uninstall onnxruntime && pip install 'vidmatte[gpu]'"


@dataclass(frozen=True)
class Device:
    """A resolved device: ``kind`` "cpu", "cuda" (or "mps", torch only) and the CUDA ordinal."""

    kind: str = "cpu"
    index: int = 0

    @property
    def name(self) -> str:
        """What ``--json`` says: "cpu", "cuda:0", "mps"."""
        return f"cuda:{self.index}" if self.kind == "cuda" else self.kind

    def __str__(self) -> str:
        return self.name

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"

    def providers(self) -> list:
        """ONNX Runtime's providers for this device (the CPU provider behind CUDA for the few nodes CUDA lacks)."""
        if self.kind == "cuda":
            return [("CUDAExecutionProvider", {"device_id": self.index}), "CPUExecutionProvider"]
        if self.kind != "cpu":
            raise UsageError(f"--device {self.name} is for --backend torch; ONNX Runtime runs on cpu or cuda")
        return ["CPUExecutionProvider"]

    def ort_device(self) -> tuple[str, int]:
        """(device_type, device_id) as ORT's OrtValue and IOBinding name it."""
        return ("cuda", self.index) if self.kind == "cuda" else ("cpu", 0)

    def torch(self):
        import torch

        return torch.device(self.name)


CPU = Device()


def parse_device(text) -> tuple[str, int | None]:
    """``"cuda:1"`` -> ("cuda", 1); ``"cuda"`` -> ("cuda", None); one-line UsageError for anything else."""
    if isinstance(text, Device):
        return text.kind, text.index
    value = "auto" if text in (None, "") else str(text).strip().lower()
    if value in ("auto", "cpu", "cuda", "mps"):
        return value, None
    kind, sep, index = value.partition(":")
    if kind == "cuda" and sep and index.isdigit():
        return "cuda", int(index)
    raise UsageError(f"--device must be {CHOICES}, not {text!r}")


def check_device(text) -> str:
    """The device text as given, checked (the settings' check: no hardware is probed here)."""
    parse_device(text)
    return "auto" if text in (None, "") else text if isinstance(text, Device) else str(text).strip().lower()


def _settled(text) -> tuple[Device | None, str | None, int | None]:
    """(the device when ``text`` needs no probing: already a Device, or cpu; else None, with its kind and index)."""
    if isinstance(text, Device):
        return text, None, None
    kind, index = parse_device(text)
    if kind == "cpu":
        log.debug("device: cpu (asked for)")
        return CPU, kind, index
    return None, kind, index


# --- ONNX Runtime ------------------------------------------------------------------------------------------------
def resolve_ort(text) -> Device:
    """The device ONNX Runtime sessions use for ``--device text``; UsageError when CUDA is asked for and unusable."""
    settled, kind, index = _settled(text)
    if settled is not None:
        return settled
    if kind == "mps":
        raise UsageError("--device mps is for --backend torch; ONNX Runtime runs on cpu or cuda")
    problem = ort_cuda_problem(index or 0)
    if kind == "auto":
        if problem is None:
            log.debug("device: auto -> cuda:0 (ONNX Runtime's CUDA provider)")
            return Device("cuda", 0)
        log.debug(f"device: auto -> cpu ({problem})")
        return CPU
    if problem is not None:
        raise UsageError(f"--device {kind}{'' if index is None else f':{index}'}: {problem}")
    log.debug(f"device: cuda:{index or 0} (ONNX Runtime's CUDA provider)")
    return Device("cuda", index or 0)


@functools.lru_cache(maxsize=None)
def ort_cuda_problem(index: int = 0) -> str | None:
    """Why ONNX Runtime cannot run on CUDA device ``index`` here (one line), or None when it can."""
    import onnxruntime as ort

    count, why = cuda_devices()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (f"this onnxruntime ({ort.__version__}, CPU only) has no CUDA provider; install the onnxruntime-gpu "
                f"package: {GPU_EXTRA}" + (f" (and note: {why})" if why else ""))
    if why:
        return why
    if index >= count:
        return f"there is no CUDA device {index} (the driver sees {count})"
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu >= 1.21: CUDA/cuDNN from the nvidia-* wheels
    if preload is not None:
        try:
            preload()
        except Exception:  # the libraries may be installed system-wide instead: the session below decides
            pass
    try:
        session = ort.InferenceSession(_tiny_model(), _quiet_options(ort),
                                       providers=[("CUDAExecutionProvider", {"device_id": index})])
    except Exception as exc:
        return f"the CUDA provider failed to load ({str(exc).splitlines()[0][:200]})"
    if "CUDAExecutionProvider" not in session.get_providers():
        # ORT falls back to the CPU when libonnxruntime_providers_cuda.so cannot load its dependencies
        return ("the CUDA provider could not load the CUDA or cuDNN libraries (onnxruntime-gpu "
                f"{ort.__version__} needs CUDA 12 and cuDNN 9: pip install 'onnxruntime-gpu[cuda,cudnn]', or "
                "install them system-wide)")
    return None


@functools.lru_cache(maxsize=1)
def cuda_devices() -> tuple[int, str | None]:
    """(CUDA devices the driver sees, why none can be used or None), from the driver itself (no toolkit needed)."""
    import ctypes
    import ctypes.util

    names = ["libcuda.so.1", "libcuda.so", "nvcuda.dll", ctypes.util.find_library("cuda")]
    driver = None
    for name in filter(None, names):
        try:
            driver = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if driver is None:
        return 0, "no NVIDIA driver (libcuda not found): no CUDA device on this machine"
    if driver.cuInit(0) != 0:
        return 0, "the NVIDIA driver found no usable CUDA device (cuInit failed)"
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return 0, "the NVIDIA driver sees no CUDA device"
    return count.value, None


def _quiet_options(ort):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the fallback warning is what we turn into a message, not a coloured log line
    return options


def _tiny_model() -> bytes:
    """A one-node graph (Identity), serialized: enough to see whether the CUDA provider loads."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def ort_beside(device: Device) -> Device:
    """Where ONNX parts run beside PyTorch networks on ``device`` (RVM's prior of TGM, the neural plate's auto
    estimate): the same GPU when ONNX Runtime can use it (a CUDA build of PyTorch does not bring onnxruntime-gpu),
    else the CPU. The run's reported device is the PyTorch network's."""
    if device.kind != "cuda" or ort_cuda_problem(device.index) is not None:
        return CPU
    return device


# --- PyTorch -----------------------------------------------------------------------------------------------------
def resolve_torch(text) -> Device:
    """The torch device for ``--device text``: auto -> cuda, then mps, then cpu; UsageError when an asked-for GPU
    cannot be used, saying why."""
    settled, kind, index = _settled(text)
    if settled is not None:
        return settled
    try:
        import torch
    except ImportError:  # the caller says which extra it needs; here only whether a GPU was asked for
        if kind == "auto":
            return CPU
        raise UsageError(f"--device {text}: PyTorch is not installed (the 'torch' extra)") from None

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    problem = torch_cuda_problem(index or 0)
    if kind == "auto":
        chosen = Device("cuda", 0) if problem is None else Device("mps") if mps else CPU
        log.debug(f"device: auto -> {chosen.name} (PyTorch)" + ("" if problem is None else f"; {problem}"))
        return chosen
    if kind == "mps":
        if not mps:
            raise UsageError("--device mps: MPS (Apple GPU) is not available in this PyTorch")
        return Device("mps")
    if problem is not None:
        raise UsageError(f"--device {kind}{'' if index is None else f':{index}'}: {problem}")
    log.debug(f"device: cuda:{index or 0} (PyTorch)")
    return Device("cuda", index or 0)


def torch_cuda_problem(index: int = 0) -> str | None:
    """Why PyTorch cannot run on CUDA device ``index`` (one line), or None."""
    import torch

    if torch.version.cuda is None:
        return (f"this PyTorch ({torch.__version__}) is built without CUDA; install a CUDA build "
                "(https://pytorch.org/get-started/locally/)")
    if not torch.cuda.is_available():
        count, why = cuda_devices()
        return why or "PyTorch cannot use the CUDA device (driver too old for this PyTorch's CUDA?)"
    if index >= torch.cuda.device_count():
        return f"there is no CUDA device {index} (PyTorch sees {torch.cuda.device_count()})"
    return None


def gpu_present() -> bool:
    """A CUDA device the driver sees (what GPU-only tests and gpu_check ask first)."""
    return cuda_devices()[1] is None
