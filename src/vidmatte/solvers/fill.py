"""Filling a sparse field in: colours known (with a weight) at some pixels, spread smoothly over the rest."""

from __future__ import annotations

import cv2
import numpy as np


def push_pull(weighted: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted colours [H,W,3] and weights [H,W] -> colours everywhere: averaged down a pyramid until every
    pixel has some, then brought back up, the finer levels winning where they have weight."""
    if min(weight.shape) <= 2 or weight.min() > 0:
        return weighted / np.maximum(weight, 1e-6)[..., None]
    h, w = weight.shape
    size = ((w + 1) // 2, (h + 1) // 2)
    coarse = push_pull(cv2.resize(weighted, size, interpolation=cv2.INTER_AREA),
                        cv2.resize(weight, size, interpolation=cv2.INTER_AREA))
    up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    trust = np.clip(weight, 0, 1)[..., None]
    return trust * weighted / np.maximum(weight, 1e-6)[..., None] + (1 - trust) * up
