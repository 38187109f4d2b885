"""The memory propagator (``vidmatte guided --propagator memory``) against the flow propagator: a case built for
memory (the subject hidden, then back somewhere else) and the propagators' speed, side by side in one run.

    python benchmarks/memory_propagator.py derive --root ROOT --out OUT [--hide 20:30] [--jump 0.3]
    python benchmarks/memory_propagator.py speed --root ROOT [--clips 2]

derive: from a built guided benchmark (``vidmatte bench build --definition guided_rigid --root ROOT``) make an
  "occlusion and jump" benchmark in OUT/clips: in frames [20, 30) the subject is gone (the composite is the
  background plate; its true alpha is zero), from frame 30 on it is back, moved sideways by 0.3x the frame width
  (away from the side it was on). The keyframe trimap is frame 0's only. Then compare with
  ``vidmatte bench run --root OUT --methods guided,guided-memory,guided-memory-ft,oracle``.
speed: propagation alone (no alpha solve, frames decoded outside the timing) of flow, memory and memory + 50
  fine-tuning steps over the first clips of ROOT, one after the other in this process: their time ratio is the
  result (the machine is shared; absolute numbers move, ratios much less). Also the share of wrong definite labels
  in the propagated trimaps (keyframe 0 only) and how many frames the memory re-anchored.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vidmatte.data.synthesis import blend_u8, trimap_from_alpha  # noqa: E402


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _write(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _shift(image: np.ndarray, dx: int, fill: str) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    border = cv2.BORDER_CONSTANT if fill == "zero" else cv2.BORDER_REPLICATE
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_NEAREST, borderMode=border)


def derive_clip(source: Path, target: Path, hide: tuple[int, int], jump: float, band: int) -> None:
    for sub in ("com", "pha", "fgr", "bgr", "trimap", "tcvom"):
        (target / sub).mkdir(parents=True)
    names = sorted(p.name for p in (source / "com").iterdir())
    back = _read(source / "pha" / names[min(hide[1], len(names) - 1)])
    xs = np.nonzero(back > 127)[1]
    width = back.shape[1]
    dx = round(jump * width) * (1 if xs.size == 0 or xs.mean() < width / 2 else -1)
    for t, name in enumerate(names):
        pha, fgr, bgr = (_read(source / layer / name) for layer in ("pha", "fgr", "bgr"))
        if hide[0] <= t < hide[1]:
            pha = np.zeros_like(pha)
        elif t >= hide[1]:
            pha, fgr = _shift(pha, dx, "zero"), _shift(fgr, dx, "edge")
        trimap = trimap_from_alpha(pha, band)
        for layer, image in (("com", blend_u8(pha, fgr, bgr)), ("pha", pha), ("fgr", fgr), ("bgr", bgr),
                             ("trimap", trimap)):
            _write(target / layer / name, image)
        shutil.copyfile(target / "com" / name, target / "tcvom" / f"{t:05d}_rgb.png")
        if t == 0:
            shutil.copyfile(target / "trimap" / name, target / "tcvom" / f"{t:05d}_trimap.png")


def derive(args) -> None:
    clips_in, clips_out = Path(args.root) / "clips", Path(args.out) / "clips"
    record = json.loads((clips_in / "benchmark.json").read_text())
    hide = tuple(int(v) for v in args.hide.split(":"))
    shutil.rmtree(clips_out, ignore_errors=True)
    for name in record["clips"]:
        derive_clip(clips_in / name, clips_out / name, hide, args.jump, record["trimap_band"])
        print(f"derived {name}", file=sys.stderr)
    record.update(definition=f"{record['definition']}+hide{hide[0]}-{hide[1]}+jump{args.jump}", keyframes=[0],
                  derived={"from": str(clips_in), "hide": list(hide), "jump": args.jump})
    (clips_out / "benchmark.json").write_text(json.dumps(record, indent=2) + "\n")


def label_errors(trimap: np.ndarray, alpha_u8: np.ndarray) -> float:
    """Share of the subject's pixels with a wrong definite label (fg where alpha < 0.9, bg where alpha > 0.1): what
    the solver cannot undo (the tests' measure). On frames without the subject: its wrong fg pixels per 1000."""
    alpha = alpha_u8.astype(np.float32) / 255
    wrong = ((trimap == 255) & (alpha < 0.9)) | ((trimap == 0) & (alpha > 0.1))
    subject = (alpha > 0.5).sum()
    return float(wrong.sum() / subject) if subject else float(wrong.sum()) / 1000


def speed(args) -> None:
    from vidmatte.guidance.memory import propagator_factory

    clips_dir = Path(args.root) / "clips"
    names = sorted(p.name for p in clips_dir.iterdir() if p.is_dir())[:args.clips]
    kinds = {"flow": propagator_factory("flow"), "memory": propagator_factory("memory"),
             "memory + 50 fine-tuning steps": propagator_factory("memory", finetune_steps=50)}
    seconds = {}
    for kind, make in kinds.items():
        spent, frames, errors, relocated = 0.0, 0, [], 0
        for name in names:
            com = sorted((clips_dir / name / "com").iterdir())
            truth = sorted((clips_dir / name / "pha").iterdir())
            propagator = make()
            started = time.perf_counter()
            propagator.start(_read(com[0]), _read(clips_dir / name / "trimap" / "00000.png"))
            spent += time.perf_counter() - started
            for path, true_path in zip(com[1:], truth[1:]):
                frame = _read(path)
                started = time.perf_counter()
                result = propagator.step(frame)
                spent += time.perf_counter() - started
                errors.append(label_errors(result.trimap, _read(true_path)))
                frames += 1
            relocated += sum(entry["relocated"] for entry in getattr(propagator, "log", []))
        seconds[kind] = spent
        print(f"{kind}: {frames / spent:.1f} fps propagation only ({frames} frames, {spent:.1f} s), "
              f"{spent / seconds['flow']:.2f}x the flow's time; wrong definite labels {100 * np.mean(errors):.2f}% "
              f"of the subject (mean over frames); frames re-anchored: {relocated}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["derive", "speed"])
    parser.add_argument("--root", required=True, help="a built guided benchmark (ROOT/clips)")
    parser.add_argument("--out", help="derive: the new benchmark's root")
    parser.add_argument("--hide", default="20:30", help="derive: frames FIRST:STOP without the subject")
    parser.add_argument("--jump", type=float, default=0.3, help="derive: sideways move on return (x width)")
    parser.add_argument("--clips", type=int, default=6, help="speed: how many clips to time")
    args = parser.parse_args()
    derive(args) if args.command == "derive" else speed(args)


if __name__ == "__main__":
    main()
