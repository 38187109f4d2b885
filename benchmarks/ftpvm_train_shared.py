"""A first CPU training run of FTP-VM (RVM's encoder, the rest from scratch) on real foregrounds from ../shared/data,
with foregrounds held out: the training curve and the held-out loss before and after, in one run.

    python benchmarks/ftpvm_train_shared.py [--steps 120] [--size 96] [--data ../shared/data] [--out DIR]

Foregrounds with true alpha: the 10 comp1k crops (foamliu), the 5 comp1k composites (huochaitiantang) and
alphamatting GT05 (true fg). comp1k images are composites, used as the foreground colour (wrong only where alpha is
between 0 and 1). Held out: crops 8 and 9 and boy-1518482 (a child with loose hair). Backgrounds: the shared
backgrounds' images. Each composited clip (stills moved by the augmentation) has its first frame and true trimap as
the memory. The held-out loss is the training loss on a fixed set of held-out clips (same seeds before and after).
Nothing is copied into the repository: the layout is made of symbolic links in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HELD_OUT = {"crop8", "crop9", "boy-1518482_1920_12"}


def link_layout(data: Path, root: Path) -> tuple[Path, Path]:
    """<root>/{train,held_out}/{fg,alpha}/<name>.<ext> as links to the shared files."""
    gt = data / "image_matting_gt"
    crops = gt / "comp1k_crops_foamliu"
    pairs = {f"crop{i}": (crops / f"{i}_image.png", crops / f"{i}_alpha.png") for i in range(10)}
    comp = gt / "comp1k_test_huochaitiantang"
    pairs.update({p.stem: (p, comp / "alpha" / p.name) for p in sorted((comp / "image").glob("*.png"))})
    gt05 = gt / "alphamatting_GT05_mmagic"
    pairs["GT05"] = (gt05 / "fg" / "GT05.jpg", gt05 / "alpha" / "GT05.jpg")
    for name, (fg, alpha) in pairs.items():
        split = root / ("held_out" if name in HELD_OUT else "train")
        for kind, path in (("fg", fg), ("alpha", alpha)):
            (split / kind).mkdir(parents=True, exist_ok=True)
            (split / kind / f"{name}{path.suffix}").symlink_to(path.resolve())
    return root / "train", root / "held_out"


def config(train: Path, data: Path, out: Path, steps: int, size: int) -> dict:
    from vidmatte.train.config import load_config

    base = {
        "name": "ftpvm-shared", "seed": 0, "output_dir": str(out),
        "model": {"kind": "ftpvm", "init": "pretrained", "freeze_batchnorm": False},
        "data": {"mattes": [{"type": "imagematte", "root": str(train)}],
                 "backgrounds": [{"type": "backgrounds", "roots": [str(data / "backgrounds" / "images")]}],
                 "augmentation": {"p_motion": 1.0, "motion_fg": {"degrees": 10, "scale": 1.2, "translate": 0.1},
                                  "motion_bg": {"degrees": 5, "scale": 1.1, "translate": 0.05}, "p_flip": 0.5}},
        "train": {"steps": steps, "batch_size": 2, "seq_length": 3, "size": [size, size], "seg_every": 0,
                  "hr": None, "lr": {"backbone": 1e-5, "decoder": 2e-4}, "device": "cpu", "log_every": 10,
                  "checkpoint_every": 0, "tensorboard": False},
    }
    return load_config(None, [], base=base)


def held_out_loss(trainer, composer, clips: int, size: int) -> dict:
    from vidmatte.train.ftpvm import ftpvm_terms

    trainer.model.eval()
    totals: dict[str, float] = {}
    with torch.no_grad():
        for i in range(clips):
            batch = composer.matting_batch(10_000 + i, 1, 3, (size, size), stream=5)
            for key, value in ftpvm_terms(trainer.model, batch, trainer.device).items():
                totals[key] = totals.get(key, 0.0) + float(value) / clips
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--clips", type=int, default=12, help="held-out clips evaluated before and after")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", default="benchmarks/results/ftpvm-shared")
    args = parser.parse_args()
    from vidmatte.train.data import ClipComposer, build_source
    from vidmatte.train.loop import Trainer

    data = Path(args.data)
    with tempfile.TemporaryDirectory(prefix="ftpvm-shared-") as tmp:
        train, held = link_layout(data, Path(tmp))
        cfg = config(train, data, Path(args.out), args.steps, args.size)
        trainer = Trainer(cfg)
        held_composer = ClipComposer([build_source({"type": "imagematte", "root": str(held)})], [1.0],
                                     [build_source(cfg["data"]["backgrounds"][0])], [], 1,
                                     cfg["data"]["augmentation"], cfg["data"]["temporal"])
        before = held_out_loss(trainer, held_composer, args.clips, args.size)
        started = time.perf_counter()
        history = trainer.run()
        seconds = time.perf_counter() - started
        after = held_out_loss(trainer, held_composer, args.clips, args.size)
        trainer.save_checkpoint(Path(args.out) / "last.pt")
    losses = np.array([h["loss"] for h in history])
    print(f"\n{args.steps} steps at {args.size}x{args.size} (batch 2, T=3) in {seconds:.0f} s")
    print("training loss, mean per 10 steps:", " ".join(f"{x:.3f}" for x in losses.reshape(-1, 10).mean(1))
          if len(losses) % 10 == 0 else losses.round(3))
    for key in before:
        print(f"held out {key:>14}: {before[key]:.4f} -> {after[key]:.4f} ({after[key] / before[key]:.2f}x)")


if __name__ == "__main__":
    main()
