"""The guided mode: any object marked on keyframes, propagated through the clip (``vidmatte guided``, the page's
"guided"). Methods: classical (propagate the keyframes, solve alpha; no weights) or a network of
``matters.networks.GUIDED_NETWORKS``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..matters.networks import GUIDED_NETWORKS
from .base import DEFAULT_MODEL, PICTURE_KINDS, RunSettings, bind_device, job_options, with_foreground

METHODS = ("classical", *GUIDED_NETWORKS)
KINDS = PICTURE_KINDS + ("trimap",)
GUIDANCE_KINDS = ("auto", "trimap", "mask")
PROPAGATORS = ("auto", "track", "flow", "memory")
PRIORS = ("auto", "rvm", "none")
METHOD_HELP = "classical: propagate the keyframes and solve alpha (no weights); " + "; ".join(
    f"{name}: {network.summary}" for name, network in GUIDED_NETWORKS.items())
CHECKPOINT_HELP = ("--method ftpvm: the official ftpvm.pth or a training checkpoint (no weights are bundled); "
                   "rvm-init: RVM's encoder with every other layer untrained; --method dvm: a training checkpoint "
                   "holding both DVM networks; --method tgm: the official trimap module's weights or a training "
                   "checkpoint (optional)")
NO_KEYFRAME = "no keyframe: give --keyframe INDEX:PATH (repeatable) or --keyframes DIR"


@dataclass(kw_only=True)
class GuidedSettings(RunSettings):
    keyframe: list[str] = field(default_factory=list)  # INDEX:PATH marks
    keyframes: str | None = None  # a folder of marks named by frame index, or a TCVOM workspace
    marks: dict | None = None  # {frame index: a mark's path or array} (the API's and the page's); beside the above
    guidance: str = "auto"  # what the marks are: trimaps, masks, or decided per image
    object: int | None = None  # the object of a palette mask
    band: int | None = None  # the unknown strip a mask's edge becomes (None: 10 px at 1080p, scaled)
    propagator: str = "auto"
    mem_every: int | None = None
    max_memory: int | None = None
    finetune_steps: int = 0
    prior: str = "auto"
    method: str = "classical"
    checkpoint: str | None = None
    model: str = DEFAULT_MODEL  # RVM's weights: the prior (and the memory propagator's encoder)
    work: str | None = None  # a work folder kept between runs (corrections recompute only what changed)


def check(settings: GuidedSettings) -> None:
    """The choices a command line's parser would have refused, for callers without one (the API, a batch item)."""
    from ..errors import UsageError

    for name, choices in (("guidance", GUIDANCE_KINDS), ("propagator", PROPAGATORS), ("prior", PRIORS),
                          ("method", METHODS)):
        value = getattr(settings, name)
        if value not in choices:
            raise UsageError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    memoryless = settings.propagator in ("flow", "track") or (settings.propagator == "auto"
                                                                and not settings.finetune_steps)
    if settings.method == "classical" and memoryless and (settings.mem_every is not None or settings.max_memory is not None):
        raise UsageError("mem_every= and max_memory= are for a network method or the memory propagator (--mem-every, "
                         "--max-memory; the classical method's track and flow propagators keep no memory)")
    if settings.method != "classical" and settings.work:
        raise UsageError("--work / work= (a kept work folder, corrections) is for the classical method only")


def build(settings: GuidedSettings, control, runners=None, sinks: tuple = ()):
    from ..backends.base import resolve_device
    from ..errors import UsageError
    from ..guidance import detect_tcvom, load_keyframes, read_keyframes
    from ..io.probe import live_source
    from ..pipeline import Job

    check(settings)
    if live_source(settings.input, settings.input_format) is not None:
        raise UsageError("guided matting reads the clip three times (forward, backward, then writing); "
                         "record the camera to a file first")
    source, folder, marks = settings.input, settings.keyframes, settings.marks
    workspace = detect_tcvom(source) if marks is None else None
    if workspace is not None:  # a TCVOM workspace given as the input is both the frames and their keyframes
        source, folder = workspace.frames, folder or source
    if marks is None and not settings.keyframe and folder is None:
        raise UsageError(NO_KEYFRAME)
    job = Job(source, job_options(settings, KINDS, control.warn, sinks), control)
    size, frames = (job.width, job.height), job.source.expected_frames()
    if marks is not None:
        keyframes, warnings = read_keyframes(marks, frames, size, settings.guidance, settings.object, settings.band)
    else:
        keyframes, warnings = load_keyframes(settings.keyframe, folder, frames, size, settings.guidance,
                                             settings.object, settings.band)
    for message in warnings:
        control.warn(message)
    # The networks are PyTorch; the classical method's networks (RVM's prior, the memory's encoder) ONNX Runtime.
    device = resolve_device("torch" if settings.method != "classical" else "onnxruntime", settings.device)
    job.details["device"] = device.name
    if settings.method != "classical":
        options = {"mem_every": settings.mem_every, "max_memory": settings.max_memory,
                   "finetune_steps": settings.finetune_steps, "prior": settings.prior, "model": settings.model,
                   "device": device}
        return job, with_foreground(GUIDED_NETWORKS[settings.method].matter(
            job, keyframes, settings.checkpoint, cache=settings.cache_dir, warn=control.warn, options=options),
            settings)
    return job, with_foreground(_classical_matter(settings, job, keyframes, control, bind_device(runners, device),
                                                  device), settings)


def _classical_matter(settings: GuidedSettings, job, keyframes, control, runners, device):
    from ..guidance.memory import memory_settings, propagator_factory
    from ..matters.guided import guided_matter

    mem_every, max_memory = memory_settings(settings.mem_every, settings.max_memory)
    propagators = propagator_factory(settings.propagator, mem_every, max_memory, settings.finetune_steps,
                                     settings.model, settings.cache_dir, device=device, warn=control.warn)
    return guided_matter(job, keyframes, work=settings.work, prior_mode=settings.prior, model=settings.model,
                         cache=settings.cache_dir, warn=control.warn, notify=control.note,
                         guidance={"kind": settings.guidance, "object": settings.object, "band": settings.band},
                         propagator={"name": settings.propagator, "mem_every": mem_every, "max_memory": max_memory,
                                     "finetune_steps": settings.finetune_steps},
                         propagator_factory=propagators, runners=runners)
