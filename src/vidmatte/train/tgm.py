"""Training TCVOM's trimap generation module: offline with the project's loop (``model.kind: tgm``) and online on a
clip's own keyframes (``online_finetune``, what ``vidmatte guided --method tgm --finetune-steps N`` runs first).

Both use the official loss (``models.tgm.clip_loss``): the clip's first frame with its true trimap is the memory,
every later frame is segmented from the frames before it and their predictions, and the three-class cross-entropy
of those frames is averaged. Offline, clips are the composer's composited clips and the true trimap comes from their
alpha (``train.ftpvm.true_trimap``: partial alpha plus a band around it is unknown). Online, as the official
``online_finetune_test.py``: each step takes one keyframe at random, makes a three-frame clip of it by random
affine motion and colour changes, and trains every parameter except BatchNorm's (the network stays in eval mode:
"STM disables BN during training") with Adam (weight decay 1e-4) at a constant learning rate.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..guidance.memory import augment
from ..guidance.propagate import FG, UNKNOWN
from ..models.loaders import load_tgm
from ..models.tgm import TrimapGenerationModule, clip_loss
from .ftpvm import true_trimap

FINETUNE_LR = 1e-5  # the official template's 1e-6 suggests 5e-6 and 1e-5 too; we run far fewer steps on a CPU
FINETUNE_WEIGHT_DECAY = 1e-4
FINETUNE_CLIP = 3  # frames per fine-tuning clip (the official make_frames3)
FINETUNE_SIDE = 320  # crop side of a fine-tuning clip (the official 512, smaller for the CPU)


def build_tgm(model_cfg: dict, cache: str | None = None) -> TrimapGenerationModule:
    """init: "scratch" or a checkpoint (the official state dict, or one of ours). No ImageNet ResNet-50 is bundled,
    so there is no "pretrained" start."""
    init = model_cfg["init"]
    if init == "scratch":
        return TrimapGenerationModule()
    return load_tgm(init).train()


def tgm_terms(model, clip: dict, device, downsample_ratio: float) -> dict:
    """The loop's call (``kinds.KINDS["tgm"]``): trimap cross-entropy on the clip, its first frame as the memory."""
    src, pha = clip["src"].to(device), clip["pha"].to(device)
    loss = clip_loss(model, src, true_trimap(pha)[:, :, 0])
    return {"trimap_ce": loss, "total": loss}


def validate_tgm(config: dict) -> None:
    from .config import ConfigError

    train = config["train"]
    if train["hr"] is not None or train["seg_every"]:
        raise ConfigError("the trimap generation module has no high-resolution or segmentation steps: set "
                          "train.hr: null, train.seg_every: 0")
    if int(train["seq_length"]) < 2:
        raise ConfigError("the trimap generation module learns from clips of 2 frames or more (train.seq_length)")
    if config["model"]["init"] == "pretrained":
        raise ConfigError("model.init for tgm is scratch or a checkpoint path (no pretrained ResNet-50 is bundled)")


# --- online fine-tuning on the clip's keyframes ------------------------------------------------------------------
def keyframe_clip(frame: np.ndarray, trimap: np.ndarray, rng: np.random.Generator,
                  side: int = FINETUNE_SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """A short clip made from one keyframe: each frame the previous one moved by a random similarity and recoloured
    (``guidance.memory.augment``), cropped to ``side`` around the unknown band. -> frames [1,T,3,h,w] 0..1,
    classes [1,T,h,w]."""
    frames, trimaps = [frame], [trimap]
    for _ in range(FINETUNE_CLIP - 1):
        view, view_trimap = augment(frames[-1], trimaps[-1], rng)
        frames.append(view)
        trimaps.append(view_trimap)
    window = _crop_window(trimap.shape, trimaps[0] == UNKNOWN, rng, side)
    frames = [f[window] for f in frames]
    classes = [np.where(t == FG, 2, np.where(t == UNKNOWN, 1, 0))[window] for t in trimaps]
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)
    return x[None], torch.from_numpy(np.stack(classes)).long()[None]


def _crop_window(shape: tuple[int, int], unknown: np.ndarray, rng: np.random.Generator, side: int) -> tuple:
    """A ``side`` x ``side`` window (or the whole frame, if smaller) around a random unknown pixel."""
    h, w = shape
    ys, xs = np.nonzero(unknown)
    cy, cx = h // 2, w // 2
    if len(ys):
        pick = int(rng.integers(len(ys)))
        cy, cx = ys[pick], xs[pick]
    top = int(np.clip(cy - side // 2, 0, max(h - side, 0)))
    left = int(np.clip(cx - side // 2, 0, max(w - side, 0)))
    return slice(top, top + side), slice(left, left + side)


def finetune_parameters(model: torch.nn.Module) -> list:
    """What the official online fine-tuning trains: every parameter whose name does not contain "bn"."""
    return [p for name, p in model.named_parameters() if p.requires_grad and "bn" not in name]


def online_finetune(model: TrimapGenerationModule, frames: list[np.ndarray], trimaps: list[np.ndarray],
                    steps: int, lr: float = FINETUNE_LR, seed: int = 0, side: int = FINETUNE_SIDE) -> list[float]:
    """Train ``model`` in place on the keyframes (uint8 RGB frames and their {0,128,255} trimaps) for ``steps``
    steps; returns each step's loss. The model is left in eval mode."""
    rng = np.random.default_rng(seed)
    model.eval()  # BatchNorm keeps its statistics, as in the official fine-tuning
    optimiser = torch.optim.Adam(finetune_parameters(model), lr=lr, weight_decay=FINETUNE_WEIGHT_DECAY)
    losses = []
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(steps):
            pick = int(rng.integers(len(frames)))
            clip, classes = keyframe_clip(frames[pick], trimaps[pick], rng, side)
            device = next(model.parameters()).device  # the matter's device (--device): the clip goes there
            loss = clip_loss(model, clip.to(device), classes.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    return losses


def keyframe_loss(model: TrimapGenerationModule, frames: list[np.ndarray], trimaps: list[np.ndarray],
                  seed: int = 123, clips: int = 2, side: int = FINETUNE_SIDE) -> float:
    """The fine-tuning loss on fixed clips made from the keyframes (the same ones for a given seed)."""
    rng = np.random.default_rng(seed)
    total = 0.0
    with torch.no_grad():
        for i in range(clips * len(frames)):
            clip, classes = keyframe_clip(frames[i % len(frames)], trimaps[i % len(frames)], rng, side)
            total += float(clip_loss(model, clip, classes))
    return total / (clips * len(frames))


def resized(frame: np.ndarray, trimap: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A keyframe and its trimap at the processing size (w, h)."""
    return (cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
            cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST))
