"""The command line as users and their scripts see it: exit codes, one-line errors, files never half-written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from media import decode_all, moving_square_frames, write_video

CLI = [sys.executable, "-m", "vidmatte"]


def run(*args, cwd=None, timeout=300):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_one_line_error(proc, code: int, fragment: str):
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    return write_video(folder / "in.mp4", moving_square_frames(10, 96, 64), fps=24)


def test_convert_json_line_and_outputs(tmp_path, clip, rvm_onnx_path):
    proc = run("convert", clip, "--composition", tmp_path / "c.mp4", "--alpha", f"{tmp_path}/a/", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frames"] == 10 and result["fps"] > 0 and result["seconds"] > 0
    assert set(result["outputs"]) == {"composition", "alpha"}
    assert len(decode_all(tmp_path / "c.mp4")) == 10
    assert len(list((tmp_path / "a").glob("*.png"))) == 10


BAD_CASES = [
    # (name, argv builder, exit code, message fragment)
    pytest.param("missing input", lambda t, c: ["convert", t / "nope.mp4", "--alpha", t / "a.mp4"], 1,
                 "input not found"),
    pytest.param("not a video", lambda t, c: ["convert", t / "text.mp4", "--alpha", t / "a.mp4"], 1,
                 "not a readable video"),
    ("no output", lambda t, c: ["convert", c], 2, "no output requested"),
    ("bad extension", lambda t, c: ["convert", c, "--alpha", t / "a.avi"], 2, "unsupported output extension"),
    ("alpha in mp4", lambda t, c: ["convert", c, "--rgba", t / "a.mp4"], 2, "cannot carry alpha"),
    pytest.param("existing output", lambda t, c: ["convert", c, "--alpha", t / "keep.mp4"], 2, "--overwrite"),
    pytest.param("no such folder", lambda t, c: ["convert", c, "--alpha", t / "no" / "a.mp4"], 1, "does not exist"),
    pytest.param("folder is a file", lambda t, c: ["convert", c, "--alpha", t / "keep.mp4" / "a.mp4"], 1,
                 "not a folder"),
    ("bad ratio", lambda t, c: ["convert", c, "--alpha", t / "a.mp4", "--downsample-ratio", "2"], 2, "(0, 1]"),
    ("bad range", lambda t, c: ["convert", c, "--alpha", t / "a.mp4", "--start-frame", "5", "--end-frame", "5"], 2,
     "--end-frame"),
    pytest.param("past the end", lambda t, c: ["convert", c, "--alpha", t / "a.mp4", "--start-frame", "50"], 1,
                 "past the end"),
    pytest.param("bad colour", lambda t, c: ["convert", c, "--composition", t / "a.mp4", "--background", "#12"], 2,
                 "#RRGGBB"),
    ("unknown flag", lambda t, c: ["convert", c, "--alpha", t / "a.mp4", "--bogus"], 2, "unrecognized"),
    ("unknown model", lambda t, c: ["convert", c, "--alpha", t / "a.mp4", "--model", "nope"], 2, "unknown model"),
    pytest.param("empty folder", lambda t, c: ["convert", t / "empty", "--alpha", t / "a.mp4"], 1, "no images"),
]


def _case_name(case):
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("name, argv, code, fragment", BAD_CASES, ids=[_case_name(c) for c in BAD_CASES])
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, clip, name, argv, code, fragment):
    (tmp_path / "text.mp4").write_text("this is not a video")
    (tmp_path / "keep.mp4").write_bytes(b"precious")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run(*argv(tmp_path, clip))
    assert_one_line_error(proc, code, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, nothing left behind
    assert (tmp_path / "keep.mp4").read_bytes() == b"precious"


@pytest.mark.parametrize("name", ["missing input", "existing output", "bad colour"])
def test_bad_input_is_reported_before_the_model_is_fetched(tmp_path, clip, name, monkeypatch):
    """What a user with a typo sees on a fresh install without network: the typo, not a download error. An empty
    cache and PIP_NO_INDEX make the fetch fail at once, with or without a network."""
    monkeypatch.setenv("VIDMATTE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    (tmp_path / "keep.mp4").write_bytes(b"precious")
    _, argv, code, fragment = next(c.values if hasattr(c, "values") else c for c in BAD_CASES
                                   if _case_name(c) == name)
    assert_one_line_error(run(*argv(tmp_path, clip)), code, fragment)


def test_debug_shows_the_traceback(tmp_path):
    proc = run("convert", tmp_path / "nope.mp4", "--alpha", tmp_path / "a.mp4", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_overwrite_replaces_only_when_asked(tmp_path, clip, rvm_onnx_path):
    target = tmp_path / "a.mp4"
    target.write_bytes(b"old")
    proc = run("convert", clip, "--alpha", target, "--overwrite", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert len(decode_all(target)) == 10


def test_sigint_leaves_no_file_under_the_final_name(tmp_path, rvm_onnx_path):
    long_clip = write_video(tmp_path / "long.mp4", moving_square_frames(400, 320, 240), fps=24)
    out = tmp_path / "out" / "comp.mp4"
    out.parent.mkdir()
    proc = subprocess.Popen([*CLI, "convert", str(long_clip), "--composition", str(out), "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(out.parent.iterdir()):
        time.sleep(0.05)  # wait until it is writing its temporary file
    assert proc.poll() is None, "the run finished before it could be interrupted"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        # A hang guard only, not the check: how fast Ctrl-C acts depends on the machine's load. What is checked is
        # the outcome: exit 130, a one-line notice, and nothing left under the final name or as a temporary file.
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("convert did not stop after Ctrl-C (killed after 300 s)")
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # the temporary file is gone too


def test_probe_prints_what_the_reader_sees(clip):
    proc = run("probe", clip, "--json")
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (96, 64, 10, 24.0)


def test_models_list_and_path(tmp_path):
    proc = run("models", "list", "--json", "--cache-dir", tmp_path)
    entry = json.loads(proc.stdout.splitlines()[0])
    assert entry["name"] == "rvm-mobilenetv3" and entry["licence"].startswith("GPL-3.0")
    assert entry["sha256"] == "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"
    assert entry["cached"] is False
    proc = run("models", "path", "rvm-mobilenetv3", "--cache-dir", tmp_path)
    assert proc.stdout.strip() == str(tmp_path / "rvm_mobilenetv3_fp32.onnx")


def test_image_folder_and_single_image_inputs(tmp_path, rvm_onnx_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(moving_square_frames(3, 64, 48)):
        cv2.imwrite(str(folder / f"{i}.jpg"), f)
    proc = run("convert", folder, "--alpha", f"{tmp_path}/a/", "--rgba", tmp_path / "r.webm", "--fps", "12")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "a").glob("*.png"))) == 3
    proc = run("convert", folder / "0.jpg", "--composition", f"{tmp_path}/one/")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "one").glob("*.png")] == ["00000.png"]


def test_single_image_in_single_image_out(tmp_path, rvm_onnx_path):
    import cv2
    import numpy as np

    from vidmatte import demo

    photo = cv2.imread(str(demo.find_sample_photo()))
    cv2.imwrite(str(tmp_path / "portrait.jpg"), photo)
    proc = run("convert", tmp_path / "portrait.jpg", "--rgba", tmp_path / "cutout.png", "--alpha",
               tmp_path / "alpha16.png", "--bit-depth", "16")
    assert proc.returncode == 0, proc.stderr
    cutout = cv2.imread(str(tmp_path / "cutout.png"), cv2.IMREAD_UNCHANGED)
    assert cutout.shape == (*photo.shape[:2], 4)
    alpha = cv2.imread(str(tmp_path / "alpha16.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.dtype == np.uint16
    assert 0.2 < alpha.mean() / 65535 < 0.8  # the portrait's subject, not all or nothing
    proc = run("convert", tmp_path / "portrait.jpg", "--rgba", tmp_path / "cutout.jpg")
    assert_one_line_error(proc, 2, "JPEG cannot carry alpha")


def test_one_image_output_refuses_a_video(tmp_path, clip):
    proc = run("convert", clip, "--alpha", tmp_path / "a.png")
    assert_one_line_error(proc, 2, "holds one image")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 300 KB tmpfs, to run out of space for real (needs root; skipped elsewhere)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount_point)],
                          capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.parametrize("flag, target", [("--foreground", "f/"), ("--rgba", "r.mov")])
def test_full_disk_is_one_line_and_leaves_nothing(tiny_disk, flag, target, rvm_onnx_path, tmp_path):
    clip = write_video(tmp_path / "in.mp4", moving_square_frames(40, 320, 240), fps=24)
    proc = run("convert", clip, flag, f"{tiny_disk}/{target}", "--quiet")
    assert_one_line_error(proc, 1, "disk full while writing")
    assert list(tiny_disk.iterdir()) == []
