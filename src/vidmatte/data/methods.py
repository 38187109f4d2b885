"""Methods `bench run` can compare, each writing ``<out>/<clip>/pha/<frame>.png`` (and ``fgr/``) for a built
benchmark clip. A method sees only what a user would give it: the composite frames, plus the guidance it is
named after (the oracle reads the true trimap of every frame, which is why it is an upper bound, not a method)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..metrics.layout import find_track

METHODS = {
    "rvm": "RVM MobileNetV3 alone (ONNX Runtime), no guidance, recurrent state reset per clip",
    "oracle": "closed-form matting (Levin et al.) with the TRUE trimap of every frame + multi-level foreground",
}


def _save(path: Path, image: np.ndarray) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), image)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _rvm_matter(state: dict | None):
    """One loaded model for all clips of a run (``state`` carries it between calls)."""
    if state is not None and "rvm" in state:
        return state["rvm"]
    import vidmatte

    matter = vidmatte.load("rvm-mobilenetv3", downsample_ratio=None)
    if state is not None:
        state["rvm"] = matter
    return matter


def run_method(method: str, clip_dir: Path, out_dir: Path, progress=None, state: dict | None = None) -> None:
    """Run ``method`` on one built clip (``clip_dir`` holds com/, trimap/) and write its pha/ and fgr/ as 8-bit PNGs.

    ``progress`` is advanced once per frame; ``state`` (a dict kept by the caller) lets clips share a loaded model."""
    com = find_track(clip_dir, "com")
    (out_dir / "pha").mkdir(parents=True, exist_ok=True)
    (out_dir / "fgr").mkdir(parents=True, exist_ok=True)
    if method == "rvm":
        matter = _rvm_matter(state)
        matter.reset()  # each clip is an unrelated video
        for i, name in enumerate(com.names):
            fgr, pha = matter.step(com.load(i, 3))
            _save(out_dir / "pha" / f"{name}.png", _u8(pha))
            _save(out_dir / "fgr" / f"{name}.png", _u8(fgr))
            if progress is not None:
                progress.update()
    elif method == "oracle":
        from ..solvers import closed_form_alpha, estimate_foreground

        trimaps = find_track(clip_dir, "trimap")
        for i, name in enumerate(com.names):
            image = com.load(i, 3).astype(np.float64) / 255
            alpha = closed_form_alpha(image, trimaps.load(i, 1).astype(np.float64) / 255)
            fgr, _ = estimate_foreground(image, alpha)
            _save(out_dir / "pha" / f"{name}.png", _u8(alpha))
            _save(out_dir / "fgr" / f"{name}.png", _u8(fgr))
            if progress is not None:
                progress.update()
    else:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
