"""Mean CIELAB colour difference (Delta E) between two 8-bit sRGB images.

The FiveK retouching tables (3D-LUT, AdaInt, SepLUT, ...) report the mean over pixels of the
CIE76 distance in CIELAB; newer work also reports CIEDE2000. Lab comes from scikit-image
(``skimage.color.rgb2lab``: sRGB transfer curve, D65 white, 2-degree observer), and so do both
distance formulas; nothing here does colour maths itself.
"""

from __future__ import annotations

from typing import Callable, Dict, Literal

import numpy as np
from skimage import color

from lptn.metrics import METRIC_REGISTRY, lower_is_better
from lptn.metrics.psnr_ssim import PIXEL_MAX, _prepare_pair

DELTAE_FORMULAS: Dict[str, Callable[..., np.ndarray]] = {
    "cie76": color.deltaE_cie76,
    "ciede2000": color.deltaE_ciede2000,
}


def srgb_to_lab(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) sRGB values in [0, 255] (float64) -> (H, W, 3) CIELAB (L in [0, 100])."""
    # rgb2lab reads floats as [0, 1]; x / 255 is what it does itself with a uint8 array.
    return color.rgb2lab(img / PIXEL_MAX)


@lower_is_better
@METRIC_REGISTRY.register
def calculate_deltae(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
    formula: Literal["cie76", "ciede2000"] = "cie76",
) -> float:
    """Mean colour difference in CIELAB units over all pixels; 0 for identical images.

    Args:
        img: RGB image in [0, 255] (uint8, or float already quantised), (H, W, 3) or
            (3, H, W) per ``input_order``.
        img2: the reference, same shape and range as ``img``.
        input_order: ``"HWC"`` or ``"CHW"``, the axis order of both images.
        crop_border: pixels removed from each side before measuring.
        formula: ``cie76`` (Euclidean distance in Lab, the Delta E of the LUT papers) or
            ``ciede2000``.
    """
    if formula not in DELTAE_FORMULAS:
        raise ValueError(f"formula must be one of {', '.join(DELTAE_FORMULAS)}, got {formula!r}")
    a, b = _prepare_pair(img, img2, crop_border, input_order, test_y_channel=False)
    if a.shape[2] != 3:
        raise ValueError(f"Delta E needs RGB images with 3 channels, got shape {a.shape}")
    distance = DELTAE_FORMULAS[formula](srgb_to_lab(a), srgb_to_lab(b))
    return float(np.mean(distance, dtype=np.float64))
