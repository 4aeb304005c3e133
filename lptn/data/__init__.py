"""Datasets and loaders, resolved from ``datasets.<key>.type``.

A new dataset is one new ``*_dataset.py`` file in this folder that registers its class with
``@DATASET_REGISTRY.register()``; its constructor takes ``(opt, key_path, seed)``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from torch.utils.data import Dataset

from lptn.platform.option_schema import DATASET, fill_defaults
from lptn.registry import Registry, import_modules_with_suffix

DATASET_REGISTRY = Registry("dataset")


def build_dataset(opt: Dict[str, Any], key_path: str, *, seed: Optional[int] = None) -> Dataset:
    """Build the dataset an option block describes, e.g. ``opt = options['datasets']['val']``.

    Args:
        opt: the block; ``type`` picks the class, the rest are its options. It is checked
            against the schema (``option_schema.DATASET``) and given its defaults here, so a
            block from a plain dict reads as one from a YAML file.
        key_path: where the block sits (``datasets.val``), named in every error.
        seed: base seed of the random crops/flips/draws (pass ``manual_seed``); default
            ``opt.get('manual_seed')`` or 0.
    """
    if not isinstance(opt, dict) or not isinstance(opt.get("type"), str):
        raise ValueError(f"{key_path}: needs a 'type' key naming the dataset class, got {opt!r}")
    cls = DATASET_REGISTRY.get(opt["type"], f"{key_path}.type")
    return cls(fill_defaults(DATASET, opt, key_path), key_path=key_path, seed=seed)


import_modules_with_suffix(__name__, __file__, "_dataset")

from lptn.data.data_loader import EnlargedSampler, Prefetcher, build_dataloader  # noqa: E402

__all__ = ["DATASET_REGISTRY", "EnlargedSampler", "Prefetcher", "build_dataloader", "build_dataset"]
