"""The small public API. Everything here calls the same pipeline the CLI uses."""

from __future__ import annotations

from .matters.recurrent import RecurrentMatter
from .models.registry import ModelSpec
from .models.registry import list_models as _list_specs


def list_models() -> list[ModelSpec]:
    """Registered pretrained models (self-describing entries)."""
    return _list_specs()


def load(model: str = "rvm-mobilenetv3", backend: str = "onnxruntime", downsample_ratio: float | None = None,
         threads: int | None = None, device: str = "auto", cache: str | None = None) -> RecurrentMatter:
    """A streaming matter: ``m.step(frame) -> (fgr, pha)``, ``m.reset()``, ``for fgr, pha in m.stream(frames)``.

    frame: uint8 [H,W,3] RGB. fgr: float32 [H,W,3] 0..1; pha: float32 [H,W] 0..1.
    """
    from .backends import open_runner

    return RecurrentMatter(open_runner(model, backend, threads=threads, device=device, cache=cache), downsample_ratio)
