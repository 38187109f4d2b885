"""Classical matting solvers that need no torch: closed-form alpha and multi-level foreground estimation."""

from .closed_form import closed_form_alpha, matting_laplacian
from .foreground import estimate_foreground

__all__ = ["closed_form_alpha", "matting_laplacian", "estimate_foreground"]
