"""RVM's losses, written as pure functions on [B,T,C,H,W] tensors.

Matting: alpha L1 + Laplacian-pyramid L1 (5 levels) + alpha temporal coherence (x5), and on pixels where the true
alpha is > 0: foreground L1 + foreground temporal coherence (x5). Segmentation: binary cross-entropy on logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

COHERENCE_WEIGHT = 5.0


def _gaussian_kernel(channels: int, device, dtype) -> Tensor:
    row = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    kernel = torch.outer(row, row) / 256.0
    return kernel.expand(channels, 1, 5, 5).contiguous()


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def laplacian_pyramid(x: Tensor, levels: int = 5) -> list[Tensor]:
    """x [N,C,H,W] -> ``levels`` band-pass images (finest first); the last entry is the low-pass residual."""
    kernel = _gaussian_kernel(x.shape[1], x.device, x.dtype)
    bands, current = [], x
    for _ in range(levels - 1):
        if min(current.shape[-2:]) < 3:  # too small to blur with reflection padding: stop early
            break
        down = _blur(current, kernel)[:, :, ::2, ::2]
        # Upsample by zero insertion and a x4 blur (the classic Burt-Adelson expand), cropped to the level's size.
        up = torch.zeros_like(current)
        up[:, :, ::2, ::2] = down * 4
        bands.append(current - _blur(up, kernel))
        current = down
    bands.append(current)
    return bands


def laplacian_loss(pred: Tensor, true: Tensor, levels: int = 5) -> Tensor:
    """Sum over pyramid levels i of 2**i * L1(level_i): coarse levels weigh more. pred/true [N,C,H,W]."""
    loss = pred.new_zeros(())
    for i, (p, t) in enumerate(zip(laplacian_pyramid(pred, levels), laplacian_pyramid(true, levels))):
        loss = loss + (2 ** i) * F.l1_loss(p, t)
    return loss


def temporal_coherence(pred: Tensor, true: Tensor) -> Tensor:
    """MSE between the frame-to-frame changes of pred and true; [B,T,C,H,W] with T >= 2 (else 0)."""
    if pred.shape[1] < 2:
        return pred.new_zeros(())
    return F.mse_loss(pred[:, 1:] - pred[:, :-1], true[:, 1:] - true[:, :-1])


def matting_loss(pred_fgr: Tensor, pred_pha: Tensor, true_fgr: Tensor, true_pha: Tensor) -> dict[str, Tensor]:
    """pred/true fgr [B,T,3,H,W] and pha [B,T,1,H,W], all 0..1. Returns the named terms and their sum ``total``."""
    loss = {
        "pha_l1": F.l1_loss(pred_pha, true_pha),
        "pha_laplacian": laplacian_loss(pred_pha.flatten(0, 1), true_pha.flatten(0, 1)),
        "pha_coherence": temporal_coherence(pred_pha, true_pha) * COHERENCE_WEIGHT,
    }
    # Foreground colour is undefined where alpha is 0, so it is only supervised where the true alpha is > 0.
    mask = (true_pha > 0).to(pred_fgr.dtype)
    pred_fgr, true_fgr = pred_fgr * mask, true_fgr * mask
    loss["fgr_l1"] = F.l1_loss(pred_fgr, true_fgr)
    loss["fgr_coherence"] = temporal_coherence(pred_fgr, true_fgr) * COHERENCE_WEIGHT
    loss["total"] = sum(loss.values())
    return loss


def segmentation_loss(pred_logits: Tensor, true_mask: Tensor) -> Tensor:
    """BCE between logits and a 0/1 person mask, both [B,(T,)1,H,W]."""
    return F.binary_cross_entropy_with_logits(pred_logits, true_mask)
