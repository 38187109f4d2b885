"""The small public API. Everything here calls the same pipeline the CLI uses."""

from __future__ import annotations

import contextlib
import os

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
                  control=None,
                  keyframes: dict | None = None,
                  guidance: str = "auto",
                  object: int | None = None,
                  band: int | None = None,
                  prior: str = "auto",
                  work: str | None = None,
                  method: str = "classical",
                  checkpoint: str | None = None,
                  image_format: str = "png",
                  bit_depth: int | None = None,
                  premultiplied: bool = False,
                  foreground_method: str = "auto"):
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
    ``keyframes``: {frame index: trimap or mask (path or array)} mattes the subject marked there instead, by
    ``convert_guided`` with ``guidance``, ``object``, ``band``, ``prior``, ``work``, ``method`` and ``checkpoint``
    (see there; ``model`` is then the RVM weights of its prior).
    ``image_format``: "png", "tiff" or "exr" for folder outputs (EXR needs the 'exr' extra); ``bit_depth``: 8 or 16
    for PNG/TIFF alpha, foreground and RGBA, 16 (half) or 32 (float) for EXR (None: 8, EXR 16);
    ``premultiplied``: RGBA outputs store colour times alpha (``--image-format``, ``--bit-depth``,
    ``--premultiplied``). ``foreground_method``: how the foreground colours are made, as ``--foreground-method``
    (auto: RVM's own; none, estimate, despill; docs/CLI.md).
    """
    from .errors import UsageError
    from .modes import MODES
    from .modes.base import job_options, with_foreground
    from .pipeline import Job

    if keyframes is None and (method != "classical" or checkpoint is not None):
        raise UsageError(f"method={method!r} and checkpoint= are for guided matting: give keyframes= too")
    if keyframes is not None:
        return convert_guided(input_source, keyframes, input_resize, output_type, output_composition, output_alpha,
                              output_foreground, output_video_mbps, progress, output_rgba=output_rgba,
                              background=background, start_frame=start_frame, end_frame=end_frame,
                              overwrite=overwrite, allow_partial=allow_partial, control=control,
                              guidance=guidance, object=object, band=band, prior=prior, work=work,
                              method=method, checkpoint=checkpoint, image_format=image_format,
                              bit_depth=bit_depth, premultiplied=premultiplied, device=device or "auto",
                              foreground_method=foreground_method,
                              **({"model": model} if isinstance(model, str) else {}))
    run = _run_settings(input_source, output_type, input_resize, output_video_mbps, background, start_frame,
                        end_frame, overwrite, allow_partial,
                        [("composition", output_composition), ("alpha", output_alpha),
                         ("foreground", output_foreground), ("rgba", output_rgba)],
                        image_format, bit_depth, premultiplied)
    run["foreground_method"] = foreground_method
    mode = MODES["convert"]
    with _controlled(control, progress) as control:
        if isinstance(model, (str, os.PathLike)):
            settings = mode.settings(**run, model=str(model), backend=backend, device=device or "auto",
                                     downsample_ratio=downsample_ratio, seq_chunk=seq_chunk,
                                     warmup=DEFAULT_WARMUP if warmup is None else max(0, int(warmup)))
            job, matter = mode.build(settings, control)
        else:  # a matter from ``load`` or a torch MattingNetwork: the caller's own weights, already loaded
            job = Job(run["input"], job_options(mode.settings(**run), mode.kinds, control.warn), control)
            matter = _matter_for(model, downsample_ratio, seq_chunk, device, warmup)
            job.details["device"] = str(getattr(matter.runner, "device", "cpu"))
            matter = with_foreground(matter, mode.settings(**run))
        return job.run(matter)


def convert_guided(input_source: str = None,
                   keyframes: dict | None = None,
                   input_resize: tuple[int, int] | None = None,
                   output_type: str = "video",
                   output_composition: str | None = None,
                   output_alpha: str | None = None,
                   output_foreground: str | None = None,
                   output_video_mbps: float | None = None,
                   progress: bool = True,
                   *,
                   output_rgba: str | None = None,
                   output_trimaps: str | None = None,
                   background: str = "green",
                   start_frame: int = 0,
                   end_frame: int | None = None,
                   overwrite: bool = False,
                   allow_partial: bool = False,
                   guidance: str = "auto",
                   object: int | None = None,
                   band: int | None = None,
                   prior: str = "auto",
                   model: str = "rvm-mobilenetv3",
                   cache: str | None = None,
                   work: str | None = None,
                   control=None,
                   method: str = "classical",
                   checkpoint: str | None = None,
                   mem_every: int | None = None,
                   max_memory: int | None = None,
                   propagator: str = "auto",
                   image_format: str = "png",
                   bit_depth: int | None = None,
                   premultiplied: bool = False,
                   device: str = "auto",
                   foreground_method: str = "auto"):
    """``vidmatte guided`` as a call: matte any subject marked on keyframes, same checks and errors as the CLI.

    keyframes: {frame index: a trimap or mask image path, or the image as a numpy array (uint8/bool [H,W] mask,
    label map or grey trimap, float [H,W] 0..1, uint8 [H,W,3|4])}; None when ``input_source`` is a TCVOM
    workspace, whose trimaps are then the keyframes. Outputs as ``convert_video`` (plus ``output_trimaps``: the
    trimap each frame was solved from); guidance ("auto", "trimap", "mask"), object and band read the keyframes
    as ``--guidance/--object/--band`` do; prior "auto", "rvm" or "none" (``model``: its RVM weights); work: a
    folder kept between calls, so that a call with an added, changed or removed keyframe recomputes only the
    frames between its neighbouring keyframes (``result.details["reused_frames"]``). Returns a ``ConvertResult``.
    method: "classical" (propagate the keyframes, solve alpha) or a network of ``--method``
    (``matters.networks.GUIDED_NETWORKS``, e.g. "ftpvm") run from ``checkpoint``, with ``mem_every`` /
    ``max_memory`` as ``--mem-every`` / ``--max-memory`` (None: the network's own defaults); ``work`` and
    ``prior`` are for the classical method. ``image_format``, ``bit_depth``, ``premultiplied``: as
    ``convert_video``'s. device: "auto", "cpu", "cuda" or "cuda:N" as ``--device`` (``result.details["device"]``
    says which ran). propagator: as ``--propagator`` (classical method). foreground_method: as
    ``--foreground-method`` (auto: the solver's).
    Errors are ``UsageError``/``GuidanceError`` (one line) before anything is written.
    """
    from .modes import MODES

    run = _run_settings(input_source, output_type, input_resize, output_video_mbps, background, start_frame,
                        end_frame, overwrite, allow_partial,
                        [("composition", output_composition), ("alpha", output_alpha),
                         ("foreground", output_foreground), ("rgba", output_rgba), ("trimap", output_trimaps)],
                        image_format, bit_depth, premultiplied)
    mode = MODES["guided"]
    settings = mode.settings(**run, marks=keyframes, guidance=guidance, object=object, band=band, prior=prior,
                             model=model, cache_dir=cache, work=work, method=method, checkpoint=checkpoint,
                             mem_every=mem_every, max_memory=max_memory, propagator=propagator, device=device,
                             foreground_method=foreground_method)
    return _run(mode, settings, control, progress)


def convert_background(input_source: str = None, plate=None, *, method: str = "classical", align: bool = True,
                       plate_out: str | None = None, model: str = "rvm-mobilenetv3", cache: str | None = None,
                       checkpoint: str | None = None, foreground_method: str = "auto", control=None,
                       device: str = "auto", **outputs):
    """``vidmatte background`` as a call: matte whatever differs from a clean plate, same checks and errors.

    plate: an image or a short video of the empty scene (path), "auto" (a green or blue screen when the frame's
    border is mostly one saturated colour, else estimated from the footage: a static camera), "green", "blue" or
    "#RRGGBB" (a screen: each frame's plate made from the screen itself), or the plate as a uint8 [H,W,3] RGB array
    at the frames' size. foreground_method: as ``--foreground-method`` (auto: unmixed from the plate, despilled
    on a screen). align=False for a locked-off camera;
    method "classical" or "neural" (BackgroundMattingV2 from ``checkpoint``, a .pth state dict or a training
    checkpoint; none are bundled); plate_out: write the plate used (e.g. the auto estimate) as an image; model:
    RVM's weights, the classical method's person prior. ``outputs``: the outputs and options of ``convert_video`` by
    their names (output_type, output_composition, output_alpha, output_foreground, output_rgba, background,
    input_resize, output_video_mbps, start_frame, end_frame, overwrite, allow_partial, image_format, bit_depth,
    premultiplied, progress). Returns a ``ConvertResult`` whose ``details`` report ``plate_source``, the alignment
    (``plate_unmatched_frames``, ``plate_gain_frames``, ``plate_residual``), ``person_share`` and ``device``
    (``device=``: "auto", "cpu", "cuda" or "cuda:N", as ``--device``). Errors are ``UsageError`` (one line) before
    anything is written.
    """
    from .errors import UsageError
    from .modes import MODES

    if input_source is None or plate is None:
        raise UsageError("convert_background needs input_source and plate")
    progress = outputs.pop("progress", True)
    mode = MODES["background"]
    settings = mode.settings(**_output_options(input_source, **outputs), plate=plate, method=method, align=align,
                             plate_out=plate_out, model=model, cache_dir=cache, checkpoint=checkpoint, device=device,
                             foreground_method=foreground_method)
    return _run(mode, settings, control, progress)


def _run(mode, settings, control, progress: bool):
    """Build the mode's job from ``settings`` and run it, as the command would (the API's words in its errors)."""
    with _controlled(control, progress) as control:
        job, matter = mode.build(settings, control)
        return job.run(matter)


@contextlib.contextmanager
def _controlled(control, progress: bool):
    """The caller's control, or one that draws a progress bar on a terminal (closed when the job ends); an output
    that exists is refused in the API's words."""
    from .errors import OutputExists
    from .job import JobControl
    from .progress import ProgressBar

    bar = ProgressBar(enabled=progress and control is None)
    try:
        yield control or JobControl(on_progress=bar.update)
    except OutputExists as exc:
        exc.allow = "overwrite=True"
        raise
    finally:
        bar.close()


def _output_options(input_source, input_resize=None, output_type: str = "video", output_composition=None,
                    output_alpha=None, output_foreground=None, output_video_mbps=None, output_rgba=None,
                    background: str = "green", start_frame: int = 0, end_frame=None, overwrite: bool = False,
                    allow_partial: bool = False, image_format: str = "png", bit_depth: int | None = None,
                    premultiplied: bool = False) -> dict:
    """The run settings from ``convert_video``'s output parameters, by name (a misspelt one is a TypeError)."""
    return _run_settings(input_source, output_type, input_resize, output_video_mbps, background, start_frame,
                         end_frame, overwrite, allow_partial,
                         [("composition", output_composition), ("alpha", output_alpha),
                          ("foreground", output_foreground), ("rgba", output_rgba)],
                         image_format, bit_depth, premultiplied)


def load_guided(keyframe=None, guidance: str = "auto", object: int | None = None, band: int | None = None,
                prior: str = "auto", model: str = "rvm-mobilenetv3", cache: str | None = None, device: str = "auto"):
    """Guided matting for apps, frame by frame: ``g.step(frame, keyframe=None) -> (fgr, pha)``.

    The latest keyframe given (a trimap or mask, path or array, read as ``convert_guided`` reads them) is carried
    forward to each new frame; a new keyframe replaces it. Online use can only go forward: for a file,
    ``convert_guided`` carries every keyframe both ways and fuses them, which is more accurate between keyframes.
    ``g.reset()`` before an unrelated video; ``g.trimap`` is the last frame's propagated trimap. device: where
    RVM's prior runs (``--device``).
    """
    from .errors import UsageError
    from .guidance import read_guidance
    from .matters.guided_stream import GuidedStream
    from .matters.recurrent import open_prior
    from .modes.guided import PRIORS
    from .solvers.trimap_solver import TrimapSolver

    if prior not in PRIORS:
        raise UsageError(f"prior must be 'auto', 'rvm' or 'none', not {prior!r}")
    from .guidance.keyframes import parse_objects, several_objects

    if several_objects(object):
        raise UsageError("load_guided follows one subject; several objects in one run are convert_guided's")
    object_id = parse_objects(object)

    def read_keyframe(given, frame_size):
        trimap, warnings = read_guidance(given, frame_size, guidance, object_id, band)
        for message in warnings:
            _log().warning(message)
        return trimap

    from .backends.device import resolve_ort
    from .modes.base import bind_device

    runners = bind_device(None, resolve_ort(device))
    solver = TrimapSolver(prior=open_prior(prior, model, cache, _log().warning, runners), prior_mode=prior)
    return GuidedStream(solver, read_keyframe, keyframe)


def _log():
    import logging

    return logging.getLogger("vidmatte")


def _run_settings(input_source, output_type: str, input_resize, output_video_mbps, background, start_frame,
                  end_frame, overwrite, allow_partial, outputs: list[tuple[str, object]], image_format: str = "png",
                  bit_depth: int | None = None, premultiplied: bool = False) -> dict:
    """The ``RunSettings`` of convert_video, convert_guided and convert_background by field; ``outputs``: (kind,
    path or None) pairs."""
    from .errors import UsageError

    if input_source is None:
        raise UsageError("convert_video needs input_source")
    if output_type not in ("video", "png_sequence"):
        raise UsageError(f"output_type must be 'video' or 'png_sequence', not {output_type!r}")
    sequence = output_type == "png_sequence"
    paths = {}
    for kind, path in outputs:
        if path is None:
            continue
        kind = "rgba" if sequence and kind == "composition" else kind  # RVM's RGBA PNG composition
        if kind in paths:
            raise UsageError("with output_type='png_sequence' the composition is RGBA: give output_composition or "
                             "output_rgba, not both")
        paths[kind] = str(path).rstrip("/") + "/" if sequence else str(path)
    return {"input": str(input_source), "outputs": paths, "background": background, "start_frame": start_frame,
            "end_frame": end_frame, "input_resize": tuple(input_resize) if input_resize else None,
            "bitrate": f"{output_video_mbps}M" if output_video_mbps else None, "overwrite": overwrite,
            "allow_partial": allow_partial, "image_format": image_format, "bit_depth": bit_depth,
            "premultiplied": bool(premultiplied)}


def _matter_for(model, downsample_ratio: float | None, seq_chunk: int, device: str | None,
                warmup: int | None) -> RecurrentMatter:
    """convert_video's ``model`` when it is not a name or a path: a matter from ``load``, or a torch
    MattingNetwork."""
    from .errors import UsageError

    if isinstance(model, RecurrentMatter):
        matter = model
    elif hasattr(model, "parameters") and callable(model):  # a torch MattingNetwork, as RVM's own scripts pass
        from .backends.torch_runner import TorchRunner

        matter = RecurrentMatter(TorchRunner(model, device=device or "auto"), downsample_ratio, seq_chunk)
    else:
        raise UsageError(f"model must be a registered name, an .onnx path, a matter from vidmatte.load or a "
                         f"MattingNetwork, not {type(model).__name__}")
    if downsample_ratio is not None:
        matter.downsample_ratio = downsample_ratio
    if warmup is not None:
        matter.warmup = max(0, int(warmup))
    return matter
