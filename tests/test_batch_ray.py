"""``vidmatte batch --ray``: a real local Ray cluster, started inside the test in a private network namespace
(``unshare -n``, loopback up), so no traffic leaves the loopback interface; the same batch gives the same outputs as
the local process pool."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import moving_square_frames, write_video
from test_jobs import subject_frames

pytestmark = [pytest.mark.weights, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def _namespace_problem() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'vidmatte[ray]')"
    try:
        probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a private network namespace: {exc}"
    if probe.returncode != 0:
        return f"cannot make a private network namespace (unshare -n needs root): {probe.stderr.strip()}"
    return None


def in_private_network(argv: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``argv`` with only a loopback interface: Ray binds 127.0.0.1 and nothing can leave the machine."""
    command = "ip link set lo up && exec " + " ".join(shlex.quote(a) for a in argv)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}  # a throwaway cluster in a sealed namespace: no token file in ~/.ray
    return subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, env=env,
                          timeout=timeout)


def both_ways(tmp_path: Path, argv: list[str], done: int) -> None:
    """Run the batch ``argv`` on Ray (into tmp_path/ray) and in the local pool (tmp_path/local): both finish
    ``done`` items and fail none."""
    ray_run = in_private_network(argv + ["--output-dir", str(tmp_path / "ray"), "--ray"])
    local_run = subprocess.run(argv + ["--output-dir", str(tmp_path / "local")], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=300)
    assert ray_run.returncode == local_run.returncode == 0, ray_run.stderr + local_run.stderr
    for run in (ray_run, local_run):
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        assert (summary["done"], summary["failed"]) == (done, 0), summary


def test_ray_cluster_gives_the_local_pools_outputs(tmp_path, rvm_onnx_path):
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    inputs = [write_video(tmp_path / f"shot{i}.mp4", subject_frames(8, size=96)[i:] + moving_square_frames(2, 96, 96))
              for i in range(3)]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    common = [sys.executable, "-m", "vidmatte", "batch", *map(str, inputs), str(broken), "--workers", "2",
              "--outputs", "alpha/", "--json", "--quiet"]
    ray_run = in_private_network(common + ["--output-dir", str(tmp_path / "ray"), "--ray"])
    local_run = subprocess.run(common + ["--output-dir", str(tmp_path / "local")], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=300)
    ray_summary = json.loads(ray_run.stdout.strip().splitlines()[-1])
    local_summary = json.loads(local_run.stdout.strip().splitlines()[-1])
    assert ray_run.returncode == local_run.returncode == 1, ray_run.stderr
    for key in ("items", "done", "skipped", "failed", "failures"):
        assert ray_summary[key] == local_summary[key]
    assert ray_summary["done"] == 3 and set(ray_summary["failures"]) == {"broken"}
    for clip in inputs:
        ray_alpha = sorted((tmp_path / "ray" / clip.stem / "alpha").glob("*.png"))
        local_alpha = sorted((tmp_path / "local" / clip.stem / "alpha").glob("*.png"))
        assert len(ray_alpha) == len(local_alpha) == 8 - int(clip.stem[-1]) + 2
        for a, b in zip(ray_alpha, local_alpha):
            x, y = (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.int16) for p in (a, b))
            assert np.abs(x - y).max() <= 1  # the same job on the same CPU allotment (1 thread each)
            assert 0 < x.mean() < 255


def test_ray_runs_a_network_method_with_its_checkpoint_as_the_local_pool_does(tmp_path):
    """A manifest line naming BackgroundMattingV2 (``method: neural``) and its weights (a tiny random network written
    here) runs on Ray as in the local pool, bit for bit, and its record keeps the method, the weights' path and
    their fingerprint; the line beside it, classical, keeps none."""
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    from test_plate_neural import direct_alphas, odd_sized_clip, tiny_network, training_checkpoint

    from vidmatte.batch.records import fingerprint, read

    folder, plate, frames = odd_sized_clip(tmp_path)  # 4 frames of 98x70
    cv2.imwrite(str(tmp_path / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    net = tiny_network()
    training_checkpoint(tmp_path / "bgm.pt", net)
    lines = [{"input": "odd", "plate": "plate.png", "method": "neural", "checkpoint": "bgm.pt", "item": "neural"},
             {"input": "odd", "plate": "plate.png", "method": "classical", "item": "classical"}]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    common = [sys.executable, "-m", "vidmatte", "batch", "--manifest", str(tmp_path / "jobs.jsonl"), "--mode",
              "background", "--no-align", "--prior", "none", "--workers", "2", "--outputs", "alpha/", "--json",
              "--quiet"]
    both_ways(tmp_path, common, done=2)
    ray_alpha, local_alpha = ([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                               for p in sorted((tmp_path / side / "neural" / "alpha").glob("*.png"))]
                              for side in ("ray", "local"))
    assert len(ray_alpha) == len(local_alpha) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(ray_alpha, local_alpha))  # same weights, same threads: exact
    # ... and the network's own alpha (state carried), which varies over the frame: not a blank both sides agree on.
    expected = direct_alphas(net, frames, plate)
    assert expected[-1].std() > 0.01
    assert max(np.abs(a / 255 - e).max() for a, e in zip(ray_alpha, expected)) <= 1 / 255 + 1e-6
    for side in ("ray", "local"):
        neural, classical = read(tmp_path / side / "neural"), read(tmp_path / side / "classical")
        assert neural["status"] == "done" and neural["options"]["method"] == "neural"
        assert Path(neural["options"]["checkpoint"]).resolve() == tmp_path / "bgm.pt"
        assert neural["weights"] == fingerprint(tmp_path / "bgm.pt")
        assert classical["options"]["method"] == "classical" and classical["options"]["checkpoint"] is None
        assert "weights" not in classical


def test_ray_runs_guided_items_with_a_network_and_without_as_the_local_pool_does(tmp_path):
    """Guided items from a manifest: one through FTP-VM (random weights in the official layout, written here, so its
    matte varies over the frame), one through the classical solver. Ray and the local pool write the same mattes, and
    the network item's record keeps the method and its weights' fingerprint."""
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    import torch
    from guided_network_checks import keyframe_clip
    from test_ftpvm import official_state

    from vidmatte.batch.records import fingerprint, read

    keyframe_clip(tmp_path, 5)  # clip.mp4 (a square over a texture) and key.png, its trimap on frame 1
    torch.save(official_state(seed=3), tmp_path / "ftpvm.pth")
    lines = [{"input": "clip.mp4", "keyframe": ["1:key.png"], "method": "ftpvm", "checkpoint": "ftpvm.pth",
              "item": "ftpvm"},
             {"input": "clip.mp4", "keyframe": ["1:key.png"], "item": "classical"}]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    common = [sys.executable, "-m", "vidmatte", "batch", "--manifest", str(tmp_path / "jobs.jsonl"), "--mode",
              "guided", "--prior", "none", "--workers", "2", "--outputs", "alpha/", "--json", "--quiet"]
    both_ways(tmp_path, common, done=2)
    key = cv2.imread(str(tmp_path / "key.png"), cv2.IMREAD_GRAYSCALE)
    for item in ("ftpvm", "classical"):
        ray_alpha, local_alpha = ([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                                   for p in sorted((tmp_path / side / item / "alpha").glob("*.png"))]
                                  for side in ("ray", "local"))
        assert len(ray_alpha) == len(local_alpha) == 5
        assert all(np.abs(a.astype(np.int16) - b).max() <= 1 for a, b in zip(ray_alpha, local_alpha)), item
        keyed = ray_alpha[1]  # the keyframe's known pixels hold, whichever method filled the rest
        assert (keyed[key == 255] == 255).all() and (keyed[key == 0] == 0).all()
    network_matte = cv2.imread(str(tmp_path / "ray" / "ftpvm" / "alpha" / "00003.png"), cv2.IMREAD_GRAYSCALE)
    classical_matte = cv2.imread(str(tmp_path / "ray" / "classical" / "alpha" / "00003.png"), cv2.IMREAD_GRAYSCALE)
    assert network_matte.std() > 2 and np.abs(network_matte.astype(np.int16) - classical_matte).mean() > 5
    for side in ("ray", "local"):
        network, classical = read(tmp_path / side / "ftpvm"), read(tmp_path / side / "classical")
        assert network["status"] == classical["status"] == "done"
        assert network["options"]["method"] == "ftpvm" and network["weights"] == fingerprint(tmp_path / "ftpvm.pth")
        assert classical["options"]["method"] == "classical" and "weights" not in classical
