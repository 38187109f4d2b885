"""Training DVM with the project's loop (``train.loop.Trainer``, config ``model.kind: dvm``): both networks at once.

Matting network: each composited clip of T frames is one official chunk: frames 0 .. shift-1 are the first
target's neighbours and the losses are on frames shift .. T-1 (the seed's ``--n_frames`` targets), each fed with
its trimap made from the true alpha (``train.ftpvm.true_trimap``: a band around partial alpha, where the seed
erodes and dilates with a random kernel). The terms are the ones the seed's README switches on, with its weights
(``models/matting_model.py``): alpha Charbonnier (unknown region x1, definite x0.5), composition (x0.5, in
ImageNet-normalised colour), Sobel gradient, KL divergence, temporal (differences of consecutive frames, MSE) and
the refinement stage's alpha term. Trimap network: the clip's first frame with its true trimap is the reference,
every frame a query; 3-class cross-entropy (the paper's trimap loss; the seed publishes no training code for it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .ftpvm import trimap_levels, true_trimap

SOFT_WEIGHT, HARD_WEIGHT = 1.0, 0.5  # the seed's --soft_weight, --hard_weight defaults
COMP_WEIGHT = 0.5  # the README's --comp_weight 0.5
EPS = 1e-12


def build_dvm(model_cfg: dict, cache: str | None = None):
    """init: "scratch"; "pretrained" (the trimap network's encoder from RVM, the matting network untrained: the
    seed's ImageNet ResNet-50 start is not on PyPI); or a file: a checkpoint of ours, or the official matting
    state dict (``*_net_Base.pth``, loaded strictly; the trimap network then starts from RVM's encoder)."""
    from ..models.dvm import DeepVideoMattingSystem

    init = model_cfg["init"]
    system = DeepVideoMattingSystem(matting={"width_divisor": int(model_cfg["width_divisor"])})
    if init == "scratch":
        return system
    if init != "pretrained":
        blob = torch.load(init, map_location="cpu", weights_only=True)
        if "model_args" in blob:
            from ..models.loaders import load_dvm

            return load_dvm(init).train()
        system.matting.load_state_dict(blob, strict=True)
    from ..models.convert_onnx import load_pretrained

    system.trimap.init_encoder_from_rvm(load_pretrained(model_cfg["pretrained_model"], cache, quiet=True).state_dict())
    return system


def charbonnier(x: Tensor) -> Tensor:
    return torch.sqrt(x * x + EPS)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """The seed's normalisation: sum over the mask / (its size + 1)."""
    return (x * mask).sum() / (mask.sum() + 1)


def sobel_magnitude(x: Tensor) -> Tensor:
    """[N,1,H,W] -> gradient magnitude with normalised 3x3 Sobel kernels, replicated borders (kornia's Sobel)."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype) / 8
    kernels = torch.stack([gx, gx.t()])[:, None]
    grad = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt((grad * grad).sum(dim=1, keepdim=True) + 1e-6)


def alpha_terms(pred: Tensor, alpha: Tensor, unknown: Tensor) -> Tensor:
    """The seed's ``gen_diff_loss``: Charbonnier on the unknown region plus half of it on the definite ones."""
    error = charbonnier(pred - alpha)
    return SOFT_WEIGHT * masked_mean(error, unknown) + HARD_WEIGHT * masked_mean(error, 1 - unknown)


def matting_terms(coarse: Tensor, refined: Tensor, clip: dict, shift: int) -> dict:
    """Targets' alpha [N,1,H,W] (coarse and refined) against the clip's frames shift.. ({"src", "fgr", "bgr",
    "pha"} [B,T,...]) -> the seed's loss terms."""
    take = lambda name: clip[name][:, shift:].flatten(0, 1)  # noqa: E731 (the targets of each clip, in order)
    alpha, src, fgr, bgr = take("pha"), take("src"), take("fgr"), take("bgr")
    unknown = (true_trimap(alpha) == 1).float()
    comp = coarse * fgr + (1 - coarse) * bgr
    mean = torch.tensor([0.485, 0.456, 0.406], device=src.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=src.device).view(1, 3, 1, 1)
    comp_error = charbonnier((comp - mean) / std - (src - mean) / std)
    sobel_mask = unknown * (sobel_magnitude(alpha) - sobel_magnitude(coarse).detach()).abs() * 2
    pred_p = (coarse + 1e-10) / (coarse.sum() + 1e-5)
    alpha_p = (alpha + 1e-10) / (alpha.sum() + 1e-5)
    targets = coarse.unflatten(0, (clip["pha"].shape[0], -1))
    true = alpha.unflatten(0, targets.shape[:2])
    return {
        "alpha": alpha_terms(coarse, alpha, unknown),
        "comp": COMP_WEIGHT * masked_mean(comp_error, unknown) / 3,
        "grad": (coarse * sobel_mask - alpha * sobel_mask).abs().sum() / (sobel_mask.sum() + 1),
        "kld": F.kl_div(pred_p.log(), alpha_p, reduction="sum"),
        "temp": F.mse_loss(targets[:, 1:] - targets[:, :-1], true[:, 1:] - true[:, :-1]),
        "refine": alpha_terms(refined, alpha, unknown),
    }


def dvm_terms(model, clip: dict, device, downsample_ratio: float = 1.0) -> dict:
    """The loop's call (``kinds.KINDS["dvm"]``): both networks' terms and ``total``."""
    clip = {k: v.to(device) for k, v in clip.items()}
    src, pha = clip["src"], clip["pha"]
    classes = true_trimap(pha)
    matting = model.matting
    coarse, refined = matting(matting.network_input(src, trimap_levels(classes)))
    loss = matting_terms(coarse, refined, clip, matting.shift)
    logits = model.trimap(src, src[:, :1], trimap_levels(classes[:, :1]))
    loss["trimap_ce"] = F.cross_entropy(logits.flatten(0, 1), classes.flatten(0, 1)[:, 0])
    loss["total"] = sum(loss.values())
    return loss


def validate_dvm(config: dict) -> None:
    from ..models.dvm import MIN_WIDTH, MULTIPLE, SHIFT
    from .config import ConfigError

    train = config["train"]
    height, width = (int(s) for s in train["size"])
    if height % MULTIPLE or width % MULTIPLE or width < MIN_WIDTH:
        raise ConfigError(f"DVM trains on sizes in multiples of {MULTIPLE} with a width of at least {MIN_WIDTH}, "
                          f"got train.size {train['size']!r}")
    if train["seq_length"] < SHIFT + 2:
        raise ConfigError(f"DVM's clips are {SHIFT} neighbours plus at least two targets (for the temporal term): "
                          f"train.seq_length >= {SHIFT + 2}, got {train['seq_length']}")
    if train["hr"] is not None or train["seg_every"]:
        raise ConfigError("DVM has no high-resolution or segmentation steps: set train.hr: null, train.seg_every: 0")
