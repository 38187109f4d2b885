"""Optional dependencies: one place that says which extra a feature needs, in one line, before any work starts.

The core install (``pip install -e .``, what ``make demo`` sets up) runs every classical mode: convert, guided
(classical), background (classical). The networks written in PyTorch, the page, Ray and the evaluation tools need
an extra. vidmatte is installed from its clone, so the hint names the clone's install command, not a PyPI package.
"""

from __future__ import annotations

import importlib.util

from .errors import UsageError

# extra -> (the module whose absence means the extra is missing, what to call it in the message)
EXTRAS = {
    "torch": ("torch", "PyTorch"),
    "train": ("torch", "PyTorch"),
    "web": ("fastapi", "FastAPI and uvicorn"),
    "ray": ("ray", "Ray"),
    "eval": ("scipy", "scipy"),
    "exr": ("OpenEXR", "the OpenEXR package"),
}


def install_hint(extra: str) -> str:
    return f".venv/bin/pip install -e '.[{extra}]' in the vidmatte clone"


def missing(extra: str, module: str | None = None) -> bool:
    module = module or EXTRAS[extra][0]
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing, or a half-removed module
        return True


def require(extra: str, purpose: str, module: str | None = None) -> None:
    """A one-line UsageError (exit 2) naming the extra when ``purpose`` cannot run on this install."""
    if missing(extra, module):
        what = module or EXTRAS[extra][1]
        raise UsageError(f"{purpose} needs {what}, from the '{extra}' extra: {install_hint(extra)}")
