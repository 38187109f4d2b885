"""``guidance.propagate.grown``: growing a mask by a reach, on a coarse grid, agrees with a full-size dilation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidmatte.guidance.propagate import grown


@pytest.mark.parametrize("shape,reach", [((1080, 1920), 58), ((288, 512), 15), ((40, 60), 2)])
def test_grown_agrees_with_an_elliptic_dilation(shape, reach):
    h, w = shape
    mask = np.zeros(shape, bool)
    mask[h // 3:h // 2, w // 3:w // 2] = True
    mask[5, 5] = mask[h - 1, w - 2] = True  # single pixels, at an edge too: a coarse cell must not lose them
    ours = grown(mask, reach)
    assert ours[mask].all()
    assert (dilate(mask, reach) & ~ours).sum() <= 0.01 * dilate(mask, reach).sum() + 10  # a sliver of edge at most
    assert not (ours & ~dilate(mask, reach + 8)).any()  # and never more than two coarse cells beyond the reach


def dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
