"""Training BackgroundMattingV2 (with the seed's ConvLSTMs) in the project's loop (``model.kind: bgmv2``).

The plate of each composited clip is its background's first frame, held still: the clip's own background moves
under it by the camera motion the augmentation adds (``motion_bg``, a small jitter in the configs), so the network
learns to read a plate that is close to, not exactly, the scene behind the subject, as an aligned real plate is.

Losses, as the official training scripts define them (BackgroundMattingV2 ``train_base.py`` / ``train_refine.py``;
the seed trains its ConvLSTM base with the former): alpha L1, L1 between the Sobel gradient magnitudes of predicted
and true alpha, foreground L1 where the true alpha is not 0, and the error map's MSE against the base's actual alpha
error (detached for the base alone; the refine script leaves the coarse alpha in the graph there, and so do we).
``MattingRefine`` adds each of the first three terms again for the coarse outputs against the truth resized to their
size, and its error target is the coarse alpha, upsampled, against the full-resolution truth. Clips are whole
sequences: the ConvLSTM state starts at zero on each clip and runs through its frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SOBEL_EPS = 1e-6


def build_bgmv2_model(model_cfg: dict, cache: str | None = None):
    """init: "scratch", or a checkpoint (an official BGMv2 .pth: the ConvLSTMs start fresh; or one of ours)."""
    from ..models.loaders import build_bgmv2, load_bgmv2

    settings = dict(model_cfg["bgmv2"])
    mode = settings.pop("refine_mode")
    args = {"backbone": model_cfg["variant"], "convlstm": settings.pop("convlstm")}
    if mode is not None:
        args.update(refine=True, backbone_scale=settings.pop("backbone_scale"), refine_mode=mode,
                    **{f"refine_{k[len('refine_'):]}": v for k, v in settings.items()})
    else:
        args["refine"] = False
    model = build_bgmv2(args)
    if model_cfg["init"] != "scratch":
        loaded = load_bgmv2(model_cfg["init"], convlstm=args["convlstm"])
        model.load_state_dict(loaded.state_dict(), strict=True)
    return model


def sobel_magnitude(x: Tensor) -> Tensor:
    """|gradient| of x [N,1,H,W] with Sobel kernels normalised by 8 and edge-replicated borders (kornia's
    ``sobel``, which the official scripts use)."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=x.device, dtype=x.dtype) / 8
    kernels = torch.stack([kx, kx.t()])[:, None]
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return (g.square().sum(1, keepdim=True) + SOBEL_EPS).sqrt()


def _matte_terms(pha: Tensor, fgr: Tensor, true_pha: Tensor, true_fgr: Tensor, suffix: str = "") -> dict:
    mask = (true_pha != 0).to(fgr.dtype)
    return {f"pha_l1{suffix}": F.l1_loss(pha, true_pha),
            f"pha_sobel{suffix}": F.l1_loss(sobel_magnitude(pha), sobel_magnitude(true_pha)),
            f"fgr_l1{suffix}": F.l1_loss(fgr * mask, true_fgr * mask)}


def base_loss(pha: Tensor, fgr: Tensor, err: Tensor, true_pha: Tensor, true_fgr: Tensor) -> dict:
    """train_base.py's loss; all [N,C,H,W]."""
    terms = _matte_terms(pha, fgr, true_pha, true_fgr)
    terms["err_mse"] = F.mse_loss(err, (pha.detach() - true_pha).abs())
    terms["total"] = sum(terms.values())
    return terms


def refine_loss(pha: Tensor, fgr: Tensor, pha_sm: Tensor, fgr_sm: Tensor, err_sm: Tensor, true_pha: Tensor,
                true_fgr: Tensor) -> dict:
    """train_refine.py's loss; all [N,C,H,W], the ``_sm`` ones at the base's size."""
    def small(x: Tensor) -> Tensor:
        return F.interpolate(x, size=pha_sm.shape[-2:], mode="bilinear", align_corners=False)

    def large(x: Tensor) -> Tensor:
        return F.interpolate(x, size=true_pha.shape[-2:], mode="bilinear", align_corners=False)

    terms = {**_matte_terms(pha, fgr, true_pha, true_fgr),
             **_matte_terms(pha_sm, fgr_sm, small(true_pha), small(true_fgr), "_sm")}
    terms["err_mse"] = F.mse_loss(large(err_sm), (large(pha_sm) - true_pha).abs())
    terms["total"] = sum(terms.values())
    return terms


def clip_plate(bgr: Tensor) -> Tensor:
    """[B,T,3,H,W] backgrounds -> the plate: the first frame, still, for every frame."""
    return bgr[:, :1].expand_as(bgr).contiguous()


def bgmv2_terms(model, clip: dict, device, downsample_ratio: float) -> dict:
    """The loop's call (``kinds.KINDS["bgmv2"]``): one composited clip batch -> the loss terms. The network picks
    its own working scale (backbone_scale), so the loop's downsample ratio does not apply."""
    from ..models.bgmv2 import MattingRefine

    src, true_pha, true_fgr = (clip[k].to(device) for k in ("src", "pha", "fgr"))
    plate = clip_plate(clip["bgr"].to(device))
    outputs = model(src, plate)
    flat = [t.flatten(0, 1) for t in (*outputs[:6 if isinstance(model, MattingRefine) else 3],
                                      true_pha, true_fgr)]
    if isinstance(model, MattingRefine):
        pha, fgr, pha_sm, fgr_sm, err_sm, _, tp, tf = flat
        return refine_loss(pha, fgr, pha_sm, fgr_sm, err_sm, tp, tf)
    pha, fgr, err, tp, tf = flat
    return base_loss(pha, fgr, err, tp, tf)


def validate_bgmv2(config: dict) -> None:
    from ..models.bgmv2 import BACKBONES, REFINE_MODES
    from .config import ConfigError

    model, train = config["model"], config["train"]
    if model["variant"] not in BACKBONES:
        raise ConfigError(f"bgmv2 trains model.variant {', '.join(BACKBONES)}, got {model['variant']!r}")
    settings = model["bgmv2"]
    if settings["refine_mode"] not in (*REFINE_MODES, None):
        raise ConfigError(f"model.bgmv2.refine_mode must be one of {', '.join(REFINE_MODES)} or null")
    if model["init"] == "pretrained":
        raise ConfigError("bgmv2 has no bundled pretrained weights: model.init scratch or a checkpoint path")
    if any(int(side) % 4 for side in train["size"]):
        raise ConfigError(f"bgmv2 trains on sizes in multiples of 4, got train.size {train['size']!r}")
    if train["hr"] is not None or train["seg_every"]:
        raise ConfigError("bgmv2 has no high-resolution or segmentation steps: set train.hr: null, "
                          "train.seg_every: 0")
