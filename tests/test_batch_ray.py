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
