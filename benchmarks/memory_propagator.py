"""The memory propagator (``vidmatte guided --propagator memory``) against the flow propagator: a case built for
memory (the subject hidden, then back somewhere else) and the propagators' speed, side by side in one run.

    python benchmarks/memory_propagator.py derive --root ROOT --out OUT [--hide 20:30] [--jump 0.3]
    python benchmarks/memory_propagator.py speed --root ROOT [--clips 2]

derive: from a built guided benchmark (``vidmatte bench build --definition guided_rigid --root ROOT``) make an
  "occlusion and jump" benchmark in OUT/clips: in frames [20, 30) the subject is gone (the composite is the
  background plate; its true alpha is zero), from frame 30 on it is back, moved sideways by 0.3x the frame width
  (away from the side it was on). The keyframe trimap is frame 0's only. Then compare with
  ``vidmatte bench run --root OUT --methods guided,guided-memory,guided-memory-ft,oracle``.
speed: propagation alone (no alpha solve), frames per second of flow, memory and memory + 50 fine-tuning steps
  over the first clips of ROOT, one after the other in this process: their ratio is the result (the machine is
  shared; absolute numbers move, ratios much less).
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


def speed(args) -> None:
    from vidmatte.guidance.memory import propagator_factory

    clips_dir = Path(args.root) / "clips"
    names = sorted(p.name for p in clips_dir.iterdir() if p.is_dir())[:args.clips]
    kinds = {"flow": propagator_factory("flow"), "memory": propagator_factory("memory"),
             "memory + 50 fine-tuning steps": propagator_factory("memory", finetune_steps=50)}
    clips = {n: [_read(p) for p in sorted((clips_dir / n / "com").iterdir())] for n in names}
    keys = {n: _read(clips_dir / n / "trimap" / "00000.png") for n in names}
    seconds = {}
    for kind, make in kinds.items():
        started, frames = time.perf_counter(), 0
        for name, frames_of in clips.items():
            propagator = make()
            propagator.start(frames_of[0], keys[name])
            for frame in frames_of[1:]:
                propagator.step(frame)
                frames += 1
        seconds[kind] = time.perf_counter() - started
        print(f"{kind}: {frames / seconds[kind]:.1f} fps propagation only ({frames} frames, "
              f"{seconds[kind]:.1f} s), {seconds[kind] / seconds['flow']:.2f}x the flow's time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["derive", "speed"])
    parser.add_argument("--root", required=True, help="a built guided benchmark (ROOT/clips)")
    parser.add_argument("--out", help="derive: the new benchmark's root")
    parser.add_argument("--hide", default="20:30", help="derive: frames FIRST:STOP without the subject")
    parser.add_argument("--jump", type=float, default=0.3, help="derive: sideways move on return (x width)")
    parser.add_argument("--clips", type=int, default=2, help="speed: how many clips to time")
    args = parser.parse_args()
    derive(args) if args.command == "derive" else speed(args)


if __name__ == "__main__":
    main()
