"""``vidmatte batch`` end to end on a real local process pool: mixed good and bad inputs, records (skip, --force,
resume after an interrupt), manifests (every bad line reported alone), chunked runs stitched frame-exact."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from media import disc_over_plate, moving_square_frames, write_video
from test_jobs import subject_frames

pytestmark = pytest.mark.weights
REPO = Path(__file__).resolve().parents[1]


def batch(*args, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "vidmatte", "batch", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def summary_of(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alphas(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.int16) for p in sorted(folder.glob("*.png"))]


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def audio_samples(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(audio=0))


@pytest.fixture(scope="module")
def clips(tmp_path_factory, rvm_onnx_path):
    folder = tmp_path_factory.mktemp("batch-inputs")
    good = [write_video(folder / f"shot{i}.mp4", subject_frames(6, size=96)[i:] + moving_square_frames(2, 96, 96))
            for i in range(2)]
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(good[0].read_bytes()[:300])  # a header and nothing to decode
    return {"good": good, "corrupt": corrupt, "missing": folder / "missing.mp4"}


def test_pool_runs_good_items_and_fails_bad_ones_alone(clips, tmp_path):
    out = tmp_path / "out"
    proc = batch(*clips["good"], clips["corrupt"], clips["missing"], "--output-dir", out, "--workers", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    summary = summary_of(proc)
    assert set(summary) == {"items", "done", "skipped", "failed", "seconds", "failures"}
    assert (summary["items"], summary["done"], summary["skipped"], summary["failed"]) == (4, 2, 0, 2)
    assert set(summary["failures"]) == {"corrupt", "missing"}
    assert "missing.mp4" in summary["failures"]["missing"]
    assert all("\n" not in reason for reason in summary["failures"].values())
    assert "Traceback" not in proc.stderr
    for clip in clips["good"]:
        folder = out / clip.stem
        frames = len(video_pts(clip))
        assert len(alphas(folder / "alpha")) == frames
        assert len(video_pts(folder / "composition.mp4")) == frames
        assert 20 < np.mean(alphas(folder / "alpha")[0]) < 235  # the subject is matted: neither empty nor full
    assert not (out / "missing").exists()
    assert not [p for p in out.rglob("*") if ".part" in p.name]  # no temporary left by the failed item


def test_rerun_skips_finished_items_and_force_redoes_them(clips, tmp_path):
    out = tmp_path / "out"
    first = batch(*clips["good"], "--output-dir", out, "--workers", "2", "--json", "--outputs", "alpha.mp4")
    assert summary_of(first)["done"] == 2, first.stderr
    made = {p: p.stat().st_mtime_ns for p in out.glob("*/alpha.mp4")}
    again = batch(*clips["good"], "--output-dir", out, "--json", "--outputs", "alpha.mp4")
    assert (summary_of(again)["skipped"], summary_of(again)["done"], again.returncode) == (2, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in made} == made
    changed = batch(*clips["good"], "--output-dir", out, "--json", "--outputs", "alpha.mp4", "--downsample-ratio",
                    "0.5")
    assert summary_of(changed)["done"] == 2  # other options: the records no longer match, the items are redone
    forced = batch(clips["good"][0], "--output-dir", out, "--json", "--outputs", "alpha.mp4", "--downsample-ratio",
                   "0.5", "--force")
    assert summary_of(forced)["done"] == 1
    assert (out / clips["good"][0].stem / "alpha.mp4").stat().st_mtime_ns > made[out / "shot0" / "alpha.mp4"]


def test_interrupted_batch_resumes_without_redoing_finished_items(tmp_path, rvm_onnx_path):
    # Six items, so that however loaded the machine is, the batch is still running when the signal arrives.
    inputs = [write_video(tmp_path / f"take{i}.mp4", subject_frames(40, size=192)) for i in range(6)]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "vidmatte", "batch", *map(str, inputs), "--output-dir", str(out),
                             "--workers", "1", "--outputs", "alpha/", "--downsample-ratio", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not _done_items(out):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    finished = _done_items(out)
    assert 1 <= len(finished) < 6
    assert not [p for p in out.rglob("*") if ".part" in p.name]  # cancelled jobs removed their temporaries
    kept = {p: p.stat().st_mtime_ns for name in finished for p in (out / name / "alpha").iterdir()}
    resumed = batch(*inputs, "--output-dir", out, "--workers", "1", "--outputs", "alpha/", "--downsample-ratio", "1",
                    "--json")
    summary = summary_of(resumed)
    assert (summary["skipped"], summary["done"], summary["failed"]) == (len(finished), 6 - len(finished), 0)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # nothing finished was redone
    assert all(len(alphas(out / p.stem / "alpha")) == 40 for p in inputs)


def test_an_interrupted_force_run_leaves_the_items_it_never_started_finished(tmp_path, rvm_onnx_path):
    """--force redoes every item; Ctrl-C after the first: the items no worker reached keep their "done" record (they
    were never touched), so the next run skips them and redoes only the one cut off (at most one: one worker)."""
    inputs = [write_video(tmp_path / f"take{i}.mp4", subject_frames(40, size=192)) for i in range(5)]
    out = tmp_path / "out"
    common = ["--output-dir", str(out), "--workers", "1", "--outputs", "alpha/", "--downsample-ratio", "1", "--json"]
    assert summary_of(batch(*inputs, *common))["done"] == 5
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/.vidmatte-batch.json")}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "vidmatte", "batch", *map(str, inputs), *common, "--force"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not _redone(out, before):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    redone = _redone(out, before)
    assert 1 <= len(redone) < 5
    statuses = {p.parent.name: json.loads(p.read_text())["status"] for p in out.glob("*/.vidmatte-batch.json")}
    assert list(statuses.values()).count("started") <= 1, statuses  # the one cut off, if the signal caught it
    resumed = summary_of(batch(*inputs, *common))
    assert resumed["skipped"] >= 4 and resumed["done"] <= 1, (resumed, statuses)


def _redone(out: Path, before: dict) -> list[str]:
    """Items whose record was rewritten as done since ``before`` (record path -> mtime)."""
    return [p.parent.name for p in out.glob("*/.vidmatte-batch.json")
            if p.stat().st_mtime_ns != before.get(p) and p.parent.name in _done_items(out)]


def _done_items(out: Path) -> list[str]:
    done = []
    for record in out.glob("*/.vidmatte-batch.json"):
        try:
            if json.loads(record.read_text()).get("status") == "done":
                done.append(record.parent.name)
        except ValueError:
            pass  # never half-written (atomic rename), but be safe while polling
    return done


def test_chunked_run_is_frame_exact_and_matches_the_single_run_after_its_lead_in(tmp_path, rvm_onnx_path):
    clip = write_video(tmp_path / "long.mp4", subject_frames(36, size=128), audio_seconds=1.5)
    common = ["--outputs", "composition.mp4,alpha/", "--json", "--quiet"]
    single = batch(clip, "--output-dir", tmp_path / "single", "--workers", "1", *common)
    chunked = batch(clip, "--output-dir", tmp_path / "chunked", "--workers", "2", "--chunk-frames", "12",
                    "--lead-in", "12", *common)
    assert summary_of(single)["done"] == summary_of(chunked)["done"] == 1, chunked.stderr
    a, b = tmp_path / "single" / "long", tmp_path / "chunked" / "long"
    assert video_pts(a / "composition.mp4") == video_pts(b / "composition.mp4")  # count and timestamps
    assert len(video_pts(b / "composition.mp4")) == 36
    assert audio_samples(b / "composition.mp4") == audio_samples(a / "composition.mp4") > 0  # audio once
    diff = [np.abs(x - y) for x, y in zip(alphas(a / "alpha"), alphas(b / "alpha"))]
    assert len(diff) == 36
    # Chunks 0 and 1 start where the whole run starts (chunk 1's 12-frame lead-in reaches frame 0): the same frames.
    assert max(int(d.max()) for d in diff[:24]) <= 2
    # Chunk 2 warms on frames 12..23 only: RVM's state differs in a few pixels, the matte as a whole agrees.
    assert np.mean([d.mean() for d in diff[24:]]) <= 2
    assert max(int(d.max()) for d in diff[24:]) > 0  # it really is another run (the bound is not vacuous)
    assert not (b / ".vidmatte-chunks").exists()


def test_manifest_errors_are_reported_per_line_and_nothing_is_written(clips, tmp_path):
    good = clips["good"][0]
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,item,mode,downsample_ratio\n"
                        f"{good},ok,convert,0.5\n"
                        f"{tmp_path / 'nowhere.mp4'},gone,,\n"
                        f"{good},odd,sideways,\n"
                        f"{good},bad-option,convert,-3\n"
                        f",no-input,convert,\n"
                        f"{good},surplus,convert,0.5,0.25\n")  # a field no column names: refused, not dropped
    out = tmp_path / "out"
    proc = batch("--manifest", manifest, "--output-dir", out, "--json", "--outputs", "alpha/")
    assert proc.returncode == 1, proc.stderr
    failures = summary_of(proc)["failures"]
    assert set(failures) == {"gone", "odd", "bad-option", "no-input", "jobs.csv-line-7"}
    assert failures["gone"].startswith("jobs.csv line 3: input not found")
    assert failures["odd"].startswith("jobs.csv line 4: unknown mode 'sideways'")
    assert failures["bad-option"].startswith("jobs.csv line 5:")
    assert failures["no-input"] == "jobs.csv line 6: missing column 'input'"
    assert failures["jobs.csv-line-7"] == "jobs.csv line 7: 5 fields where the header names 4 columns (extra: '0.25')"
    assert sorted(p.name for p in out.iterdir()) == ["ok"]  # nothing for the rejected lines
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"item": "x", "start_frame": 1}) + "\n" + "{not json\n"
                     + json.dumps({"input": str(good), "colour": "red"}) + "\n")
    proc = batch("--manifest", jsonl, "--output-dir", tmp_path / "out2", "--json")
    failures = summary_of(proc)["failures"]
    assert failures == {"x": "jobs.jsonl line 1: missing column 'input'",
                        "jobs.jsonl-line-2": "jobs.jsonl line 2: not JSON (Expecting property name enclosed in "
                                             "double quotes)",
                        "shot0": "jobs.jsonl line 3: unknown column 'colour' (not an option of the mode)"}
    assert not any((tmp_path / "out2").iterdir())


def test_background_items_take_their_plate_from_the_manifest(tmp_path, rvm_onnx_path):
    """A subject crossing a textured scene, its plate shot before: the item with a plate is matted (alpha close to
    the truth), the item without one fails alone with its reason."""
    plate, frames, truths = disc_over_plate(3, blur=True)
    write_video(tmp_path / "scene.mp4", frames)
    cv2.imwrite(str(tmp_path / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"input": "scene.mp4", "plate": "plate.png"}) + "\n"
                                         + json.dumps({"input": "scene.mp4", "item": "no-plate"}) + "\n")
    proc = batch("--manifest", tmp_path / "jobs.jsonl", "--mode", "background", "--no-align", "--output-dir",
                 tmp_path / "out", "--outputs", "alpha/", "--json")
    assert proc.returncode == 1, proc.stderr
    summary = summary_of(proc)
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert "needs a plate" in summary["failures"]["no-plate"]
    found = alphas(tmp_path / "out" / "scene" / "alpha")
    assert len(found) == 6
    error = np.mean([np.abs(a.astype(np.float32) / 255 - t).mean() for a, t in zip(found, truths)])
    assert error < 0.03, error  # an empty matte would be 0.08 off (the disc covers 8% of the frame)


def test_guided_items_take_their_keyframes_from_the_manifest(tmp_path):
    frames = moving_square_frames(6, 96, 64)
    write_video(tmp_path / "square.mp4", frames)
    mask = np.zeros((64, 96), np.uint8)
    mask[8:24, 0:16] = 255  # the square in frame 0
    cv2.imwrite(str(tmp_path / "mask0.png"), mask)
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"input": "square.mp4", "keyframe": ["0:mask0.png"]}) + "\n")
    proc = batch("--manifest", tmp_path / "jobs.jsonl", "--mode", "guided", "--prior", "none", "--output-dir",
                 tmp_path / "out", "--outputs", "alpha/,trimap/", "--json")
    assert summary_of(proc)["done"] == 1, proc.stderr
    first = alphas(tmp_path / "out" / "square" / "alpha")[0]
    assert first[10:22, 2:14].mean() > 200 and first[40:, 40:].mean() < 30
    assert len(alphas(tmp_path / "out" / "square" / "trimap")) == len(frames)


def test_a_guided_item_whose_keyframes_disagree_says_where_in_its_row_and_record(tmp_path):
    """Keyframe 5 marks a patch of background, not the square (the flow propagator: its matte leaps to the patch): the
    item is done, its row in the table says which frames need a keyframe, and its record keeps the run's report."""
    write_video(tmp_path / "square.mp4", moving_square_frames(6, 96, 64))
    masks = {0: np.zeros((64, 96), np.uint8), 5: np.zeros((64, 96), np.uint8)}
    masks[0][8:24, 0:16] = 255
    masks[5][40:56, 66:86] = 255
    for index, mask in masks.items():
        cv2.imwrite(str(tmp_path / f"mask{index}.png"), mask)
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"input": "square.mp4", "keyframe": ["0:mask0.png", "5:mask5.png"],
                                                          "propagator": "flow"})
                                         + "\n")
    proc = batch("--manifest", tmp_path / "jobs.jsonl", "--mode", "guided", "--prior", "none", "--output-dir",
                 tmp_path / "out", "--outputs", "alpha/", "--json")
    assert summary_of(proc)["done"] == 1, proc.stderr
    record = json.loads((tmp_path / "out" / "square" / ".vidmatte-batch.json").read_text())
    (first, last), = record["details"]["contradicting_frames"]
    assert first <= 1 and last >= 4, record
    row = next(line for line in proc.stderr.splitlines() if line.startswith("square "))
    assert f"keyframes disagree at frames {first}-{last}" in row, row
    (first, last), = record["details"]["jumping_frames"]  # the matte leaps to the patch near keyframe 5
    assert row.endswith(f"subject jumps at frames {first}-{last}"), row


def test_allow_partial_keeps_a_truncated_items_frames_and_says_so_in_its_row_and_record(tmp_path):
    """A video cut short (index first, so the frames before the cut decode): with --allow-partial the item is done
    with what decoded, and the reason the CLI would have printed is in the item's row and record, not lost."""
    clip = write_video(tmp_path / "long.mp4", moving_square_frames(120, 160, 96), fps=24, faststart=True)
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    mask = np.zeros((96, 160), np.uint8)
    mask[8:24, 0:16] = 255
    cv2.imwrite(str(tmp_path / "mask0.png"), mask)
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"input": "cut.mp4", "keyframe": ["0:mask0.png"]}) + "\n")
    proc = batch("--manifest", tmp_path / "jobs.jsonl", "--mode", "guided", "--prior", "none", "--output-dir",
                 tmp_path / "out", "--outputs", "alpha/", "--allow-partial", "--json")
    assert summary_of(proc)["done"] == 1, proc.stderr
    record = json.loads((tmp_path / "out" / "cut" / ".vidmatte-batch.json").read_text())
    assert 0 < record["frames"] < 120 and len(alphas(tmp_path / "out" / "cut" / "alpha")) == record["frames"]
    assert re.search(r"(ended at frame|broke at frame) \d+", record["warning"]), record
    row = next(line for line in proc.stderr.splitlines() if line.startswith("cut "))
    assert record["warning"] in row, row


@pytest.mark.parametrize("argv, message", [
    (["--outputs", "matte.mp4"], "--outputs: 'matte.mp4' must be a kind"),
    (["--outputs", "alpha.mp4,alpha/"], "names one kind twice"),
    (["--outputs", "rgba.mp4"], "cannot carry alpha"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--method", "neural"], "convert mode has no --method"),
    (["--mode", "guided", "--method", "neural"], "guided mode has no method 'neural'; choose classical, ftpvm"),
    (["--mode", "background", "--checkpoint", "x.pt"], "--checkpoint is for a network method of background mode"),
])
def test_usage_errors_are_one_line_and_exit_2(clips, tmp_path, argv, message):
    proc = batch(clips["good"][0], "--output-dir", tmp_path / "out", *argv)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_each_item_runs_its_modes_network_from_the_flag_or_its_columns(tmp_path):
    """--method neural for the batch's background items (a tiny BGMv2 made here: the alpha is the network's own,
    state carried); a guided item naming FTP-VM and its weights in its columns; methods a mode does not have are
    refused line by line with nothing written; a line naming its own method takes none of the batch's weights; new
    weights under the same name redo the item."""
    from guided_network_checks import keyframe_clip
    from test_ftpvm import constant_checkpoint
    from test_plate_neural import direct_alphas, odd_sized_clip, tiny_network, training_checkpoint

    folder, plate, frames = odd_sized_clip(tmp_path)
    cv2.imwrite(str(tmp_path / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    net = tiny_network()
    training_checkpoint(tmp_path / "bgm.pt", net)
    keyframe_clip(tmp_path, 4)  # clip.mp4 and key.png
    constant_checkpoint(tmp_path / "ftpvm.pth", (0.0, 5.0, 0.0), 0.25)  # "unknown" everywhere, matte 0.25
    lines = [{"input": "odd", "plate": "plate.png", "item": "neural"},
             {"input": "odd", "plate": "plate.png", "item": "classical", "method": "classical"},
             {"input": "clip.mp4", "mode": "guided", "keyframe": ["1:key.png"], "method": "ftpvm",
              "checkpoint": "ftpvm.pth", "item": "ftpvm"},
             {"input": "clip.mp4", "mode": "guided", "keyframe": ["1:key.png"], "item": "wrong-method"},
             {"input": "clip.mp4", "mode": "convert", "method": "classical", "item": "convert"}]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    argv = ["--manifest", tmp_path / "jobs.jsonl", "--mode", "background", "--method", "neural", "--checkpoint",
            tmp_path / "bgm.pt", "--no-align", "--prior", "none", "--workers", "1", "--output-dir", out,
            "--outputs", "alpha/", "--json"]
    proc = batch(*argv)
    assert proc.returncode == 1, proc.stderr
    summary = summary_of(proc)
    assert (summary["done"], summary["failed"]) == (3, 2), summary
    assert summary["failures"] == {
        "wrong-method": "jobs.jsonl line 4: guided mode has no method 'neural'; choose classical, ftpvm, dvm, tgm",
        "convert": "jobs.jsonl line 5: convert mode has no --method (it runs RVM), not 'classical'"}
    assert sorted(p.name for p in out.iterdir()) == ["classical", "ftpvm", "neural"]  # none for the refused lines
    written = [a / 255 for a in alphas(out / "neural" / "alpha")]
    expected = direct_alphas(net, frames, plate)
    assert len(written) == len(frames) and expected[-1].std() > 0.01
    assert max(np.abs(w - e).max() for w, e in zip(written, expected)) <= 1 / 255 + 1e-6
    classical = [a / 255 for a in alphas(out / "classical" / "alpha")]  # the line's own method, without weights
    assert len(classical) == len(frames) and np.abs(classical[-1] - expected[-1]).max() > 0.1
    key = cv2.imread(str(tmp_path / "key.png"), cv2.IMREAD_GRAYSCALE)
    guided = alphas(out / "ftpvm" / "alpha")
    assert len(guided) == 4 and (guided[1][key == 255] == 255).all() and (guided[1][key == 0] == 0).all()
    assert all(np.abs(guided[i] - 64).max() <= 1 for i in (0, 2, 3))  # the network's matte, not the solver's
    # Other weights under the same file name: the neural item is redone, the guided one skipped.
    other = tiny_network()
    with torch.no_grad():
        other.decoder.conv4.bias[0] = -0.5
    training_checkpoint(tmp_path / "bgm.pt", other)
    summary = summary_of(batch(*argv))
    assert (summary["done"], summary["skipped"]) == (1, 2), summary
    assert np.abs(alphas(out / "neural" / "alpha")[-1] / 255 - direct_alphas(other, frames, plate)[-1]).max() \
        <= 1 / 255 + 1e-6
