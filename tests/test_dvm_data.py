"""DVM's dataset layout (``fg/{image,video}/{train,test}``, ``bg/{train,test}``) in ``vidmatte bench build`` and in
the training data sources, on a tiny folder generated here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from media import write_video
from vidmatte.data.dvm_layout import dvm_clips
from vidmatte.errors import InputError


def disc(h: int, w: int, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (np.clip(r - np.hypot(yy - h / 2, xx - cx), 0, 1) * 255).astype(np.uint8)


def make_dvm_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        image = root / "fg" / "image" / split
        (image / "fg").mkdir(parents=True)
        (image / "alpha").mkdir()
        for name, r in (("a.png", 14), ("b.png", 20)):
            cv2.imwrite(str(image / "fg" / name), rng.integers(60, 200, (64, 80, 3), dtype=np.uint8))
            cv2.imwrite(str(image / "alpha" / name), disc(64, 80, 40, r))
        video = root / "fg" / "video" / split / "0000"
        video.mkdir(parents=True)
        alphas = [disc(64, 96, 30 + 6 * t, 18) for t in range(8)]
        write_video(video / "a.mp4", [np.repeat(a[..., None], 3, axis=2) for a in alphas])
        write_video(video / "f.mp4", [np.full((64, 96, 3), (200, 90, 40), np.uint8)] * 8)
        (root / "bg" / split).mkdir(parents=True)
        for n in ("0000", "0001"):
            write_video(root / "bg" / split / f"{n}.mp4",
                        [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(8)])
    (root / "fg" / "image" / "test" / "fg" / "orphan.png").write_bytes(b"")  # no alpha: not a foreground
    return root


@pytest.fixture(scope="module")
def dvm_root(tmp_path_factory):
    return make_dvm_folder(tmp_path_factory.mktemp("DVM"))


def test_every_foreground_gets_a_background_video_of_its_split(dvm_root):
    clips = dvm_clips(dvm_root, "test", seed=0)
    assert [c["fg"].get("image", c["fg"].get("video")) for c in clips] == [
        "fg/image/test/fg/a.png", "fg/image/test/fg/b.png", "fg/video/test/0000/f.mp4"]
    assert clips[2]["fg"]["alpha_video"] == "fg/video/test/0000/a.mp4"
    assert {c["bg"]["video"] for c in clips} <= {"bg/test/0000.mp4", "bg/test/0001.mp4"}
    assert len({c["name"] for c in clips}) == 3


def test_a_pairs_file_in_the_seeds_format_chooses_the_pairs_and_skips_missing_files(dvm_root):
    (dvm_root / "pairs.txt").write_text("image+b.png+0001.mp4\nvideo+0000+0000.mp4\nimage+gone.png+0000.mp4\n")
    clips = dvm_clips(dvm_root, "test", pairs="pairs.txt")
    assert [(c["name"], c["bg"]["video"]) for c in clips] == [("image_b_0001", "bg/test/0001.mp4"),
                                                             ("video_0000_0000", "bg/test/0000.mp4")]
    (dvm_root / "bad.txt").write_text("b.png 0001.mp4\n")
    with pytest.raises(InputError, match="image\\+<fg>\\+<bg>"):
        dvm_clips(dvm_root, "test", pairs="bad.txt")


def test_a_folder_without_the_layout_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match="no DVM layout"):
        dvm_clips(tmp_path, "test")


def test_bench_build_composes_the_dvm_layout(dvm_root, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vidmatte", "bench", "build", "--definition", "dvm_test",
                           "--data-root", str(dvm_root), "--root", str(tmp_path / "bench"), "--frames", "4",
                           "--size", "96x64", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[-1])
    assert sorted(record["clips"]) == sorted(c["name"] for c in dvm_clips(dvm_root, "test", seed=0))
    video = tmp_path / "bench" / "clips" / [n for n in record["clips"] if n.startswith("video")][0]
    phas = [cv2.imread(str(video / "pha" / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE) for t in range(4)]
    assert all(p.max() > 200 for p in phas)
    assert not np.array_equal(phas[0], phas[3]), "the alpha video's own motion is in the clip"
    assert (video / "trimap" / "00003.png").is_file() and (video / "com" / "00000.png").is_file()


def test_training_sources_read_the_layout(dvm_root):
    from vidmatte.train.data import ClipComposer, build_source

    mattes = build_source({"type": "dvm", "root": str(dvm_root), "split": "train"})
    backgrounds = build_source({"type": "dvm_backgrounds", "root": str(dvm_root), "split": "train"})
    assert len(mattes) == 3 and len(backgrounds) == 2
    gen = torch.Generator().manual_seed(0)
    fgr, pha = mattes.load(2, 4, gen, {})  # the video
    assert fgr.shape == (4, 3, 64, 96) and pha.shape == (4, 1, 64, 96)
    assert pha.max() > 0.8 and (pha[0] - pha[-1]).abs().max() > 0.5
    still, still_pha = mattes.load(0, 3, gen, {})
    assert still.shape == (3, 3, 64, 80) and torch.equal(still_pha[0], still_pha[2])
    composer = ClipComposer([mattes], [1.0], [backgrounds], None, 0, {}, {})
    batch = composer.matting_batch(0, 2, 3, (32, 32))
    assert batch["src"].shape == (2, 3, 3, 32, 32) and batch["pha"].max() > 0.5
    with pytest.raises(ValueError, match="no DVM foregrounds"):
        build_source({"type": "dvm", "root": str(dvm_root), "split": "val"})
