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


def weights_options(opt: Dict[str, Any], which: str) -> Dict[str, Any]:
    """The ``path`` options that load network ``which`` (``'g'`` or ``'d'``), as keyword
    arguments of :func:`lptn.archs.build_network`: ``weights`` (``pretrain_network_*``; None
    when unset or empty), ``strict`` (``strict_load_*``, default true), ``param_key``."""
    path_opt = opt.get("path") or {}
    return {
        "weights": path_opt.get(f"pretrain_network_{which}") or None,
        "strict": path_opt.get(f"strict_load_{which}", True),
        "param_key": path_opt.get(f"param_key_{which}"),
    }


import_modules_with_suffix(__name__, __file__, "_model")

__all__ = ["MODEL_REGISTRY", "build_model", "weights_options"]
