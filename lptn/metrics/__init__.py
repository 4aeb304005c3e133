"""Image-quality metrics, resolved from ``val.metrics.<name>.type``.

``calculate_psnr`` / ``calculate_ssim`` (numpy, one image pair) are registered; the batched
torch versions ``psnr_torch`` / ``ssim_torch`` are called directly by validation code.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from lptn.registry import Registry, build_from_registry

METRIC_REGISTRY: Registry = Registry("metric")

# Option keys that describe how a metric is ranked rather than how it is computed (BasicSR
# files may carry them); they are not passed to the metric function.
NON_METRIC_KEYS = ("better",)


def calculate_metric(
    data: Dict[str, np.ndarray], opt: Dict[str, Any], key_path: str = "val.metrics"
) -> float:
    """Evaluate one metric option block on one image pair.

    Args:
        data: ``{'img': ndarray, 'img2': ndarray}``, RGB images in [0, 255].
        opt: e.g. ``{'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False}``.
        key_path: where ``opt`` sits in the YAML file, for error messages.

    Raises:
        KeyError: unknown ``type`` (naming ``key_path`` and listing registered metrics).
        TypeError: an option the metric does not take.
    """
    if not isinstance(opt, dict):
        raise KeyError(f"{key_path}: a metric option block must be a mapping, got {opt!r}")
    kwargs = {k: v for k, v in opt.items() if k not in NON_METRIC_KEYS}
    return float(build_from_registry(METRIC_REGISTRY, kwargs, key_path, **data))


# Imported after the registry exists so that the modules can register into it.
from lptn.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from lptn.metrics.psnr_ssim_torch import psnr_torch, ssim_torch  # noqa: E402

__all__ = [
    "METRIC_REGISTRY",
    "calculate_metric",
    "calculate_psnr",
    "calculate_ssim",
    "psnr_torch",
    "ssim_torch",
]
