"""Shared fixtures: real data and real weights, skipping cleanly (with the reason) when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VIDMATTE_SHARED_DATA", REPO.parent / "shared" / "data"))


# Fixtures that hand a test the weights or the real data. A test using one (directly or through another fixture)
# gets the matching marker, so `pytest -m "not weights and not shared_data"` is a true offline run: what it
# selects never fetches weights and never reads ../shared/data. Tests reaching the weights another way (a CLI
# subprocess, `vidmatte.load` on the default cache) carry an explicit `@pytest.mark.weights`.
WEIGHT_FIXTURES = {"rvm_onnx_path"}
DATA_FIXTURES = {"shared_data"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))  # the whole closure, so indirect use counts too
        if used & WEIGHT_FIXTURES:
            item.add_marker(pytest.mark.weights)
        if used & DATA_FIXTURES:
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real footage and GT mattes); tests using it skip when it is absent, as in a user's clone."""
    if not (SHARED_DATA / "MANIFEST.md").exists():
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def rvm_onnx_path() -> Path:
    """The official RVM ONNX weights, fetched once into the cache; skip only if they cannot be fetched."""
    from vidmatte.errors import ModelError
    from vidmatte.models.registry import fetch_model

    try:
        return fetch_model("rvm-mobilenetv3", quiet=True)
    except ModelError as exc:
        pytest.skip(f"RVM weights unavailable: {exc}")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module's tests: this machine class (2 cores, shared) slows down badly when
    torch oversubscribes it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
