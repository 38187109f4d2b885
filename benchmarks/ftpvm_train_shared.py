"""A CPU training run of FTP-VM (RVM's encoder, the rest from scratch) on real foregrounds from ../shared/data,
with every foreground and background of the guided benchmarks held out: training curve, held-out curve, resumable.

    python benchmarks/ftpvm_train_shared.py [--steps 2000] [--size 128] [--minutes 80] [--out DIR]
    python benchmarks/ftpvm_train_shared.py --plot docs/images/ftpvm_training.png [--out DIR]

Training foregrounds (true alpha): the comp1k crops 1-9 (foamliu) and the comp1k sieve and spring composites
(huochaitiantang). comp1k images are composites, used as the foreground colour (wrong only where alpha is between 0
and 1). Held out: the six foregrounds of ``benchmarks/definitions/guided_*.json`` (the comp1k boy, dandelion, light
bulb and crop 0, alphamatting GT01 and GT05) and their three background images; training backgrounds are the other
shared background images. Each composited clip (stills moved by the augmentation) has its first frame and true
trimap as the memory. The held-out loss is the training loss on a fixed set of held-out clips (the same seeds at
every evaluation). Nothing is copied into the repository: the layout is made of symbolic links in a temporary folder.

The run stops after ``--minutes``, at ``--steps``, or one step after SIGTERM / Ctrl-C; ``<out>/last.pt`` is written
every ``--save-every`` steps and at the end, and a later run with the same ``--out`` resumes from it exactly.
``<out>/history.jsonl`` holds one line per
training step and one per held-out evaluation; ``--plot`` draws both curves from it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH_DEFINITIONS = ("guided_rigid.json", "guided_nonrigid.json")


def benchmark_files(data: Path) -> set[Path]:
    """Every foreground, alpha and background file the guided benchmarks read (to keep them out of training)."""
    used = set()
    for name in BENCH_DEFINITIONS:
        for clip in json.loads((REPO / "benchmarks" / "definitions" / name).read_text())["clips"]:
            for part in ("fg", "bg"):
                used.update((data / rel).resolve() for rel in clip[part].values())
    return used


def matte_pairs(data: Path) -> dict[str, tuple[Path, Path]]:
    """Every still with true alpha in the shared data: name -> (colour, alpha)."""
    gt = data / "image_matting_gt"
    crops = gt / "comp1k_crops_foamliu"
    pairs = {f"crop{i}": (crops / f"{i}_image.png", crops / f"{i}_alpha.png") for i in range(10)}
    comp = gt / "comp1k_test_huochaitiantang"
    pairs.update({p.stem: (p, comp / "alpha" / p.name) for p in sorted((comp / "image").glob("*.png"))})
    gt05 = gt / "alphamatting_GT05_mmagic"
    pairs["GT05"] = (gt05 / "merged" / "GT05.jpg", gt05 / "alpha" / "GT05.jpg")
    gt01 = gt / "alphamatting_GT01_mattekit"
    pairs["GT01"] = (gt01 / "GT01.png", gt01 / "GT01_truth.png")
    return pairs


def link(target: Path, link_path: Path) -> None:
    link_path.parent.mkdir(parents=True, exist_ok=True)
    link_path.symlink_to(target.resolve())


def link_layout(data: Path, root: Path) -> dict[str, Path]:
    """<root>/{train,held_out}/{fg,alpha}/<name>.<ext> and <root>/{train,held_out}_bg/<name> as links to the shared
    files, split by whether a guided benchmark uses them."""
    held = benchmark_files(data)
    for name, (fg, alpha) in matte_pairs(data).items():
        split = "held_out" if fg.resolve() in held or alpha.resolve() in held else "train"
        link(fg, root / split / "fg" / f"{name}{fg.suffix}")
        link(alpha, root / split / "alpha" / f"{name}{alpha.suffix}")
    for i, image in enumerate(sorted((data / "backgrounds" / "images").rglob("*"))):
        if image.is_file():
            split = "held_out_bg" if image.resolve() in held else "train_bg"
            link(image, root / split / f"{i:02d}_{image.name}")
    return {name: root / name for name in ("train", "held_out", "train_bg", "held_out_bg")}


def config(dirs: dict[str, Path], out: Path, args) -> dict:
    from vidmatte.train.config import load_config

    resume = out / "last.pt"
    base = {
        "name": "ftpvm-shared", "seed": 0, "output_dir": str(out),
        "model": {"kind": "ftpvm", "init": "pretrained", "freeze_batchnorm": False},
        "data": {"mattes": [{"type": "imagematte", "root": str(dirs["train"])}],
                 "backgrounds": [{"type": "backgrounds", "roots": [str(dirs["train_bg"])]}],
                 "augmentation": {"p_motion": 1.0, "motion_fg": {"degrees": 10, "scale": 1.2, "translate": 0.1},
                                  "motion_bg": {"degrees": 5, "scale": 1.1, "translate": 0.05}, "p_flip": 0.5}},
        "train": {"steps": args.steps, "batch_size": args.batch, "seq_length": args.seq,
                  "size": [args.size, args.size], "seg_every": 0, "hr": None,
                  "lr": {"backbone": 1e-5, "decoder": 2e-4}, "device": "cpu", "log_every": 0,
                  "checkpoint_every": 0, "tensorboard": False,
                  "resume": str(resume) if resume.exists() else None},
    }
    return load_config(None, [], base=base)


def held_out_loss(trainer, composer, clips: int, size: int, seq: int) -> dict:
    from vidmatte.train.ftpvm import ftpvm_terms

    trainer.model.eval()
    totals: dict[str, float] = {}
    with torch.no_grad():
        for i in range(clips):
            batch = composer.matting_batch(10_000 + i, 1, seq, (size, size), stream=5)
            for key, value in ftpvm_terms(trainer.model, batch, trainer.device).items():
                totals[key] = totals.get(key, 0.0) + float(value) / clips
    return totals


class History:
    """``history.jsonl``: {"step", "loss", ...} per training step, {"step", "held_out": {...}} per evaluation.
    On resume, lines past the checkpoint's step (written before an interrupted save) are dropped."""

    def __init__(self, path: Path, step: int):
        self.path = path
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        self.lines = [x for x in lines if x["step"] <= step]
        self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".tmp")
        part.write_text("".join(json.dumps(x) + "\n" for x in self.lines))
        part.replace(self.path)

    def add(self, entries: list[dict]) -> None:
        self.lines += entries
        self._rewrite()

    def evaluated(self, step: int) -> bool:
        return any(x["step"] == step and "held_out" in x for x in self.lines)


def train(args) -> None:
    from vidmatte.train.data import ClipComposer, build_source
    from vidmatte.train.loop import Trainer

    out, started = Path(args.out), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ftpvm-shared-") as tmp:
        dirs = link_layout(Path(args.data), Path(tmp))
        cfg = config(dirs, out, args)
        trainer = Trainer(cfg)
        history = History(out / "history.jsonl", trainer.step)
        held = ClipComposer([build_source({"type": "imagematte", "root": str(dirs["held_out"])})], [1.0],
                            [build_source({"type": "backgrounds", "roots": [str(dirs["held_out_bg"])]})], [], 1,
                            cfg["data"]["augmentation"], cfg["data"]["temporal"])

        def evaluate() -> None:
            if not history.evaluated(trainer.step):
                terms = held_out_loss(trainer, held, args.clips, args.size, args.seq)
                history.add([{"step": trainer.step, "held_out": terms}])
                print(f"step {trainer.step}: held out " + " ".join(f"{k}={v:.4f}" for k, v in terms.items()),
                      flush=True)

        stop = stop_requests()
        evaluate()
        while trainer.step < args.steps and time.perf_counter() - started < args.minutes * 60 and not stop:
            logged = trainer.run(trainer.step + 1)  # one step at a time, so that a stop request waits one step only
            history.add([{"step": trainer.step, **logged[0]}])
            if trainer.step % 10 == 0:
                recent = [x["loss"] for x in history.lines[-10:] if "loss" in x]
                print(f"step {trainer.step}: training loss {np.mean(recent):.4f} (mean of the last {len(recent)}), "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
            if trainer.step % args.save_every == 0 or stop:
                trainer.save_checkpoint(out / "last.pt")
            if trainer.step % args.eval_every == 0:
                evaluate()
        trainer.save_checkpoint(out / "last.pt")
    print(f"stopped at step {trainer.step} after {time.perf_counter() - started:.0f} s; checkpoint {out / 'last.pt'}")


def stop_requests() -> list:
    """A list that becomes non-empty on SIGTERM / SIGINT: the run then saves after the current step and ends."""
    import signal

    requests: list = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: requests.append(number))
    return requests


def plot(out: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    steps = np.array([x["step"] for x in lines if "loss" in x])
    loss = np.array([x["loss"] for x in lines if "loss" in x])
    window = max(1, min(25, len(loss)))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    evals = [x for x in lines if "held_out" in x]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(steps, loss, color="0.8", lw=0.6, label="training loss (per step)")
    left.plot(steps[window - 1:], smooth, color="C0", label=f"training loss ({window}-step mean)")
    left.plot([x["step"] for x in evals], [x["held_out"]["total"] for x in evals], "o-", color="C3",
              label="held-out loss")
    left.set(xlabel="step", ylabel="total loss", title="FTP-VM, CPU, RVM encoder start")
    left.legend()
    for key, colour in (("pha_l1", "C3"), ("boundary_l1", "C2"), ("trimap_ce", "C1")):
        right.plot([x["step"] for x in evals], [x["held_out"][key] for x in evals], "o-", color=colour, label=key)
    right.set(xlabel="step", title="held-out terms (unseen foregrounds and backgrounds)")
    right.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    print(f"wrote {png}: {len(steps)} steps, {len(evals)} held-out evaluations")
    for x in evals:
        print(f"step {x['step']:5d}: " + " ".join(f"{k}={v:.4f}" for k, v in x["held_out"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="total steps (a resumed run continues to it)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seq", type=int, default=3, help="frames per clip")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=60, help="stop after the chunk that passes this")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between held-out evaluations")
    parser.add_argument("--save-every", type=int, default=5, help="steps between checkpoints (<out>/last.pt)")
    parser.add_argument("--clips", type=int, default=12, help="held-out clips per evaluation")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default="benchmarks/results/ftpvm-shared")
    parser.add_argument("--plot", metavar="PNG", help="draw the curves of --out's history instead of training")
    args = parser.parse_args()
    if args.plot:
        plot(Path(args.out), Path(args.plot))
    else:
        train(args)


if __name__ == "__main__":
    main()
