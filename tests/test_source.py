"""FrameSource: forward, from frame N and backward give the very frames a plain forward read gives (same decoder,
so bit-exact), on real codecs with B-frames, long GOPs, variable frame rate, rotation; memory stays one segment."""

from __future__ import annotations

import subprocess
import weakref
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media import moving_square_frames, write_video
from vidmatte.errors import UsageError
from vidmatte.io.readers import open_reader, to_frame
from vidmatte.io.source import open_source


def h264_clip(path: Path, count: int, keyint: int, width: int = 96, height: int = 64) -> Path:
    """H.264 with B-frames (decode order differs from presentation order) and a fixed GOP of ``keyint``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast",
                          "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3"}
        for image in moving_square_frames(count, width, height):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def same(got, want) -> bool:
    """Same indices, pts and pixels, in the same order."""
    return ([(f.index, f.pts) for f in got] == [(f.index, f.pts) for f in want]
            and all(np.array_equal(a.image, b.image) for a, b in zip(got, want)))


@pytest.fixture(scope="module", params=[("gop12.mp4", 12), ("longgop.mp4", 1000), ("gop12.mkv", 12)])
def clip(request, tmp_path_factory):
    name, keyint = request.param
    path = h264_clip(tmp_path_factory.mktemp("clips") / name, 60, keyint)
    return path, list(open_reader(path))


def test_clip_really_has_b_frames_and_the_expected_keyframes(clip):
    path, reference = clip
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert [p.pts for p in packets] != sorted(p.pts for p in packets)  # B-frames: decode order != presentation
    source = open_source(path)
    index = source.pts_index()
    assert index.pts == [f.pts for f in reference]
    assert index.keyframes == ([0, 12, 24, 36, 48] if "gop12" in path.name else [0])


def test_forward_is_the_video_reader(clip):
    path, reference = clip
    assert len(reference) == 60
    assert same(list(open_source(path).frames()), reference)
    assert same(list(open_source(path).frames(decoder_threads=1)), reference)


@pytest.mark.parametrize("start, stop", [(1, None), (12, None), (17, None), (59, None), (13, 30), (40, 41)])
def test_from_frame_n_is_the_forward_tail(clip, start, stop):
    path, reference = clip
    source = open_source(path)
    assert same(list(source.frames(start, stop)), reference[start:stop])
    assert source.expected_frames(start, stop) == len(reference[start:stop])


@pytest.mark.parametrize("segment", [64, 5])  # one segment per GOP, and GOPs cut into chunks of 5
def test_reverse_is_forward_reversed(clip, segment):
    path, reference = clip
    source = open_source(path)
    source.max_segment_frames = segment
    assert same(list(source.frames(reverse=True)), reference[::-1])
    assert same(list(source.frames(7, 31, reverse=True)), reference[7:31][::-1])


def test_one_frame_by_index(clip):
    path, reference = clip
    source = open_source(path)
    for i in (0, 13, 59):
        assert same([source.frame(i)], [reference[i]])


def test_variable_frame_rate_and_late_start(tmp_path):
    """Irregular timestamps that do not start at 0: frames are found by their own pts, which are kept."""
    pts = [7, 9, 10, 14, 15, 16, 22, 30, 31, 32, 40, 41, 48, 50, 51, 60, 61, 70, 71, 80]
    clip = write_video(tmp_path / "vfr.mkv", moving_square_frames(len(pts)), pts=pts, time_base=Fraction(1, 100))
    reference = list(open_reader(clip))
    assert len(reference) == len(pts)
    source = open_source(clip)
    assert same(list(source.frames(5)), reference[5:])
    assert same(list(source.frames(reverse=True)), reference[::-1])


def test_rotated_clip(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    plain = h264_clip(tmp_path / "plain.mp4", 30, 12)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", str(rotated)], check=True)
    reference = list(open_reader(rotated))
    assert reference[0].image.shape == (96, 64, 3)
    source = open_source(rotated)
    assert same(list(source.frames(14)), reference[14:])
    assert same(list(source.frames(reverse=True)), reference[::-1])


def test_frames_without_pts_are_numbered_by_counting(tmp_path):
    """A raw H.264 stream has no timestamps: reading from N and backward decode from the start and count."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    raw = tmp_path / "raw.h264"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(h264_clip(tmp_path / "a.mp4", 30, 12)),
                    "-c", "copy", "-bsf:v", "h264_mp4toannexb", str(raw)], check=True)
    reference = list(open_reader(raw))
    source = open_source(raw)
    source.max_segment_frames = 7
    assert source.pts_index() is None
    assert same(list(source.frames(11)), reference[11:])
    assert same(list(source.frames(reverse=True)), reference[::-1])


def test_image_folder_in_any_order(tmp_path):
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 6, 3), i * 10, np.uint8))
    source = open_source(tmp_path)
    reference = list(open_reader(tmp_path))
    assert same(list(source.frames()), reference)
    assert same(list(source.frames(2)), reference[2:])
    assert same(list(source.frames(1, 4, reverse=True)), reference[1:4][::-1])
    assert same([source.frame(5)], [reference[5]])
    assert source.expected_frames(2) == 4


def test_live_source_goes_forward_only():
    source = open_source("testsrc=size=64x48:rate=10", input_format="lavfi")
    assert not source.seekable
    assert [f.index for f in source.frames(stop=3)] == [0, 1, 2]
    with pytest.raises(UsageError, match="live source.*forward"):
        next(source.frames(reverse=True))
    with pytest.raises(UsageError, match="live source"):
        next(source.frames(start=5))


def _most_frames_alive_backward(path: Path, monkeypatch) -> int:
    """The most decoded frames alive at once while reading backward, the caller dropping each frame once seen:
    every frame the source decodes is tracked by a weak reference from the moment it is made."""
    import vidmatte.io.source as source_module

    made: list[weakref.ref] = []

    def tracked(*args, **kwargs):
        frame = to_frame(*args, **kwargs)
        made.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(source_module, "to_frame", tracked)
    source = open_source(path)
    source.max_segment_frames = 8
    most = 0
    for frame in source.frames(reverse=True):
        del frame
        most = max(most, sum(ref() is not None for ref in made) + 1)  # + the one the caller just had
    assert len(made) == source.expected_frames()
    return most


def test_reverse_holds_one_segment_not_the_clip(tmp_path, monkeypatch):
    """4x the frames, the same number alive at once: one segment (K = 8 here), never the clip."""
    short = h264_clip(tmp_path / "short.mp4", 60, 1000, 160, 96)
    long = h264_clip(tmp_path / "long.mp4", 240, 1000, 160, 96)
    short_most = _most_frames_alive_backward(short, monkeypatch)
    long_most = _most_frames_alive_backward(long, monkeypatch)
    assert long_most <= 1.25 * short_most  # holding the whole clip would make this ~4x
    assert long_most <= 8  # one segment


def test_segment_size_follows_the_memory_budget(tmp_path):
    source = open_source(h264_clip(tmp_path / "a.mp4", 2, 12))
    assert source.segment_frames() == 64  # small frames: the frame cap
    source.info.width, source.info.height = 3840, 2160
    assert source.segment_frames() == 256 * 2 ** 20 // (3840 * 2160 * 3) == 10


def test_real_clip_backward_matches_forward(shared_data):
    clip = shared_data / "video_people" / "sam2" / "bedroom.mp4"
    source = open_source(clip)
    tail = list(source.frames(188))
    assert [f.index for f in tail] == list(range(188, 200))
    assert same(list(source.frames(188, reverse=True)), tail[::-1])
