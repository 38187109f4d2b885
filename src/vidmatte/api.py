"""The small public API. Everything here calls the same pipeline the CLI uses."""

from __future__ import annotations

from .matters.recurrent import DEFAULT_WARMUP, RecurrentMatter
from .models.registry import ModelSpec
from .models.registry import list_models as _list_specs


def list_models() -> list[ModelSpec]:
    """Registered pretrained models (self-describing entries)."""
    return _list_specs()


def load(model: str = "rvm-mobilenetv3", backend: str = "onnxruntime", downsample_ratio: float | None = None,
         threads: int | None = None, device: str = "auto", cache: str | None = None,
         warmup: int = DEFAULT_WARMUP) -> RecurrentMatter:
    """A streaming matter: ``m.step(frame) -> (fgr, pha)``, ``m.reset()``, ``for fgr, pha in m.stream(frames)``.

    frame: uint8 [H,W,3] RGB. fgr: float32 [H,W,3] 0..1; pha: float32 [H,W] 0..1.
    ``warmup``: frames the recurrent state is warmed on before a file's first frame, when the matter runs a
    ``convert`` job (streaming calls cannot look ahead and start cold).
    """
    from .backends import open_runner

    return RecurrentMatter(open_runner(model, backend, threads=threads, device=device, cache=cache), downsample_ratio,
                           warmup=warmup)


def convert_video(model="rvm-mobilenetv3",
                  input_source: str = None,
                  input_resize: tuple[int, int] | None = None,
                  downsample_ratio: float | None = None,
                  output_type: str = "video",
                  output_composition: str | None = None,
                  output_alpha: str | None = None,
                  output_foreground: str | None = None,
                  output_video_mbps: float | None = None,
                  seq_chunk: int = 1,
                  num_workers: int = 0,
                  progress: bool = True,
                  device: str | None = None,
                  dtype=None,
                  *,
                  output_rgba: str | None = None,
                  background: str = "green",
                  backend: str = "onnxruntime",
                  start_frame: int = 0,
                  end_frame: int | None = None,
                  overwrite: bool = False,
                  allow_partial: bool = False,
                  warmup: int | None = None,
                  control=None):
    """RobustVideoMatting's ``convert_video``, same parameter names and meaning, on vidmatte's pipeline.

    model: a registered name (``"rvm-mobilenetv3"``), a path to an RVM ``.onnx`` file, a matter from ``load``, or
    a PyTorch ``MattingNetwork`` (``vidmatte.models.rvm``), as in RVM's own scripts.
    output_type: ``"video"`` (paths are files; the extension picks the container, .mp4 by RVM's habit) or
    ``"png_sequence"`` (paths are folders; as in RVM the composition is then RGBA PNGs).
    num_workers and dtype are accepted for compatibility: decoding always runs in its own thread, and the ONNX
    weights are fp32. Unlike RVM, existing outputs are not replaced unless ``overwrite=True``.
    ``warmup``: frames to warm the recurrent state on before frame 0 (default 8; 0 starts cold, as RVM does).
    ``control``: a ``vidmatte.job.JobControl`` to follow progress and cancel from another thread (then
    ``progress`` is ignored). Returns a ``ConvertResult`` (frames, seconds, fps, outputs).
    """
    from .errors import UsageError
    from .io.writers import parse_output
    from .pipeline import ConvertOptions, Job, controlled

    if input_source is None:
        raise UsageError("convert_video needs input_source")
    if output_type not in ("video", "png_sequence"):
        raise UsageError(f"output_type must be 'video' or 'png_sequence', not {output_type!r}")
    sequence = output_type == "png_sequence"

    def spec(kind: str, path: str | None):
        if path is None:
            return None
        return parse_output(kind, str(path).rstrip("/") + "/" if sequence else str(path))

    requested = [spec("rgba" if sequence else "composition", output_composition), spec("alpha", output_alpha),
                 spec("foreground", output_foreground), spec("rgba", output_rgba)]
    options = ConvertOptions(
        outputs=[s for s in requested if s is not None], background=background, start_frame=start_frame,
        end_frame=end_frame, input_resize=tuple(input_resize) if input_resize else None,
        bitrate=f"{output_video_mbps}M" if output_video_mbps else None, overwrite=overwrite,
        overwrite_hint="overwrite=True", allow_partial=allow_partial, progress=progress)
    with controlled(control, progress) as control:
        job = Job(input_source, options, control)  # the input and outputs checked before a model is loaded
        return job.run(_matter_for(model, backend, downsample_ratio, seq_chunk, device, warmup))


def _matter_for(model, backend: str, downsample_ratio: float | None, seq_chunk: int, device: str | None,
                warmup: int | None) -> RecurrentMatter:
    """convert_video's ``model``: a matter from ``load``, a torch MattingNetwork, a registered name or a path."""
    if isinstance(model, RecurrentMatter):
        matter = model
    elif hasattr(model, "parameters") and callable(model):  # a torch MattingNetwork, as RVM's own scripts pass
        from .backends.torch_runner import TorchRunner

        matter = RecurrentMatter(TorchRunner(model, device=device or "auto"), downsample_ratio, seq_chunk)
    else:
        matter = load(str(model), backend=backend, downsample_ratio=downsample_ratio, device=device or "auto")
        matter.seq_chunk = seq_chunk
    if downsample_ratio is not None:
        matter.downsample_ratio = downsample_ratio
    if warmup is not None:
        matter.warmup = max(0, int(warmup))
    return matter
