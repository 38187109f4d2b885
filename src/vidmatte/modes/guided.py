"""The guided mode: any object marked on keyframes, propagated through the clip (``vidmatte guided``, the page's
"guided"). Methods: classical (propagate the keyframes, solve alpha; no weights) or a network of
``matters.networks.GUIDED_NETWORKS``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..matters.networks import GUIDED_NETWORKS
from .base import DEFAULT_MODEL, PICTURE_KINDS, RunSettings, bind_device, job_options, with_foreground

METHODS = ("classical", *GUIDED_NETWORKS)
KINDS = PICTURE_KINDS + ("trimap", "layers")
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
    object: int | str | list | None = None  # a palette mask's object; several: "1,2,3", [1, 2] or "all"
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
    from ..guidance.keyframes import several_objects

    several = several_objects(settings.object)
    if several and settings.method != "classical":
        raise UsageError("several objects in one run (--object 1,2 or all) are for the classical method")
    if settings.outputs.get("layers") and not several:
        raise UsageError("--layers writes a channel group per object: name several with --object 1,2 (or all); "
                         "one subject's EXR is --rgba DIR/ --image-format exr")


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
    from ..guidance.keyframes import parse_objects, several_objects

    if several_objects(settings.object):
        return _build_objects(settings, control, runners, sinks, source, folder, marks)
    object_id = parse_objects(settings.object)  # one id ("3" on a command line) or None
    job = Job(source, job_options(settings, KINDS, control.warn, sinks), control)
    size, frames = (job.width, job.height), job.source.expected_frames()
    if marks is not None:
        keyframes, warnings = read_keyframes(marks, frames, size, settings.guidance, object_id, settings.band)
    else:
        keyframes, warnings = load_keyframes(settings.keyframe, folder, frames, size, settings.guidance,
                                             object_id, settings.band)
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


def _build_objects(settings: GuidedSettings, control, runners, sinks, source, folder, marks):
    """Several subjects in one run: their keyframes read first (the ids name the outputs), then one job with an
    output per object and one matter for them all (``matters.guided_objects``)."""
    from ..backends.base import resolve_device
    from ..guidance.keyframes import load_object_keyframes, read_object_keyframes
    from ..io.source import open_source
    from ..pipeline import Job

    probed = open_source(source, settings.fps, settings.input_format, settings.input_options)
    size, frames = settings.input_resize or (probed.info.width, probed.info.height), probed.expected_frames()
    if marks is not None:
        keyframes, warnings = read_object_keyframes(marks, frames, size, settings.guidance, settings.object,
                                                    settings.band)
    else:
        keyframes, warnings = load_object_keyframes(settings.keyframe, folder, frames, size, settings.guidance,
                                                    settings.object, settings.band)
    job = Job(source, job_options(settings, KINDS, control.warn, sinks, objects=list(keyframes)), control)
    for message in warnings:
        control.warn(message)
    control.note("keyframes per object: " + "; ".join(f"{i}: {', '.join(map(str, k.indices()))}"
                                                      for i, k in keyframes.items()))
    device = resolve_device("onnxruntime", settings.device)
    job.details["device"] = device.name
    return job, with_foreground(_objects_matter(settings, job, keyframes, control, bind_device(runners, device),
                                                device), settings)


def _objects_matter(settings: GuidedSettings, job, keyframes: dict, control, runners, device):
    """One ``GuidedMatter`` per object, sharing the propagators' encoder, RVM's weights and a ``FrameMemo``."""
    from functools import lru_cache
    from pathlib import Path

    from ..errors import UsageError
    from ..guidance.frame_memo import FrameMemo, share_frames
    from ..matters.guided_objects import ObjectsMatter, PriorSteps, prefixed, share_prior

    memo, steps = FrameMemo(), PriorSteps()
    factory = _propagators(settings, control, device)
    opened = lru_cache(maxsize=None)(runners)  # every object's RVM prior from one loading of the weights
    matters = {}
    for object_id, object_keyframes in keyframes.items():
        try:
            one = _classical_matter(settings, job, object_keyframes, control, opened, device,
                                    propagators=lambda: share_frames(factory(), memo), object_id=object_id,
                                    work=str(Path(settings.work) / str(object_id)) if settings.work else None,
                                    warn=prefixed(control.warn, object_id), notify=prefixed(control.note, object_id))
        except UsageError as exc:  # e.g. none of its keyframes inside --start-frame/--end-frame
            raise type(exc)(f"object {object_id}: {exc}") from None
        matters[object_id] = share_prior(one, steps)
    return ObjectsMatter(matters, memo)


def _propagators(settings: GuidedSettings, control, device):
    from ..guidance.memory import memory_settings, propagator_factory

    mem_every, max_memory = memory_settings(settings.mem_every, settings.max_memory)
    return propagator_factory(settings.propagator, mem_every, max_memory, settings.finetune_steps, settings.model,
                              settings.cache_dir, device=device, warn=control.warn)


def _classical_matter(settings: GuidedSettings, job, keyframes, control, runners, device, propagators=None,
                      object_id=None, work=None, warn=None, notify=None):
    """The classical guided matter of one subject (``object_id``: which, when there are several; ``work``: its
    own work folder then; ``propagators``: a factory shared with the other objects')."""
    from ..guidance.keyframes import parse_objects
    from ..guidance.memory import memory_settings
    from ..matters.guided import guided_matter

    mem_every, max_memory = memory_settings(settings.mem_every, settings.max_memory)
    return guided_matter(job, keyframes, work=work if object_id is not None else settings.work,
                         prior_mode=settings.prior, model=settings.model, cache=settings.cache_dir,
                         warn=warn or control.warn, notify=notify or control.note,
                         guidance={"kind": settings.guidance,
                                   "object": parse_objects(settings.object) if object_id is None else object_id,
                                   "band": settings.band},
                         propagator={"name": settings.propagator, "mem_every": mem_every, "max_memory": max_memory,
                                     "finetune_steps": settings.finetune_steps},
                         propagator_factory=propagators or _propagators(settings, control, device), runners=runners)
