"""Training FTP-VM with the project's loop (``train.loop.Trainer``, config ``model.kind: ftpvm``).

Each composited clip is its own guidance: its first frame, with the trimap made from its true alpha, is the memory;
every frame of the clip is a query. Losses (the paper's three outputs, with RVM's matte terms from ``losses``):
trimap cross-entropy on the 3-class logits; the boundary matte's L1 inside the true unknown region; the full
matte's L1, Laplacian-pyramid L1 and temporal coherence. These are the paper's kinds of terms; their weights are
ours (1 each, coherence x5 as RVM), not read from the official training script.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import COHERENCE_WEIGHT, laplacian_loss, temporal_coherence

DEFINITE = 0.01  # alpha within this of 0 or 1 counts as background / foreground
BAND = 5  # pixels the unknown region reaches into the definite ones (at the training size)


def build_ftpvm(model_cfg: dict, cache: str | None = None):
    """init: "scratch", "pretrained" (RVM's encoder, the rest untrained) or a checkpoint (official or ours)."""
    from ..models.ftpvm import FastTrimapPropagationVideoMatting

    init = model_cfg["init"]
    if init == "scratch":
        return FastTrimapPropagationVideoMatting()
    if init == "pretrained":
        from ..models.convert_onnx import load_pretrained

        model = FastTrimapPropagationVideoMatting()
        model.init_backbone_from_rvm(load_pretrained(model_cfg["pretrained_model"], cache, quiet=True).state_dict())
        return model
    from ..models.loaders import load_ftpvm

    return load_ftpvm(init).train()


def true_trimap(pha: Tensor, band: int = BAND) -> Tensor:
    """Class per pixel (0 background, 1 unknown, 2 foreground) from alpha [...,1,H,W]: definite pixels closer than
    ``band`` to the other kind or to partial alpha become unknown."""
    flat = pha.flatten(0, -4) if pha.ndim > 4 else pha
    k = 2 * band + 1

    def shrunk(mask: Tensor) -> Tensor:  # erosion: a pixel stays only if its whole window is in the mask
        return -F.max_pool2d(-mask.float(), k, 1, band)

    fg, bg = shrunk(flat > 1 - DEFINITE) > 0.5, shrunk(flat < DEFINITE) > 0.5
    classes = torch.ones_like(flat, dtype=torch.long)
    classes[fg], classes[bg] = 2, 0
    return classes.view(pha.shape)


def trimap_levels(classes: Tensor) -> Tensor:
    """Classes -> the network's trimap input: 0, 0.5, 1."""
    return classes.float() / 2


def ftpvm_loss(logits: Tensor, boundary: Tensor, full: Tensor, true_pha: Tensor, classes: Tensor) -> dict:
    """logits [B,T,3,H,W], mattes and true alpha [B,T,1,H,W], classes [B,T,1,H,W] -> named terms and ``total``."""
    unknown = (classes == 1).float()
    loss = {
        "trimap_ce": F.cross_entropy(logits.flatten(0, 1), classes.flatten(0, 1)[:, 0]),
        "boundary_l1": (unknown * (boundary - true_pha).abs()).sum() / unknown.sum().clamp(min=1),
        "pha_l1": F.l1_loss(full, true_pha),
        "pha_laplacian": laplacian_loss(full.flatten(0, 1), true_pha.flatten(0, 1)),
        "pha_coherence": temporal_coherence(full, true_pha) * COHERENCE_WEIGHT,
    }
    loss["total"] = sum(loss.values())
    return loss


def ftpvm_terms(model, clip: dict, device) -> dict:
    """One clip batch ({"src", "pha", ...} [B,T,...], sides in multiples of 16) -> the loss terms, with the first
    frame as the memory."""
    src, pha = clip["src"].to(device), clip["pha"].to(device)
    classes = true_trimap(pha)
    logits, boundary, full, _ = model(src, src[:, :1], trimap_levels(classes[:, :1]))
    return ftpvm_loss(logits, boundary, full, pha, classes)


def ftpvm_step_terms(model, clip: dict, device, downsample_ratio: float) -> dict:
    """The loop's call (``kinds.KINDS["ftpvm"]``): FTP-VM trains at full resolution, the ratio does not apply."""
    return ftpvm_terms(model, clip, device)


def validate_ftpvm(config: dict) -> None:
    from .config import ConfigError

    train = config["train"]
    if any(int(side) % 16 for side in train["size"]):
        raise ConfigError(f"FTP-VM trains on sizes in multiples of 16, got train.size {train['size']!r}")
    if train["hr"] is not None or train["seg_every"]:
        raise ConfigError("FTP-VM has no high-resolution or segmentation steps: set train.hr: null, "
                          "train.seg_every: 0")
