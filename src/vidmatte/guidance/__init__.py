"""Guidance input: trimaps and object masks given on a few keyframes, read into clean trimaps by frame index.

``formats`` reads one image (any trimap or mask format) into a uint8 {0,128,255} trimap at the frame size;
``keyframes`` parses the keyframe specs (``INDEX:PATH``, a folder of ``00012.png``, a TCVOM workspace) into a
``Keyframes`` guidance source; both are pure numpy/OpenCV/Pillow, no model. ``propagate`` carries a keyframe's
trimap from frame to frame by optical flow (no weights); ``memory`` adds a memory of the pretrained RVM encoder's
features (its ONNX weights; PyTorch only to fine-tune the memory's heads) that re-finds a subject the flow lost.
Importing the package imports ``formats`` and ``keyframes`` only.
"""

from ..errors import GuidanceError
from .formats import default_band, read_guidance, trimap_from_grey, trimap_from_mask
from .keyframes import Keyframes, TcvomWorkspace, detect_tcvom, load_keyframes, parse_spec, read_keyframes

__all__ = ["GuidanceError", "Keyframes", "TcvomWorkspace", "default_band", "detect_tcvom", "load_keyframes",
           "parse_spec", "read_guidance", "read_keyframes", "trimap_from_grey", "trimap_from_mask"]
