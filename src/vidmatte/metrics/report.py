"""A self-contained HTML report: tables, per-frame curves and the worst frames, with matplotlib PNGs inlined as
base64 so the single file can be mailed or attached to an issue."""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np

from ..io.atomic import write_atomic
from .evaluate import ClipResult, aggregate


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table(rows: list[tuple[str, dict[str, float]]], metrics: list[str]) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = []
    for label, values in rows:
        cells = "".join(f"<td>{values[m]:.3f}</td>" if m in values else "<td>-</td>" for m in metrics)
        body.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th>clip</th>{head}</tr>{''.join(body)}</table>"


def curves_figure(results: list[ClipResult], metrics: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in ("MAD", "dtSSD") if m in metrics] or metrics[:1]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.8 * len(shown)), squeeze=False)
    for ax, m in zip(axes[:, 0], shown):
        for r in results:
            ax.plot(r.per_frame[m], label=r.name, lw=1.2)
        ax.set_ylabel(m)
        ax.set_xlabel("frame")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.suptitle("per-frame curves")
    return fig


def worst_frames(results: list[ClipResult], key: str = "MAD", count: int = 6) -> list[tuple[str, int, float]]:
    """(clip, frame index, value): the worst frame of each clip by ``key``, worst clips first, at most ``count``.

    One frame per clip, so that a single hopeless clip does not hide where the others fail."""
    worst = []
    for r in results:
        values = np.asarray(r.per_frame.get(key, []), dtype=np.float64)
        if values.size and not np.isnan(values).all():
            i = int(np.nanargmax(values))
            worst.append((r.name, i, float(values[i])))
    return sorted(worst, key=lambda s: -s[2])[:count]


def worst_figure(pairs_by_name: dict, worst: list[tuple[str, int, float]], key: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(worst), 4, figsize=(13, 2.2 * len(worst) + 0.4), squeeze=False)
    for row, (clip, i, value) in zip(axes, worst):
        pair = pairs_by_name[clip]
        pred = pair.pred.load(i, 1).astype(np.float32) / 255
        true = pair.true.load(i, 1).astype(np.float32) / 255
        if pair.image is not None and len(pair.image) > i:
            row[0].imshow(pair.image.load(i, 3))
        else:
            row[0].text(0.5, 0.5, "no input frames\n(no com/ in the truth)", ha="center", va="center")
        row[1].imshow(pred, cmap="gray", vmin=0, vmax=1)
        row[2].imshow(true, cmap="gray", vmin=0, vmax=1)
        heat = row[3].imshow(np.abs(pred - true), cmap="inferno", vmin=0, vmax=1)
        fig.colorbar(heat, ax=row[3], fraction=0.04)
        row[0].set_ylabel(f"{clip}\nframe {pair.true.names[i]}\n{key} {value:.2f}", fontsize=8)
        for ax, title in zip(row, ("input", "prediction", "truth", "|error|")):
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def write_report(path: Path, results: list[ClipResult], pairs, header: str, title: str = "vidmatte eval",
                 extra: str = "") -> None:
    """Write the HTML page to ``path`` (a temporary sibling first, renamed when complete)."""
    metrics = list(dict.fromkeys(k for r in results for k, v in r.per_frame.items() if v))
    mean = aggregate(results)
    rows = [(r.name, r.mean()) for r in results] + [("mean", mean)]
    worst = worst_frames(results, "MAD" if "MAD" in metrics else metrics[0])
    pairs_by_name = {p.name: p for p in pairs}
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(header)}</p>",
        "<p>Averages: mean over the frames of a clip, then mean over clips. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
        extra,
        "<h2>Per clip</h2>", _table(rows, metrics),
        "<h2>Per frame</h2>", f"<img src='{_png(curves_figure(results, metrics))}'>",
        "<h2>Worst frames</h2><p>The frame with the largest MAD in each clip (worst clips first): input, "
        "prediction, truth and the absolute error (bright = wrong).</p>",
        f"<img src='{_png(worst_figure(pairs_by_name, worst, 'MAD' if 'MAD' in metrics else metrics[0]))}'>",
    ]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>" \
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    write_atomic(path, page)
