"""Image-quality metrics, resolved from ``val.metrics.<name>.type``.

``calculate_psnr`` / ``calculate_ssim`` (numpy, one image pair, BasicSR conventions),
``calculate_ssim_lut`` (the MATLAB ``ssim.m`` of the FiveK LUT papers) and
``calculate_deltae`` (mean CIELAB colour difference, lower is better) are registered; the
batched torch versions ``psnr_torch`` / ``ssim_torch`` are called directly by validation code.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, TypeVar

import numpy as np

from lptn.registry import Registry, build_from_registry

METRIC_REGISTRY: Registry = Registry("metric")

# Option keys that describe how a metric is ranked rather than how it is computed (BasicSR
# files may carry them); they are not passed to the metric function.
NON_METRIC_KEYS = ("better",)
METRIC_DIRECTIONS = ("higher", "lower")

MetricT = TypeVar("MetricT", bound=Callable[..., float])


def lower_is_better(metric: MetricT) -> MetricT:
    """Mark a registered metric as a distance: best-model tracking then keeps the lowest."""
    setattr(metric, "better", "lower")  # noqa: B010 (a plain attribute on a function)
    return metric


def metric_direction(opt: Dict[str, Any], key_path: str = "val.metrics") -> str:
    """``'higher'`` or ``'lower'``: the block's ``better`` key, else what the metric declares
    (:func:`lower_is_better`), else ``'higher'``."""
    direction = opt.get("better")
    if direction is None:
        metric_type = str(opt.get("type"))
        metric = METRIC_REGISTRY.get(metric_type) if metric_type in METRIC_REGISTRY else None
        direction = getattr(metric, "better", "higher")
    if direction not in METRIC_DIRECTIONS:
        raise ValueError(f"{key_path}: 'better' must be higher or lower, got {direction!r}")
    return direction


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

    Examples:
        >>> import numpy as np
        >>> img = np.random.default_rng(0).integers(0, 250, (64, 64, 3), dtype=np.uint8)
        >>> pair = {"img": img + 5, "img2": img}  # every value off by 5: MSE 25
        >>> calculate_metric(pair, {"type": "calculate_psnr"})  # 10 log10(255^2 / 25) dB
        34.1514
        >>> calculate_metric({"img": img, "img2": img}, {"type": "calculate_ssim"})
        1.0
        >>> calculate_metric(pair, {"type": "psnr"})
        Traceback (most recent call last):
        ...
        KeyError: "val.metrics.type: unknown metric type 'psnr'. Registered metric types, ..."
    """
    if not isinstance(opt, dict):
        raise KeyError(f"{key_path}: a metric option block must be a mapping, got {opt!r}")
    kwargs = {k: v for k, v in opt.items() if k not in NON_METRIC_KEYS}
    return float(build_from_registry(METRIC_REGISTRY, kwargs, key_path, **data))


# Imported after the registry exists so that the modules can register into it.
from lptn.metrics.color_difference import calculate_deltae  # noqa: E402
from lptn.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from lptn.metrics.psnr_ssim_torch import psnr_torch, ssim_torch  # noqa: E402
from lptn.metrics.ssim_lut import calculate_ssim_lut  # noqa: E402

__all__ = [
    "METRIC_REGISTRY",
    "calculate_deltae",
    "calculate_metric",
    "calculate_psnr",
    "calculate_ssim",
    "calculate_ssim_lut",
    "lower_is_better",
    "metric_direction",
    "psnr_torch",
    "ssim_torch",
]
