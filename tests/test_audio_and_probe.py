"""The input's audio reaches every output that is a picture of the scene (not the bare matte), in each container;
``probe`` counts a WebM's frames from its video, not its audio, and says when a stream carries alpha."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from media import audio_seconds, moving_square_frames, person_frames, write_video
from vidmatte.io.probe import probe


@pytest.mark.parametrize("audio", [False, True])
@pytest.mark.parametrize("alpha", [False, True])
def test_webm_frames_come_from_the_video_stream(tmp_path, audio, alpha):
    """The WebM's container duration is its longest stream's: a 3 s tone must not make 1 s of video 72 frames."""
    clip = write_video(tmp_path / "clip.webm", moving_square_frames(24), fps=24, codec="libvpx-vp9",
                       pix_fmt="yuva420p" if alpha else "yuv420p", audio_seconds=3.0 if audio else None,
                       audio_codec="libopus")
    info = probe(clip)
    assert info.frames == 24
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert info.alpha is alpha
    assert (info.audio is not None) is audio


@pytest.mark.parametrize("name, codec, pix_fmt, alpha", [
    ("prores4444.mov", "prores_ks", "yuva444p10le", True),
    ("ffv1.mkv", "ffv1", "bgra", True),
    ("ffv1.mkv", "ffv1", "bgr0", False),
    ("h264.mp4", "libx264", "yuv420p", False),
])
def test_alpha_is_seen_in_the_pixel_format(tmp_path, name, codec, pix_fmt, alpha):
    info = probe(write_video(tmp_path / name, moving_square_frames(4), codec=codec, pix_fmt=pix_fmt))
    assert info.alpha is alpha and info.frames == 4


def test_probe_command_shows_alpha(tmp_path):
    clip = write_video(tmp_path / "a.webm", moving_square_frames(6), codec="libvpx-vp9", pix_fmt="yuva420p",
                       audio_seconds=2.0, audio_codec="libopus")
    as_json = subprocess.run([sys.executable, "-m", "vidmatte", "probe", str(clip), "--json"], capture_output=True,
                             text=True, check=True)
    info = json.loads(as_json.stdout)
    assert info["alpha"] is True and info["frames"] == 6
    text = subprocess.run([sys.executable, "-m", "vidmatte", "probe", str(clip)], capture_output=True, text=True,
                          check=True).stdout
    assert any(line.split() == ["alpha", "True"] for line in text.splitlines())


@pytest.mark.weights
def test_audio_reaches_rgba_and_foreground_but_not_alpha(tmp_path, rvm_onnx_path):
    """ProRes 4444 .mov (AAC copied), VP9-alpha .webm (AAC re-encoded to Opus), FFV1 .mkv, H.264 foreground."""
    import vidmatte
    from vidmatte.io.writers import parse_output
    from vidmatte.pipeline import ConvertOptions, convert

    clip = write_video(tmp_path / "talk.mp4", person_frames(24, 64, 48), fps=24, audio_seconds=1.0)
    outputs = {"rgba": ["x.mov", "x.webm", "x.mkv"], "foreground": ["f.mp4"], "alpha": ["a.mp4", "a.webm"]}
    specs = [parse_output(kind, str(tmp_path / name)) for kind, names in outputs.items() for name in names]
    convert(clip, vidmatte.load(rvm_onnx_path), ConvertOptions(specs))
    for kind, names in outputs.items():
        for name in names:
            seconds = audio_seconds(tmp_path / name)
            if kind == "alpha":
                assert seconds == 0.0, name
            else:
                assert seconds == pytest.approx(1.0, abs=0.1), name
                assert probe(tmp_path / name).frames == 24, name
