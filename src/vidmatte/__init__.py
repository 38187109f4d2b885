"""vidmatte: alpha mattes and foregrounds from any video.

Public API (RVM-compatible where RVM has a name for it)::

    import vidmatte
    vidmatte.convert_video("rvm-mobilenetv3", input_source="in.mp4", output_composition="out.mp4")
    m = vidmatte.load("rvm-mobilenetv3")
    for fgr, pha in m.stream(frames): ...
    vidmatte.convert_guided("in.mp4", keyframes={0: "mask.png"}, output_alpha="pha/", work="work/")
    g = vidmatte.load_guided(keyframe="mask.png"); fgr, pha = g.step(frame)
    vidmatte.convert_background("in.mp4", plate="plate.png", output_alpha="pha/")
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["convert_video", "convert_guided", "convert_background", "load", "load_guided", "list_models",
           "__version__"]
_API = ("convert_video", "convert_guided", "convert_background", "load", "load_guided", "list_models")


def __getattr__(name: str):
    # Lazy: `import vidmatte` must not import onnxruntime or av.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'vidmatte' has no attribute {name!r}")
