"""The network families ``vidmatte export CHECKPOINT`` recognises besides RVM, one row each.

A row says how to recognise a checkpoint file (the ``model.kind`` of our training checkpoints, or a parameter name
that only the family's official state dict has), how to load it and how to export it. ``load`` and ``export`` are
``module:function`` names imported only when their row is chosen, so the table costs no PyTorch import:

- ``load(path) -> model`` (eval mode; one-line ``VidmatteError`` for a file it cannot use);
- ``export(model, output, height, width, opset) -> report`` with ``report.paths`` (every file written, the main one
  first) and ``report.summary()`` (one line: what was compared and how closely). The export checks its graphs
  against PyTorch before writing anything, and writes every file under a temporary name first.

A file that no row recognises is left to RVM's export (``backends.export``), which is unchanged.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class ExportableNetwork:
    summary: str
    kinds: tuple[str, ...]  # ``model.kind`` of this family's training checkpoints (``train.kinds``)
    marker: str  # a parameter name only this family's official state dict has
    load: str
    export: str
    opset: int  # the opset used when --opset is not given
    size: tuple[int, int]  # (width, height) of the fixed-size graphs when --size is not given
    also_writes: tuple[str, ...] = ()  # besides OUTPUT: files named OUTPUT's stem + each of these

    def outputs(self, output: str | os.PathLike) -> list[Path]:
        output = Path(output)
        return [output] + [output.with_name(output.stem + suffix) for suffix in self.also_writes]

    def recognises(self, blob: dict) -> bool:
        config = blob.get("config")
        if isinstance(config, dict) and config.get("model", {}).get("kind") in self.kinds:
            return True
        state = blob.get("model") if isinstance(blob.get("model"), dict) else blob
        # official files may wrap the network's keys in a training module's prefix ("model.")
        return any(key == self.marker or str(key).endswith("." + self.marker) for key in state)

    def call(self, role: str, *args):
        module, name = getattr(self, role).split(":")
        return getattr(importlib.import_module(module), name)(*args)


EXPORTABLE: dict[str, ExportableNetwork] = {
    "ftpvm": ExportableNetwork(
        "FTP-VM: two graphs, PATH (one frame + memory + states) and PATH.encode.onnx (memory frames + trimaps)",
        kinds=("ftpvm",), marker="trimap_fuse.gated_convs.0.0.conv.weight",
        load="vidmatte.models.loaders:load_ftpvm", export="vidmatte.backends.export_ftpvm:export_ftpvm_onnx",
        opset=17, size=(512, 288), also_writes=(".encode.onnx",)),
    "dvm": ExportableNetwork(
        "DVM: three graphs, PATH (the matting window) and PATH.trimap_encode.onnx, PATH.trimap.onnx (the trimap "
        "network); sides in multiples of 32, width at least 224",
        kinds=("dvm",), marker="matting.fusion.flow0.off_conv1.weight",
        load="vidmatte.models.loaders:load_dvm", export="vidmatte.backends.export_dvm:export_dvm_onnx",
        opset=17, size=(512, 288), also_writes=(".trimap_encode.onnx", ".trimap.onnx")),
    "tgm": ExportableNetwork(
        "TCVOM's TGM: two graphs, PATH (segment a frame against the memory) and PATH.memorize.onnx (a frame and its "
        "trimap into memory keys and values)",
        kinds=("tgm",), marker="KV_M_r4.Key.weight",
        load="vidmatte.models.loaders:load_tgm", export="vidmatte.backends.export_tgm:export_tgm_onnx",
        opset=17, size=(512, 288), also_writes=(".memorize.onnx",)),
    "bgmv2": ExportableNetwork(
        "BackgroundMattingV2 (with or without ConvLSTMs): one graph, PATH (frame, plate and the ConvLSTM states -> "
        "alpha, foreground, states), the refiner's patch selection inside",
        kinds=("bgmv2",), marker="decoder.conv4.weight",
        load="vidmatte.models.loaders:load_bgmv2", export="vidmatte.backends.export_bgmv2:export_bgmv2_onnx",
        opset=17, size=(512, 288)),
}


def recognise(path: str | os.PathLike) -> tuple[str, ExportableNetwork] | None:
    """The row whose family ``path`` holds, or None (not a checkpoint file, unreadable, or RVM's)."""
    if not str(path).endswith(CHECKPOINT_SUFFIXES) or not os.path.isfile(path):
        return None
    import torch

    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # RVM's loader reads it again and says what is wrong in one line
        return None
    return family_of(blob)


def family_of(blob: object) -> tuple[str, ExportableNetwork] | None:
    """The row whose family a loaded checkpoint (``torch.load``'s result) belongs to, or None."""
    if not isinstance(blob, dict):
        return None
    return next(((name, row) for name, row in EXPORTABLE.items() if row.recognises(blob)), None)
