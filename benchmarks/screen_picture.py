"""The pictures of docs/BACKGROUND.md: hair shot on a green screen, put on a new background without and with
foreground decontamination (`vidmatte background --plate green`, `--foreground-method none` against the default);
with ``--mesh``, a kitchen strainer's mesh over a blue screen matted with the exact screen as its plate but without
the keying assumption (the solve's colours read from the mesh's mixed pixels) and with `--plate blue` (the keying
assumption holds them).

Everything is generated (the matting data in shared/data may not be redistributed, even as a picture): a head of
blonde hair drawn as a few hundred thin anti-aliased strands (fractional alpha), lit green where it is thin
(``data.screens.spill``), over a generated uneven screen; the new background is a dark evening gradient, where a
green fringe shows most.

    PYTHONPATH=src python benchmarks/screen_picture.py --out docs/images/screen_despill.png
    PYTHONPATH=src python benchmarks/screen_picture.py --mesh --out docs/images/screen_mesh.png
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from vidmatte.data.screens import screen_background, spill
from vidmatte.matters.plate import PlateMatter
from vidmatte.solvers.plate_screen import Screen, parse_screen

W, H = 480, 320


def hair(rng: np.random.Generator, scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(alpha float [H,W], colour float [H,W,3]): a face and shoulders, hair as strands drawn at ``scale`` x and
    brought down (so thin strands are fractional)."""
    big = np.zeros((H * scale, W * scale), np.uint8)
    cx, cy = W // 2 * scale, int(H * 0.45) * scale
    cv2.ellipse(big, (cx, cy), (60 * scale, 80 * scale), 0, 0, 360, 255, -1)  # the head
    cv2.ellipse(big, (cx, (H + 40) * scale), (150 * scale, 110 * scale), 0, 0, 360, 255, -1)  # shoulders
    strands = np.zeros_like(big)
    for _ in range(700):
        angle = rng.uniform(-np.pi - 0.5, 0.5)  # a root on the scalp (the head's upper half and its sides)
        x, y = cx + 60 * scale * np.cos(angle), cy + 80 * scale * np.sin(angle)
        direction = angle + rng.normal(0, 0.25)  # out from the scalp, then falling
        length = rng.uniform(30, 110) * scale
        points = []
        for _ in range(24):
            points.append((x, y))
            direction += rng.normal(0, 0.06)
            x += np.cos(direction) * length / 24
            y += (np.sin(direction) * 0.5 + 0.8) * length / 24
        width = max(1, int(rng.uniform(0.4, 1.4) * scale / 2))
        cv2.polylines(strands, [np.int32(points)], False, 255, thickness=width, lineType=cv2.LINE_AA)
    alpha = np.maximum(big, strands).astype(np.float32) / 255
    alpha = cv2.resize(alpha, (W, H), interpolation=cv2.INTER_AREA)
    colour = np.empty((H, W, 3), np.float32)
    colour[...] = (0.93, 0.78, 0.55)  # blonde
    face = cv2.resize(big.astype(np.float32) / 255, (W, H), interpolation=cv2.INTER_AREA) > 0.5
    face &= (np.arange(H)[:, None] > cy / scale - 25)  # below the hairline
    colour[face] = (0.86, 0.66, 0.55)
    shading = cv2.GaussianBlur(rng.uniform(0.8, 1.05, (H, W)).astype(np.float32), (0, 0), 2.0)
    return alpha, np.clip(colour * shading[..., None], 0, 1)


def evening(height: int, width: int) -> np.ndarray:
    v = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return np.clip((1 - v) * np.array([0.10, 0.12, 0.30]) + v * np.array([0.35, 0.15, 0.20]), 0, 1).astype(
        np.float32) * np.ones((1, width, 1), np.float32)


def strainer(scale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(alpha float [H,W], colour float [H,W,3]): a round mesh of grey wires (a weave finer than 2 px, drawn at
    ``scale`` x and brought down, so its pixels are mixed), a solid rim and a handle; brushed steel."""
    big = np.zeros((H * scale, W * scale), np.uint8)
    cx, cy, r = int(W * 0.45) * scale, H // 2 * scale, 105 * scale
    disc = np.zeros_like(big)
    cv2.circle(disc, (cx, cy), r, 255, -1)
    weave = np.zeros_like(big)
    for t in range(0, max(big.shape), 6):  # wires 6 px apart at scale 4: 1.5 px at the picture's size
        cv2.line(weave, (t, 0), (t, big.shape[0]), 255, 2)
        cv2.line(weave, (0, t), (big.shape[1], t), 255, 2)
    big = np.where(disc > 0, weave, 0).astype(np.uint8)
    cv2.circle(big, (cx, cy), r, 255, 7 * scale)  # the rim
    cv2.line(big, (cx + r, cy), (W * scale - 20 * scale, cy - 50 * scale), 255, 9 * scale)  # the handle
    alpha = cv2.resize(big.astype(np.float32) / 255, (W, H), interpolation=cv2.INTER_AREA)
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    colour = np.clip(np.array([0.62, 0.64, 0.66], np.float32) + 0.15 * (0.5 - y), 0, 1) * np.ones((1, W, 1))
    return alpha, colour.astype(np.float32)


def mesh_picture(out: str) -> None:
    rng = np.random.default_rng(11)
    alpha, colour = strainer()
    screen = screen_background(H, W, "blue", rng)
    a = alpha[..., None]
    frame = np.clip(np.rint((a * colour + (1 - a) * screen) * 255 + rng.normal(0, 1.5, (H, W, 1))), 0, 255).astype(
        np.uint8)
    new = evening(H, W)
    plate = np.clip(np.rint(screen * 255), 0, 255).astype(np.uint8)
    tiles, labels = [], []
    unkeyed = PlateMatter(plate, align=False)
    unkeyed.key = None  # the clean screen as a plate, without the keying assumption (the solve before it had one)
    for label, matter in (("no keying assumption", unkeyed),
                          ("--plate blue", PlateMatter(None, screen=Screen(*parse_screen("blue"))))):
        matte = matter.matte([matter.prepare(frame, 0)])[0]
        pha = matte.alpha()
        error = np.abs(pha - alpha).mean() * 1e3
        tiles += [np.repeat(pha[..., None], 3, axis=2), pha[..., None] * matte.foreground() + (1 - pha[..., None]) * new]
        labels += [f"{label}: MAD {error:.0f}", "over a new background"]
    tiles += [np.repeat(a, 3, axis=2), a * colour + (1 - a) * new]
    labels += ["truth: alpha", "truth over the new background"]
    crop = (slice(30, 290), slice(60, 460))
    tiles = [np.clip(t[crop] * 255 + 0.5, 0, 255).astype(np.uint8).copy() for t in tiles]
    for tile, label in zip(tiles, labels):
        cv2.putText(tile, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(tile, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    rows = [np.concatenate(tiles[i:i + 2], axis=1) for i in range(0, 6, 2)]
    cv2.imwrite(out, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images/screen_despill.png")
    parser.add_argument("--mesh", action="store_true", help="the mesh picture instead (docs/images/screen_mesh.png)")
    options = parser.parse_args()
    if options.mesh:
        return mesh_picture(options.out)
    rng = np.random.default_rng(7)
    alpha, colour = hair(rng)
    screen = screen_background(H, W, "green", rng)
    seen = spill(colour, alpha, screen)
    a = alpha[..., None]
    frame = np.clip(np.rint((a * seen + (1 - a) * screen) * 255 + rng.normal(0, 1.5, (H, W, 1))), 0, 255).astype(
        np.uint8)
    new = evening(H, W)
    panels = [frame.astype(np.float32) / 255]
    for method in ("none", "auto"):
        matter = PlateMatter(None, screen=Screen(*parse_screen("green")), foreground=method)
        matte = matter.matte([matter.prepare(frame, 0)])[0]
        fg, pha = matte.foreground(), matte.alpha()[..., None]
        panels.append(pha * fg + (1 - pha) * new)
    panels.append(a * colour + (1 - a) * new)  # the truth: the clean hair on the new background
    crop = (slice(20, 230), slice(90, 390))  # the hair
    tiles = [np.clip(cv2.resize(p[crop], None, fx=1.0, fy=1.0, interpolation=cv2.INTER_CUBIC) * 255 + 0.5, 0,
                     255).astype(np.uint8) for p in panels]
    labels = ["shot on green", "--foreground-method none", "default (unmixed, despilled)", "truth"]
    for tile, label in zip(tiles, labels):
        cv2.putText(tile, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    grid = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
    cv2.imwrite(options.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
