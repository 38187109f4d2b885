"""Metrics against tiny cases whose values are worked out by hand (in the comments), plus region and aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from vidmatte.metrics import core
from vidmatte.metrics.evaluate import ClipResult, Frame, aggregate, evaluate_clip, parse_metrics


def test_constant_offset_mad_mse():
    true = np.full((4, 5), 0.25)
    pred = true + 0.25  # |d| = 0.25 everywhere: MAD = 0.25 * 1e3, MSE = 0.0625 * 1e3
    assert core.mad(pred, true) == 250.0
    assert core.mse(pred, true) == 62.5


def test_region_restricts_mad_mse():
    true = np.zeros((2, 2))
    pred = np.array([[1.0, 0.5], [0.0, 0.0]])
    region = np.array([[False, True], [True, False]])  # pixels 0.5 and 0.0: MAD = 0.25, MSE = 0.125
    assert core.mad(pred, true, region) == 250.0
    assert core.mse(pred, true, region) == 125.0
    assert core.mad(pred, true) == 375.0  # full frame: (1 + 0.5) / 4
    empty = np.zeros((2, 2), bool)  # a mean over no pixels is undefined: NaN, skipped by the clip mean
    assert np.isnan(core.mad(pred, true, empty)) and np.isnan(core.mse(pred, true, empty))
    assert core.grad(pred, true, empty) == 0.0 and core.conn(pred, true, empty) == 0.0  # sums over nothing


def test_dtssd_identical_change_is_zero_and_hand_case():
    g0, g1 = np.zeros((2, 2)), np.array([[0.5, 0.0], [0.2, 0.0]])
    assert core.dtssd(g1 + 0.1, g0 + 0.1, g1, g0) == pytest.approx(0.0, abs=1e-12)  # same change, offset kept
    p0, p1 = np.zeros((2, 2)), np.array([[0.5, 0.0], [0.0, 0.0]])
    # d = p1 - p0 - (0 - 0): one pixel of 0.5 -> sqrt(0.25 / 4) = 0.25 -> x 1e2 = 25
    assert core.dtssd(p1, p0, np.zeros((2, 2)), np.zeros((2, 2))) == 25.0
    # restricted to the changed pixel's row: sqrt(0.25 / 2) * 100
    region = np.array([[True, True], [False, False]])
    assert core.dtssd(p1, p0, np.zeros((2, 2)), np.zeros((2, 2)), region) == pytest.approx(np.sqrt(0.125) * 100)


def test_clip_counts_frame_zero_as_zero_for_dtssd():
    z = np.zeros((2, 2))
    frames = [Frame("0", z, z), Frame("1", np.array([[0.5, 0], [0, 0]]), z)]
    res = evaluate_clip("c", frames, ("dtSSD",))
    assert res.per_frame["dtSSD"] == [0.0, 25.0]
    assert res.mean()["dtSSD"] == 12.5


def test_identical_mattes_grad_conn_zero():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16)).astype(np.float32) / 255
    assert core.grad(a, a) == 0.0
    assert core.conn(a, a) == 0.0


def test_gradient_filter_shape_and_norm():
    fx, fy = core.gauss_derivative_filters(1.4)
    assert fx.shape == (9, 9)  # half size ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) 1.4 0.01))) = ceil(3.62) = 4
    assert np.sum(fx ** 2) == pytest.approx(1.0)
    assert np.array_equal(fy, fx.T)
    assert np.allclose(fx, -fx[:, ::-1])  # a derivative in x is odd in x


def test_grad_ignores_constant_offset_and_normalised_form():
    x = np.linspace(0, 1, 32)
    true = np.tile(np.clip((x - 0.3) * 4, 0, 1), (32, 1))
    assert core.grad(true * 0.8 + 0.1, true) > 0  # a weaker edge is a gradient error
    assert core.grad(true + 0.05, true) == pytest.approx(0.0, abs=1e-12)  # an offset is not
    # min-max normalisation removes the scale difference (RVM's low-res form)
    assert core.grad(true * 0.8 + 0.1, true, normalize=True) == pytest.approx(0.0, abs=1e-12)


def test_conn_hand_case():
    # 1x4 row. truth [1, .6, 0, .9], prediction [1, .35, 0, .9].
    # t=.1..0.3: both >= t at pixels {0,1} and {3}; largest 4-connected component {0,1}, so pixels 2 and 3
    #   leave at t=.1 -> round-down 0.
    # t=.4: pixel 1 leaves (pred .35 < .4) -> round-down .3. Pixel 0 stays to 1.0 -> round-down 1.
    # d = alpha - round-down: truth [0, .3, 0, .9], prediction [0, .05, 0, .9]
    # phi = 1 - d*[d >= .15] (.05 is below .15): truth [1, .7, 1, .1], prediction [1, 1, 1, .1] -> sum |diff| = .3
    #   -> / 1000
    true = np.array([[1.0, 0.6, 0.0, 0.9]])
    pred = np.array([[1.0, 0.35, 0.0, 0.9]])
    assert np.allclose(core.conn_round_down(pred, true), [[1.0, 0.3, 0.0, 0.0]])
    assert core.conn(pred, true) == pytest.approx(0.3 / 1000, abs=1e-12)
    # a region without pixel 1 sees no error
    assert core.conn(pred, true, np.array([[True, False, True, True]])) == pytest.approx(0.0, abs=1e-12)


def test_ssda_and_fg_hand_cases():
    true = np.zeros((2, 2))
    pred = np.array([[0.5, 0.5], [0.0, 0.0]])
    assert core.ssda(pred, true) == pytest.approx(np.sqrt(0.5))  # sqrt(.25 + .25)
    pha = np.array([[1.0, 0.0], [0.5, 0.0]])  # fg counted where alpha > 0: pixels (0,0) and (1,0)
    fg_true = np.zeros((2, 2, 3))
    fg_pred = np.zeros((2, 2, 3))
    fg_pred[0, 0] = 0.25
    fg_pred[0, 1] = 1.0  # alpha 0 there: ignored
    fg_mad, fg_mse = core.fg_errors(fg_pred, fg_true, pha)
    assert fg_mad == pytest.approx(125.0)  # 3 values of .25 and 3 of 0 -> mean .125
    assert fg_mse == pytest.approx(31.25)  # mean of 3 x .0625 and 3 x 0 -> .03125


def test_messddt_motion_compensated_error_is_zero_dtssd_is_not():
    h, w = 24, 32
    g0 = np.zeros((h, w)); g0[8:16, 8:14] = 1.0
    g1 = np.roll(g0, 2, axis=1)  # the object moves 2 px right
    p0 = g0.copy(); p0[10, 10] = 0.5  # the same error rides on the object
    p1 = np.roll(p0, 2, axis=1)
    flow = np.zeros((h, w, 2), np.float32); flow[..., 0] = -2  # x at t came from x - 2 at t-1
    assert core.messddt(p1, p0, g1, g0, flow=flow) == pytest.approx(0.0, abs=1e-9)
    assert core.dtssd(p1, p0, g1, g0) > 0
    # an error that appears from nowhere is counted: one pixel of 0.25 squared error over h*w pixels
    p1b = g1.copy(); p1b[12, 12] = 0.5
    assert core.messddt(p1b, g0, g1, g0, flow=flow) == pytest.approx(0.25 / (h * w) * 1e3)


def test_clip_mean_skips_frames_with_an_empty_region():
    true = np.zeros((2, 2))
    pred = np.full((2, 2), 0.5)
    band = np.array([[True, False], [False, False]])
    frames = [Frame("0", pred, true, region=band), Frame("1", pred, true, region=np.zeros((2, 2), bool))]
    res = evaluate_clip("c", frames, ("MAD", "dtSSD"))
    assert res.per_frame["MAD"][0] == 500.0 and np.isnan(res.per_frame["MAD"][1])
    assert res.mean()["MAD"] == 500.0  # not (500 + 0) / 2
    # dtSSD: frame 0 is 0 by convention; frame 1 has no band pixels -> NaN, skipped
    assert res.mean()["dtSSD"] == 0.0
    nothing = ClipResult("n", ["0"], {"MAD": [float("nan")]})
    assert nothing.mean() == {} and aggregate([res, nothing]) == res.mean()


def test_aggregation_is_mean_of_clip_means():
    a = ClipResult("a", ["0", "1"], {"MAD": [10.0, 20.0]})
    b = ClipResult("b", list("0123"), {"MAD": [30.0] * 4})
    assert aggregate([a, b]) == {"MAD": 22.5}  # not the frame mean 25


def test_parse_metrics():
    assert parse_metrics(None) == ("MAD", "MSE", "Grad", "Conn", "dtSSD")
    assert parse_metrics("mad, dtssd,MESSDdt") == ("MAD", "dtSSD", "MESSDdt")
    with pytest.raises(ValueError, match="unknown metric 'sad'"):
        parse_metrics("mad,sad")


def test_gradient_filter_values_by_hand():
    fx, _ = core.gauss_derivative_filters(1.4)
    # along the derivative axis the kernel is x * exp(-x^2 / (2 sigma^2)) up to sign and scale, so
    # fx[4,5] / fx[4,6] = (1 * exp(-1/3.92)) / (2 * exp(-4/3.92)) = 0.5 * exp(3/3.92) = 1.074791...
    assert fx[4, 5] / fx[4, 6] == pytest.approx(0.5 * np.exp(3 / 3.92), rel=1e-12)
    assert fx[4, 4] == 0.0  # the centre column of a derivative filter


def test_conn_exact_decimal_thresholds_match_arange_for_8bit_alphas():
    """The docs claim: for 8-bit alphas, thresholds i/10 and np.arange(0, 1.1, 0.1) (RVM's) give the same Conn."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        true = rng.integers(0, 256, (24, 24)).astype(np.float32) / 255
        pred = np.clip(true + rng.normal(0, 0.1, true.shape), 0, 1).astype(np.float32)
        pred = np.round(pred * 255) / 255
        round_down = -np.ones(true.shape)
        thresholds = np.arange(0, 1.1, 0.1)
        import cv2

        for i in range(1, len(thresholds)):
            both = ((true >= thresholds[i]) & (pred >= thresholds[i])).astype(np.uint8)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
            keep = labels == 1 + np.argmax(stats[1:, -1]) if n > 1 else np.zeros(true.shape, bool)
            round_down[(round_down == -1) & ~keep] = thresholds[i - 1]
        round_down[round_down == -1] = 1
        # same level for every pixel (arange's 0.30000000000000004 vs 0.3 is the only difference)
        assert np.allclose(core.conn_round_down(pred, true), round_down, rtol=0, atol=1e-12)


def test_messddt_with_farneback_flow_compensates_real_motion():
    """With the named flow source (Farneback on the GT alpha), an error riding on a moving soft object costs far
    less than without compensation (zero flow)."""
    h, w = 64, 96
    yy, xx = np.mgrid[0:h, 0:w]
    def disc(cx):
        return np.clip((14 - np.hypot(yy - 32, xx - cx)) / 4, 0, 1)
    g0, g1 = disc(40), disc(43)
    p0 = np.clip(disc(40) * 0.8 + 0.1 * (np.hypot(yy - 32, xx - 40) < 8), 0, 1)  # a blotch inside the object
    p1 = np.clip(disc(43) * 0.8 + 0.1 * (np.hypot(yy - 32, xx - 43) < 8), 0, 1)
    compensated = core.messddt(p1, p0, g1, g0)
    uncompensated = core.messddt(p1, p0, g1, g0, flow=np.zeros((h, w, 2), np.float32))
    assert compensated < 0.01 * uncompensated  # measured 1.4e-5 vs 1.30: Farneback finds the 3 px shift
