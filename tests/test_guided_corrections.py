"""Corrections with a kept work folder: a second run that adds, changes or removes a keyframe recomputes only the
frames between that keyframe's neighbours, and every output equals a fresh run's with the same keyframes."""

from __future__ import annotations

import json
import logging
import os

import cv2
import numpy as np
import pytest
from test_guided_matting import _cli, clip_fixtures, key_trimap

import vidmatte
from vidmatte.data.synthesis import trimap_from_alpha
from vidmatte.errors import Cancelled, UsageError
from vidmatte.job import JobControl

FRAMES = 24
KEYS = (0, 8, 16, 23)


clip, frames = clip_fixtures(FRAMES)


def marks(folder, clip, keys=KEYS, wide=()):
    """A keyframe folder: the true trimap of each frame in ``keys`` (a wider band at those in ``wide``: a changed
    mark, as a user's correction is)."""
    folder.mkdir()
    for k in keys:
        alpha = np.rint(clip[k][1] * 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{k:05d}.png"), trimap_from_alpha(alpha, 9 if k in wide else 3))
    return folder


def run(frames, keyframes, out, work=None, *extra):
    out.mkdir()
    proc = _cli(frames, "--keyframes", keyframes, "--alpha", f"{out}/pha/", "--composition", f"{out}/comp/",
                "--json", *(["--work", work] if work else []), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def pictures(out, kind: str) -> list[bytes]:
    return [(out / kind / f"{i:05d}.png").read_bytes() for i in range(FRAMES)]


def test_a_changed_keyframe_recomputes_only_between_its_neighbours(tmp_path, frames, clip):
    work = tmp_path / "work"
    first, _ = run(frames, marks(tmp_path / "v1", clip), tmp_path / "a", work)
    assert first["frames"] == FRAMES and first["reused_frames"] == 0
    solved_at = {i: os.stat(work / "solved" / f"{i:05d}_alpha.npy.gz").st_mtime_ns for i in range(FRAMES)}

    corrected = marks(tmp_path / "v2", clip, wide=(16,))
    second, said = run(frames, corrected, tmp_path / "b", work)
    # Keyframe 16 changed: frames 9..22 (between its neighbours 8 and 23) are recomputed, 0..8 and 23 reused.
    assert second["reused_frames"] == 10, said
    assert "reusing 10 of 24 frames; solving 14 (frames 9..22)" in said
    touched = [i for i in range(FRAMES) if os.stat(work / "solved" / f"{i:05d}_alpha.npy.gz").st_mtime_ns
               != solved_at[i]]
    assert touched == list(range(9, 23))

    fresh, _ = run(frames, corrected, tmp_path / "c")  # no work folder: everything from scratch
    assert fresh["reused_frames"] == 0
    for kind in ("pha", "comp"):
        assert pictures(tmp_path / "b", kind) == pictures(tmp_path / "c", kind), kind  # byte for byte
        before, after = pictures(tmp_path / "a", kind), pictures(tmp_path / "b", kind)
        assert [before[i] == after[i] for i in [*range(0, 9), 23]] == [True] * 10, kind  # untouched frames
        assert before[16] != after[16], "the correction must change its own frame"


def test_a_correction_run_reports_the_whole_clips_contradictions_and_jumps(tmp_path, frames, clip):
    """Keyframe 8 marks a patch of background, not the subject: the frames on either side of it are reported. A
    correction elsewhere (keyframe 23 changed: frames 17..23 redone) reports them still, as a fresh run with the same
    keyframes does: the report is the clip's, not only that of the frames the correction solved."""
    keys = marks(tmp_path / "v1", clip)
    wrong = np.zeros(clip[8][1].shape, np.uint8)
    wrong[10:40, 190:240] = 255
    cv2.imwrite(str(keys / "00008.png"), wrong)
    work = tmp_path / "work"
    first, _ = run(frames, keys, tmp_path / "a", work)
    assert first["contradicting_frames"] and first["contradicting_frames"][0][1] < 17, first
    assert first["jumping_frames"] and first["jumping_frames"][0][1] < 17, first  # the matte leaps to the patch

    corrected = marks(tmp_path / "v2", clip, wide=(23,))
    cv2.imwrite(str(corrected / "00008.png"), wrong)
    second, said = run(frames, corrected, tmp_path / "b", work)
    assert second["reused_frames"] == FRAMES - 7, said  # only 17..23 solved again
    fresh, _ = run(frames, corrected, tmp_path / "c")
    for key in ("contradicting_frames", "jumping_frames"):
        assert second[key] == fresh[key], (key, second, fresh)
    assert second["contradicting_frames"] == first["contradicting_frames"]
    assert second["jumping_frames"] == first["jumping_frames"]
    assert f"frames {first['contradicting_frames'][0][0]}-" in said  # and the warning says so


def _matte(frames, clip, tmp_path, name, keys=KEYS, work=None, control=None, **options):
    keyframes = {k: key_trimap(clip[k][1]) for k in keys}
    return vidmatte.convert_guided(str(frames), keyframes, output_type="png_sequence",
                                   output_alpha=str(tmp_path / name), prior="none", work=work and str(work),
                                   progress=False, control=control, **options)


@pytest.mark.parametrize("keys, reused", [((0, 4, 8, 16, 23), 24 - 7),  # 4 added: frames 1..7 recomputed
                                           ((0, 16, 23), 24 - 15)],  # 8 removed: frames 1..15 recomputed
                         ids=["added", "removed"])
def test_an_added_or_removed_keyframe_recomputes_between_its_neighbours(tmp_path, frames, clip, keys, reused):
    work = tmp_path / "work"
    assert _matte(frames, clip, tmp_path, "a", work=work).details["reused_frames"] == 0
    assert _matte(frames, clip, tmp_path, "b", keys, work=work).details["reused_frames"] == reused
    _matte(frames, clip, tmp_path, "c", keys)
    assert ([(tmp_path / "b" / f"{i:05d}.png").read_bytes() for i in range(FRAMES)]
            == [(tmp_path / "c" / f"{i:05d}.png").read_bytes() for i in range(FRAMES)])
    assert _matte(frames, clip, tmp_path, "d", keys, work=work).details["reused_frames"] == FRAMES  # nothing new


def test_another_input_or_setting_starts_the_work_folder_afresh(tmp_path, frames, clip, caplog):
    caplog.set_level(logging.INFO, logger="vidmatte")
    work = tmp_path / "work"
    _matte(frames, clip, tmp_path, "a", work=work)
    assert _matte(frames, clip, tmp_path, "b", work=work, band=5).details["reused_frames"] == 0  # guidance read
    assert "guidance changed; recomputing every frame" in caplog.text
    assert _matte(frames, clip, tmp_path, "c", work=work, band=5).details["reused_frames"] == FRAMES
    assert _matte(frames, clip, tmp_path, "d", work=work, band=5, end_frame=FRAMES - 1
                  ).details["reused_frames"] == 0  # another range
    assert "range changed" in caplog.text
    assert _matte(frames, clip, tmp_path, "e", work=work, band=5).details["reused_frames"] == 0
    edited = clip[5][0].copy()
    edited[:10] = 0
    cv2.imwrite(str(frames / "00005.png"), cv2.cvtColor(edited, cv2.COLOR_RGB2BGR))
    assert _matte(frames, clip, tmp_path, "f", work=work, band=5).details["reused_frames"] == 0  # another input
    assert "input changed" in caplog.text


def test_a_cancelled_run_leaves_a_cache_the_next_run_uses(tmp_path, frames, clip):
    work = tmp_path / "work"
    control = JobControl()

    def cancel_midway(event):
        if event.pass_name == "matting" and event.done == 6:
            control.cancel()

    control.on_progress = cancel_midway
    with pytest.raises(Cancelled):
        _matte(frames, clip, tmp_path, "a", work=work, control=control)
    assert not (tmp_path / "a").exists()  # the output was not written
    manifest = json.loads((work / "manifest.json").read_text())
    solved = sum(stop - start for start, stop, _ in manifest["solved"])
    assert 6 <= solved < FRAMES
    assert not [p for p in (work / "solved").iterdir() if p.name.startswith(".")], "no temporaries left"

    result = _matte(frames, clip, tmp_path, "b", work=work)
    assert result.details["reused_frames"] == solved
    _matte(frames, clip, tmp_path, "c")
    assert ([(tmp_path / "b" / f"{i:05d}.png").read_bytes() for i in range(FRAMES)]
            == [(tmp_path / "c" / f"{i:05d}.png").read_bytes() for i in range(FRAMES)])


def test_a_work_folder_with_someone_elses_manifest_is_refused(tmp_path, frames, clip):
    work = tmp_path / "work"
    work.mkdir()
    (work / "manifest.json").write_text('{"mine": true}')
    with pytest.raises(UsageError, match="did not write"):
        _matte(frames, clip, tmp_path, "a", work=work)
    assert (work / "manifest.json").read_text() == '{"mine": true}' and not (tmp_path / "a").exists()
