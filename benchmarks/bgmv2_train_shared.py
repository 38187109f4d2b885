"""A short CPU training run of BackgroundMattingV2 + ConvLSTM (MobileNetV2, from scratch: no BGMv2 weights are
bundled) on foregrounds from ../shared/data, then the plate benchmark's clips matted by the trained network and by
the classical method side by side, in one run.

    PYTHONPATH=src python benchmarks/bgmv2_train_shared.py --bench /tmp/plate-bench [--steps 200] [--size 128]

``--bench``: a built plate benchmark (``vidmatte bench build --definition plate --root DIR``). Held out of training,
so the comparison is on unseen material: the benchmark's foregrounds (comp1k boy and sieve, alphamatting GT05) and
its three backgrounds. Trained on: the 10 comp1k crops (foamliu) and the other comp1k composites, over the other
shared background images. Each clip: a still foreground moved by the augmentation over a background with about
1 px of camera jitter; the plate is the background's first frame (``train.bgmv2``). Reported: the training curve,
then MAD (x1e3) and dtSSD (x1e2) per benchmark clip for both methods, and their ratio. Nothing is copied into the
repository: the training layout is symbolic links in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HELD_OUT_FG = {"boy-1518482_1920_12", "sieve-641426_1920_1"}  # and GT05, never linked
HELD_OUT_BG = {"flow_based_video_matting_interiors/3.jpg", "background_matting_v1_targets/0001.png",
               "scikit-image/coffee.png"}


def link_layout(data: Path, root: Path) -> tuple[Path, Path]:
    """<root>/mattes/{fg,alpha}/<name> and <root>/backgrounds/<name> as links to the shared files."""
    gt = data / "image_matting_gt"
    crops = gt / "comp1k_crops_foamliu"
    pairs = {f"crop{i}": (crops / f"{i}_image.png", crops / f"{i}_alpha.png") for i in range(10)}
    comp = gt / "comp1k_test_huochaitiantang"
    pairs.update({p.stem: (p, comp / "alpha" / p.name) for p in sorted((comp / "image").glob("*.png"))
                  if p.stem not in HELD_OUT_FG})
    for name, (fg, alpha) in pairs.items():
        for kind, path in (("fg", fg), ("alpha", alpha)):
            (root / "mattes" / kind).mkdir(parents=True, exist_ok=True)
            (root / "mattes" / kind / f"{name}{path.suffix}").symlink_to(path.resolve())
    images = data / "backgrounds" / "images"
    (root / "backgrounds").mkdir()
    for path in sorted(images.rglob("*")):
        rel = str(path.relative_to(images))
        if path.suffix.lower() in (".png", ".jpg", ".jpeg") and rel not in HELD_OUT_BG:
            (root / "backgrounds" / rel.replace("/", "_")).symlink_to(path.resolve())
    return root / "mattes", root / "backgrounds"


def config(mattes: Path, backgrounds: Path, out: Path, steps: int, size: int) -> dict:
    from vidmatte.train.config import load_config

    base = {
        "name": "bgmv2-shared", "seed": 0, "output_dir": str(out),
        "model": {"kind": "bgmv2", "variant": "mobilenetv2", "init": "scratch", "freeze_batchnorm": False,
                  "bgmv2": {"convlstm": True, "refine_mode": "sampling", "refine_sample_pixels": 80000}},
        "data": {"mattes": [{"type": "imagematte", "root": str(mattes)}],
                 "backgrounds": [{"type": "backgrounds", "roots": [str(backgrounds)]}],
                 "augmentation": {"p_motion": 1.0, "motion_fg": {"degrees": 10, "scale": 1.2, "translate": 0.1},
                                  "motion_bg": {"degrees": 0.3, "translate": 0.004}, "p_flip": 0.5,
                                  "p_noise": 0.4, "noise_std": 0.02}},
        "train": {"steps": steps, "batch_size": 2, "seq_length": 3, "size": [size, size], "seg_every": 0,
                  "hr": None, "lr": {"backbone": 1e-4, "aspp": 5e-4, "decoder": 5e-4, "refiner": 3e-4},
                  "device": "cpu", "log_every": 10, "checkpoint_every": 50, "tensorboard": False},
    }
    return load_config(None, [], base=base)


def read_alphas(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) / 255.0 for p in sorted(folder.glob("*.png"))]


def scores(pred: list[np.ndarray], true: list[np.ndarray]) -> tuple[float, float]:
    from vidmatte.metrics.core import dtssd, mad

    m = np.mean([mad(p, t) for p, t in zip(pred, true)])
    d = np.mean([dtssd(pred[i], pred[i - 1], true[i], true[i - 1]) for i in range(1, len(true))])
    return float(m), float(d)


def run_neural(checkpoint: Path, clip: Path, out: Path) -> float:
    from vidmatte.io.writers import parse_output
    from vidmatte.job import JobControl
    from vidmatte.matters.plate import NeuralPlateMatter
    from vidmatte.models.loaders import load_bgmv2
    from vidmatte.pipeline import ConvertOptions, convert

    out.mkdir(parents=True)
    plate = cv2.cvtColor(cv2.imread(str(clip / "plate.png")), cv2.COLOR_BGR2RGB)
    matter = NeuralPlateMatter(plate, load_bgmv2(str(checkpoint)))
    started = time.perf_counter()
    convert(clip / "com", matter,
            ConvertOptions(outputs=[parse_output("alpha", f"{out}/")], sequence_fps=25), JobControl())
    return time.perf_counter() - started


def run_classical(clip: Path, out: Path, state: dict) -> float:
    from vidmatte.data.methods import run_method

    started = time.perf_counter()
    run_method("background", clip, out, state=state)
    return time.perf_counter() - started


def compare(checkpoint: Path, bench: Path, work: Path, names: str | None = None) -> list[tuple]:
    rows, state = [], {}
    for clip in sorted(p for p in (bench / "clips").iterdir() if p.is_dir()):
        if names and clip.name not in names.split(","):
            continue
        true = read_alphas(clip / "pha")
        seconds_n = run_neural(checkpoint, clip, work / "neural" / clip.name)
        seconds_c = run_classical(clip, work / "classical" / clip.name, state)
        neural = scores(read_alphas(work / "neural" / clip.name), true)
        classical = scores(read_alphas(work / "classical" / clip.name / "pha"), true)
        rows.append((clip.name, classical, neural, seconds_c / len(true), seconds_n / len(true)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", required=True, help="a built plate benchmark (vidmatte bench build)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", default="benchmarks/results/bgmv2-shared")
    parser.add_argument("--checkpoint", help="skip training: compare this checkpoint")
    parser.add_argument("--clips", help="comma list of benchmark clips to compare (default: all)")
    args = parser.parse_args()
    from vidmatte.train.loop import Trainer

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if checkpoint is None:
        with tempfile.TemporaryDirectory(prefix="bgmv2-shared-") as tmp:
            mattes, backgrounds = link_layout(Path(args.data), Path(tmp))
            trainer = Trainer(config(mattes, backgrounds, Path(args.out), args.steps, args.size))
            started = time.perf_counter()
            history = trainer.run()
            seconds = time.perf_counter() - started
            checkpoint = trainer.save_checkpoint(Path(args.out) / "last.pt")
        losses = np.array([h["loss"] for h in history])
        print(f"\n{len(losses)} steps at {args.size}x{args.size} (batch 2, T=3) in {seconds:.0f} s")
        print("training loss, mean per 10 steps:", " ".join(f"{x:.3f}" for x in losses[:len(losses) // 10 * 10]
                                                         .reshape(-1, 10).mean(1)))
    with tempfile.TemporaryDirectory(prefix="bgmv2-compare-") as tmp:
        rows = compare(checkpoint, Path(args.bench), Path(tmp), args.clips)
    print("\n| clip | classical MAD / dtSSD | neural (this run) MAD / dtSSD | neural / classical MAD | s/frame "
          "classical / neural |")
    print("|---|---|---|---|---|")
    for name, (cm, cd), (nm, nd), sc, sn in rows:
        print(f"| {name} | {cm:.1f} / {cd:.2f} | {nm:.1f} / {nd:.2f} | {nm / cm:.2f}x | {sc:.2f} / {sn:.2f} |")


if __name__ == "__main__":
    main()
