"""Closed-form matting (Levin, Lischinski, Weiss 2008): minimise alpha^T L alpha with the matting Laplacian L,
alpha fixed to 0/1 on a trimap's known pixels. numpy + scipy.sparse only.

Only 3x3 windows that touch an unknown pixel are built: the others add terms between known pixels alone, which do
not change the solution, and skipping them keeps a thin trimap band cheap at any frame size.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def trimap_masks(trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float trimap [H,W] in 0..1 (0 bg, 1 fg, else unknown) -> (is_fg, is_bg) boolean masks."""
    return trimap >= 1.0 - 1e-6, trimap <= 1e-6


def matting_laplacian(image: np.ndarray, active: np.ndarray, eps: float = 1e-7) -> scipy.sparse.csr_matrix:
    """Matting Laplacian [H*W, H*W] restricted to 3x3 windows centred on ``active`` pixels (border centres skipped).

    image: float [H,W,3] 0..1; active: bool [H,W]."""
    h, w, _ = image.shape
    n_win = 9
    centres = active.copy()
    centres[[0, -1], :] = False
    centres[:, [0, -1]] = False
    cy, cx = np.nonzero(centres)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    idx = np.stack([(cy + dy) * w + (cx + dx) for dy, dx in offsets], axis=1)  # [N,9] flat pixel indices
    colours = image.reshape(-1, 3).astype(np.float64)[idx]  # [N,9,3]
    mean = colours.mean(axis=1, keepdims=True)
    centred = colours - mean
    cov = np.einsum("nki,nkj->nij", centred, centred) / n_win + (eps / n_win) * np.eye(3)
    inv = np.linalg.inv(cov)
    affinity = (1 + np.einsum("nki,nij,nlj->nkl", centred, inv, centred)) / n_win  # [N,9,9]
    values = np.eye(n_win)[None] - affinity
    rows = np.repeat(idx, n_win, axis=1).ravel()
    cols = np.tile(idx, (1, n_win)).ravel()
    return scipy.sparse.coo_matrix((values.ravel(), (rows, cols)), shape=(h * w, h * w)).tocsr()


def closed_form_alpha(image: np.ndarray, trimap: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Alpha from an image and a trimap by the closed-form solution.

    image: float [H,W,3] 0..1 (or uint8, divided by 255); trimap: float [H,W] 0..1 (0 bg, 1 fg, between unknown).
    Returns float64 [H,W] in 0..1; known pixels keep their trimap value exactly."""
    if image.dtype == np.uint8:
        image = image.astype(np.float64) / 255
    if image.shape[:2] != trimap.shape:
        raise ValueError(f"image {image.shape[:2]} and trimap {trimap.shape} sizes differ")
    is_fg, is_bg = trimap_masks(trimap)
    unknown = ~(is_fg | is_bg)
    alpha = is_fg.astype(np.float64)
    if not unknown.any():
        return alpha
    # windows touching an unknown pixel = centres within one pixel of the unknown band
    active = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    lap = matting_laplacian(image, active, eps)
    u = np.flatnonzero(unknown)
    k = np.flatnonzero(~unknown)
    lap_uu = lap[u][:, u].tocsc()
    rhs = -(lap[u][:, k] @ alpha.ravel()[k])
    # Safety net: an unknown pixel that lies in no window (only possible in images narrower than 3 px) would make
    # the system singular; a weak pull towards 0.5 keeps it solvable without touching the other pixels.
    isolated = np.asarray(abs(lap_uu).sum(axis=1)).ravel() == 0
    if isolated.any():
        lap_uu = lap_uu + scipy.sparse.diags(isolated.astype(np.float64) * 1e-3)
        rhs = rhs + isolated * 1e-3 * 0.5
    solution = scipy.sparse.linalg.spsolve(lap_uu, rhs)
    alpha.ravel()[u] = np.clip(solution, 0, 1)
    return alpha
