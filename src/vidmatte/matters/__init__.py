"""Per-video objects that own recurrent state and guidance; the networks themselves keep none."""

from .recurrent import RecurrentMatter, auto_downsample_ratio

__all__ = ["RecurrentMatter", "auto_downsample_ratio"]
