"""One run of a web job through the pipeline: the page's settings become a mode's settings (``vidmatte.modes``), built
and run as the mode's command would run them.

The outputs have fixed names in the job's folder and are written like the CLI's (temporary names, renamed when
complete): ``composition.mp4``, ``alpha.mp4``, ``alpha.zip`` (the CLI's ``--alpha alpha/`` frames, zipped: PNG, 16-bit
TIFF or EXR as ``image_format`` and ``bit_depth`` say), ``rgba.mov`` (ProRes 4444) or ``rgba.webm`` (VP9 with
alpha), straight or ``premultiplied``. A guided job with several subjects gets one of each per object, named as the
CLI names them (``composition.1.mp4``, ``composition.2.mp4``, ``alpha.2.zip`` holding ``alpha/2/00000.png``...).
Previews of alpha and composition go to ``preview/run/`` through a ``CallbackSink`` as frames are written, and
replace the completed run's ``preview/alpha`` and ``preview/composition`` only when this run completes: a run that
fails hides nothing of the last one.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from ..errors import GuidanceError, UsageError
from ..job import JobControl
from ..modes import ALIASES
from ..modes import MODES as MODE_ROWS
from ..modes.base import IMAGE_FORMATS
from ..modes.guided import PRIORS
from .guide import MAX_OBJECTS, job_objects, keyframe_path
from .previews import preview_size, run_preview_sink
from .weights import Catalogue

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


def download_file(name: str) -> str | None:
    """The file in a job's folder of a download's name: ``composition`` -> composition.mp4, and with several
    subjects ``composition.2`` -> composition.2.mp4 (as the CLI names a file output per object); None if unknown."""
    base, dot, object_id = name.partition(".")
    if base not in DOWNLOADS:
        return None
    if not dot:
        return DOWNLOADS[base]
    if not object_id.isdigit() or not 1 <= int(object_id) <= MAX_OBJECTS or object_id != str(int(object_id)):
        return None
    stem, ext = os.path.splitext(DOWNLOADS[base])
    return f"{stem}.{object_id}{ext}"


def guided_objects(job: dict, method: str = "classical") -> dict[int, list[int]]:
    """The subjects a guided run of ``job`` mattes, {id: keyframes}; a one-line error when one is unmarked or the
    method cannot matte several."""
    objects = job_objects(job)
    if not objects[1] and len(objects) == 1:
        raise NO_KEYFRAME
    unmarked = [i for i, frames in objects.items() if not frames]
    if unmarked:
        raise GuidanceError(f"object {unmarked[0]} has no keyframe: mark it on a frame and press 'Set keyframe'"
                            + (", or remove it" if unmarked[0] != 1 else ""))
    if len(objects) > 1 and method != "classical":
        raise UsageError("several objects in one run are for the classical method: choose it, or remove objects")
    return objects


NO_KEYFRAME = GuidanceError("guided mode needs a keyframe: mark the subject on a frame and press 'Set keyframe'")


def mode_methods() -> dict[str, tuple[str, ...]]:
    """The methods of each mode, as the commands name them (convert has one: RVM alone, shown as classical)."""
    return {name: mode.methods or ("classical",) for name, mode in MODE_ROWS.items()}


class PageSettings(BaseModel):
    """What the page may choose for a run, each value checked against the modes' own tables. Validated with a
    context: ``draft`` (settings saved as they change: the images and weights a run needs are checked when it runs,
    since a user picks "image" before uploading it), ``has_background_image``, ``has_plate_image`` and ``weights``
    (the server's --checkpoints folder, where a network method's file must be)."""

    model_config = ConfigDict(extra="ignore")

    mode: Literal[MODES] = "convert"
    method: str = "classical"
    checkpoint: str | None = None  # a file's name in the server's --checkpoints folder
    plate: Literal[PLATES] = "auto"
    prior: Literal[PRIORS] = "auto"
    outputs: list[str] = ["composition", "alpha", "alpha_png", "rgba_mov"]
    background: str = "green"  # green|black|white|#RRGGBB, or "image" (the uploaded background.png)
    image_format: Literal[IMAGE_FORMATS] = "png"  # of the alpha frames (alpha_png, zipped)
    bit_depth: Literal[8, 16, 32] | None = None  # theirs: None the format's own (8; EXR half)
    premultiplied: bool = False  # the RGBA outputs' colour times alpha
    device: str = "auto"  # where the networks run: auto|cpu|cuda|cuda:N, as --device (the server's GPU)

    @field_validator("mode", mode="before")
    @classmethod
    def _former_name(cls, mode):
        return ALIASES.get(mode, mode) if isinstance(mode, str) else mode

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, outputs: list[str]) -> list[str]:
        if not outputs or any(o not in OUTPUTS for o in outputs):
            raise ValueError("unknown or no outputs")
        return [o for o in OUTPUTS if o in outputs]  # in the page's order

    @field_validator("background")
    @classmethod
    def _colour(cls, background: str) -> str:
        from ..compose import parse_colour

        if background != "image" and parse_colour(background) is None:
            raise ValueError("not a colour")
        return background

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        from ..modes.base import check_device

        try:
            return check_device(device)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _runnable(self, info: ValidationInfo):
        """What depends on more than one value, or on the job's folder (UsageError, one line, as it is)."""
        context = info.context or {}
        draft = context.get("draft", False)
        methods = mode_methods()[self.mode]
        if self.method not in methods:
            raise UsageError(f"{self.mode} mode's method must be one of {', '.join(methods)}")
        if self.method == "classical" and self.checkpoint is not None:
            raise UsageError("weights are for a network method, not the classical one")
        if self.method != "classical" and not draft:
            (context.get("weights") or Catalogue()).find(self.checkpoint, self.mode, self.method)
        depths = {"png": (8, 16), "tiff": (8, 16), "exr": (16, 32)}[self.image_format]
        if self.bit_depth is not None and self.bit_depth not in depths:
            raise UsageError(f"{self.image_format.upper()} alpha frames are {' or '.join(map(str, depths))}-bit")
        if draft:
            return self
        if self.premultiplied and not any(o.startswith("rgba") for o in self.outputs):
            raise UsageError("premultiplied is for the RGBA outputs (ProRes, VP9): choose one, or untick it")
        if self.image_format == "exr" and "alpha_png" in self.outputs:
            from ..extras import require

            require("exr", "EXR alpha frames")  # the server's install: said before the run is queued
        if self.mode == "background" and self.plate == "image" and not context.get("has_plate_image"):
            raise UsageError("upload a plate image first (the empty scene), or let the plate be estimated (auto)")
        if self.background == "image" and not context.get("has_background_image"):
            raise UsageError("upload a background image first")
        return self


# What a refused value is told, by field (the choices of a Literal field are said from the field itself).
_REFUSALS = {
    "outputs": f"outputs must be a non-empty list of {', '.join(OUTPUTS)}",
    "background": "background must be green, black, white, #RRGGBB or image",
    "checkpoint": "checkpoint must be the name of a file in the server's --checkpoints folder",
    "device": "device must be auto, cpu, cuda or cuda:N",
}


DEFAULT_SETTINGS = PageSettings().model_dump()


def named_colours() -> dict[str, str]:
    """The backgrounds named on the page, as #RRGGBB (the swatch shows the colour a run would use)."""
    from ..compose import NAMED_COLOURS

    return {name: "#%02x%02x%02x" % rgb for name, rgb in NAMED_COLOURS.items()}


def check_settings(given: dict, has_background_image: bool = False, has_plate_image: bool = False,
                   weights: Catalogue | None = None, draft: bool = False) -> dict:
    """The settings of a run (``PageSettings``, defaults filled in), or a one-line UsageError."""
    context = {"has_background_image": has_background_image, "has_plate_image": has_plate_image,
               "weights": weights, "draft": draft}
    try:
        return PageSettings.model_validate(given, context=context).model_dump()
    except ValidationError as exc:
        raise _one_line(exc) from None


def _one_line(exc: ValidationError) -> UsageError:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    choices = {"mode": MODES, "plate": PLATES, "prior": PRIORS, "image_format": IMAGE_FORMATS,
               "bit_depth": ("8", "16", "32")}
    if field in choices:
        return UsageError(f"{field} must be one of {', '.join(choices[field])}")
    return UsageError(_REFUSALS.get(field, f"{field}: {first['msg']}"))


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
    ids = _several(job)
    if "alpha_png" in settings["outputs"]:
        if ids:  # the mode wrote alpha/<id>/ per object: one zip each, its members under alpha/<id>/
            for object_id in ids:
                _zip_folder(folder / "alpha" / str(object_id), folder / f"alpha.{object_id}.zip", f"alpha/{object_id}")
            shutil.rmtree(folder / "alpha", ignore_errors=True)
        else:
            _zip_folder(folder / "alpha", folder / "alpha.zip")
    _keep_run_previews(folder / "preview")
    # With several subjects, each output is one per object, named "<output>.<id>" (object by object).
    outputs = [f"{name}.{i}" for i in ids for name in settings["outputs"]] if ids else list(settings["outputs"])
    return outputs, {**result.details, **({"warnings": warnings} if warnings else {})}


def _several(job: dict) -> list[int]:
    """The ids of a guided job's subjects when it has more than one (its outputs are then one per object)."""
    if ALIASES.get(job["settings"]["mode"], job["settings"]["mode"]) != "guided":
        return []
    ids = list(job_objects(job))
    return ids if len(ids) > 1 else []


def _mode_settings(job: dict, mode: str, folder: Path, model: str, cache: str | None,
                   weights: Catalogue | None) -> dict:
    """The mode's settings for the page's ``job``: its outputs under fixed names in its folder, replaced by each run."""
    settings = job["settings"]
    background = str(folder / "background.png") if settings["background"] == "image" else settings["background"]
    # f-string, not "/": a PNG sequence is named by its trailing slash, which Path would drop
    outputs = {OUTPUTS[name][0]: f"{folder}/{OUTPUTS[name][1]}" for name in settings["outputs"]}
    run = {"input": str(input_path(folder)), "outputs": outputs, "background": background, "overwrite": True,
           "model": model, "cache_dir": cache, "premultiplied": settings.get("premultiplied", False),
           "device": settings.get("device", "auto")}
    if "alpha_png" in settings["outputs"]:  # the only folder output: its format (jobs saved before: PNG)
        run.update(image_format=settings.get("image_format", "png"), bit_depth=settings.get("bit_depth"))
    if mode == "convert":
        return run
    method = settings.get("method", "classical")  # jobs recorded before the page had methods: classical
    run.update(method=method, checkpoint=_weights_path(settings, weights))
    if mode == "background":
        return {**run, "plate": str(folder / "plate.png") if settings["plate"] == "image" else "auto"}
    objects = guided_objects(job, method)
    # One work folder per job, kept between its runs: after a keyframe is fixed or added on the page, a re-run
    # propagates and solves only the frames between that keyframe's neighbours (the CLI's --work corrections; with
    # several subjects the mode keeps one per object in it, work/<id>/).
    run.update(prior=settings["prior"], work=str(folder / "work") if method == "classical" else None)
    if len(objects) == 1:
        return {**run, "marks": {index: keyframe_path(folder, index) for index in job["keyframes"]}}
    return {**run, "object": list(objects),
            "marks": {i: {index: keyframe_path(folder, index, i) for index in frames} for i, frames in objects.items()}}


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


def _zip_folder(source: Path, target: Path, inside: str = "alpha") -> None:
    """``source``'s frames into ``target`` under ``inside/`` (stored: PNG, TIFF and EXR are compressed already),
    renamed into place when complete; the folder is removed after."""
    from ..io.atomic import frame_files, atomic_path

    with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(frame_files(source)):  # the frames, not the folder's record of them
            zf.write(path, f"{inside}/{path.name}")
    shutil.rmtree(source, ignore_errors=True)
