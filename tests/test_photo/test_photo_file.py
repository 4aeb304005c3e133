"""Reading and writing photo files: orientation, EXIF / XMP / ICC, formats, grey, alpha, 16-bit."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from photo_samples import (
    XMP,
    camera_exif,
    exiftool,
    phone_jpeg,
    pillow_bytes,
    png16_bytes,
    stored_for,
    to16,
    with_iptc,
)
from PIL import Image, ImageOps, JpegImagePlugin

from lptn.photo import Photo, PhotoError, decode_photo, encode_photo, photo_file


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_like_pillow(crop: np.ndarray, orientation: int) -> None:
    data = phone_jpeg(crop, orientation)
    photo = decode_photo(data, "phone.jpg")
    # Pillow's exif_transpose is the independent reference for what viewers show.
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert photo.pixels.shape == crop.shape  # upright again: 97 rows, 131 columns
    np.testing.assert_array_equal(photo.pixels, shown)
    assert photo.exif is not None and photo.exif[0x0112] == 1
    assert photo.xmp is not None and b'tiff:Orientation="1"' in photo.xmp


def oriented_tiff(stored: np.ndarray, orientation: int) -> bytes:
    """A TIFF (8 or 16 bits, as ``stored``'s dtype) written by tifffile with the Orientation
    tag, as scanners and raw converters write them."""
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(
        buf, stored, photometric="rgb", metadata=None, extratags=[(0x0112, 3, 1, orientation, True)]
    )
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_tiff_orientation_is_applied_like_8bit(crop: np.ndarray, orientation: int) -> None:
    stored = stored_for(crop, orientation)
    photo8 = decode_photo(oriented_tiff(stored, orientation), "scan8.tif")
    photo16 = decode_photo(oriented_tiff(to16(stored), orientation), "scan16.tif")
    np.testing.assert_array_equal(photo8.pixels, crop)  # the 8-bit path: upright
    assert photo16.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo16.pixels, to16(crop))  # the same picture, 16 bits
    for photo in (photo8, photo16):
        out = encode_photo(photo, "TIFF")
        found = exiftool(out, "-EXIF:Orientation", "-EXIF:ImageWidth", "-EXIF:ImageHeight")
        assert found["EXIF:Orientation"] == 1, photo.pixels.dtype
        assert (found["EXIF:ImageWidth"], found["EXIF:ImageHeight"]) == (131, 97)
        np.testing.assert_array_equal(decode_photo(out).pixels, photo.pixels)


def test_written_upright_with_orientation_1_and_metadata(crop: np.ndarray, adobe: bytes) -> None:
    data = phone_jpeg(crop, 6)
    photo = decode_photo(data, "phone.jpg")
    photo.icc = adobe
    for fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        out = Image.open(io.BytesIO(encode_photo(photo, fmt)))
        assert out.format == fmt and out.size == (131, 97)
        exif = out.getexif()
        assert exif[0x0112] == 1, fmt
        assert (exif[0x010F], exif[0x0110]) == ("Google", "Pixel 7"), fmt
        sub = exif.get_ifd(0x8769)
        assert sub[0x9003] == "2024:05:06 07:08:09", fmt
        # pixel dimensions follow the upright image (they were 97 x 131 as stored)
        assert (sub[0xA002], sub[0xA003]) == (131, 97), fmt
        assert exif.get_ifd(0x8825)[1] == "N", fmt
        assert out.info["icc_profile"] == adobe, fmt
        xmp = photo_file._xmp_of(out, fmt)
        assert xmp is not None and b"Test Photographer" in xmp, fmt


def test_16bit_png_and_tiff_keep_16_bits_and_metadata(crop: np.ndarray, adobe: bytes) -> None:
    rgb16 = to16(crop)
    photo = decode_photo(png16_bytes(rgb16), "deep.png")
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, rgb16)
    photo.icc, photo.xmp, photo.exif = adobe, XMP, camera_exif(1)
    for fmt in ("PNG", "TIFF"):
        back = decode_photo(encode_photo(photo, fmt), f"deep.{fmt}")
        assert back.format == fmt and back.pixels.dtype == np.uint16
        np.testing.assert_array_equal(back.pixels, rgb16)
        assert back.icc == adobe
        assert back.xmp == XMP.replace(b'Orientation="6"', b'Orientation="1"')
        assert back.exif is not None and back.exif[0x0110] == "Pixel 7"
        # the Exif and GPS sub-IFDs too (16-bit TIFF: through exiv2, the tiff-exif extra)
        assert back.exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09", fmt
        assert back.exif.get_ifd(0x8825)[2] == (48.0, 51.0, 29.5), fmt
        assert back.exif.get_ifd(0x8825)[3] == "E", fmt
    # formats that hold 8 bits only get the rounded values
    jpeg8 = decode_photo(encode_photo(photo, "BMP"), "deep.bmp").pixels
    np.testing.assert_array_equal(jpeg8, np.round(rgb16 / 257.0).astype(np.uint8))


def test_16bit_tiff_without_exiv2_keeps_ifd0_and_says_why(
    crop: np.ndarray,
    adobe: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    photo = decode_photo(png16_bytes(to16(crop)), "deep.png")
    photo.icc, photo.exif = adobe, camera_exif(1)
    monkeypatch.setitem(sys.modules, "exiv2", None)  # as if the extra were not installed
    photo_file._warned.clear()
    back = decode_photo(encode_photo(photo, "TIFF"), "deep.tif")
    assert back.icc == adobe and back.exif is not None and back.exif[0x010F] == "Google"
    assert not back.exif.get_ifd(0x8825)
    assert "lptn[tiff-exif]" in caplog.text


def test_grey_stays_grey_and_alpha_passes_through(crop: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(crop).convert("L"))
    alpha = np.tile(np.linspace(0, 255, crop.shape[1]).astype(np.uint8), (crop.shape[0], 1))
    cases = {
        "grey.png": (pillow_bytes(grey, "PNG"), grey, None),
        "grey.jpg": (pillow_bytes(grey, "JPEG", quality=100), None, None),
        "grey16.png": (png16_bytes(to16(grey[:, :, None].repeat(3, 2))[:, :, 0]), None, None),
        "greya.png": (pillow_bytes(np.dstack([grey, alpha]), "PNG", "LA"), grey, alpha),
        "rgba.png": (pillow_bytes(np.dstack([crop, alpha]), "PNG", "RGBA"), crop, alpha),
        "rgba.webp": (
            pillow_bytes(np.dstack([crop, alpha]), "WEBP", lossless=True, exact=True),
            crop,
            alpha,
        ),
        "rgba.tif": (pillow_bytes(np.dstack([crop, alpha]), "TIFF"), crop, alpha),
        "rgba16.png": (
            png16_bytes(np.dstack([to16(crop), to16(alpha[:, :, None])[:, :, 0]])),
            None,
            None,
        ),
    }
    for name, (data, pixels, alpha_in) in cases.items():
        photo = decode_photo(data, name)
        assert photo.is_grey == name.startswith("grey"), name
        if pixels is not None:
            np.testing.assert_array_equal(photo.pixels, pixels, err_msg=name)
        if alpha_in is not None:
            np.testing.assert_array_equal(photo.alpha, alpha_in, err_msg=name)
        fmt = photo.format
        back = decode_photo(encode_photo(photo, fmt), name)
        assert back.pixels.shape == photo.pixels.shape and back.pixels.dtype == photo.pixels.dtype
        if fmt != "JPEG":
            np.testing.assert_array_equal(back.pixels, photo.pixels, err_msg=name)
        assert (back.alpha is None) == (photo.alpha is None), name
        if photo.alpha is not None:
            np.testing.assert_array_equal(back.alpha, photo.alpha, err_msg=name)
    assert decode_photo(cases["rgba.webp"][0], "x").webp_lossless
    # lossless with an ICC chunk before the image data (extended WebP) is still lossless
    tagged = pillow_bytes(crop, "WEBP", lossless=True, icc_profile=b"\0" * 3000)
    assert decode_photo(tagged, "x").webp_lossless
    assert not decode_photo(pillow_bytes(crop, "WEBP", quality=80), "x").webp_lossless


def test_bmp_and_webp_read_and_written(crop: np.ndarray) -> None:
    for fmt in ("BMP", "WEBP"):
        photo = decode_photo(
            pillow_bytes(crop, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        )
        assert photo.format == fmt
        np.testing.assert_array_equal(photo.pixels, crop)
        back = decode_photo(encode_photo(photo))
        assert back.format == fmt
        np.testing.assert_array_equal(back.pixels, crop)


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_jpeg_keeps_chroma_subsampling_and_quality(crop: np.ndarray, subsampling: int) -> None:
    photo = decode_photo(phone_jpeg(crop, 1, subsampling=subsampling))
    assert photo.jpeg_subsampling == subsampling
    out = Image.open(io.BytesIO(encode_photo(photo, jpeg_quality=90)))
    assert JpegImagePlugin.get_sampling(out) == subsampling
    assert len(encode_photo(photo, jpeg_quality=30)) < len(encode_photo(photo, jpeg_quality=95))


def test_progressive_jpeg_stays_progressive(crop: np.ndarray) -> None:
    def process(data: bytes) -> int:
        """exiftool's EncodingProcess: the SOF marker's number, 0 baseline, 2 progressive."""
        return int(exiftool(data, "-File:EncodingProcess")["File:EncodingProcess"])

    progressive = pillow_bytes(crop, "JPEG", quality=92, progressive=True)
    assert process(progressive) == 2
    photo = decode_photo(progressive, "web.jpg")
    assert photo.jpeg_progressive
    out = encode_photo(photo)
    assert process(out) == 2 and Image.open(io.BytesIO(out)).info.get("progressive") == 1
    assert process(encode_photo(decode_photo(pillow_bytes(crop, "JPEG"), "camera.jpg"))) == 0
    # a PNG made from it, then JPEG from that PNG: baseline (PNG has no such notion)
    png = decode_photo(encode_photo(photo, "PNG"), "web.png")
    assert process(encode_photo(png, "JPEG")) == 0
    # with IPTC, which exiv2 writes into the output: the coding stays progressive
    assert process(encode_photo(decode_photo(with_iptc(progressive), "tagged.jpg"))) == 2


def test_bad_data_gives_plain_photo_errors(crop: np.ndarray) -> None:
    good = pillow_bytes(crop, "PNG")
    cases = {
        b"": "empty",
        b"plain text, not a photo": "not a photo",
        good[: len(good) // 2]: "truncated",
        pillow_bytes(crop, "GIF"): "not supported",
        pillow_bytes(crop, "JPEG")[:300]: "truncated",
    }
    for data, words in cases.items():
        with pytest.raises(PhotoError, match=words):
            decode_photo(data, "upload.bin")
    cmyk = io.BytesIO()
    Image.fromarray(crop).convert("CMYK").save(cmyk, "JPEG")
    with pytest.raises(PhotoError, match="CMYK images are not supported"):
        decode_photo(cmyk.getvalue(), "print.jpg")
    with pytest.raises(PhotoError, match="transparency"):
        encode_photo(Photo(pixels=crop, alpha=crop[:, :, 0]), "JPEG")
    with pytest.raises(PhotoError, match="unknown photo format 'gif'"):
        encode_photo(Photo(pixels=crop), "gif")


def test_heic_is_read_with_the_extra(crop: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(crop)).save(buf, quality=95)
    # the HEIF container's own rotation is applied by libheif; the EXIF tag is informative
    photo = decode_photo(buf.getvalue(), "phone.heic")
    assert photo.format == "HEIF" and photo.pixels.shape == crop.shape
    assert np.abs(photo.pixels.astype(int) - crop).mean() < 4
    assert photo_file.output_format_for(photo.format) == "JPEG"


def test_heic_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # the ftyp box of a HEIC file; the extra's absence is simulated by its import check
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    monkeypatch.setattr(photo_file, "_register_heif", lambda: False)
    with pytest.raises(PhotoError, match=r"phone.heic: .*extra 'heif'.*pillow-heif"):
        decode_photo(data, "phone.heic")


def test_multi_frame_files_are_refused_with_their_frame_count(crop: np.ndarray) -> None:
    import tifffile

    frames = [Image.fromarray(np.roll(crop, 9 * i, axis=1)) for i in range(3)]
    for fmt, ext, what in [
        ("WEBP", "webp", "3 animation frames"),
        ("PNG", "png", "3 animation frames"),  # APNG
        ("GIF", "gif", "3 animation frames"),
        ("TIFF", "tif", "3 pages"),
    ]:
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
        with pytest.raises(PhotoError, match=rf"^clip\.{ext}: {what} in one {fmt} file; only"):
            decode_photo(buf.getvalue(), f"clip.{ext}")
    # single-frame GIF: not a supported format, said plainly
    with pytest.raises(PhotoError, match=r"^one\.gif: GIF files are not supported"):
        decode_photo(pillow_bytes(crop, "GIF"), "one.gif")
    # a TIFF page flagged as a reduced-resolution preview is not a second photo
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(crop, photometric="rgb", metadata=None)
        tif.write(crop[::4, ::4], photometric="rgb", metadata=None, subfiletype=1)
    np.testing.assert_array_equal(decode_photo(buf.getvalue(), "scan.tif").pixels, crop)
    # a camera JPEG with an MPF preview (Pillow: MPO) is the photo its first image is
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:2], quality=95)
    photo = decode_photo(buf.getvalue(), "camera.jpg")
    assert photo.format == "JPEG" and photo.pixels.shape == crop.shape
