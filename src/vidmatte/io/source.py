"""PLACEHOLDER (replaced by the re-readable FrameSource being built on branch issue8-source): forward reading
through open_reader; reverse reads the range forward and yields it backward (only for short ranges)."""

from __future__ import annotations

from .probe import probe
from .readers import open_reader


class FrameSource:
    def __init__(self, path, sequence_fps=None, input_format=None, input_options=None):
        self.path, self.args = path, (sequence_fps, input_format, input_options)
        self.info = probe(path, sequence_fps, input_format, input_options)
        self.seekable = self.info.kind != "live"

    def expected_frames(self, start=0, stop=None):
        reader = open_reader(self.path, start, stop, *self.args)
        return reader.expected_frames()

    def frames(self, start=0, stop=None, reverse=False, decoder_threads=None):
        reader = open_reader(self.path, start, stop, *self.args)
        reader.decoder_threads = decoder_threads
        if not reverse:
            yield from reader
            return
        yield from reversed(list(reader))


def open_source(path, sequence_fps=None, input_format=None, input_options=None) -> FrameSource:
    return FrameSource(path, sequence_fps, input_format, input_options)
