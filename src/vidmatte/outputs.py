"""Where a job's results go: one ``OutputSet`` of sinks, fed one frame's ``Pictures`` at a time.

A sink is a file (a ``FileSink`` around a writer: video or PNG sequence, written under a temporary name and renamed
when the job completes) or anything else that wants the pictures, e.g. a UI's in-memory preview
(``CallbackSink``). The set computes each picture once per frame, whatever the number of sinks asking for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np

from .compose import alpha_to_u8, alpha_to_u16, rgba
from .matte import Matte, Pictures

# The pictures each output kind is made from.
_NEEDS = {"composition": {"composition"}, "alpha": {"alpha"}, "foreground": {"foreground"},
          "rgba": {"foreground", "alpha"}, "trimap": set()}  # a trimap travels with the matte as it is


@dataclass(frozen=True)
class StreamInfo:
    """What file sinks need to know of the frames they will receive."""

    width: int
    height: int
    time_base: Fraction
    fps: float
    source_path: str | None  # for the audio track (None: no audio to carry)
    has_audio: bool
    start_seconds: float = 0.0
    end_seconds: float | None = None
    timecode: str | None = None  # of the first frame written (the input's, moved to the range's start)


class Sink(Protocol):
    kinds: frozenset[str]  # of composition, alpha, foreground, rgba

    def write(self, index: int, pts: int, pictures: Pictures) -> None: ...

    def close(self) -> None:
        """The job completed: make the result final (rename a file into place...)."""

    def abort(self) -> None:
        """The job failed or was cancelled: leave nothing behind."""


class CallbackSink:
    """Calls ``callback(index, pictures)`` for every written frame (a preview; runs on the writer thread)."""

    def __init__(self, callback: Callable[[int, Pictures], None], kinds: Iterable[str] = ("composition",)):
        self.callback, self.kinds = callback, frozenset(kinds)

    def write(self, index: int, pts: int, pictures: Pictures) -> None:
        self.callback(index, pictures)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class FileSink:
    """One output file or folder of images (``OutputSpec``), opened under a temporary name.

    It turns the frame's pictures into what the file stores (``spec.samples``): uint8, uint16 (PNG/TIFF alpha,
    foreground, RGBA with ``--bit-depth 16``; colour from the float foreground, not the 8-bit one scaled), or float
    for EXR (colour linear, ``io.image_formats``), with RGBA colour times alpha when ``spec.premultiplied``.
    """

    def __init__(self, spec, stream: StreamInfo, *, crf=None, bitrate=None, preset="superfast", threads=0):
        from .io.audio import AudioTrack
        from .io.writers import open_writer

        self.spec, self.kinds = spec, frozenset({spec.kind})
        self.object = spec.object  # several subjects: the object whose layer this output holds
        self.samples = spec.samples
        # The float foreground (Pictures.foreground_float) is asked for only where more than 8 bits are kept.
        self.fine_foreground = spec.kind in ("foreground", "rgba") and self.samples != "u8"
        audio = None
        # Every video output a viewer watches keeps the input's sound; a bare matte (alpha) does not need it.
        if spec.kind not in ("alpha", "trimap") and not spec.is_sequence and not spec.is_image and stream.has_audio:
            audio = AudioTrack(stream.source_path, stream.start_seconds, stream.end_seconds)
        self.made_parent = _make_object_parent(spec)
        self.writer = open_writer(spec, stream.width, stream.height, stream.time_base, stream.fps, crf=crf,
                                  bitrate=bitrate, preset=preset, audio=audio, threads=threads,
                                  **({"timecode": stream.timecode} if stream.timecode and not spec.is_sequence
                                     and not spec.is_image else {}))

    def write(self, index: int, pts: int, pictures: Pictures) -> None:
        self.writer.write(self.stored(pictures), pts)

    def stored(self, pictures: Pictures) -> np.ndarray:
        """The image this output stores for one frame's pictures."""
        from .io.image_formats import srgb_to_linear

        kind, samples = self.spec.kind, self.samples
        floats = samples in ("half", "float")
        if kind == "trimap":
            if pictures.trimap is None:
                raise ValueError("this mode makes no trimaps to write")
            return pictures.trimap.astype(np.float32) / 255 if floats else pictures.trimap
        if kind == "composition":
            return srgb_to_linear(pictures.composition) if floats else pictures.composition
        if kind == "alpha":
            return pictures.alpha if floats else alpha_to_u16(pictures.alpha) if samples == "u16" else pictures.alpha_u8
        if samples == "u8":
            colour = pictures.foreground
        elif samples == "u16":
            colour = alpha_to_u16(pictures.foreground_float)
        else:
            colour = srgb_to_linear(pictures.foreground_float)
        if kind == "foreground":
            return colour
        return premultiplied_rgba(colour, pictures.alpha, samples, self.spec.premultiplied)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()
        _remove_if_empty(self.made_parent)


class _Group:
    """The sinks fed from one matte (the whole frame's, or one object's) and the pictures they need of it."""

    def __init__(self):
        self.sinks: list = []
        self.composition = self.foreground = self.alpha = self.fine_foreground = False

    def add(self, sink) -> None:
        self.sinks.append(sink)
        needs = set().union(*(_NEEDS[kind] for kind in sink.kinds))
        self.composition |= "composition" in needs
        self.foreground |= "foreground" in needs
        self.alpha |= "alpha" in needs
        self.fine_foreground |= getattr(sink, "fine_foreground", False)


class LayersSink:
    """``--layers DIR/``: one multi-layer OpenEXR per frame (``00000.exr``...), a channel group per object
    (``io.image_formats.write_layers_exr``), in a folder that appears when the job completes."""

    layered = True
    kinds = frozenset()

    def __init__(self, spec):
        from .io.writers import ImageSequenceWriter

        self.spec = spec
        self.writer = ImageSequenceWriter(spec)

    def write_layers(self, index: int, pts: int, matte) -> None:
        """``matte``: a ``LayeredMatte`` (the mode refuses --layers without several objects)."""
        self.writer.write({i: (m.alpha(), m.foreground()) for i, m in matte.layers.items()})

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def _make_object_parent(spec) -> Path | None:
    """An object's folder output (``pha/2/``) goes in a folder made for it (``pha/``) if there is none yet; returns
    it when made here, so that an aborted job removes it again (if it is still empty)."""
    if getattr(spec, "object", None) is None or not spec.is_sequence or spec.path.parent.exists():
        return None
    spec.path.parent.mkdir()
    return spec.path.parent


def _remove_if_empty(folder: Path | None) -> None:
    if folder is not None:
        try:
            folder.rmdir()
        except OSError:  # not empty (another object's output is in place), or gone
            pass


def premultiplied_rgba(colour: np.ndarray, alpha: np.ndarray, samples: str, premultiplied: bool) -> np.ndarray:
    """Colour [H,W,3] (uint8, uint16 or float, as stored) and alpha float [H,W] 0..1 -> RGBA of the same type,
    the colour times alpha when ``premultiplied`` (rounded to the nearest step in integer formats)."""
    import cv2

    if samples == "u8":
        a = alpha_to_u8(alpha)
        if premultiplied:
            colour = cv2.multiply(colour, cv2.merge([a, a, a]), scale=1 / 255)  # rounds, as alpha_to_u8 does
        return rgba(colour, a)
    if samples == "u16":
        a = alpha_to_u16(alpha)
        if premultiplied:
            colour = cv2.multiply(colour, cv2.merge([a, a, a]), scale=1 / 65535)
        return cv2.merge([*cv2.split(colour), a])
    alpha = alpha.astype(np.float32, copy=False)
    if premultiplied:
        colour = colour * alpha[..., None]
    return cv2.merge([*cv2.split(colour.astype(np.float32, copy=False)), alpha])


class OutputSet:
    """All sinks of a job, plus the composition's background (which only compositions read).

    A sink with an ``object`` id (several subjects in one run: ``matters.guided_objects``) is fed that object's
    layer of each ``LayeredMatte``; the others the frame's matte as a whole. A sink with ``layered`` set (``--layers``)
    is handed the matte itself, every object's layer in one file."""

    def __init__(self, sinks: list, background=None):
        self.sinks = sinks
        self.background = background  # io.backgrounds.Background, or None when nothing composites
        self.layered = [sink for sink in sinks if getattr(sink, "layered", False)]
        self.groups: dict = {}  # object id (None: the whole matte) -> _Group of the sinks fed from it
        for sink in sinks:
            if not getattr(sink, "layered", False):
                self.groups.setdefault(getattr(sink, "object", None), _Group()).add(sink)
        self._first_pts: int | None = None

    @property
    def needs_foreground(self) -> bool:
        """Whether any picture asked for is made from the foreground (a composition is)."""
        return bool(self.layered) or any(g.composition or g.foreground for g in self.groups.values())

    def write(self, index: int, pts: int, matte: Matte) -> None:
        """One frame's result to every sink; timestamps start at 0 in the outputs."""
        self._first_pts = pts if self._first_pts is None else self._first_pts
        for object_id, group in self.groups.items():
            part = matte if object_id is None else matte.layer(object_id)
            background = self._background_for(index, part) if group.composition else None
            pictures = part.pictures(background, foreground=group.foreground, alpha=group.alpha)
            if group.fine_foreground:
                pictures.foreground_float = part.foreground()
            for sink in group.sinks:
                sink.write(index, pts - self._first_pts, pictures)
        for sink in self.layered:
            sink.write_layers(index, pts - self._first_pts, matte)

    def _background_for(self, index: int, matte: Matte) -> np.ndarray | None:
        # A solid colour as one pixel where the matte can use it (no full-size copy every frame).
        return self.background.frame_or_colour(index) if matte.takes_colour_pixel else self.background.frame(index)

    def close(self) -> None:
        """Commit every sink; if one fails, the ones not yet committed are removed (all or nothing as far as
        renames allow) and the error is raised."""
        try:
            for sink in self.sinks:
                sink.close()
        except BaseException:
            self.abort()
            raise
        finally:
            self._close_background()

    def abort(self) -> None:
        for sink in self.sinks:
            try:
                sink.abort()
            except Exception:  # removing one temporary file must not keep the others
                pass
        self._close_background()

    def _close_background(self) -> None:
        if self.background is not None:
            self.background.close()
            self.background = None
