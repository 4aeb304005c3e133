"""Reading, writing and converting images: formats, bit depths, channels, errors, rounding."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lptn.data.image_io import (
    ImageReadError,
    ImageWriteError,
    decode_image,
    image_to_tensor,
    read_image,
    tensor_to_image,
    to_float,
    write_image,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.mark.parametrize(
    "ext,dtype", [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint16), (".tiff", np.uint8)]
)
def test_read_lossless_formats_keep_values_and_depth(
    tmp_path: Path, rng, noise_image, save_rgb, ext, dtype
) -> None:
    img = noise_image(rng, 9, 13, dtype)
    path = save_rgb(tmp_path / f"x{ext}", img)
    out = read_image(path)
    assert out.dtype == dtype
    assert out.shape == (9, 13, 3)
    np.testing.assert_array_equal(out, img)  # also proves RGB (not BGR) order


def test_read_jpeg_is_uint8_rgb(tmp_path: Path, save_rgb) -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = 220  # strongly red: a BGR/RGB swap would show
    img[..., 2] = 30
    path = save_rgb(tmp_path / "red.jpg", img)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - img).max() <= 3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_becomes_three_equal_channels(tmp_path: Path, rng, noise_image, dtype) -> None:
    grey = noise_image(rng, 7, 5, dtype)[..., 0]
    path = tmp_path / "grey.png"
    assert cv2.imwrite(str(path), grey)
    out = read_image(path)
    assert out.shape == (7, 5, 3) and out.dtype == dtype
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_alpha_is_dropped(tmp_path: Path, rng, noise_image) -> None:
    rgb = noise_image(rng, 6, 8)
    alpha = np.full((6, 8, 1), 17, np.uint8)
    bgra = np.concatenate([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha], axis=2)
    path = tmp_path / "rgba.png"
    assert cv2.imwrite(str(path), bgra)
    out = read_image(path)
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, rgb)


def test_missing_file_error_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(ImageReadError, match="nope.png.*no such file") as info:
        read_image(path)
    assert isinstance(info.value, OSError)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"this is not an image at all"])
def test_corrupt_file_error_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_decode_image_names_the_key() -> None:
    with pytest.raises(ImageReadError, match="my_lmdb_key"):
        decode_image(b"\x89PNG garbage", "my_lmdb_key")


@pytest.mark.parametrize(
    "name,dtype",
    [("a.png", np.uint8), ("b.png", np.uint16), ("c.tif", np.uint16), ("d.tiff", np.uint8)],
)
def test_write_read_round_trip_is_exact(tmp_path: Path, rng, noise_image, name, dtype) -> None:
    img = noise_image(rng, 11, 6, dtype)
    path = tmp_path / "new" / "sub" / name  # parents are created
    write_image(path, img)
    np.testing.assert_array_equal(read_image(path), img)
    assert sorted(os.listdir(path.parent)) == [name]  # no temporary file left behind


def test_write_jpeg_quality(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=2).astype(np.uint8)
    write_image(tmp_path / "hi.jpg", img, jpeg_quality=98)
    write_image(tmp_path / "lo.jpg", img, jpeg_quality=5)
    err_hi = np.abs(read_image(tmp_path / "hi.jpg").astype(int) - img).mean()
    err_lo = np.abs(read_image(tmp_path / "lo.jpg").astype(int) - img).mean()
    assert err_hi < 2.0 < err_lo


def test_write_uint16_jpeg_is_an_error_and_keeps_existing_file(
    tmp_path: Path, rng, noise_image
) -> None:
    path = tmp_path / "keep.jpg"
    path.write_bytes(b"old content")
    with pytest.raises(ImageWriteError, match="keep.jpg.*8-bit"):
        write_image(path, noise_image(rng, 4, 4, np.uint16))
    assert path.read_bytes() == b"old content"


def test_write_unknown_extension_names_path(tmp_path: Path, rng, noise_image) -> None:
    with pytest.raises(ImageWriteError, match=r"x\.gifx.*unsupported image extension"):
        write_image(tmp_path / "x.gifx", noise_image(rng, 4, 4))


def test_write_replaces_existing_atomically(tmp_path: Path, rng, noise_image) -> None:
    path = tmp_path / "img.png"
    first, second = noise_image(rng, 5, 5), noise_image(rng, 5, 5)
    write_image(path, first)
    write_image(path, second)
    np.testing.assert_array_equal(read_image(path), second)
    assert os.listdir(tmp_path) == ["img.png"]


def test_to_float_scales_by_dtype() -> None:
    a8 = np.array([[[0, 128, 255]]], np.uint8)
    a16 = np.array([[[0, 32768, 65535]]], np.uint16)
    np.testing.assert_allclose(to_float(a8), [[[0, 128 / 255, 1]]], rtol=1e-6)
    np.testing.assert_allclose(to_float(a16), [[[0, 32768 / 65535, 1]]], rtol=1e-6)
    assert to_float(a8).dtype == np.float32 and to_float(a16).dtype == np.float32
    with pytest.raises(TypeError, match="int32"):
        to_float(np.zeros((1, 1, 3), np.int32))


def test_image_to_tensor_layout(rng, noise_image) -> None:
    img = to_float(noise_image(rng, 4, 6))
    t = image_to_tensor(img)
    assert t.shape == (3, 4, 6) and t.dtype == torch.float32 and t.is_contiguous()
    assert torch.equal(t[1], torch.from_numpy(img[..., 1]))
    with pytest.raises(TypeError, match="to_float"):
        image_to_tensor(noise_image(rng, 4, 6))


def test_tensor_to_image_clamps_and_rounds_half_to_even() -> None:
    values = torch.tensor([-0.3, 0.0, 100.5 / 255, 101.5 / 255, 100.6 / 255, 1.0, 1.7])
    t = values.view(1, 1, -1).expand(3, 1, -1).contiguous()
    out = tensor_to_image(t)
    assert out.dtype == np.uint8 and out.shape == (1, 7, 3)
    # round(clip(x, 0, 1) * 255), with numpy/torch rounding (half to even) on float32
    expected = np.round(np.clip(values.numpy(), 0, 1) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(out[0, :, 0], expected)
    np.testing.assert_array_equal(out[0, [0, 1, 5, 6], 0], [0, 0, 255, 255])
    assert out[0, 4, 0] == 101


def test_tensor_to_image_batched_and_uint16() -> None:
    t = torch.full((1, 3, 2, 2), 0.5)
    assert tensor_to_image(t, np.uint16)[0, 0, 0] == 32768  # round(32767.5) half to even
    assert tensor_to_image(t).shape == (2, 2, 3)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        tensor_to_image(torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match="one image"):
        tensor_to_image(torch.zeros(2, 3, 2, 2))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_integer_value_survives_float_round_trip(dtype) -> None:
    top = int(np.iinfo(dtype).max)
    values = np.arange(top + 1, dtype=np.int64)
    pad = (-len(values)) % 256
    img = np.concatenate([values, np.zeros(pad, np.int64)]).reshape(-1, 256, 1)
    img = np.repeat(img, 3, axis=2).astype(dtype)
    back = tensor_to_image(image_to_tensor(to_float(img)), dtype)
    np.testing.assert_array_equal(back, img)


def test_jpeg_quality_follows_the_photo_rule(tmp_path: Path) -> None:
    # One rule for JPEG quality (the schema's 1..100) in the data layer and in lptn-enhance.
    from lptn.data.image_io import ImageWriteError
    from lptn.photo.photo_file import Photo, encode_photo

    img = np.full((16, 16, 3), 128, np.uint8)
    for bad in (0, 101):
        with pytest.raises(ImageWriteError, match=r"jpeg_quality must be an integer in 1\.\.100"):
            write_image(tmp_path / "x.jpg", img, jpeg_quality=bad)
        with pytest.raises(ValueError, match=r"jpeg_quality must be an integer in 1\.\.100"):
            encode_photo(Photo(pixels=img, format="JPEG"), jpeg_quality=bad)
