"""Live sources (cameras, FFmpeg devices): no length, stopped by Ctrl-C, which finishes the outputs.

No camera exists on CI machines; FFmpeg's lavfi test source stands in for one through the same code path (an FFmpeg
input format, no frame count, frames until stopped).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from media import decode_all
from vidmatte.errors import InputError
from vidmatte.io.probe import live_source, probe

CLI = [sys.executable, "-m", "vidmatte"]
SOURCE = ["testsrc2=size=192x108:rate=30", "--input-format", "lavfi"]


def start(out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "convert", *SOURCE, "--composition", str(out), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_encoding(folder: Path, proc: subprocess.Popen) -> None:
    """Until the composition's temporary file holds encoded frames (the network and encoder are running)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) > 20_000:
            return
        time.sleep(0.1)
    pytest.fail(f"the live run did not get going: {proc.poll()}")


def test_live_source_names():
    assert live_source("clip.mp4") is None
    assert live_source("anything", "lavfi") == ("anything", "lavfi")
    if sys.platform.startswith("linux"):
        assert live_source("webcam") == ("/dev/video0", "v4l2")
        assert live_source("webcam:2") == ("/dev/video2", "v4l2")
        assert live_source("/dev/video1") == ("/dev/video1", "v4l2")


def test_probe_of_a_live_source_has_no_length():
    info = probe(SOURCE[0], input_format="lavfi")
    assert (info.kind, info.width, info.height, info.fps, info.frames) == ("live", 192, 108, 30.0, None)


@pytest.mark.skipif(Path("/dev/video9").exists(), reason="this machine has a /dev/video9")
def test_missing_camera_is_a_one_line_error():
    proc = subprocess.run([*CLI, "convert", "/dev/video9", "--alpha", "a.mp4"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "vidmatte convert: error: cannot open live source /dev/video9 (v4l2: No such file or directory)"]
    with pytest.raises(InputError):
        probe("/dev/video9")


def test_end_frame_bounds_a_live_source(tmp_path, rvm_onnx_path):
    out = tmp_path / "live.mp4"
    proc = subprocess.run([*CLI, "convert", *SOURCE, "--end-frame", "12", "--alpha", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 12
    assert len(decode_all(out)) == 12


def test_ctrl_c_finishes_a_live_recording(tmp_path, rvm_onnx_path):
    out = tmp_path / "live.mp4"
    proc = start(out, "--alpha", str(tmp_path / "alpha") + "/")
    wait_until_encoding(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "finishing the outputs" in stderr and "Traceback" not in stderr
    frames = json.loads(stdout)["frames"]
    assert frames > 0
    assert len(decode_all(out)) == frames  # a complete file, every matted frame in it
    assert len(list((tmp_path / "alpha").glob("*.png"))) == frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha", "live.mp4"]  # no temporary files left


def test_second_signal_aborts():
    """On a live source the first SIGINT/SIGTERM stops the input (and says so); the second one raises."""
    import os

    from vidmatte.cli.signals import signals_control
    from vidmatte.job import JobControl

    control = JobControl()
    with signals_control(control, live=True):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs in the main thread between bytecodes
            if control.input_stopped:
                break
            time.sleep(0.01)
        assert control.input_stopped and not control.cancelled
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):
                time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is not None  # handlers restored after the job


def test_input_options_reach_ffmpeg(tmp_path, rvm_onnx_path):
    """Device options (video_size, framerate...) go to FFmpeg's demuxer: raw RGB frames need them to be read."""
    from media import moving_square_frames

    raw = tmp_path / "frames.rgb"
    raw.write_bytes(b"".join(f.tobytes() for f in moving_square_frames(7, 64, 48)))
    options = ["--input-format", "rawvideo", "--input-option", "video_size=64x48",
               "--input-option", "pixel_format=rgb24", "--input-option", "framerate=10"]
    info = json.loads(subprocess.run([*CLI, "probe", raw, *options, "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    assert (info["width"], info["height"], info["fps"], info["kind"]) == (64, 48, 10.0, "live")
    out = tmp_path / "alpha"
    proc = subprocess.run([*CLI, "convert", raw, *options, "--alpha", f"{out}/"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.glob("*.png"))) == 7
    bad = subprocess.run([*CLI, "convert", raw, "--input-format", "rawvideo", "--input-option", "nonsense",
                          "--alpha", "x.mp4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
