"""Model registry and weight files. Network definitions (PyTorch) live beside it and import torch lazily."""

from .registry import ModelSpec, get_spec, list_models, model_path, fetch_model, cache_dir

__all__ = ["ModelSpec", "get_spec", "list_models", "model_path", "fetch_model", "cache_dir"]
