"""The network families the training loop knows, one row each.

A family says how to build its model from the config's ``model`` section, how one clip becomes its loss terms, and
which config combinations it refuses. The loop itself stays family-agnostic: a new network (TCVOM's TGM, DVM,
BGMv2) adds a row here and a module of its own, not another branch in ``loop.py``. Rows name their functions as
``module:function`` so that importing the table pulls in no network code."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ModelKind:
    build: str  # (model_cfg, cache) -> nn.Module
    terms: str  # (trainer, clip, downsample_ratio) -> dict of loss terms with "total"
    validate: str | None = None  # (config) -> None, raising ConfigError

    def call(self, which: str, *args):
        module, name = getattr(self, which).split(":")
        return getattr(importlib.import_module(module), name)(*args)


KINDS: dict[str, ModelKind] = {
    "rvm": ModelKind(build="vidmatte.train.rvm_kind:build_rvm", terms="vidmatte.train.rvm_kind:rvm_terms"),
    "ftpvm": ModelKind(build="vidmatte.train.ftpvm:build_ftpvm", terms="vidmatte.train.ftpvm:ftpvm_step_terms",
                       validate="vidmatte.train.ftpvm:validate_ftpvm"),
    "dvm": ModelKind(build="vidmatte.train.dvm:build_dvm", terms="vidmatte.train.dvm:dvm_terms",
                     validate="vidmatte.train.dvm:validate_dvm"),
    "tgm": ModelKind(build="vidmatte.train.tgm:build_tgm", terms="vidmatte.train.tgm:tgm_terms",
                     validate="vidmatte.train.tgm:validate_tgm"),
    "bgmv2": ModelKind(build="vidmatte.train.bgmv2:build_bgmv2_model", terms="vidmatte.train.bgmv2:bgmv2_terms",
                       validate="vidmatte.train.bgmv2:validate_bgmv2"),
}


def kind_of(model_cfg: dict) -> ModelKind:
    return KINDS[model_cfg["kind"]]


def call(model_cfg: dict, which: str, *args) -> Callable:
    kind = kind_of(model_cfg)
    if getattr(kind, which) is None:
        return None
    return kind.call(which, *args)
