"""Outputs never cost the user data: an output folder only ever loses frames we wrote, and killed runs' leftovers go.

Issue 8. Most checks run on the writers directly (no model); a few go through the command line as users do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from media import moving_square_frames, write_video
from vidmatte.errors import OutputError, UsageError
from vidmatte.io.atomic import AtomicOutput
from vidmatte.io.writers import check_outputs, open_writer, parse_output

import vidmatte

CLI = [sys.executable, "-m", "vidmatte"]
# The code under test, whatever the subprocess's working folder (a relative PYTHONPATH would not follow it there).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(vidmatte.__file__).parents[1]),
                                                     os.environ.get("PYTHONPATH", "")])}


def run(*args, cwd=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300, env=ENV)


def tree(folder: Path) -> dict:
    """Every path below ``folder`` with its bytes (None for folders): what 'nothing was touched' compares."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def users_frames(folder: Path, count: int) -> Path:
    """Frames a user made, named as ours are (no record of ours in the folder)."""
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:05d}.png").write_bytes(b"user's frame")
    return folder


def frames_folder(folder: Path, count: int) -> Path:
    """A folder of ``count`` frames written by a run of ours (its record lists them)."""
    write_frames(f"{folder}/", count)
    return folder


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_frames(path: str, count: int) -> None:
    writer = open_writer(parse_output("alpha", path), 8, 6, None, 24)
    for _ in range(count):
        writer.write(np.zeros((6, 8), np.uint8))
    writer.close()


@pytest.fixture()
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", moving_square_frames(3, 32, 24), fps=24)


# --- up-front refusals -----------------------------------------------------------------------------------------
def _folder_with_foreign(t: Path, what: str) -> Path:
    folder = frames_folder(t / "out", 2)
    if what == "sub-folder":
        (folder / "sub").mkdir()
        (folder / "sub" / "keep.txt").write_text("x")
    else:
        (folder / {"file": "notes.txt", "hidden file": ".DS_Store", "other png": "frame_1.png"}[what]).write_text("x")
    return folder


@pytest.mark.parametrize("what", ["file", "sub-folder", "hidden file", "other png"])
@pytest.mark.parametrize("slash", ["/", ""])
def test_folder_holding_anything_but_our_frames_is_refused(tmp_path, clip, what, slash):
    folder = _folder_with_foreign(tmp_path, what)
    before = tree(tmp_path)
    with pytest.raises(UsageError, match="did not write"):
        check_outputs([parse_output("alpha", str(folder) + slash)], clip, overwrite=True, frames=3)
    assert tree(tmp_path) == before


def test_folder_holding_the_input_video_is_refused(tmp_path, clip):
    with pytest.raises(UsageError, match="contains the input"):
        check_outputs([parse_output("alpha", f"{tmp_path}/")], clip, overwrite=True, frames=3)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)  # --alpha ./ with the input in .
        with pytest.raises(UsageError, match="contains the input"):
            check_outputs([parse_output("alpha", "./")], Path("clip.mp4"), overwrite=True, frames=3)
    finally:
        os.chdir(cwd)


def test_input_image_folder_is_not_an_output(tmp_path):
    """Its images are named like our frames: only the input check stands between them and deletion."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        (images / f"{i:05d}.png").write_bytes(b"input image")
    link = tmp_path / "link"
    link.symlink_to(images)
    for output in (f"{images}/", str(images), f"{link}/"):
        with pytest.raises(UsageError, match="input"):
            check_outputs([parse_output("alpha", output)], images, overwrite=True, frames=2)
    with pytest.raises(UsageError, match="input"):  # a glob pattern input, too
        check_outputs([parse_output("alpha", f"{images}/")], f"{images}/*.png", overwrite=True, frames=2)


@pytest.mark.parametrize("name", ["x.mp4", "cutout.png"])
def test_file_output_naming_a_folder_is_refused(tmp_path, clip, name):
    (tmp_path / name).mkdir()
    (tmp_path / name / "keep.txt").write_text("x")
    frames = 1 if name.endswith(".png") else 3
    with pytest.raises(UsageError, match="is an existing folder"):
        check_outputs([parse_output("rgba" if frames == 1 else "composition", str(tmp_path / name))], clip,
                      overwrite=True, frames=frames)
    assert (tmp_path / name / "keep.txt").exists()


def test_output_inside_a_sequence_folder_is_refused(tmp_path, clip):
    (tmp_path / "out").mkdir()
    specs = [parse_output("alpha", f"{tmp_path}/out/"), parse_output("composition", f"{tmp_path}/out/c.mp4")]
    with pytest.raises(UsageError, match="inside the PNG-sequence folder"):
        check_outputs(specs, clip, overwrite=False, frames=3)


def test_cli_overwrite_of_a_folder_of_videos_deletes_nothing(tmp_path, clip, rvm_onnx_path):
    videos = tmp_path / "Videos"
    videos.mkdir()
    (videos / "holiday.mp4").write_bytes(b"precious")
    (videos / "2023").mkdir()
    before = tree(tmp_path)
    for argv in (["--composition", videos], ["--alpha", f"{videos}/"], ["--alpha", f"{tmp_path}/"]):
        proc = run("convert", clip, *argv, "--overwrite", "--quiet")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("vidmatte convert: error: ") and len(proc.stderr.splitlines()) == 1
        assert tree(tmp_path) == before


def test_cli_alpha_dot_slash_with_the_input_there(tmp_path, clip, rvm_onnx_path):
    before = tree(tmp_path)
    proc = run("convert", "clip.mp4", "--alpha", "./", "--overwrite", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "contains the input" in proc.stderr, proc.stderr
    assert tree(tmp_path) == before


# --- replacing a folder of frames --------------------------------------------------------------------------------
def test_overwrite_replaces_only_our_frames(tmp_path, clip):
    folder = frames_folder(tmp_path / "out", 5)
    temporary = folder / f".x.vidmatte-{dead_pid()}-abc123.part.mp4"
    temporary.write_bytes(b"ours")  # a killed run's temporary does not make the folder foreign, and goes too
    check_outputs([parse_output("alpha", str(folder))], clip, overwrite=True, frames=3)
    write_frames(str(folder), 3)
    assert sorted(p.name for p in folder.iterdir()) == [".vidmatte-frames.json", "00000.png", "00001.png",
                                                        "00002.png"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_copy_of_our_folder_is_still_ours(tmp_path, clip):
    import shutil

    copy = Path(shutil.copytree(frames_folder(tmp_path / "out", 4), tmp_path / "copy"))  # no times kept
    check_outputs([parse_output("alpha", f"{copy}/")], clip, overwrite=True, frames=3)
    write_frames(f"{copy}/", 2)
    assert sorted(p.name for p in copy.glob("*.png")) == ["00000.png", "00001.png"]


@pytest.mark.parametrize("how", ["the user's frames", "a frame added", "a frame replaced", "an old vidmatte's"])
def test_a_folder_of_frames_we_did_not_write_is_refused_whole(tmp_path, clip, how):
    """Issue 21: 100 frames a user made, named 00000.png..., were cut to the 30 a run wrote by --overwrite."""
    if how == "the user's frames":
        folder = users_frames(tmp_path / "out", 100)
    else:
        folder = frames_folder(tmp_path / "out", 3)
        if how == "a frame added":
            (folder / "00003.png").write_bytes(b"user's frame")
        elif how == "a frame replaced":
            (folder / "00001.png").write_bytes(b"the user's retouched frame")
        else:
            (folder / ".vidmatte-frames.json").unlink()
    before = tree(tmp_path)
    with pytest.raises(UsageError) as info:
        check_outputs([parse_output("alpha", f"{folder}/")], clip, overwrite=True, frames=3)
    message = str(info.value)
    assert "left untouched" in message and "\n" not in message
    if how in ("the user's frames", "an old vidmatte's"):
        assert "older vidmatte" in message and "choose a new folder" in message
    else:
        assert ("00003.png" if how == "a frame added" else "00001.png") in message
    assert tree(tmp_path) == before


@pytest.mark.weights
@pytest.mark.parametrize("kind", ["alpha", "foreground", "composition", "rgba"])
def test_cli_overwrite_keeps_every_folder_output_of_the_users_frames(tmp_path, clip, kind, rvm_onnx_path):
    folder = users_frames(tmp_path / "frames", 100)
    before = tree(tmp_path)
    proc = run("convert", clip, f"--{kind}", f"{folder}/", "--overwrite", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("vidmatte convert: error: ") and len(proc.stderr.splitlines()) == 1
    assert tree(tmp_path) == before


def test_foreign_file_arriving_during_the_run_keeps_the_old_folder(tmp_path):
    folder = frames_folder(tmp_path / "out", 2)
    old = tree(folder)
    writer = open_writer(parse_output("alpha", f"{folder}/"), 8, 6, None, 24)
    writer.write(np.zeros((6, 8), np.uint8))
    (folder / "notes.txt").write_text("arrived meanwhile")
    with pytest.raises(OutputError, match="did not write") as info:
        writer.close()
    writer.abort()  # what the pipeline does after a failed close: must not remove the kept frames
    assert tree(folder) == {**old, "notes.txt": b"arrived meanwhile"}
    kept = Path(str(info.value).rsplit(" ", 1)[-1])
    assert kept.parent == tmp_path and not kept.name.startswith(".")
    assert sorted(p.name for p in kept.iterdir()) == [".vidmatte-frames.json", "00000.png"]


def test_a_users_frame_arriving_during_the_run_keeps_the_old_folder(tmp_path):
    folder = frames_folder(tmp_path / "out", 2)
    writer = open_writer(parse_output("alpha", f"{folder}/"), 8, 6, None, 24)
    writer.write(np.zeros((6, 8), np.uint8))
    (folder / "00002.png").write_bytes(b"user's frame")
    with pytest.raises(OutputError, match="did not write"):
        writer.close()
    writer.abort()
    assert (folder / "00002.png").read_bytes() == b"user's frame" and (folder / "00000.png").exists()


def test_symlinked_output_folder_stays_a_symlink(tmp_path):
    real = frames_folder(tmp_path / "real", 4)
    link = tmp_path / "link"
    link.symlink_to(real)
    write_frames(f"{link}/", 2)
    assert link.is_symlink() and sorted(p.name for p in real.glob("*.png")) == ["00000.png", "00001.png"]


# --- temporary names and stale leftovers ------------------------------------------------------------------------
def test_two_jobs_in_one_process_get_different_temporaries(tmp_path):
    first, second = (AtomicOutput(tmp_path / "a.mp4", is_dir=False) for _ in range(2))
    assert first.temp != second.temp and str(os.getpid()) in first.temp.name


def test_stale_temporaries_of_dead_processes_only_and_of_that_output_only(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    stale_file = tmp_path / f".a.vidmatte-{dead}-0a1b2c.part.mp4"
    stale_old_style = tmp_path / f".a.vidmatte-{dead}.part.mp4"
    stale_folder = users_frames(tmp_path / f".pha.vidmatte-{dead}-0a1b2c.part", 2)
    (stale_folder / ".vidmatte-frames.json").write_text("{}")  # a killed run's, sealed before its rename
    stale_trash = users_frames(tmp_path / f".pha.vidmatte-{dead}.old", 1)
    live = tmp_path / f".a.vidmatte-{alive}-0a1b2c.part.mp4"
    other_output = tmp_path / f".b.vidmatte-{dead}-0a1b2c.part.mp4"
    not_ours = tmp_path / f".a.vidmatte-{dead}-0a1b2c.part.mp4.bak"
    for path in (stale_file, stale_old_style, live, other_output, not_ours):
        path.write_bytes(b"x")
    (stale_trash / "user.txt").write_text("x")  # a folder of ours that someone added to is kept
    AtomicOutput(tmp_path / "a.mp4", is_dir=False).abort()
    AtomicOutput(tmp_path / "pha", is_dir=True).abort()
    assert not stale_file.exists() and not stale_old_style.exists() and not stale_folder.exists()
    assert live.exists() and other_output.exists() and not_ours.exists()
    assert sorted(p.name for p in stale_trash.iterdir()) == ["user.txt"]


def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next(tmp_path, rvm_onnx_path):
    long_clip = write_video(tmp_path / "long.mp4", moving_square_frames(300, 160, 120), fps=24)
    out = tmp_path / "out"
    out.mkdir()
    argv = [*CLI, "convert", str(long_clip), "--composition", str(out / "c.mp4"), "--alpha", f"{out}/pha/",
            "--quiet"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 120
    # until both temporaries are being written (the muxer creates its file when the first packet comes out)
    while time.monotonic() < deadline and not (any(out.glob(".pha.vidmatte-*/00001.png"))
                                               and any(out.glob(".c.vidmatte-*.part.mp4"))):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    leftovers = sorted(p.name for p in out.iterdir())
    assert any(name.startswith(".c.vidmatte-") for name in leftovers), leftovers
    assert any(name.startswith(".pha.vidmatte-") for name in leftovers), leftovers
    assert subprocess.run(argv + ["--end-frame", "3"], capture_output=True, env=ENV).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["c.mp4", "pha"]
