"""One run of a web job through the pipeline: the page's settings become a mode's settings (``vidmatte.modes``), built
and run as the mode's command would run them.

The outputs have fixed names in the job's folder and are written like the CLI's (temporary names, renamed when
complete): ``composition.mp4``, ``alpha.mp4``, ``alpha.zip`` (the CLI's ``--alpha alpha/`` PNGs, zipped),
``rgba.mov`` (ProRes 4444) or ``rgba.webm`` (VP9 with alpha). Previews of alpha and composition go to
``preview/run/`` through a ``CallbackSink`` as frames are written, and replace the completed run's ``preview/alpha``
and ``preview/composition`` only when this run completes: a run that fails hides nothing of the last one.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from ..errors import GuidanceError, UsageError
from ..job import JobControl
from .guide import keyframe_path
from .previews import preview_size, run_preview_sink
from .weights import Catalogue

from ..modes import ALIASES
from ..modes import MODES as MODE_ROWS
from ..modes.guided import PRIORS

MODES = tuple(MODE_ROWS)  # convert, guided, background (a saved job's auto and plate are read as their new names)
PLATES = ("auto", "image")  # background mode: estimated from the clip (a static camera), or the uploaded plate.png
OUTPUTS = {  # what the page may ask for -> (output kind, fixed path in the job's folder)
    "composition": ("composition", "composition.mp4"),
    "alpha": ("alpha", "alpha.mp4"),
    "alpha_png": ("alpha", "alpha/"),
    "rgba_mov": ("rgba", "rgba.mov"),
    "rgba_webm": ("rgba", "rgba.webm"),
}
DOWNLOADS = {"composition": "composition.mp4", "alpha": "alpha.mp4", "alpha_png": "alpha.zip",
             "rgba_mov": "rgba.mov", "rgba_webm": "rgba.webm"}
NO_KEYFRAME = GuidanceError("guided mode needs a keyframe: mark the subject on a frame and press 'Set keyframe'")
DEFAULT_SETTINGS = {"mode": "convert", "prior": "auto", "background": "green", "plate": "auto",
                    "outputs": ["composition", "alpha", "alpha_png", "rgba_mov"], "method": "classical",
                    "checkpoint": None}


def mode_methods() -> dict[str, tuple[str, ...]]:
    """The methods of each mode, as the commands name them (convert has one: RVM alone, shown as classical)."""
    return {name: mode.methods or ("classical",) for name, mode in MODE_ROWS.items()}


def named_colours() -> dict[str, str]:
    """The backgrounds named on the page, as #RRGGBB (the swatch shows the colour a run would use)."""
    from ..compose import NAMED_COLOURS

    return {name: "#%02x%02x%02x" % rgb for name, rgb in NAMED_COLOURS.items()}


def check_settings(given: dict, has_background_image: bool = False, has_plate_image: bool = False,
                   weights: Catalogue | None = None, draft: bool = False) -> dict:
    """The settings of a run, every value checked against what the page may choose (UsageError otherwise);
    ``weights``: the server's --checkpoints folder, where a network method's file must be. ``draft``: settings the
    page saves as they change, before a run: the same values, but the images and weights a run needs are checked
    when it runs (a user picks "image" before uploading it)."""
    from ..compose import parse_colour

    settings = {**DEFAULT_SETTINGS, **{k: v for k, v in given.items() if k in DEFAULT_SETTINGS}}
    settings["mode"] = ALIASES.get(settings["mode"], settings["mode"]) if isinstance(settings["mode"], str) \
        else settings["mode"]
    if settings["mode"] not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}")
    _check_method(settings, weights or Catalogue(), draft)
    if settings["plate"] not in PLATES:
        raise UsageError(f"plate must be one of {', '.join(PLATES)}")
    if draft:
        has_background_image = has_plate_image = True
    if settings["mode"] == "background" and settings["plate"] == "image" and not has_plate_image:
        raise UsageError("upload a plate image first (the empty scene), or let the plate be estimated (auto)")
    if settings["prior"] not in PRIORS:
        raise UsageError(f"prior must be one of {', '.join(PRIORS)}")
    outputs = settings["outputs"]
    if not isinstance(outputs, list) or not outputs or any(o not in OUTPUTS for o in outputs):
        raise UsageError(f"outputs must be a non-empty list of {', '.join(OUTPUTS)}")
    settings["outputs"] = [o for o in OUTPUTS if o in outputs]
    background = settings["background"]
    if background == "image":
        if not has_background_image:
            raise UsageError("upload a background image first")
    elif not isinstance(background, str) or parse_colour(background) is None:
        raise UsageError("background must be green, black, white, #RRGGBB or image")
    return settings


def _check_method(settings: dict, weights: Catalogue, draft: bool = False) -> None:
    methods = mode_methods()[settings["mode"]]
    if settings["method"] not in methods:
        raise UsageError(f"{settings['mode']} mode's method must be one of {', '.join(methods)}")
    if settings["method"] == "classical":
        if settings["checkpoint"] is not None:
            raise UsageError("weights are for a network method, not the classical one")
        return
    if draft:  # a file's name, looked up in the folder when the job runs
        if not isinstance(settings["checkpoint"], (str, type(None))):
            raise UsageError("checkpoint must be the name of a file in the server's --checkpoints folder")
        return
    weights.find(settings["checkpoint"], settings["mode"], settings["method"])


def input_path(folder: Path) -> Path:
    """The job's input under its fixed name: ``frames/`` (an unpacked zip) or ``input.<ext>``."""
    if (folder / "frames").is_dir():
        return folder / "frames"
    found = [p for p in folder.glob("input.*") if p.is_file()]
    if not found:
        raise UsageError("this job has no input")
    return found[0]


def execute(job: dict, folder: Path, control: JobControl, model: str = "rvm-mobilenetv3",
            cache: str | None = None, weights: Catalogue | None = None) -> tuple[list[str], dict]:
    """Run ``job`` (a row of the store) through its mode; returns the names of the downloads made and what the run
    reported (``ConvertResult.details``, with the run's ``warnings`` when it had any). ``weights``: where a network
    method's file is (the server's --checkpoints folder)."""
    settings, info = job["settings"], job["info"]
    mode = MODE_ROWS[ALIASES.get(settings["mode"], settings["mode"])]  # jobs saved before the names were one set
    warnings: list[str] = []
    control.on_warning = warnings.append  # shown in the job's row
    preview = run_preview_sink(folder / "preview" / "run", preview_size(info["width"], info["height"]))
    pipeline_job, matter = mode.build(mode.settings(**_mode_settings(job, mode.name, folder, model, cache, weights)),
                                      control, sinks=(preview,))
    result = pipeline_job.run(matter)
    if "alpha_png" in settings["outputs"]:
        _zip_folder(folder / "alpha", folder / "alpha.zip")
    _keep_run_previews(folder / "preview")
    return list(settings["outputs"]), {**result.details, **({"warnings": warnings} if warnings else {})}


def _mode_settings(job: dict, mode: str, folder: Path, model: str, cache: str | None,
                   weights: Catalogue | None) -> dict:
    """The mode's settings for the page's ``job``: its outputs under fixed names in its folder, replaced by each run."""
    settings = job["settings"]
    background = str(folder / "background.png") if settings["background"] == "image" else settings["background"]
    # f-string, not "/": a PNG sequence is named by its trailing slash, which Path would drop
    outputs = {OUTPUTS[name][0]: f"{folder}/{OUTPUTS[name][1]}" for name in settings["outputs"]}
    run = {"input": str(input_path(folder)), "outputs": outputs, "background": background, "overwrite": True,
           "model": model, "cache_dir": cache}
    if mode == "convert":
        return run
    method = settings.get("method", "classical")  # jobs recorded before the page had methods: classical
    run.update(method=method, checkpoint=_weights_path(settings, weights))
    if mode == "background":
        return {**run, "plate": str(folder / "plate.png") if settings["plate"] == "image" else "auto"}
    if not job["keyframes"]:
        raise NO_KEYFRAME
    # One work folder per job, kept between its runs: after a keyframe is fixed or added on the page, a re-run
    # propagates and solves only the frames between that keyframe's neighbours (the CLI's --work corrections).
    return {**run, "keyframe": [f"{index}:{keyframe_path(folder, index)}" for index in job["keyframes"]],
            "prior": settings["prior"], "work": str(folder / "work") if method == "classical" else None}


def _keep_run_previews(preview: Path) -> None:
    """The completed run's previews (``preview/run/<kind>``) become the job's (``preview/<kind>``)."""
    for kind in ("alpha", "composition"):
        shutil.rmtree(preview / kind, ignore_errors=True)
        os.replace(preview / "run" / kind, preview / kind)


def _weights_path(settings: dict, weights: Catalogue | None) -> str | None:
    """The file of a network method's run (checked again: the folder may have changed since the job was set)."""
    method = settings.get("method", "classical")
    if method == "classical":
        return None
    mode = ALIASES.get(settings["mode"], settings["mode"])
    return str((weights or Catalogue()).find(settings.get("checkpoint"), mode, method).path)


def _zip_folder(source: Path, target: Path) -> None:
    """``source``'s PNGs into ``target`` (stored: PNGs are compressed already), renamed into place when complete;
    the folder is removed after."""
    from ..io.atomic import atomic_path

    with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(source.glob("[0-9]*.png")):  # the frames, not the folder's record of them
            zf.write(path, f"alpha/{path.name}")
    shutil.rmtree(source, ignore_errors=True)
