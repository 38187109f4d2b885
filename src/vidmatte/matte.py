"""One frame's matting result, turned into pictures only when (and as) they are needed.

A runner hands over either dense results (fgr and pha at full size, as the official graph or PyTorch make them) or,
on the fast ONNX path, the frame plus the guided filter's low-resolution coefficients, from which the composition
is made in one pass (``vidmatte.models.rvm_tail``). The writer asks for the pictures its outputs need;
both kinds answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .compose import alpha_to_u8, composite, planes_to_rgb_u8
from .io.probe import LARGE_FRAME_PIXELS


@dataclass
class Pictures:
    """What the writer asked for; fields not asked for are None."""

    composition: np.ndarray | None = None  # uint8 [H,W,3]
    foreground: np.ndarray | None = None  # uint8 [H,W,3]
    alpha: np.ndarray | None = None  # float32 [H,W] 0..1
    alpha_u8: np.ndarray | None = None  # uint8 [H,W]
    trimap: np.ndarray | None = None  # uint8 [H,W] {0,128,255}: the guidance the alpha was solved from, if any
    foreground_float: np.ndarray | None = None  # float32 [H,W,3] 0..1, for 16-bit and EXR outputs (outputs.py)


def check_background(background: np.ndarray | None, height: int, width: int) -> None:
    """A composition background must be uint8 [H,W,3] at the frame's size, or one colour pixel [1,1,3]."""
    if background is None:
        return
    if not isinstance(background, np.ndarray) or background.dtype != np.uint8:
        raise ValueError(f"background must be a uint8 numpy array, got "
                         f"{getattr(background, 'dtype', type(background).__name__)}")
    if background.shape not in ((height, width, 3), (1, 1, 3)):
        raise ValueError(f"background must be uint8 [{height},{width},3] (the frame's size) or one colour "
                         f"[1,1,3], got {list(background.shape)}")


class Matte:
    # Whether ``pictures`` composites over a solid colour given as one pixel [1,1,3] without making it full size.
    takes_colour_pixel = False
    shape: tuple[int, int]  # (height, width) of the frame

    def trim(self, foreground: bool) -> "Matte":
        """Drop what no output will ask for (``foreground=False``) before the result waits for the writer."""
        return self

    def pictures(self, background: np.ndarray | None = None, foreground: bool = False,
                 alpha: bool = False) -> Pictures:
        """background uint8 [H,W,3] (or [1,1,3]) -> the composition over it; plus foreground/alpha if asked."""
        raise NotImplementedError

    def foreground(self) -> np.ndarray:
        """float32 [H,W,3] 0..1."""
        raise NotImplementedError

    def alpha(self) -> np.ndarray:
        """float32 [H,W] 0..1."""
        raise NotImplementedError

    def foreground_and_alpha(self) -> tuple[np.ndarray, np.ndarray]:
        return self.foreground(), self.alpha()


class DenseMatte(Matte):
    """fgr as the network made it (float [3,H,W]) or already packed to uint8 [H,W,3]; pha float [H,W]."""

    def __init__(self, fgr: np.ndarray | None, pha: np.ndarray, trimap: np.ndarray | None = None):
        self.fgr, self.pha, self.trimap = fgr, pha, trimap
        self.shape = pha.shape

    def trim(self, foreground: bool) -> "DenseMatte":
        """No fgr when nothing uses it; above 1440p fgr is packed to uint8 at once: the float planes (100 MB at 4K)
        waiting for the writer would otherwise dominate peak memory (benchmarks/memory_4k.py)."""
        if not foreground:
            self.fgr = None
        elif self.fgr is not None and self.fgr.dtype != np.uint8 and self.pha.size > LARGE_FRAME_PIXELS:
            self.fgr = planes_to_rgb_u8(self.fgr)
        return self

    def pictures(self, background=None, foreground=False, alpha=False) -> Pictures:
        check_background(background, *self.shape)
        if (background is not None or foreground) and self.fgr is None:
            raise ValueError("this matte was trimmed to alpha only; it has no foreground to composite")
        fgr_u8 = None
        if background is not None or foreground:
            fgr_u8 = self.fgr if self.fgr.dtype == np.uint8 else planes_to_rgb_u8(self.fgr)
        comp = None
        if background is not None:
            if background.shape[:2] != self.pha.shape:  # a colour pixel from an API caller
                background = np.broadcast_to(background, (*self.pha.shape, 3)).copy()
            comp = composite(fgr_u8, self.pha, background)
        return Pictures(comp, fgr_u8 if foreground else None, self.pha if alpha else None,
                        alpha_to_u8(self.pha) if alpha else None, self.trimap)

    def foreground(self) -> np.ndarray:
        if self.fgr.dtype == np.uint8:
            return self.fgr.astype(np.float32) / 255
        return self.fgr.transpose(1, 2, 0)

    def alpha(self) -> np.ndarray:
        return self.pha


class SolvedMatte(Matte):
    """An alpha solved from guidance, with the foreground colours estimated only if an output needs them.

    The estimate (``estimate(frame, alpha) -> float32 [H,W,3]``) is as costly as the solve itself at 1080p; made
    here, it runs on the writer's thread while the caller's thread solves the next frame, and not at all for
    alpha-only or trimap-only outputs.
    """

    def __init__(self, frame: np.ndarray, pha: np.ndarray, estimate, trimap: np.ndarray | None = None):
        self.frame, self.pha, self.trimap, self._estimate = frame, pha, trimap, estimate
        self.shape = pha.shape
        self._fgr: np.ndarray | None = None

    def trim(self, foreground: bool) -> "SolvedMatte":
        if not foreground:
            self.frame = None  # nothing will ask for colours: let the frame go
        return self

    def pictures(self, background=None, foreground=False, alpha=False) -> Pictures:
        check_background(background, *self.shape)
        fgr_u8 = comp = None
        if background is not None or foreground:
            fgr_u8 = cv2.convertScaleAbs(self.foreground(), alpha=255.0)  # rounds as DenseMatte's does
        if background is not None:
            if background.shape[:2] != self.shape:  # a colour pixel from an API caller
                background = np.broadcast_to(background, (*self.shape, 3)).copy()
            comp = composite(fgr_u8, self.pha, background)
        return Pictures(comp, fgr_u8 if foreground else None, self.pha if alpha else None,
                        alpha_to_u8(self.pha) if alpha else None, self.trimap)

    def foreground(self) -> np.ndarray:
        if self._fgr is None:
            if self.frame is None:
                raise ValueError("this matte was trimmed to alpha only; it has no foreground to composite")
            self._fgr = self._estimate(self.frame, self.pha)
        return self._fgr

    def alpha(self) -> np.ndarray:
        return self.pha


class CoefficientMatte(Matte):
    """The frame (uint8 [H,W,3]) and the guided filter's coefficients (float32 [8,h,w]): a few hundred KB."""

    takes_colour_pixel = True

    def __init__(self, frame: np.ndarray, coefficients: np.ndarray):
        self.frame, self.coefficients = frame, coefficients
        self.shape = frame.shape[:2]

    def pictures(self, background=None, foreground=False, alpha=False) -> Pictures:
        check_background(background, *self.shape)
        from .models import rvm_tail  # numba loads only on this path

        made = rvm_tail.apply(self.frame, self.coefficients, background=background,
                            composition=background is not None, foreground_u8=foreground, alpha=alpha,
                            alpha_u8=alpha)
        return Pictures(made.get("composition"), made.get("foreground_u8"), made.get("alpha"),
                        made.get("alpha_u8"))

    def foreground(self) -> np.ndarray:
        return self.foreground_and_alpha()[0]

    def alpha(self) -> np.ndarray:
        return self.foreground_and_alpha()[1]

    def foreground_and_alpha(self) -> tuple[np.ndarray, np.ndarray]:
        from .models import rvm_tail

        made = rvm_tail.apply(self.frame, self.coefficients, foreground=True, alpha=True)  # one pass for both
        return made["foreground"], made["alpha"]


class LayeredMatte(Matte):
    """Several objects' mattes of one frame (``matters.guided_objects``): ``layer(id)`` is one object's matte, as
    a one-object run makes it; the matte itself is all of them together (alpha the sum of theirs, which never
    exceeds 1; colours mixed by alpha), for outputs and previews that show the whole subject."""

    def __init__(self, frame: np.ndarray, layers: dict):
        from .matters.guided_objects import mixed_foreground

        self.layers = layers
        self.shape = frame.shape[:2]
        total = None
        for matte in layers.values():
            total = matte.alpha().copy() if total is None else cv2.add(total, matte.alpha())
        trimaps = [m.trimap for m in layers.values() if m.trimap is not None]
        trimap = np.maximum.reduce(trimaps) if trimaps else None
        self.whole = SolvedMatte(frame, np.minimum(total, 1.0), lambda f, _: mixed_foreground(self.layers, f), trimap)

    def layer(self, object_id) -> Matte:
        return self.layers[object_id]

    def trim(self, foreground: bool) -> "LayeredMatte":
        for matte in self.layers.values():
            matte.trim(foreground)
        self.whole.trim(foreground)
        return self

    def pictures(self, background=None, foreground=False, alpha=False) -> Pictures:
        return self.whole.pictures(background, foreground, alpha)

    def foreground(self) -> np.ndarray:
        return self.whole.foreground()

    def alpha(self) -> np.ndarray:
        return self.whole.alpha()
