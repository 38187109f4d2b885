"""A state dict with random values built only from an official layout file (names and shapes written out as facts,
e.g. tests/ftpvm_official_state_dict.json): what strict loading and the networks' tests run on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def random_state(layout: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values for every entry of ``layout``: BatchNorm statistics away from identity so eval-mode BN does
    something; weights scaled by their fan-in."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, entry in json.loads(layout.read_text()).items():
        shape = entry["shape"]
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        elif name.endswith("weight") and len(shape) == 1:
            state[name] = 1 + 0.2 * torch.randn(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 10
            state[name] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return state
