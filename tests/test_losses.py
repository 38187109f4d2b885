"""Each loss on hand-made cases whose value can be worked out on paper."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from vidmatte.train.losses import (  # noqa: E402
    laplacian_loss,
    laplacian_pyramid,
    matting_loss,
    segmentation_loss,
    temporal_coherence,
)


def test_alpha_l1_is_mean_absolute_error():
    true = torch.zeros(1, 2, 1, 8, 8)
    pred = torch.zeros_like(true)
    pred[..., :4, :] = 0.5  # half the pixels off by 0.5
    fgr = torch.zeros(1, 2, 3, 8, 8)
    assert float(matting_loss(fgr, pred, fgr, true)["pha_l1"]) == pytest.approx(0.25)


def test_laplacian_of_constants_is_only_the_coarsest_level():
    # Band-pass levels of a constant image are 0 (Gaussian blur with reflection keeps constants, even sizes);
    # only the low-pass residual, weighted 2**4 at level 5, sees the difference.
    pred, true = torch.full((1, 1, 32, 32), 0.3), torch.full((1, 1, 32, 32), 0.8)
    bands = laplacian_pyramid(pred)
    assert len(bands) == 5 and bands[-1].shape[-1] == 2
    assert all(float(b.abs().max()) < 1e-6 for b in bands[:-1])
    assert float(laplacian_loss(pred, true)) == pytest.approx(16 * 0.5, rel=1e-5)


def test_laplacian_sees_edges_that_l1_weighs_little():
    true = torch.zeros(1, 1, 32, 32)
    true[..., 16:] = 1.0
    blurred = torch.nn.functional.avg_pool2d(true, 5, 1, 2, count_include_pad=False)
    assert float(laplacian_loss(true, true)) == 0.0
    assert float(laplacian_loss(blurred, true)) > 0.0


def test_temporal_coherence_compares_frame_differences():
    true = torch.arange(4, dtype=torch.float32).view(1, 4, 1, 1, 1).expand(1, 4, 1, 4, 4) * 0.1
    still = torch.zeros_like(true)
    assert float(temporal_coherence(still, true)) == pytest.approx(0.01)  # every step misses a change of 0.1
    assert float(temporal_coherence(true + 0.3, true)) == pytest.approx(0.0, abs=1e-12)  # offsets do not count
    assert float(temporal_coherence(still[:, :1], true[:, :1])) == 0.0  # one frame: nothing to compare
    fgr = torch.zeros(1, 4, 3, 4, 4)
    terms = matting_loss(fgr, still, fgr, true)
    assert float(terms["pha_coherence"]) == pytest.approx(5 * 0.01)  # weighted x5


def test_foreground_terms_ignore_pixels_without_alpha():
    true_pha = torch.zeros(1, 2, 1, 4, 4)
    true_pha[..., :2, :] = 1.0
    true_fgr = torch.rand(1, 2, 3, 4, 4)
    pred_fgr = true_fgr.clone()
    pred_fgr[..., 2:, :] = 1 - pred_fgr[..., 2:, :]  # wrong only where alpha is 0
    terms = matting_loss(pred_fgr, true_pha, true_fgr, true_pha)
    assert float(terms["fgr_l1"]) == 0.0 and float(terms["fgr_coherence"]) == 0.0
    pred_fgr[..., 0, 0] += 0.5  # now wrong where alpha is 1: 2 frames x 3 channels x 1 pixel off by 0.5
    terms = matting_loss(pred_fgr, true_pha, true_fgr, true_pha)
    assert float(terms["fgr_l1"]) == pytest.approx(0.5 * 6 / (2 * 3 * 16))


def test_total_is_the_sum_of_terms():
    g = torch.Generator().manual_seed(0)
    args = [torch.rand(1, 3, c, 16, 16, generator=g) for c in (3, 1, 3, 1)]
    terms = matting_loss(*args)
    parts = sum(float(v) for k, v in terms.items() if k != "total")
    assert float(terms["total"]) == pytest.approx(parts, rel=1e-6)


def test_segmentation_bce_on_logits():
    mask = torch.tensor([[[[1.0, 0.0]]]])
    assert float(segmentation_loss(torch.zeros_like(mask), mask)) == pytest.approx(math.log(2))
    confident = torch.tensor([[[[20.0, -20.0]]]])
    assert float(segmentation_loss(confident, mask)) < 1e-8
    assert float(segmentation_loss(-confident, mask)) == pytest.approx(20.0, rel=1e-4)
