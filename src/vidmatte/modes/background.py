"""The background mode: whatever differs from a clean plate of the scene (``vidmatte background``, the page's
"plate")."""

from __future__ import annotations

from dataclasses import dataclass

from .base import DEFAULT_MODEL, PICTURE_KINDS, RunSettings, bind_device, job_options

METHODS = ("classical", "neural")
KINDS = PICTURE_KINDS
METHOD_HELP = ("classical: the compositing equation with the plate, solved with the matting Laplacian (no trained "
               "weights beyond RVM's person prior); neural: BackgroundMattingV2 (with ConvLSTMs when the checkpoint "
               "has them) on frame and aligned plate, needs --checkpoint")
CHECKPOINT_HELP = ("weights of the neural method: an official BackgroundMattingV2 .pth state dict or a `vidmatte "
                   "train` checkpoint (model.kind bgmv2); none are bundled")


@dataclass(kw_only=True)
class BackgroundSettings(RunSettings):
    plate: object = None  # an image or plate video (path), "auto" (a detected screen, else estimated from the
    # footage), "green", "blue" or "#RRGGBB" (a screen: each frame's plate made from it), or an RGB array
    plate_out: str | None = None  # where to write the plate used (e.g. the auto estimate)
    align: bool = True  # False: a locked-off camera, the plate used as it is
    method: str = "classical"
    checkpoint: str | None = None  # the neural method's weights
    model: str = DEFAULT_MODEL  # RVM's weights: the classical method's person prior


def build(settings: BackgroundSettings, control, runners=None, sinks: tuple = ()):
    from ..backends.base import resolve_device
    from ..backends.device import ort_beside
    from ..errors import UsageError
    from ..matters.plate import plate_matter
    from ..pipeline import Job

    if settings.checkpoint and settings.method != "neural":
        raise UsageError("--checkpoint is for --method neural")
    if settings.plate is None or (isinstance(settings.plate, str) and not settings.plate):
        raise UsageError("background mode needs a plate: --plate, or a plate column in the batch manifest")
    job = Job(settings.input, job_options(settings, KINDS, control.warn, sinks), control)
    # neural: BackgroundMattingV2 in PyTorch; classical: RVM's person prior in ONNX Runtime
    device = resolve_device("torch" if settings.method == "neural" else "onnxruntime", settings.device)
    job.details["device"] = device.name
    matter = plate_matter(job, settings.plate, method=settings.method, checkpoint=settings.checkpoint,
                          align=settings.align, model=settings.model, cache=settings.cache_dir,
                          plate_out=settings.plate_out, overwrite=settings.overwrite, warn=control.warn,
                          notify=control.note, runners=bind_device(runners, ort_beside(device)), device=device,
                          foreground=settings.foreground_method)
    return job, matter
