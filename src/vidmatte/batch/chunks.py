"""One long video spread over workers: chunks of ``--chunk-frames``, each warmed on the frames before it, stitched.

Chunk k covers frames [a, b) of the item's range. Its job runs RVM forward over the ``lead_in`` frames before ``a``
(no output) so the recurrent state reaches ``a`` about as the whole run would have, then writes [a, b) as lossless
PNG folders in a work folder beside the item's outputs (``.vidmatte-chunks/``): straight colour, 16-bit where an
output keeps more than 8 bits (TIFF/PNG 16, EXR: a float EXR of a chunked item holds 16-bit precision), so that
stitching remakes each output's own format (premultiplied, linear EXR) from them. Chunk 0 starts where the whole run
starts and gets the same backward warm-up, so its frames are the whole run's exactly.

Stitching opens the item's real outputs through the same ``Job`` the frame loop uses (temporary names, the input's
audio carried once, encoder settings) and feeds them the chunks' frames in order, each with the pts of the input
frame it came from, so the stitched file has the single run's frame count and timestamps. Then the work folder goes.
A finished chunk (its folders are renamed into place only when complete) is not redone when a batch resumes.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..job import JobControl, PassClock
from ..modes import RunSettings

WORK_NAME = ".vidmatte-chunks"
# Frames run before a chunk to warm RVM's recurrent state (measured in benchmarks/batch.py, docs/BATCH.md).
DEFAULT_LEAD_IN = 64


def frame_pts(source) -> list[int] | None:
    """Each frame's pts in presentation order, for a video file whose packets number its frames; else None."""
    index = getattr(source, "pts_index", lambda: None)()
    return None if index is None else index.pts


def plan(settings: RunSettings, chunk_frames: int, lead_in: int,
         work: Path) -> list[tuple[RunSettings, int, int]] | None:
    """The chunks' (settings, lead-in, frames), or None when the item runs whole (short, or not a video file)."""
    from ..io.source import open_source

    pts = frame_pts(open_source(settings.input, settings.fps))
    if pts is None:
        return None
    first = settings.start_frame
    stop = len(pts) if settings.end_frame is None else min(settings.end_frame, len(pts))
    if stop - first <= chunk_frames:
        return None
    chunks = []
    for k, a in enumerate(range(first, stop, chunk_frames)):
        b = min(a + chunk_frames, stop)
        outputs = {kind: f"{work / f'{kind}-{k:04d}'}/" for kind in settings.outputs}
        piece = dataclasses.replace(settings, start_frame=a, end_frame=b, overwrite=True, outputs=outputs,
                                    image_format="png", premultiplied=False, bit_depth=_piece_depth(settings))
        chunks.append((piece, min(lead_in, a - first), b - a))
    return chunks


def _piece_depth(settings: RunSettings) -> int | None:
    """16 where the item's outputs keep more than 8 bits of alpha or colour, else the PNG default."""
    deep = settings.image_format == "exr" or (settings.bit_depth or 8) > 8
    return 16 if deep and any(kind in ("alpha", "foreground", "rgba") for kind in settings.outputs) else None


def is_done(piece: RunSettings) -> bool:
    """Every PNG folder of a chunk is in place (folders appear only once complete) with all its frames."""
    frames = piece.end_frame - piece.start_frame
    return all(Path(folder).is_dir() and _count_frames(Path(folder)) == frames for folder in piece.outputs.values())


def _count_frames(folder: Path) -> int:
    return sum(1 for _ in folder.glob("[0-9][0-9][0-9][0-9][0-9]*.png"))


def stitch(settings: RunSettings, pieces: list[RunSettings], kinds: tuple[str, ...], output_folder: str,
           control: JobControl) -> int:
    """Write the item's outputs (``settings``) from its chunks' frames, frame-exact; returns the frames written."""
    from ..modes.base import job_options
    from ..pipeline import Job

    job = Job(settings.input, job_options(settings, kinds, control.warn), control)
    pts = frame_pts(job.source)
    first = settings.start_frame
    total = sum(piece.end_frame - piece.start_frame for piece in pieces)
    for piece in pieces:
        if not is_done(piece):
            raise OutputError(f"chunk {piece.start_frame}..{piece.end_frame - 1} is incomplete; run the batch again")
    clock = PassClock(control, "stitching", 0, 1, total)
    outputs = job.open_outputs()
    try:
        for piece in pieces:
            for i in range(piece.start_frame, piece.end_frame):
                control.raise_if_cancelled()
                for sink in outputs.sinks:
                    image = _read_png(Path(piece.outputs[sink.spec.kind]) / f"{i - piece.start_frame:05d}.png")
                    sink.write(i, pts[i] - pts[first], _pictures(sink.spec.kind, image))
                clock.advance()
        outputs.close()
    except BaseException:
        outputs.abort()
        raise
    shutil.rmtree(Path(output_folder) / WORK_NAME, ignore_errors=True)
    return total


def _pictures(kind: str, image: np.ndarray):
    """A chunk's stored frame (straight, 8 or 16 bit) as the pictures an output of ``kind`` is made from."""
    from ..compose import alpha_to_u8
    from ..matte import Pictures

    if kind == "composition":
        return Pictures(composition=image)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    picture = Pictures()
    if kind == "alpha" or kind == "rgba":
        alpha = image if image.ndim == 2 else image[..., 3]
        picture.alpha = alpha.astype(np.float32) / np.float32(scale)
        picture.alpha_u8 = alpha if alpha.dtype == np.uint8 else alpha_to_u8(picture.alpha)
    if kind == "foreground" or kind == "rgba":
        colour = image[..., :3]
        picture.foreground_float = colour.astype(np.float32) / np.float32(scale)
        picture.foreground = colour if colour.dtype == np.uint8 else np.ascontiguousarray(
            np.clip(picture.foreground_float * 255 + 0.5, 0, 255).astype(np.uint8))
    return picture


def _read_png(path: Path) -> np.ndarray:
    """A chunk's frame as the writers take it: gray (8 or 16 bit), RGB or RGBA."""
    from ..io.images import read_unchanged

    return read_unchanged(path, "the chunk frame", OutputError)
