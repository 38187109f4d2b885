"""Reading each network family's checkpoint into its network, in eval mode: the official state dicts and the training
checkpoints of ours ({"model", "model_args", ...}). The matters run them, the trainers start from them (``train``),
the exporters export them (``backends.exporters``). A file a loader cannot use is a one-line ``ModelError`` (a
missing ``--checkpoint``: ``UsageError``). RVM's loader is ``backends.torch_runner.load_model_file``.

Network code (PyTorch) is imported inside each loader, so importing this module costs no PyTorch import.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from ..errors import ModelError, UsageError

RVM_INIT = "rvm-init"  # FTP-VM's --checkpoint for a network whose encoder is RVM's, every other layer untrained
# --method neural without --checkpoint (the plate matter says it before anything loads)
NO_WEIGHTS = ("--method neural needs --checkpoint PATH: no BackgroundMattingV2 weights are bundled (an official "
              "pytorch_*.pth state dict, or a checkpoint of `vidmatte train` with model.kind bgmv2)")


def read_weights(checkpoint: str) -> object:
    """What a network's ``--checkpoint`` file holds (tensors and plain data only: no pickled code is run); a missing
    or unreadable file is a one-line ``ModelError``."""
    from ..backends.torch_runner import read_torch_file

    return read_torch_file(checkpoint)


# --- TCVOM's trimap generation module ---------------------------------------------------------------------------------
def load_tgm(checkpoint: str):
    """The STM network in eval mode from ``checkpoint``: the official state dict (``STM`` keys, or the training
    wrapper's ``model.``-prefixed ones) or a training checkpoint of ours. Anything else: ModelError."""
    from .tgm import TrimapGenerationModule

    blob = read_weights(checkpoint)
    state = blob["model"] if isinstance(blob, dict) and "model_args" in blob else blob
    if isinstance(state, dict) and state and all(k.startswith("model.") or k in ("IMG_MEAN", "IMG_STD")
                                                 for k in state):
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}  # FullModel's keys
    model = TrimapGenerationModule()
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelError(f"{checkpoint} is not a TCVOM trimap generation module checkpoint: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.eval()


# --- DVM --------------------------------------------------------------------------------------------------------------
def load_dvm(checkpoint: str | None):
    """Both networks (``models.dvm.DeepVideoMattingSystem``) in eval mode from a training checkpoint of ours."""
    from .dvm import DeepVideoMattingSystem

    if not checkpoint:
        raise UsageError("--method dvm needs --checkpoint PATH: no official DVM weights are bundled (train both "
                         "networks with model.kind: dvm, see docs/DVM.md)")
    blob = read_weights(checkpoint)
    if not isinstance(blob, dict) or "model_args" not in blob:
        if isinstance(blob, dict) and any(str(k).startswith("fusion.flow0.") for k in blob):
            raise ModelError(f"{checkpoint} holds DVM's matting network only (the official release has no trimap "
                             "propagation weights): train both with model.kind: dvm starting from it (docs/DVM.md)")
        raise ModelError(f"{checkpoint} is not a DVM checkpoint")
    args = dict(blob["model_args"])
    if set(args) != {"matting", "trimap"}:
        raise ModelError(f"{checkpoint} is not a DVM checkpoint (it holds another network)")
    model = DeepVideoMattingSystem(**args)
    try:
        model.load_state_dict(blob["model"], strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{checkpoint} is not a DVM checkpoint: {str(exc).splitlines()[0]}") from None
    return model.eval()


# --- FTP-VM -----------------------------------------------------------------------------------------------------------
def load_ftpvm(checkpoint: str | None, cache: str | None = None, warn: Callable[[str], None] | None = None):
    """The network in eval mode, from ``checkpoint`` (a file, or ``rvm-init``). No checkpoint: UsageError."""
    from .ftpvm import FastTrimapPropagationVideoMatting

    if not checkpoint:
        raise UsageError("--method ftpvm needs --checkpoint ftpvm.pth: no official FTP-VM weights are bundled "
                         f"(or --checkpoint {RVM_INIT} for a network untrained beyond RVM's encoder)")
    if checkpoint == RVM_INIT:
        from .convert_onnx import load_pretrained

        model = FastTrimapPropagationVideoMatting()
        model.init_backbone_from_rvm(load_pretrained("rvm-mobilenetv3", cache, quiet=True).state_dict())
        (warn or logging.getLogger("vidmatte").warning)(
            "FTP-VM with only RVM's encoder: every other layer is untrained, the mattes mean nothing")
        return model.eval()
    blob = read_weights(checkpoint)
    state, args = (blob["model"], dict(blob["model_args"])) if "model_args" in blob else (blob, {})
    model = FastTrimapPropagationVideoMatting(**args)
    # The official footage script drops a training-time refiner's weights the same way.
    state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{checkpoint} is not an FTP-VM checkpoint: {str(exc).splitlines()[0]}") from None
    return model.eval()


# --- BackgroundMattingV2 ----------------------------------------------------------------------------------------------
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
    from .bgmv2 import MattingBase, MattingRefine

    args = dict(args)
    refine = args.pop("refine", "backbone_scale" in args)
    return MattingRefine(**args) if refine else MattingBase(args["backbone"], args.get("convlstm", False))


def load_bgmv2(checkpoint: str | None, convlstm: bool = False):
    """The network in eval mode. convlstm: give an official BGMv2 checkpoint the ConvLSTM modules, freshly
    initialised (a start for training; its mattes are not BGMv2's until trained)."""
    from ..backends.torch_runner import read_weights_file
    from .bgmv2 import load_bgmv2_state

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
