"""Metrics resolved by ``type`` from YAML option blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lptn.metrics import METRIC_REGISTRY, calculate_metric, calculate_psnr, calculate_ssim


def test_registered_names():
    assert METRIC_REGISTRY.get("calculate_psnr") is calculate_psnr
    assert METRIC_REGISTRY.get("calculate_ssim") is calculate_ssim


def test_calculate_metric_from_option_block(fivek_uint8_pairs):
    _, src, tgt = fivek_uint8_pairs[0]
    data = {"img": src, "img2": tgt}
    psnr_opt = {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": False}
    assert calculate_metric(data, psnr_opt, "val.metrics.psnr") == calculate_psnr(
        src, tgt, crop_border=4
    )
    ssim_opt = {
        "type": "calculate_ssim",
        "crop_border": 0,
        "test_y_channel": True,
        "better": "higher",
    }
    assert calculate_metric(data, ssim_opt, "val.metrics.ssim") == calculate_ssim(
        src, tgt, test_y_channel=True
    )
    assert psnr_opt == {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": False}
    assert (
        calculate_metric({"img": src, "img2": src}, {"type": "calculate_psnr"}, "val.metrics.psnr")
        == math.inf
    )


def test_unknown_type_names_key_and_lists_metrics():
    data = {"img": np.zeros((4, 4, 3)), "img2": np.zeros((4, 4, 3))}
    with pytest.raises(KeyError) as info:
        calculate_metric(data, {"type": "calculate_psnrr"}, "val.metrics.psnr")
    message = str(info.value)
    assert "val.metrics.psnr.type" in message and "calculate_psnrr" in message
    # Closest first: the misspelt PSNR lists calculate_psnr before calculate_ssim.
    assert message.index("calculate_psnr,") < message.index("calculate_ssim")


def test_unknown_option_names_key():
    data = {"img": np.zeros((4, 4, 3)), "img2": np.zeros((4, 4, 3))}
    with pytest.raises(TypeError, match=r"val\.metrics\.psnr.*crop_borders"):
        calculate_metric(data, {"type": "calculate_psnr", "crop_borders": 4}, "val.metrics.psnr")
    with pytest.raises(KeyError, match=r"val\.metrics\.psnr.*type"):
        calculate_metric(data, {"crop_border": 4}, "val.metrics.psnr")
