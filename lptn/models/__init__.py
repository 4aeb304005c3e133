"""Models own the networks (and, for training, optimisers and losses); resolved from
``model_type``. A new model is one ``*_model.py`` file that registers its class."""

from __future__ import annotations

from typing import Any, Dict

from lptn.platform.option_schema import OPTIONS, fill_defaults
from lptn.registry import Registry, import_modules_with_suffix

MODEL_REGISTRY = Registry("model")


def build_model(opt: Dict[str, Any], runtime: Any) -> Any:
    """Instantiate ``MODEL_REGISTRY[opt['model_type']](opt, runtime)``; the model gets ``opt``
    checked and defaulted by the schema (``option_schema.OPTIONS``), so options built as a
    plain dict read as those of a YAML file."""
    cls = MODEL_REGISTRY.get(opt["model_type"], "model_type")
    # A model needs no dataset roots: required keys are left to the runners (parse_options).
    return cls(fill_defaults(OPTIONS, opt, "", required=False), runtime)


def weights_options(opt: Dict[str, Any], which: str) -> Dict[str, Any]:
    """The ``path`` options that load network ``which`` (``'g'`` or ``'d'``), as keyword
    arguments of :func:`lptn.archs.build_network`: ``weights`` (``pretrain_network_*``; None
    when unset or empty), ``strict`` (``strict_load_*``), ``param_key``; ``opt`` is filled
    by the schema (:func:`build_model`)."""
    path_opt = opt["path"]
    return {
        "weights": path_opt.get(f"pretrain_network_{which}") or None,
        "strict": path_opt[f"strict_load_{which}"],
        "param_key": path_opt.get(f"param_key_{which}"),
    }


import_modules_with_suffix(__name__, __file__, "_model")

__all__ = ["MODEL_REGISTRY", "build_model", "weights_options"]
