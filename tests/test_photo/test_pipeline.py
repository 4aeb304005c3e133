"""enhance_photo_bytes / enhance_photo on real photos: strength, grey, alpha, 16-bit, colour
profiles, orientation and the errors callers see."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from photo_samples import (
    exiftool,
    exiftool_write,
    phone_jpeg,
    pillow_bytes,
    png16_bytes,
    srgb_to_adobe,
    to16,
)
from PIL import Image, ImageCms, JpegImagePlugin

from lptn.photo import PhotoEnhancer, PhotoError, decode_photo, enhance_photo_bytes
from lptn.photo.colour import adobe_rgb_profile_bytes, srgb_profile_bytes, to_srgb
from lptn.photo.enhancer import LUMA_WEIGHTS


def network(enhancer: PhotoEnhancer, img: np.ndarray) -> np.ndarray:
    """The plain network on an HxWx3 integer image: float64 HxWx3 in [0, 1] (the reference)."""
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    x = torch.from_numpy(img.astype(np.float32) / np.float32(peak)).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = enhancer.net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return y.astype(np.float64)


def png(arr: np.ndarray, **kwargs: object) -> bytes:
    return pillow_bytes(arr, "PNG", **kwargs)


@pytest.mark.parametrize("strength", [0.0, 0.35, 1.0])
def test_strength_blends_before_rounding(
    enhancer: PhotoEnhancer, crop: np.ndarray, strength: float
) -> None:
    data, media = enhance_photo_bytes(png(crop), enhancer, strength=strength)
    assert media == "image/png"
    out = decode_photo(data).pixels
    x = crop / 255.0
    expected = np.round(np.clip(x + strength * (network(enhancer, crop) - x), 0, 1) * 255)
    assert np.abs(out - expected).max() <= 1  # float32 vs float64 at rounding boundaries
    assert np.mean(out != expected) < 0.01
    if strength == 0.0:
        np.testing.assert_array_equal(out, crop)


def test_grey_stays_grey(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(crop).convert("L"))
    out = decode_photo(enhance_photo_bytes(png(grey), enhancer)[0])
    assert out.is_grey and out.pixels.shape == grey.shape and out.pixels.dtype == np.uint8
    colour = network(enhancer, np.repeat(grey[:, :, None], 3, axis=2))
    expected = np.round(colour @ LUMA_WEIGHTS.astype(np.float64) * 255)
    assert np.abs(out.pixels - expected).max() <= 1
    assert np.abs(out.pixels.astype(int) - grey).mean() > 2  # it was enhanced


def test_alpha_passes_through_unchanged(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    alpha = np.tile(np.linspace(0, 255, crop.shape[1]).astype(np.uint8), (crop.shape[0], 1))
    rgba = np.dstack([crop, alpha])
    plain = decode_photo(enhance_photo_bytes(png(crop), enhancer)[0]).pixels
    for fmt in ("png", "webp", "tiff"):
        out = decode_photo(enhance_photo_bytes(png(rgba, mode="RGBA"), enhancer, out_format=fmt)[0])
        np.testing.assert_array_equal(out.alpha, alpha)
        if fmt != "webp":  # lossy WebP (the input was PNG) changes the colours a little
            np.testing.assert_array_equal(out.pixels, plain)


def test_16bit_stays_16bit(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    photo16 = to16(crop)
    for fmt in ("png", "tiff"):
        data, media = enhance_photo_bytes(png16_bytes(photo16), enhancer, out_format=fmt)
        assert media == f"image/{fmt}"
        out = decode_photo(data).pixels
        assert out.dtype == np.uint16
        expected = np.round(network(enhancer, photo16) * 65535)
        assert np.abs(out - expected).max() <= 2
        assert (out % 257 != 0).mean() > 0.9


def test_adobe_rgb_is_enhanced_in_srgb(
    enhancer: PhotoEnhancer, crop: np.ndarray, adobe: bytes
) -> None:
    adobe8 = srgb_to_adobe(crop, adobe)
    tagged = png(adobe8, icc_profile=adobe)
    plain = decode_photo(enhance_photo_bytes(png(crop), enhancer)[0]).pixels
    # default: sRGB out, with an sRGB profile; the same picture as enhancing the sRGB photo
    out = decode_photo(enhance_photo_bytes(tagged, enhancer)[0])
    assert out.icc == srgb_profile_bytes()
    # exactly the network on the photo converted to sRGB (by littleCMS, 8 bits)
    expected = np.round(network(enhancer, to_srgb(adobe8, adobe)) * 255)
    assert np.abs(out.pixels - expected).max() <= 1
    assert np.abs(out.pixels.astype(int) - plain).mean() < 1  # conversion rounding only
    # treating the Adobe RGB values as sRGB (the old behaviour) gives another picture
    naive = np.round(network(enhancer, adobe8) * 255)
    assert np.abs(naive - plain).max() >= 4
    # --output-colour input: back in Adobe RGB, tagged so
    back = decode_photo(enhance_photo_bytes(tagged, enhancer, output_colour="input")[0])
    assert back.icc == adobe
    assert np.abs(to_srgb(back.pixels, adobe).astype(int) - out.pixels).max() <= 2
    name = ImageCms.ImageCmsProfile(io.BytesIO(adobe)).profile.profile_description
    assert "Adobe" in str(name)
    # a camera's Adobe RGB JPEG says 'uncalibrated' in EXIF; the sRGB output says sRGB
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA001] = 0xFFFF
    camera = pillow_bytes(adobe8, "JPEG", icc_profile=adobe, exif=exif, quality=95)
    srgb_out = Image.open(io.BytesIO(enhance_photo_bytes(camera, enhancer)[0]))
    assert srgb_out.getexif().get_ifd(0x8769)[0xA001] == 1
    kept = Image.open(io.BytesIO(enhance_photo_bytes(camera, enhancer, output_colour="input")[0]))
    assert kept.getexif().get_ifd(0x8769)[0xA001] == 0xFFFF


def test_camera_adobe_rgb_without_a_profile_is_taken_as_adobe_rgb(
    enhancer: PhotoEnhancer, crop: np.ndarray, adobe: bytes, lptn_log: pytest.LogCaptureFixture
) -> None:
    adobe8 = srgb_to_adobe(crop, adobe)
    plain = pillow_bytes(adobe8, "JPEG", quality=95)
    # the DCF convention, written by exiftool: ColorSpace uncalibrated, InteropIndex R03
    camera = exiftool_write(plain, "-EXIF:ColorSpace#=65535", "-EXIF:InteropIndex=R03")
    found = exiftool(camera, "-EXIF:ColorSpace", "-EXIF:InteropIndex", "-ICC_Profile:all")
    assert (found["EXIF:ColorSpace"], found["EXIF:InteropIndex"]) == (0xFFFF, "R03")
    assert not any(k.startswith("ICC_Profile") for k in found)  # no profile embedded
    photo = decode_photo(camera, "IMG_0042.JPG")
    assert photo.icc == adobe_rgb_profile_bytes()
    assert "IMG_0042.JPG" in lptn_log.text and "Adobe RGB" in lptn_log.text
    out_data = enhance_photo_bytes(camera, enhancer)[0]
    out = decode_photo(out_data)
    assert out.icc == srgb_profile_bytes()
    assert Image.open(io.BytesIO(out_data)).getexif().get_ifd(0x8769)[0xA001] == 1  # sRGB now

    def enhanced(data: bytes) -> np.ndarray:  # PNG out: no JPEG noise in the comparisons
        return decode_photo(enhance_photo_bytes(data, enhancer, out_format="png")[0]).pixels

    lossless = enhanced(camera)
    # the same photo with the profile embedded gives the same output, pixel for pixel
    tagged = pillow_bytes(adobe8, "JPEG", quality=95, icc_profile=adobe_rgb_profile_bytes())
    np.testing.assert_array_equal(lossless, enhanced(tagged))
    # the independent CC0 Adobe RGB profile's colorants differ from the published ones by
    # ~1e-4: a few sRGB input values move by 1, which the network spreads a little
    other = enhanced(pillow_bytes(adobe8, "JPEG", quality=95, icc_profile=adobe))
    assert np.abs(lossless.astype(int) - other).max() <= 2
    assert np.mean(lossless != other) < 0.005
    # R98 (DCF basic file) with the same ColorSpace is not the convention: taken as sRGB
    basic = exiftool_write(plain, "-EXIF:ColorSpace#=65535", "-EXIF:InteropIndex=R98")
    assert decode_photo(basic).icc is None
    assert np.abs(enhanced(basic).astype(int) - lossless).max() >= 4


def test_adobe_rgb_16bit_stays_16bit(
    enhancer: PhotoEnhancer, crop: np.ndarray, adobe: bytes
) -> None:
    from lptn.photo.colour import from_srgb
    from lptn.photo.metadata import insert_png_chunks, png_metadata_chunks

    photo16 = to16(crop)
    tagged = insert_png_chunks(
        png16_bytes(from_srgb(photo16, adobe)), png_metadata_chunks(adobe, None, None)
    )
    out = decode_photo(enhance_photo_bytes(tagged, enhancer)[0])
    assert out.pixels.dtype == np.uint16 and out.icc == srgb_profile_bytes()
    expected = np.round(network(enhancer, photo16) * 65535)
    assert np.abs(out.pixels - expected).mean() < 20  # 16-bit steps: conversions' rounding


def test_phone_jpeg_comes_out_upright_with_its_exif(
    enhancer: PhotoEnhancer, crop: np.ndarray
) -> None:
    data, media = enhance_photo_bytes(phone_jpeg(crop, 6), enhancer, jpeg_quality=90)
    assert media == "image/jpeg"
    out = Image.open(io.BytesIO(data))
    assert out.size == (crop.shape[1], crop.shape[0])  # upright: wider than tall
    exif = out.getexif()
    assert exif[0x0112] == 1 and exif[0x0110] == "Pixel 7"
    assert exif.get_ifd(0x8825)[1] == "N"
    assert JpegImagePlugin.get_sampling(out) == 2
    # the picture is the enhanced upright photo (JPEG noise aside)
    upright = decode_photo(phone_jpeg(crop, 6)).pixels
    expected = network(enhancer, upright) * 255
    assert np.abs(np.asarray(out).astype(float) - expected).mean() < 3


def test_out_format_and_media_types(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    source = png(crop)
    for fmt, media in [
        ("jpg", "image/jpeg"),
        ("JPEG", "image/jpeg"),
        ("webp", "image/webp"),
        ("bmp", "image/bmp"),
        ("tif", "image/tiff"),
    ]:
        data, got = enhance_photo_bytes(source, enhancer, out_format=fmt)
        assert got == media
        assert decode_photo(data).pixels.shape == crop.shape


def test_bad_input_raises_photo_error(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    good = png(crop)
    alpha = np.dstack([crop, crop[:, :, :1]])
    cases = [
        (b"", {}, "empty"),
        (b"GIF89a not really", {}, "not a photo"),
        (good[:400], {}, "truncated"),
        (png(crop[:6, :6]), {}, "too small"),
        (good, {"strength": 1.5}, "strength"),
        (good, {"out_format": "gif"}, "gif"),
        (good, {"output_colour": "p3"}, "output colour"),
        (good, {"jpeg_quality": 0}, "jpeg_quality"),
        (png(alpha, mode="RGBA"), {"out_format": "jpeg"}, "transparency"),
    ]
    for data, kwargs, words in cases:
        with pytest.raises(PhotoError, match=words):
            enhance_photo_bytes(data, enhancer, **kwargs)  # type: ignore[arg-type]


def test_heic_in_jpeg_out(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(crop)).save(buf, quality=95)
    data, media = enhance_photo_bytes(buf.getvalue(), enhancer)
    assert media == "image/jpeg"
    assert decode_photo(data).pixels.shape == crop.shape
