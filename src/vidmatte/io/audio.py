"""Carry the input's audio into an output (compositions, foregrounds, RGBA masters; a bare matte needs none): stream
copy when the container accepts the codec, else re-encode (e.g. AAC into a VP9-alpha .webm becomes Opus)."""

from __future__ import annotations

from pathlib import Path

# Codecs each container accepts for a stream copy; anything else is re-encoded to the first listed encoder.
_COPYABLE = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be"},
    ".webm": {"opus", "vorbis"},
    ".mkv": None,  # Matroska takes almost anything
}
_REENCODE = {".mp4": "aac", ".mov": "aac", ".webm": "libopus", ".mkv": "aac"}


class AudioTrack:
    """The first audio stream of ``source`` between ``start`` and ``end`` seconds, shifted to start at 0."""

    def __init__(self, source: str | Path, start: float = 0.0, end: float | None = None):
        self.source = str(source)
        self.start, self.end = start, end

    @staticmethod
    def present(source: str | Path) -> bool:
        import av

        try:
            with av.open(str(source)) as c:
                return bool(c.streams.audio)
        except av.error.FFmpegError:
            return False

    def attach(self, output) -> "AudioTrack":
        import av

        self._input = av.open(self.source)
        self._in = self._input.streams.audio[0]
        ext = Path(output.name).suffix.lower()
        allowed = _COPYABLE.get(ext)
        self._copy = allowed is None or self._in.codec_context.name in allowed
        if self._copy:
            self._out = output.add_stream_from_template(self._in)
        else:
            codec = _REENCODE.get(ext, "aac")
            rate = 48000 if codec == "libopus" else self._in.codec_context.sample_rate
            self._out = output.add_stream(codec, rate=rate)
            self._out.layout = (self._in.codec_context.layout.name if self._in.codec_context.layout.nb_channels <= 2
                                else "stereo")
            self._resampler = av.AudioResampler(format=self._out.format.name, layout=self._out.layout.name, rate=rate)
        self._output = output
        return self

    def _in_range(self, seconds: float) -> bool:
        return seconds >= self.start - 1e-6 and (self.end is None or seconds < self.end)

    def copy(self) -> None:
        try:
            if self._copy:
                self._copy_packets()
            else:
                self._reencode()
        finally:
            self._input.close()

    def _copy_packets(self) -> None:
        tb = self._in.time_base
        offset = int(round(self.start / tb)) if self.start else 0
        for packet in self._input.demux(self._in):
            if packet.dts is None or packet.pts is None:
                continue
            if not self._in_range(float(packet.pts * tb)):
                continue
            packet.pts -= offset
            packet.dts -= offset
            packet.stream = self._out
            self._output.mux(packet)

    def _reencode(self) -> None:
        for frame in self._input.decode(self._in):
            if frame.time is not None and not self._in_range(frame.time):
                continue
            frame.pts = None
            for converted in self._resampler.resample(frame):
                self._output.mux(self._out.encode(converted))
        for converted in self._resampler.resample(None):
            self._output.mux(self._out.encode(converted))
        self._output.mux(self._out.encode(None))

