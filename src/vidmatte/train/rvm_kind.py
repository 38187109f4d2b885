"""RVM's row in the training loop's table of network families (``kinds.KINDS["rvm"]``)."""

from __future__ import annotations

from ..models.rvm import MattingNetwork
from .losses import matting_loss


def build_rvm(model_cfg: dict, cache: str | None = None) -> MattingNetwork:
    """init: "scratch", "pretrained" (the converted official weights) or a checkpoint/.safetensors path."""
    init = model_cfg["init"]
    if init == "scratch":
        return MattingNetwork(model_cfg["variant"], model_cfg["refiner"])
    if init == "pretrained":
        if model_cfg["variant"] != "mobilenetv3":
            raise ValueError("converted pretrained weights exist for mobilenetv3 only; use init: scratch or a "
                             "checkpoint path (e.g. the official rvm_resnet50.pth) for resnet50")
        from ..models.convert_onnx import ensure_torch_weights, load_weights

        state, _ = load_weights(ensure_torch_weights(model_cfg["pretrained_model"], cache))
        model = MattingNetwork(model_cfg["variant"], model_cfg["refiner"])
        # strict=False only for a fast guided filter (no parameters) replacing the deep one.
        model.load_state_dict(state, strict=model_cfg["refiner"] == "deep_guided_filter")
        return model
    from ..backends.torch_runner import load_model_file

    loaded = load_model_file(init)
    model = MattingNetwork(model_cfg["variant"], model_cfg["refiner"])
    model.load_state_dict(loaded.state_dict(), strict=model_cfg["refiner"] == loaded.refiner_name)
    return model


def rvm_terms(model, clip: dict, device, downsample_ratio: float) -> dict:
    """One composited clip batch -> RVM's matting loss terms (foreground and alpha)."""
    src = clip["src"].to(device)
    fgr, pha, *_ = model(src, downsample_ratio=downsample_ratio)
    return matting_loss(fgr.float(), pha.float(), clip["fgr"].to(device), clip["pha"].to(device))
