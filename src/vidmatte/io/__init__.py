"""Readers and writers: they know files and codecs, nothing about models."""

from .probe import SourceInfo, probe
from .readers import Frame, open_reader
from .source import FrameSource, open_source
from .writers import OutputSpec, open_writer, parse_output

__all__ = ["SourceInfo", "probe", "Frame", "open_reader", "FrameSource", "open_source", "OutputSpec", "open_writer",
           "parse_output"]
