"""``vidmatte background --method neural``: BackgroundMattingV2 (or its ConvLSTM variant) mattes each frame against
the aligned plate.

The plate is aligned to every frame exactly as the classical method does it (``PlateMatter.prepare``: features,
homography, ECC translation, gain/bias when it pays, on the decoder's thread), then the network sees frame and plate
together. The ConvLSTM variant's state is carried from frame to frame through the writing pass and cleared by
``reset``. Frames are padded (edge pixels repeated) to multiples of 4, as the refiner needs, and cropped back. Where
a pan leaves part of the frame outside the plate, the frame itself stands in for the plate there: no evidence of a
subject, so those pixels read as background.

Checkpoints: an official BackgroundMattingV2 state dict (``.pth``; backbone, refiner and ConvLSTMs recognised from
its keys) or a training checkpoint of ours ({"model", "model_args"}). No weights are bundled.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ModelError, UsageError
from ..matte import DenseMatte
from .plate import PlateMatter

NO_WEIGHTS = ("--method neural needs --checkpoint PATH: no BackgroundMattingV2 weights are bundled (an official "
              "pytorch_*.pth state dict, or a checkpoint of `vidmatte train` with model.kind bgmv2)")


def args_from_keys(state: dict) -> dict:
    """The constructor arguments an official state dict implies: backbone, base or refine, ConvLSTMs."""
    keys = set(state)
    if "backbone.features.0.0.weight" in keys:
        backbone = "mobilenetv2"
    elif "backbone.layer3.22.conv1.weight" in keys:
        backbone = "resnet101"
    else:
        backbone = "resnet50"
    return {"backbone": backbone, "convlstm": any(".convLSTM" in k for k in keys),
            "refine": "refiner.conv1.weight" in keys}


def build_bgmv2(args: dict):
    """A network from checkpoint arguments ({"refine": False} or no backbone_scale: the base alone)."""
    from ..models.bgmv2 import MattingBase, MattingRefine

    args = dict(args)
    refine = args.pop("refine", "backbone_scale" in args)
    return MattingRefine(**args) if refine else MattingBase(args["backbone"], args.get("convlstm", False))


def load_bgmv2(checkpoint: str | None, convlstm: bool = False):
    """The network in eval mode. convlstm: give an official BGMv2 checkpoint the ConvLSTM modules, freshly
    initialised (a start for training; its mattes are not BGMv2's until trained)."""
    from ..backends.torch_runner import read_weights_file
    from ..models.bgmv2 import load_bgmv2_state

    if not checkpoint:
        raise UsageError(NO_WEIGHTS)
    if not os.path.isfile(checkpoint):
        raise UsageError(f"checkpoint not found: {checkpoint}")
    state, args = read_weights_file(checkpoint)
    if args is not None:
        args["refine"] = "refiner.conv1.weight" in state
    else:
        args = args_from_keys(state)
        args["convlstm"] = args["convlstm"] or convlstm
    model = build_bgmv2(args)
    try:
        load_bgmv2_state(model, state)
    except RuntimeError as exc:
        raise ModelError(f"{checkpoint} is not a BackgroundMattingV2 checkpoint: {str(exc).splitlines()[0]}") \
            from None
    return model.eval()


def pad_to_4(x, multiple: int = 4):
    """[N,C,H,W] -> padded with its edge pixels at the bottom and right to a multiple of 4."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


class NeuralPlateMatter(PlateMatter):
    """Mattes whatever differs from ``plate`` with a BGMv2 network (``MattingRefine`` or ``MattingBase``)."""

    def __init__(self, plate: np.ndarray, model, align: bool = True):
        self.model = model
        super().__init__(plate, prior=None, align=align)

    def reset(self) -> None:
        super().reset()
        self._state = None

    def _matte_frame(self, frame: np.ndarray, aligned) -> DenseMatte:
        import torch

        plate = aligned.plate if aligned.valid is None else np.where(aligned.valid[..., None], aligned.plate, frame)
        src, bgr = (pad_to_4(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255) for a in (frame, plate))
        with torch.inference_mode():
            outputs = self.model(src, bgr, self._state) if self.model.convlstm else self.model(src, bgr)
        if self.model.convlstm:
            self._state = outputs[-1]
        h, w = frame.shape[:2]
        pha, fgr = outputs[0][0, 0, :h, :w].numpy(), outputs[1][0, :, :h, :w].numpy()
        self._count(aligned)
        return DenseMatte(np.ascontiguousarray(fgr), np.ascontiguousarray(pha))

    def _count(self, aligned) -> None:
        stats = self._stats
        stats["frames"] += 1
        stats["unmatched"] += not aligned.matched
        stats["gain"] += aligned.gain is not None
        stats["residual"] += aligned.residual

    def summary(self) -> dict:
        summary = super().summary()
        summary.pop("person_share")  # no person prior in this method
        return summary

