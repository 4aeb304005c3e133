"""Colour management: Adobe RGB photos to sRGB and back, 8-bit (littleCMS) and 16-bit."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pytest
from photo_samples import srgb_to_adobe, to16
from PIL import ImageCms

from lptn.photo import PhotoError
from lptn.photo.colour import (
    MatrixShaper,
    convert_rgb,
    from_srgb,
    is_srgb,
    profile_space,
    srgb_profile_bytes,
    to_srgb,
)

# Adobe RGB (1998) and sRGB as published (D65 primaries); Adobe's gamma is 563/256.
ADOBE_TO_XYZ = np.array(
    [
        [0.5767309, 0.1855540, 0.1881852],
        [0.2973769, 0.6273491, 0.0752741],
        [0.0270343, 0.0706872, 0.9911085],
    ]
)
XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def adobe_to_srgb_formula(encoded: np.ndarray) -> np.ndarray:
    """Adobe RGB values in [0, 1] -> sRGB values in [0, 1], from the published definitions."""
    linear = np.clip((encoded ** (563 / 256)) @ (XYZ_TO_SRGB @ ADOBE_TO_XYZ).T, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def test_profiles_are_recognised(adobe: bytes) -> None:
    assert is_srgb(None) and is_srgb(srgb_profile_bytes())
    assert not is_srgb(adobe)
    assert profile_space(adobe) == "RGB"


def test_srgb_profile_is_the_same_in_every_process() -> None:
    """littleCMS dates the profile it builds; the embedded one has a fixed date, so outputs
    do not depend on when the process started."""
    icc = srgb_profile_bytes()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    assert profile.profile.creation_date == datetime.datetime(2000, 1, 1, 0, 0, 0)


def test_adobe_8bit_to_srgb_matches_the_published_formula(crop: np.ndarray, adobe: bytes) -> None:
    adobe8 = srgb_to_adobe(crop, adobe)
    assert np.abs(adobe8.astype(int) - crop).max() >= 4  # really another encoding
    srgb = to_srgb(adobe8, adobe)
    assert srgb.dtype == np.uint8
    expected = adobe_to_srgb_formula(adobe8 / 255.0) * 255.0
    assert np.abs(srgb - expected).max() <= 1.0
    assert np.abs(srgb.astype(int) - crop).max() <= 2  # back where the photo started


def test_16bit_keeps_16_bits_and_agrees_with_littlecms(crop: np.ndarray, adobe: bytes) -> None:
    photo16 = to16(crop)
    adobe16 = from_srgb(photo16, adobe)
    assert adobe16.dtype == np.uint16
    assert (adobe16 % 257 != 0).mean() > 0.9  # values 8 bits cannot hold
    # littleCMS (Pillow, 8 bits) on the same photo: within one 8-bit step
    lcms8 = from_srgb(crop, adobe)
    assert np.abs(np.round(adobe16 / 257.0) - lcms8).max() <= 1
    back = to_srgb(adobe16, adobe)
    assert np.abs(back.astype(int) - photo16).max() <= 2  # 16-bit round trip
    expected = adobe_to_srgb_formula(adobe16 / 65535.0) * 65535.0
    assert np.abs(back - expected).mean() < 5  # steps of 1/65535


def test_16bit_conversion_is_exact_for_the_same_profile(crop: np.ndarray) -> None:
    photo16 = to16(crop)
    same = convert_rgb(photo16, srgb_profile_bytes(), srgb_profile_bytes())
    np.testing.assert_array_equal(same, photo16)


def test_16bit_with_a_non_matrix_profile_is_refused(crop: np.ndarray) -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    with pytest.raises(PhotoError, match="not an RGB matrix/TRC profile"):
        MatrixShaper.from_icc(lab)
    with pytest.raises(PhotoError):
        convert_rgb(to16(crop), lab, srgb_profile_bytes())


def test_built_adobe_rgb_profile_matches_the_published_encoding(
    crop: np.ndarray, adobe: bytes
) -> None:
    from lptn.photo.colour import adobe_rgb_profile_bytes, profile_name

    built = adobe_rgb_profile_bytes()
    assert not is_srgb(built) and profile_space(built) == "RGB"
    assert "Adobe RGB (1998)" in profile_name(built)
    adobe8 = srgb_to_adobe(crop, adobe)
    srgb = to_srgb(adobe8, built)  # littleCMS reads the built profile
    expected = adobe_to_srgb_formula(adobe8 / 255.0) * 255.0
    assert np.abs(srgb - expected).max() <= 1.0
    assert np.abs(srgb.astype(int) - to_srgb(adobe8, adobe)).max() <= 1  # the CC0 profile
    # 16-bit photos go through the profile's own matrix and curves: the same encoding
    back = to_srgb(to16(adobe8), built)
    assert np.abs(back - adobe_to_srgb_formula(to16(adobe8) / 65535.0) * 65535.0).mean() < 5
