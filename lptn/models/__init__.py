"""Models own the networks (and, for training, optimisers and losses); resolved from
``model_type``. A new model is one ``*_model.py`` file that registers its class."""

from __future__ import annotations

from typing import Any, Dict

from lptn.registry import Registry, import_modules_with_suffix

MODEL_REGISTRY = Registry("model")


def build_model(opt: Dict[str, Any], runtime: Any) -> Any:
    """Instantiate ``MODEL_REGISTRY[opt['model_type']](opt, runtime)``."""
    cls = MODEL_REGISTRY.get(opt["model_type"], "model_type")
    return cls(opt, runtime)


import_modules_with_suffix(__name__, __file__, "_model")

__all__ = ["MODEL_REGISTRY", "build_model"]
