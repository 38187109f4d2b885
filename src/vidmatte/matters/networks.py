"""The trained networks `vidmatte guided --method` can run instead of the classical propagate-and-solve method.

One row per network: the matter factory (``module:function``, imported only when chosen, so the table costs no
PyTorch import) and the line ``--help`` shows. A factory is called as
``factory(job, keyframes, checkpoint, cache=..., warn=..., options=...)`` with the checked ``pipeline.Job``, the
loaded ``guidance.Keyframes``, the ``--checkpoint`` value and ``options``, the method settings the command line
shares with the memory propagator (``mem_every``, ``max_memory``, ``finetune_steps``) and the classical solver's
``prior`` and ``model``, and ``device`` (a ``backends.device.Device``: where the network runs); it returns a
``Matter``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class GuidedNetwork:
    factory: str
    summary: str

    def matter(self, job, keyframes, checkpoint, *, cache, warn, options: dict):
        from ..extras import require

        module, name = self.factory.split(":")
        require("torch", f"--method {module.rsplit('.', 1)[-1]}")  # every network here is written in PyTorch
        factory = getattr(importlib.import_module(module), name)
        return factory(job, keyframes, checkpoint, cache=cache, warn=warn, options=options)


GUIDED_NETWORKS: dict[str, GuidedNetwork] = {
    "ftpvm": GuidedNetwork("vidmatte.matters.ftpvm:ftpvm_method",
                           "the FTP-VM network with the keyframes as its memory (needs --checkpoint)"),
    "dvm": GuidedNetwork("vidmatte.matters.dvm:dvm_method",
                         "DVM: trimaps propagated from the keyframes by its trimap network, alpha by its matting "
                         "network over each frame and the two before it (needs --checkpoint)"),
    "tgm": GuidedNetwork("vidmatte.matters.tgm:tgm_method",
                         "TCVOM's trimap generation module (STM) gives each frame's trimap from both directions, "
                         "alpha solved as classical (--checkpoint: its weights; none: a variant on RVM's encoder)"),
}

