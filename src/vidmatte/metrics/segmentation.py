"""DAVIS's video object segmentation measures (Perazzi et al., CVPR 2016): pure functions on binary masks.

J: region similarity, the IoU of the predicted region with the true one. F: the boundary F-measure, precision and
recall of the predicted outline against the true one, each outline pixel matched within a tolerance of 0.8% of
the image diagonal (DAVIS's ``bound_th``; its reference code matches by a bipartite assignment, this one by
dilation, which can only match more generously, by well under 0.01 on the clips we measured).
"""

from __future__ import annotations

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008  # share of the image diagonal
LOST_BELOW = 0.5  # a frame with J below this is counted as lost (issue 26)


def region_similarity(predicted: np.ndarray, truth: np.ndarray) -> float:
    """J: IoU of two bool [H,W] masks; 1 when both are empty (the subject correctly absent)."""
    union = np.count_nonzero(predicted | truth)
    return 1.0 if union == 0 else np.count_nonzero(predicted & truth) / union


def outline(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it (bool [H,W]); the image border does not count as outside."""
    m = mask.astype(np.uint8)
    return (m & ~cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) & 1).astype(bool)


def boundary_f(predicted: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F: the harmonic mean of the outlines' precision and recall, matched within ``tolerance`` of the diagonal."""
    radius = max(1, int(np.ceil(tolerance * np.hypot(*truth.shape))))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mine, theirs = outline(predicted), outline(truth)
    if not mine.any() and not theirs.any():
        return 1.0
    if not mine.any() or not theirs.any():
        return 0.0
    precision = np.count_nonzero(mine & cv2.dilate(theirs.astype(np.uint8), disc).astype(bool)) / mine.sum()
    recall = np.count_nonzero(theirs & cv2.dilate(mine.astype(np.uint8), disc).astype(bool)) / theirs.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
