"""Folders of frames a user made are never emptied or written over, whichever front end or output is asked to
replace them (issue 21): guided's trimaps and work folder, batch items' outputs, and the page's downloads.
The writer's own rules are tested in test_safe_outputs.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import moving_square_frames, write_video
from vidmatte.io.writers import open_writer, parse_output

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidmatte", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def users_frames(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i:05d}.png").write_bytes(b"user's frame")
    return folder


@pytest.fixture()
def scene(tmp_path) -> Path:
    write_video(tmp_path / "clip.mp4", moving_square_frames(4, 64, 48), fps=24)
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:40] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    return tmp_path


@pytest.mark.parametrize("output", ["--trimaps", "--alpha"])
def test_guided_overwrite_keeps_a_folder_of_the_users_frames(scene, output):
    users_frames(scene / "frames", 30)
    before = tree(scene)
    proc = cli("guided", "clip.mp4", "--keyframe", "0:mask.png", "--prior", "none", output, "frames/",
               "--overwrite", "--quiet", cwd=scene)
    assert proc.returncode == 2 and "no record that vidmatte wrote them" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert tree(scene) == before


def test_guided_work_folder_holding_the_users_files_is_refused(scene):
    users_frames(scene / "work" / "forward", 3)  # named as the work folder's own files are
    (scene / "work" / "notes.txt").write_text("mine")
    before = tree(scene)
    proc = cli("guided", "clip.mp4", "--keyframe", "0:mask.png", "--prior", "none", "--work", "work/",
               "--alpha", "pha/", "--quiet", cwd=scene)
    assert proc.returncode == 2 and "work folder" in proc.stderr and "left untouched" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert tree(scene) == before


def test_guided_work_folder_of_ours_is_reused(scene):
    """The refusal above must not stop the kept work folder's purpose: a second run reuses the first's frames."""
    argv = ["guided", "clip.mp4", "--keyframe", "0:mask.png", "--prior", "none", "--work", "work/", "--quiet"]
    assert cli(*argv, "--alpha", "pha/", cwd=scene).returncode == 0
    proc = cli(*argv, "--alpha", "pha/", "--overwrite", "--json", cwd=scene)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (scene / "pha").glob("*.png")) == [f"{i:05d}.png" for i in range(4)]


@pytest.mark.weights
def test_batch_force_keeps_an_items_folder_of_the_users_frames(scene, rvm_onnx_path):
    out = scene / "out"
    assert cli("batch", "clip.mp4", "--output-dir", out, "--outputs", "alpha/", "--workers", "1", "--quiet",
               cwd=scene).returncode == 0
    written = sorted(p.name for p in (out / "clip" / "alpha").glob("*.png"))
    assert written == [f"{i:05d}.png" for i in range(4)]
    # the user puts their own frames where the item's were
    for path in (out / "clip" / "alpha").iterdir():
        path.unlink()
    (out / "clip" / "alpha").rmdir()
    users_frames(out / "clip" / "alpha", 10)
    before = tree(out / "clip" / "alpha")
    proc = cli("batch", "clip.mp4", "--output-dir", out, "--outputs", "alpha/", "--workers", "1", "--force",
               "--json", cwd=scene)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 1 and "no record that vidmatte wrote them" in summary["failures"]["clip"], summary
    assert tree(out / "clip" / "alpha") == before


def test_the_pages_alpha_zip_holds_the_frames_only(tmp_path):
    from vidmatte.web.runs import _zip_folder

    writer = open_writer(parse_output("alpha", f"{tmp_path}/alpha/"), 8, 6, None, 24)
    for _ in range(3):
        writer.write(np.zeros((6, 8), np.uint8))
    writer.close()
    assert (tmp_path / "alpha" / ".vidmatte-frames.json").exists()
    _zip_folder(tmp_path / "alpha", tmp_path / "alpha.zip")
    with zipfile.ZipFile(tmp_path / "alpha.zip") as zf:
        assert zf.namelist() == [f"alpha/{i:05d}.png" for i in range(3)]


def test_the_demo_writes_only_into_a_new_folder_or_its_own(tmp_path):
    """`vidmatte demo --output-dir ~/Videos` would have written over the user's input.mp4 there."""
    from vidmatte.cli.demo import DEMO_FILES, DEMO_RECORD, _check_output_dir
    from vidmatte.errors import UsageError

    users = tmp_path / "Videos"
    users.mkdir()
    (users / "input.mp4").write_bytes(b"the user's film")
    before = tree(tmp_path)
    proc = cli("demo", "--output-dir", users, "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "the demo did not write" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and tree(tmp_path) == before
    # an earlier demo's folder (its record and its own names) is the demo's to replace
    earlier = tmp_path / "demo-output"
    earlier.mkdir()
    (earlier / DEMO_RECORD).write_text("{}")
    for name in DEMO_FILES:
        (earlier / name).write_bytes(b"")
    _check_output_dir(earlier)
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="notes.txt"):
        _check_output_dir(earlier)
