"""On real footage from ../shared/data (skipped when absent): what a user sees."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np


def test_juggler_clip_gives_a_person_shaped_matte(tmp_path, shared_data, rvm_onnx_path):
    clip = shared_data / "video_people" / "sam2" / "05_default_juggle.mp4"
    proc = subprocess.run([sys.executable, "-m", "vidmatte", "convert", str(clip), "--alpha", f"{tmp_path}/pha/",
                           "--composition", str(tmp_path / "com.mp4"), "--end-frame", "24", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 24
    alpha = cv2.imread(str(tmp_path / "pha" / "00023.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert alpha.shape == (720, 1280)
    # A full-body person in a 16:9 park shot: a few percent of the frame, one tall blob, mostly crisp alpha.
    assert 0.01 < alpha.mean() < 0.25
    ys, xs = np.nonzero(alpha > 0.5)
    assert (ys.max() - ys.min()) > 1.5 * (xs.max() - xs.min())  # taller than wide
    assert np.mean((alpha > 0.05) & (alpha < 0.95)) < 0.02  # not a blurry haze
