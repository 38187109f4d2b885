"""The README's own install (`pip install -e .`, no extras) runs every classical mode, and a feature that needs an
extra says which in one line, exit 2, before any work starts.

A fresh virtual environment per test run would cost a minute of installs; instead each command runs in a child
process in which every module that only the extras bring (read from pyproject.toml: what the extras add beyond the
core dependencies) cannot be imported, as on a core install.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media import disc_over_plate, write_video

REPO = Path(__file__).resolve().parents[1]
# distribution name -> the module it is imported as, where they differ
IMPORT_NAMES = {"pyyaml": "yaml", "imageio-ffmpeg": "imageio_ffmpeg", "opencv-python-headless": "cv2",
                "pillow": "PIL", "openexr": "OpenEXR"}

BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from vidmatte.cli.main import main
sys.exit(main({argv!r}))
"""


def _names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        dist = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()
        names.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    return names


def extras_only_modules() -> set[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = _names(project["dependencies"])
    extras = set().union(*(_names(reqs) for reqs in project["optional-dependencies"].values()))
    return extras - core


def test_the_blocked_modules_are_the_extras_own():
    blocked = extras_only_modules()
    assert {"torch", "fastapi", "ray", "pytest"} <= blocked
    assert not blocked & {"numpy", "av", "onnxruntime", "cv2", "PIL"}


def run_core(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = BLOCKER.format(blocked=sorted(extras_only_modules()), argv=argv)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("core")
    plate, _, _ = disc_over_plate(seed=3)
    pictures, mask = [], None
    for i in range(6):  # a disc crossing the plate slowly (3 px a frame)
        alpha = np.zeros(plate.shape[:2], np.float32)
        cv2.circle(alpha, (40 + 3 * i, 48), 18, 1.0, -1)
        pictures.append(np.rint(alpha[..., None] * [230, 50, 40] + (1 - alpha[..., None]) * plate).astype(np.uint8))
        mask = alpha if mask is None else mask
    write_video(folder / "clip.mp4", pictures, pix_fmt="yuv444p")
    cv2.imwrite(str(folder / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "mask.png"), (mask > 0.5).astype(np.uint8) * 255)
    return folder


@pytest.mark.weights
def test_guided_runs_on_a_core_install(scene):
    done = run_core(["guided", "clip.mp4", "--keyframe", "0:mask.png", "--alpha", "guided/", "--work", "work/",
                     "--prior", "none", "--json"], scene)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["frames"] == 6
    alpha = [np.asarray(Image.open(p)) for p in sorted((scene / "guided").glob("*.png"))]
    mask = np.asarray(Image.open(scene / "mask.png")) > 127
    assert len(alpha) == 6
    assert ((alpha[0] > 127) == mask).mean() > 0.99  # the keyframe's subject
    assert (alpha[-1] > 127).sum() > 0.3 * mask.sum()  # still there at the end (how well it follows: issue 26)


@pytest.mark.weights
def test_background_runs_on_a_core_install(scene):
    done = run_core(["background", "clip.mp4", "--plate", "plate.png", "--no-align", "--alpha", "plate/",
                     "--json"], scene)
    assert done.returncode == 0, done.stderr
    assert len(list((scene / "plate").glob("*.png"))) == 6


@pytest.mark.parametrize("argv, extra", [
    (["guided", "clip.mp4", "--keyframe", "0:mask.png", "--alpha", "out/", "--method", "tgm"], "torch"),
    (["guided", "clip.mp4", "--keyframe", "0:mask.png", "--alpha", "out/", "--method", "ftpvm",
      "--checkpoint", "plate.png"], "torch"),
    (["guided", "clip.mp4", "--keyframe", "0:mask.png", "--alpha", "out/", "--propagator", "memory",
      "--finetune-steps", "3"], "torch"),
    (["background", "clip.mp4", "--plate", "plate.png", "--alpha", "out/", "--method", "neural",
      "--checkpoint", "plate.png"], "torch"),
    (["convert", "clip.mp4", "--alpha", "out/", "--backend", "torch"], "torch"),
    (["batch", "clip.mp4", "--output-dir", "out", "--ray"], "ray"),
    (["serve"], "web"),
    (["convert", "clip.mp4", "--alpha", "out/", "--image-format", "exr"], "exr"),
    (["background", "clip.mp4", "--plate", "plate.png", "--rgba", "cutout.exr"], "exr"),
    (["batch", "clip.mp4", "--output-dir", "out", "--outputs", "alpha/", "--image-format", "exr"], "exr"),
])
def test_a_feature_needing_an_extra_says_which_before_any_work(scene, argv, extra):
    before = sorted(p.name for p in scene.iterdir())
    done = run_core(argv, scene)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"the '{extra}' extra" in lines[0] and f"'.[{extra}]'" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in scene.iterdir()) == before  # no output, work or batch folder made
