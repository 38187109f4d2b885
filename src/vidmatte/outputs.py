"""Where a job's results go: one ``OutputSet`` of sinks, fed one frame's ``Pictures`` at a time.

A sink is a file (a ``FileSink`` around a writer: video or PNG sequence, written under a temporary name and renamed
when the job completes) or anything else that wants the pictures, e.g. a UI's in-memory preview
(``CallbackSink``). The set computes each picture once per frame, whatever the number of sinks asking for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Protocol

import numpy as np

from .compose import alpha_to_u16, rgba
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
    """One output file or PNG folder (``OutputSpec``), opened under a temporary name."""

    def __init__(self, spec, stream: StreamInfo, *, crf=None, bitrate=None, preset="superfast", threads=0):
        from .io.audio import AudioTrack
        from .io.writers import open_writer, takes_16_bit

        self.spec, self.kinds = spec, frozenset({spec.kind})
        self.sixteen_bit = spec.kind == "alpha" and spec.bit_depth == 16 and takes_16_bit(spec)
        audio = None
        # Every video output a viewer watches keeps the input's sound; a bare matte (alpha) does not need it.
        if spec.kind not in ("alpha", "trimap") and not spec.is_sequence and not spec.is_image and stream.has_audio:
            audio = AudioTrack(stream.source_path, stream.start_seconds, stream.end_seconds)
        self.writer = open_writer(spec, stream.width, stream.height, stream.time_base, stream.fps, crf=crf,
                                  bitrate=bitrate, preset=preset, audio=audio, threads=threads)

    def write(self, index: int, pts: int, pictures: Pictures) -> None:
        kind = self.spec.kind
        if kind == "alpha":
            self.writer.write(alpha_to_u16(pictures.alpha) if self.sixteen_bit else pictures.alpha_u8, pts)
        elif kind == "foreground":
            self.writer.write(pictures.foreground, pts)
        elif kind == "rgba":
            self.writer.write(rgba(pictures.foreground, pictures.alpha_u8), pts)
        elif kind == "trimap":
            if pictures.trimap is None:
                raise ValueError("this mode makes no trimaps to write")
            self.writer.write(pictures.trimap, pts)
        else:
            self.writer.write(pictures.composition, pts)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


class OutputSet:
    """All sinks of a job, plus the composition's background (which only compositions read)."""

    def __init__(self, sinks: list, background=None):
        self.sinks = sinks
        self.background = background  # io.backgrounds.Background, or None when nothing composites
        needs = set().union(*(_NEEDS[kind] for sink in sinks for kind in sink.kinds)) if sinks else set()
        self.composition = "composition" in needs
        self.foreground = "foreground" in needs
        self.alpha = "alpha" in needs
        self._first_pts: int | None = None

    @property
    def needs_foreground(self) -> bool:
        """Whether any picture asked for is made from the foreground (a composition is)."""
        return self.composition or self.foreground

    def write(self, index: int, pts: int, matte: Matte) -> None:
        """One frame's result to every sink; timestamps start at 0 in the outputs."""
        self._first_pts = pts if self._first_pts is None else self._first_pts
        pictures = matte.pictures(self._background_for(index, matte), foreground=self.foreground, alpha=self.alpha)
        for sink in self.sinks:
            sink.write(index, pts - self._first_pts, pictures)

    def _background_for(self, index: int, matte: Matte) -> np.ndarray | None:
        if not self.composition:
            return None
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
