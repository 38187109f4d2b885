"""Per-frame metrics over clips, and the published aggregation (mean over frames of a clip, then over clips)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from . import core

ALPHA_METRICS = ("MAD", "MSE", "Grad", "Conn", "dtSSD", "MESSDdt", "SSDA")
FG_METRICS = ("FG_MAD", "FG_MSE")
DEFAULT_METRICS = ("MAD", "MSE", "Grad", "Conn", "dtSSD")


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """'mad,grad,dtssd' -> canonical names; ValueError naming the unknown one."""
    if not text:
        return DEFAULT_METRICS
    known = {m.lower(): m for m in ALPHA_METRICS + FG_METRICS}
    names = []
    for raw in text.split(","):
        raw = raw.strip()
        if raw.lower() == "all":
            names.extend(ALPHA_METRICS + FG_METRICS)
            continue
        if raw.lower() not in known:
            raise ValueError(f"unknown metric {raw!r} (known: {', '.join(known.values())}, all)")
        names.append(known[raw.lower()])
    return tuple(dict.fromkeys(names))


@dataclass
class Frame:
    """One frame's inputs. pha_*: float [H,W] 0..1; fgr_*: float [H,W,3] 0..1 or None; region: bool [H,W] or None."""

    name: str
    pha_pred: np.ndarray
    pha_true: np.ndarray
    fgr_pred: np.ndarray | None = None
    fgr_true: np.ndarray | None = None
    region: np.ndarray | None = None


@dataclass
class ClipResult:
    name: str
    frames: list[str] = field(default_factory=list)
    per_frame: dict[str, list[float]] = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        """Mean over frames, skipping NaN frames (a mean over an empty region); metrics with no value are left out."""
        out = {}
        for k, v in self.per_frame.items():
            values = np.asarray(v, dtype=np.float64)
            values = values[~np.isnan(values)]
            if values.size:
                out[k] = float(values.mean())
        return out


def evaluate_clip(name: str, frames: Iterable[Frame], metrics: tuple[str, ...] = DEFAULT_METRICS,
                  grad_normalize: bool = False) -> ClipResult:
    """Metrics of every frame of one clip; temporal metrics count frame 0 as 0 (RVM's convention)."""
    result = ClipResult(name, [], {m: [] for m in metrics})
    previous: Frame | None = None
    for fr in frames:
        values = frame_metrics(fr, previous, metrics, grad_normalize)
        for m in metrics:
            if m in values:
                result.per_frame[m].append(values[m])
        result.frames.append(fr.name)
        previous = fr
    return result


def frame_metrics(fr: Frame, previous: Frame | None, metrics: tuple[str, ...],
                  grad_normalize: bool = False) -> dict[str, float]:
    p, g, r = fr.pha_pred, fr.pha_true, fr.region
    out: dict[str, float] = {}
    if "MAD" in metrics:
        out["MAD"] = core.mad(p, g, r)
    if "MSE" in metrics:
        out["MSE"] = core.mse(p, g, r)
    if "Grad" in metrics:
        out["Grad"] = core.grad(p, g, r, normalize=grad_normalize)
    if "Conn" in metrics:
        out["Conn"] = core.conn(p, g, r)
    if "SSDA" in metrics:
        out["SSDA"] = core.ssda(p, g, r)
    for m, fn in (("dtSSD", core.dtssd), ("MESSDdt", core.messddt)):
        if m in metrics:
            out[m] = 0.0 if previous is None else fn(p, previous.pha_pred, g, previous.pha_true, r)
    if ("FG_MAD" in metrics or "FG_MSE" in metrics) and fr.fgr_pred is not None and fr.fgr_true is not None:
        out["FG_MAD"], out["FG_MSE"] = core.fg_errors(fr.fgr_pred, fr.fgr_true, g, r)
    return out


def aggregate(clips: list[ClipResult]) -> dict[str, float]:
    """Mean over frames of each clip, then mean over clips (RVM's published convention)."""
    means = [c.mean() for c in clips]
    keys = dict.fromkeys(k for m in means for k in m)
    return {k: float(np.mean([m[k] for m in means if k in m])) for k in keys}


def table_header(region: str, grad_normalize: bool) -> str:
    grad_form = "min-max normalised" if grad_normalize else "not normalised"
    return (f"region: {region}; scales: MAD x1e3, MSE x1e3, Grad /1e3 ({grad_form}), Conn /1e3, dtSSD x1e2, "
            f"MESSDdt x1e3 mean (flow: Farneback on GT alpha), SSDA as is, FG x1e3 (where GT alpha > 0)")


def format_table(rows: list[tuple[str, dict[str, float]]], metrics: Iterable[str]) -> str:
    """Markdown table: one row per (label, values)."""
    metrics = [m for m in metrics if any(m in v for _, v in rows)]
    width = max([len(label) for label, _ in rows] + [4])
    lines = ["| " + "clip".ljust(width) + " | " + " | ".join(f"{m:>8s}" for m in metrics) + " |",
             "|" + "-" * (width + 2) + "|" + "|".join("-" * 10 for _ in metrics) + "|"]
    for label, values in rows:
        cells = [f"{values[m]:8.3f}" if m in values else f"{'-':>8s}" for m in metrics]
        lines.append("| " + label.ljust(width) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)



def clip_frames(pair, region: str, want_fg: bool):
    """Frames of a matched clip (a ``layout.ClipPair``) as ``Frame`` objects, alphas read as uint8 / 255."""
    from ..errors import InputError

    for i, name in enumerate(pair.true.names):
        p = pair.pred.load(i, 1).astype(np.float32) / 255
        g = pair.true.load(i, 1).astype(np.float32) / 255
        if p.shape != g.shape:
            raise InputError(f"clip {pair.name!r}: frame {name} is {p.shape[1]}x{p.shape[0]} in the prediction but "
                             f"{g.shape[1]}x{g.shape[0]} in the ground truth")
        fr = Frame(name, p, g)
        if region == "unknown":
            tri = pair.trimap.load(i, 1)
            if tri.shape != g.shape:
                raise InputError(f"clip {pair.name!r}: trimap {name} is {tri.shape[1]}x{tri.shape[0]}, "
                                 f"the frame {g.shape[1]}x{g.shape[0]}")
            fr.region = (tri > 0) & (tri < 255)
        if want_fg and pair.pred_fgr is not None:
            fr.fgr_pred = pair.pred_fgr.load(i, 3).astype(np.float32) / 255
            fr.fgr_true = pair.true_fgr.load(i, 3).astype(np.float32) / 255
        yield fr


def evaluate_pairs(pairs, metrics: tuple[str, ...] = DEFAULT_METRICS, region: str = "full",
                   grad_normalize: bool = False, progress=None) -> list[ClipResult]:
    """Evaluate matched clips; ``progress`` (a ``vidmatte.progress.Progress``) is advanced once per frame."""
    want_fg = any(m in metrics for m in FG_METRICS)
    results = []
    for pair in pairs:
        frames = clip_frames(pair, region, want_fg)
        if progress is not None:
            frames = _counted(frames, progress)
        results.append(evaluate_clip(pair.name, frames, metrics, grad_normalize))
    return results


def _counted(frames, progress):
    for fr in frames:
        yield fr
        progress.update()
