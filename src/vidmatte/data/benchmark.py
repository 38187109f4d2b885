"""Build a benchmark from a definition file: composed clips in RVM's evaluation layout plus derived guidance.

Layout written under the output root (all frames named 00000.png, 00001.png, ...)::

    benchmark.json                 the definition, seed, size and every clip's drawn parameters (provenance)
    <clip>/com/  pha/  fgr/  bgr/  RVM's evaluation layout (composite, true alpha, true foreground, background)
    <clip>/trimap/                 a trimap for every frame (0/128/255), for the oracle and --region unknown
    <clip>/mask/00000.png          first-frame binary mask (alpha >= 0.5)
    <clip>/plate.png               clean plate: the background at frame 0 (not aligned to later frames when the
                                   camera moves, as with a real hand-held plate)
    <clip>/tcvom/NNNNN_rgb.png     TCVOM's keyframe workspace: every frame, plus NNNNN_trimap.png at keyframes
    <clip>/com.mp4                 with ``mp4=True``: the composite also as H.264 (CRF 10, yuv420p), for methods
                                   that should see a real compressed video
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError, UsageError
from ..io.atomic import atomic_path
from .synthesis import compose_clip, load_foreground, read_background_frames, trimap_from_alpha

DEFORM_STREAM = 1  # the deformation's random numbers: default_rng([seed, clip, DEFORM_STREAM]), apart from the rest
REPO_DEFINITIONS = Path(__file__).resolve().parents[3] / "benchmarks" / "definitions"


def load_definition(path: str | os.PathLike) -> dict:
    """Read a JSON definition; a bare name looks in benchmarks/definitions/."""
    p = Path(path)
    if not p.exists() and (REPO_DEFINITIONS / f"{path}.json").exists():
        p = REPO_DEFINITIONS / f"{path}.json"
    try:
        definition = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"benchmark definition not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc})") from None
    if not definition.get("clips") and not definition.get("layout"):
        raise InputError(f"{p}: the definition names no clips (and no dataset layout to take them from)")
    definition["_path"] = str(p)
    return definition


def resolve_keyframes(spec, frames: int) -> list[int]:
    """The trimap keyframes of a definition as sorted frame indices below ``frames``.

    ``spec`` is "first" ([0]), "first_and_last" ([0, frames - 1]) or a list of frame indices, where "first" and
    "last" may stand for 0 and frames - 1. Indices past the clip's end are dropped (a definition's keyframes
    still apply to a shorter ``--frames`` build)."""
    named = {"first": [0], "first_and_last": [0, frames - 1], "last": [frames - 1]}
    if isinstance(spec, str):
        if spec not in named:
            raise InputError(f"trimap keyframes {spec!r}: use first, first_and_last or a list of frame indices")
        spec = named[spec]
    keys = set()
    for k in spec:
        if isinstance(k, str) and k in ("first", "last"):
            k = named[k][0]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InputError(f"trimap keyframe {k!r}: use a frame index >= 0, \"first\" or \"last\"")
        if k < frames:
            keys.add(k)
    return sorted(keys)


def _write_png(path: Path, image: np.ndarray) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OutputError(f"cannot write {path}")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build(definition: dict, data_root: Path, out: Path, seed: int | None = None, size: tuple[int, int] | None = None,
          frames: int | None = None, overwrite: bool = False, mp4: bool = False, log=sys.stderr) -> dict:
    """Compose every clip of ``definition`` into ``out`` (written under a temporary name, renamed at the end).

    Returns the provenance record also written to ``out/benchmark.json``."""
    seed = int(definition.get("seed", 0) if seed is None else seed)
    width, height = size or tuple(definition.get("size", [512, 288]))
    n_frames = int(frames or definition.get("frames", 24))
    band = int(definition.get("trimap", {}).get("band", 8))
    keyframes = resolve_keyframes(definition.get("trimap", {}).get("keyframes", [0]), n_frames)
    deform = definition.get("deform") or {}
    if not data_root.is_dir():
        raise InputError(f"data root not found: {data_root} (give --data-root)")
    clips = definition_clips(definition, data_root, seed)
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists; pass --overwrite to replace it")
    record = {"definition": definition.get("name", Path(definition["_path"]).stem), "seed": seed, "mp4": mp4,
              "size": [width, height], "frames": n_frames, "trimap_band": band, "keyframes": keyframes,
              "data_root": str(data_root), "clips": {}}
    if float(deform.get("amplitude", 0)):  # only then, so that a rigid build's benchmark.json is as before
        record["deform"] = deform
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for index, clip in enumerate(clips):
            rng = np.random.default_rng([seed, index])
            _check_sources(clip, data_root)
            source = load_foreground(clip["fg"], data_root, max_side=int(2 * max(width, height)), frames=n_frames)
            backgrounds = read_background_frames(clip["bg"], data_root, n_frames, rng)
            layers = compose_clip(source, backgrounds, width, height, rng, definition.get("motion", {}),
                                  {**definition.get("camera", {}), **clip.get("camera", {})},
                                  definition.get("augment", {}), deform,
                                  np.random.default_rng([seed, index, DEFORM_STREAM]))
            _write_clip(tmp / clip["name"], layers, band, keyframes)
            if mp4:
                write_mp4(layers.com, tmp / clip["name"] / "com.mp4", float(definition.get("fps", 24)))
            record["clips"][clip["name"]] = {"fg": clip["fg"], "bg": clip["bg"], **layers.params}
            print(f"bench build: {index + 1}/{len(clips)} {clip['name']} "
                  f"({n_frames} frames, {time.monotonic() - started:.1f}s)", file=log, flush=True)
        (tmp / "benchmark.json").write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
    return record


def definition_clips(definition: dict, data_root: Path, seed: int) -> list[dict]:
    """The definition's clips, or those of the dataset layout it names (``"layout": {"kind": "dvm", "split": ...,
    "pairs": ..., "limit": ...}``: ``data.dvm_layout``) under the data root."""
    layout = dict(definition.get("layout") or {})
    if not layout:
        return definition["clips"]
    if layout.pop("kind", None) != "dvm":
        raise InputError("layout: the only dataset layout known is {\"kind\": \"dvm\", ...}")
    if set(layout) - {"split", "pairs", "limit"}:
        raise InputError(f"layout: unknown key {sorted(set(layout) - {'split', 'pairs', 'limit'})[0]!r} "
                         "(known: kind, split, pairs, limit)")
    from .dvm_layout import dvm_clips

    return dvm_clips(data_root, seed=seed, **layout)


def _check_sources(clip: dict, root: Path) -> None:
    """Name the first missing source file before any work is done on the clip."""
    for key in ("name", "fg", "bg"):
        if key not in clip:
            raise InputError(f"clip entry {clip} lacks {key!r}")
    known_fg = {"image", "alpha", "fg", "video", "alpha_video", "fg_video", "rgba"}
    if not ({"image", "alpha"} <= set(clip["fg"]) or {"video", "alpha_video"} <= set(clip["fg"])
            or "rgba" in clip["fg"]):
        raise InputError(f"clip {clip['name']}: fg needs image+alpha, video+alpha_video, or rgba")
    if set(clip["fg"]) - known_fg:
        raise InputError(f"clip {clip['name']}: unknown fg key {sorted(set(clip['fg']) - known_fg)[0]!r}")
    if not ({"video", "image"} & set(clip["bg"])):
        raise InputError(f"clip {clip['name']}: bg needs video or image")
    for rel in list(clip["fg"].values()) + list(clip["bg"].values()):
        if not (root / rel).exists():
            raise InputError(f"clip {clip['name']}: source not found: {root / rel}")


def _write_clip(folder: Path, layers, band: int, keyframes: list[int]) -> None:
    for sub in ("com", "pha", "fgr", "bgr", "trimap", "mask", "tcvom"):
        (folder / sub).mkdir(parents=True)
    for t, (com, pha, fgr, bgr) in enumerate(zip(layers.com, layers.pha, layers.fgr, layers.bgr)):
        name = f"{t:05d}.png"
        _write_png(folder / "com" / name, com)
        _write_png(folder / "pha" / name, pha)
        _write_png(folder / "fgr" / name, fgr)
        _write_png(folder / "bgr" / name, bgr)
        trimap = trimap_from_alpha(pha, band)
        _write_png(folder / "trimap" / name, trimap)
        _link_or_copy(folder / "com" / name, folder / "tcvom" / f"{t:05d}_rgb.png")
        if t in keyframes:
            _link_or_copy(folder / "trimap" / name, folder / "tcvom" / f"{t:05d}_trimap.png")
    _write_png(folder / "mask" / "00000.png", np.where(layers.pha[0] >= 128, 255, 0).astype(np.uint8))
    _write_png(folder / "plate.png", layers.bgr[0])


def write_mp4(frames: list[np.ndarray], path: Path, fps: float, crf: int = 10) -> None:
    """uint8 RGB frames -> H.264 file (even sizes required by yuv420p; the benchmark sizes are)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
