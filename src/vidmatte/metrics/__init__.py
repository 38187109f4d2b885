"""Matting metrics (pure numpy/OpenCV functions) and their aggregation; ``report`` makes the HTML page."""

from .core import SCALES, conn, dtssd, fg_errors, grad, mad, messddt, mse, ssda
from .evaluate import ClipResult, Frame, aggregate, evaluate_clip

__all__ = ["SCALES", "mad", "mse", "grad", "conn", "dtssd", "messddt", "ssda", "fg_errors",
           "Frame", "ClipResult", "evaluate_clip", "aggregate"]
