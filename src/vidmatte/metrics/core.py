"""Matting metrics as RobustVideoMatting's evaluation computes them (see ../shared/docs/METRICS.md).

Every function takes float mattes in 0..1 (alpha PNGs read as uint8 / 255) of shape [H,W] and returns the value
already in its reporting scale (the ``SCALES`` table says which). A mean over no pixels (an empty region, or no
truth alpha > 0 for the FG errors) is NaN, so that the clip mean skips that frame instead of counting a 0; sums
over no pixels (Grad, Conn, SSDA) are 0. An optional boolean ``region`` [H,W] restricts the
metric to those pixels (the TCVOM/DVM "unknown band" convention); ``None`` is the full frame (RVM's convention).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# name -> how the number is reported; printed in every table header.
SCALES = {
    "MAD": "x1e3", "MSE": "x1e3", "Grad": "/1e3", "Conn": "/1e3", "dtSSD": "x1e2",
    "MESSDdt": "x1e3 (mean per pixel)", "SSDA": "as is", "FG_MAD": "x1e3", "FG_MSE": "x1e3",
}


def _check_pair(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {true.shape}")


def _region_count(true: np.ndarray, region: np.ndarray | None) -> int:
    return int(true.size if region is None else np.count_nonzero(region))


def _select(values: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    return values if region is None else values[region]


def mad(pred: np.ndarray, true: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean absolute difference x 1e3 (over ``region`` if given; NaN when the region is empty)."""
    _check_pair(pred, true)
    diff = _select(np.abs(pred.astype(np.float64) - true), region)
    return float(diff.mean() * 1e3) if diff.size else math.nan


def mse(pred: np.ndarray, true: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared difference x 1e3."""
    _check_pair(pred, true)
    diff = _select((pred.astype(np.float64) - true) ** 2, region)
    return float(diff.mean() * 1e3) if diff.size else math.nan


def gauss_derivative_filters(sigma: float = 1.4, eps: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """First-order Gaussian derivative filters (x, y = x.T), L2-normalised; 9x9 for sigma 1.4, as in RVM/DIM."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * eps)))
    r = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-r ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -r * gauss / sigma ** 2
    fx = np.outer(gauss, dgauss)  # rows: Gaussian in y, columns: derivative in x
    fx /= np.sqrt((fx ** 2).sum())
    return fx, fx.T.copy()


_FILTERS = gauss_derivative_filters()


def gradient_magnitude(alpha: np.ndarray) -> np.ndarray:
    """|grad alpha| with the sigma-1.4 filters and a replicate border; float64 [H,W]."""
    img = alpha.astype(np.float64)
    gx = cv2.filter2D(img, -1, _FILTERS[0], borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(img, -1, _FILTERS[1], borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx ** 2 + gy ** 2)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a, np.float64) if hi == lo else (a.astype(np.float64) - lo) / (hi - lo)


def grad(pred: np.ndarray, true: np.ndarray, region: np.ndarray | None = None, normalize: bool = False) -> float:
    """Gradient error / 1e3. ``normalize=True`` min-max normalises both mattes first (RVM's low-res script)."""
    _check_pair(pred, true)
    if normalize:
        pred, true = _minmax(pred), _minmax(true)
    err = (gradient_magnitude(pred) - gradient_magnitude(true)) ** 2
    return float(_select(err, region).sum() / 1000)


def conn_round_down(pred: np.ndarray, true: np.ndarray, step: float = 0.1) -> np.ndarray:
    """Each pixel's round-down level: the last threshold at which it was still in the largest 4-connected
    component of (true >= t) & (pred >= t); 1 if it never left. float64 [H,W]."""
    # Rounded so that 3 * 0.1 is 0.3; for 8-bit alphas this matches RVM's np.arange thresholds exactly.
    levels = np.round(np.arange(1, int(round(1 / step)) + 1) * step, 10)
    round_down = np.full(true.shape, -1.0)
    previous = 0.0
    for t in levels:
        both = ((true >= t) & (pred >= t)).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        largest = np.zeros(true.shape, bool)
        if count > 1:  # label 0 is the background of `both`
            largest = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        round_down[(round_down == -1) & ~largest] = previous
        previous = t
    round_down[round_down == -1] = 1.0
    return round_down


def conn(pred: np.ndarray, true: np.ndarray, region: np.ndarray | None = None, step: float = 0.1,
         threshold: float = 0.15) -> float:
    """Connectivity error / 1e3 (components found on the full frame; the sum restricted to ``region``)."""
    _check_pair(pred, true)
    pred, true = pred.astype(np.float64), true.astype(np.float64)
    round_down = conn_round_down(pred, true, step)
    dp, dt = pred - round_down, true - round_down
    phi_p = 1 - dp * (dp >= threshold)
    phi_t = 1 - dt * (dt >= threshold)
    return float(_select(np.abs(phi_p - phi_t), region).sum() / 1000)


def dtssd(pred_t: np.ndarray, pred_tm1: np.ndarray, true_t: np.ndarray, true_tm1: np.ndarray,
          region: np.ndarray | None = None) -> float:
    """Temporal coherence x 1e2: sqrt(sum(((p_t - p_t-1) - (g_t - g_t-1))^2) / pixels). Frame 0 is 0 by convention
    (the caller's job). With a region: the sum and the pixel count are both over the region."""
    _check_pair(pred_t, true_t)
    d = (pred_t.astype(np.float64) - pred_tm1) - (true_t.astype(np.float64) - true_tm1)
    n = _region_count(true_t, region)
    return float(math.sqrt(_select(d ** 2, region).sum() / n) * 1e2) if n else math.nan


def farneback_flow(true_t: np.ndarray, true_tm1: np.ndarray) -> np.ndarray:
    """Flow from frame t to frame t-1 of the ground-truth alpha (OpenCV Farneback, as DVM computes it).

    Returns float32 [H,W,2] (dx, dy): pixel x at t corresponds to x + flow(x) at t-1."""
    a = np.clip(true_t * 255, 0, 255).astype(np.uint8)
    b = np.clip(true_tm1 * 255, 0, 255).astype(np.uint8)
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` (frame t-1) at x + flow(x): brings t-1 values to frame t's pixel grid."""
    h, w = image.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def messddt(pred_t: np.ndarray, pred_tm1: np.ndarray, true_t: np.ndarray, true_tm1: np.ndarray,
            region: np.ndarray | None = None, flow: np.ndarray | None = None) -> float:
    """Motion-compensated temporal error (Erofeev et al. 2015): |E_t(x) - E_t-1(x + v(x))| with E = (p - g)^2 and
    v the ground truth's flow from t to t-1 (``flow``; Farneback on the GT alpha when None). Reported as the mean
    over the region's pixels x 1e3, frame 0 counted as 0 by the caller. An error that moves with the object
    scores 0, where dtSSD would not."""
    _check_pair(pred_t, true_t)
    if flow is None:
        flow = farneback_flow(true_t, true_tm1)
    err_t = (pred_t.astype(np.float64) - true_t) ** 2
    err_tm1 = warp_back((pred_tm1.astype(np.float64) - true_tm1) ** 2, flow).astype(np.float64)
    diff = _select(np.abs(err_t - err_tm1), region)
    return float(diff.mean() * 1e3) if diff.size else math.nan


def ssda(pred: np.ndarray, true: np.ndarray, region: np.ndarray | None = None) -> float:
    """TCVOM/DVM SSDA for one frame: sqrt(sum over the region of (p - g)^2), not rescaled."""
    _check_pair(pred, true)
    return float(math.sqrt(_select((pred.astype(np.float64) - true) ** 2, region).sum()))


def fg_errors(fgr_pred: np.ndarray, fgr_true: np.ndarray, pha_true: np.ndarray,
              region: np.ndarray | None = None) -> tuple[float, float]:
    """Foreground (MAD, MSE) x 1e3 over pixels where the truth's alpha > 0 (and in ``region``), all 3 channels.

    fgr_*: float [H,W,3] 0..1; pha_true: [H,W] 0..1."""
    if fgr_pred.shape != fgr_true.shape:
        raise ValueError(f"foreground shape {fgr_pred.shape} differs from truth shape {fgr_true.shape}")
    mask = pha_true > 0
    if region is not None:
        mask &= region
    if not mask.any():
        return math.nan, math.nan
    diff = fgr_pred[mask].astype(np.float64) - fgr_true[mask]
    return float(np.abs(diff).mean() * 1e3), float((diff ** 2).mean() * 1e3)
