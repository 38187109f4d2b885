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

import numpy as np

from ..matte import DenseMatte
from .plate import PlateMatter

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

