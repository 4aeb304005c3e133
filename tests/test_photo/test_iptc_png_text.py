"""IPTC (keywords, by-line, city, caption) and PNG text chunks travel to outputs; exiftool, an
independent reader, judges what the outputs hold."""

from __future__ import annotations

import io
import sys
from typing import Dict, List, Tuple

import numpy as np
import pytest
from photo_samples import (
    IPTC_EXPECTED,
    XMP,
    camera_exif,
    exiftool,
    pillow_bytes,
    to16,
    with_iptc,
)
from PIL import Image, PngImagePlugin

from lptn.photo import PhotoEnhancer, decode_photo, encode_photo, enhance_photo_bytes, photo_file
from lptn.photo.metadata import PngText, png_chunks, png_metadata_chunks

IPTC_TAGS = ("-IPTC:Keywords", "-IPTC:By-line", "-IPTC:City", "-IPTC:Caption-Abstract")


def iptc_found(data: bytes) -> Dict[str, object]:
    found = exiftool(data, *IPTC_TAGS)
    found.pop("SourceFile")
    return found


def tagged_input(crop: np.ndarray, fmt: str) -> bytes:
    """A FiveK crop in ``fmt`` with camera EXIF (JPEG), then IPTC written by exiv2."""
    kwargs = {"exif": camera_exif(1), "xmp": XMP} if fmt == "JPEG" else {}
    return with_iptc(pillow_bytes(crop, fmt, **kwargs))


@pytest.mark.parametrize("in_fmt", ["JPEG", "TIFF", "PNG"])
def test_iptc_is_kept_in_jpeg_png_and_tiff(crop: np.ndarray, in_fmt: str) -> None:
    data = tagged_input(crop, in_fmt)
    assert iptc_found(data) == IPTC_EXPECTED  # what the input holds, as exiftool reads it
    photo = decode_photo(data, f"catalogue.{in_fmt.lower()}")
    deep = photo.with_pixels(to16(photo.pixels))
    outputs = {fmt: encode_photo(photo, fmt) for fmt in ("JPEG", "PNG", "TIFF")}
    outputs.update({f"16-bit {fmt}": encode_photo(deep, fmt) for fmt in ("PNG", "TIFF")})
    for name, out in outputs.items():
        assert iptc_found(out) == IPTC_EXPECTED, f"{in_fmt} -> {name}"
    if in_fmt == "JPEG":  # the rest of the metadata is intact next to the IPTC
        found = exiftool(outputs["JPEG"], "-EXIF:Model", "-XMP:Creator", "-EXIF:GPSLatitudeRef")
        assert found["EXIF:Model"] == "Pixel 7"
        assert found["XMP:Creator"] == ["Test Photographer"]
        assert found["EXIF:GPSLatitudeRef"] == "N"


def test_enhanced_jpeg_keeps_its_iptc(enhancer: PhotoEnhancer, crop: np.ndarray) -> None:
    out, media = enhance_photo_bytes(tagged_input(crop, "JPEG"), enhancer)
    assert media == "image/jpeg"
    assert iptc_found(out) == IPTC_EXPECTED


def test_webp_output_says_it_cannot_hold_iptc(
    crop: np.ndarray, lptn_log: pytest.LogCaptureFixture
) -> None:
    photo = decode_photo(tagged_input(crop, "JPEG"), "catalogue.jpg")
    photo_file._warned.clear()
    out = encode_photo(photo, "WEBP")
    assert iptc_found(out) == {}
    assert exiftool(out, "-XMP:Creator")["XMP:Creator"] == ["Test Photographer"]
    assert "WebP cannot hold IPTC" in lptn_log.text


def test_without_exiv2_tiff_keeps_iptc_and_jpeg_says_why(
    crop: np.ndarray, monkeypatch: pytest.MonkeyPatch, lptn_log: pytest.LogCaptureFixture
) -> None:
    photo = decode_photo(tagged_input(crop, "JPEG"), "catalogue.jpg")
    png = tagged_input(crop, "PNG")
    monkeypatch.setitem(sys.modules, "exiv2", None)  # as if the extra were not installed
    photo_file._warned.clear()
    assert iptc_found(encode_photo(photo, "TIFF")) == IPTC_EXPECTED  # tag 33723, no exiv2
    assert iptc_found(encode_photo(photo, "JPEG")) == {}
    assert iptc_found(encode_photo(photo, "PNG")) == {}
    warnings = [r.getMessage() for r in lptn_log.records if "IPTC" in r.getMessage()]
    assert len(warnings) == 1 and "lptn[tiff-exif]" in warnings[0]  # once, not per output
    # a PNG input's IPTC chunk needs exiv2 to be read: the photo is, with one warning
    assert decode_photo(png, "catalogue.png").iptc is None
    warnings = [r.getMessage() for r in lptn_log.records if "IPTC of PNG" in r.getMessage()]
    assert len(warnings) == 1 and "lptn[tiff-exif]" in warnings[0]


def text_chunks(png: bytes) -> List[Tuple[bytes, bytes]]:
    """(chunk type, keyword) of each text chunk, in file order."""
    return [
        (c[4:8], c[8:].split(b"\0", 1)[0])
        for c in png_chunks(png)
        if c[4:8] in (b"tEXt", b"zTXt", b"iTXt")
    ]


def png_with_text(arr: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Anna Muller")  # tEXt
    info.add_text("Copyright", "CC BY 4.0, Anna Muller", zip=True)  # zTXt
    info.add_itxt("Description", "Boats at dawn, lake Zürich", "", "", zip=True)  # iTXt, compressed
    info.add_itxt("Title", "Boote im Morgengrauen", "de", "Titel")  # iTXt with a language
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", pnginfo=info)
    # a comment after the pixel data (PNG allows text anywhere before IEND)
    comment = png_metadata_chunks(None, None, None, [PngText("Comment", "shot on film")])
    png = buf.getvalue()
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + comment[0] + png[iend:]


def test_png_text_is_kept_in_png_and_mapped_to_exif_elsewhere(
    enhancer: PhotoEnhancer, crop: np.ndarray
) -> None:
    data = png_with_text(crop)
    out, _ = enhance_photo_bytes(data, enhancer)
    deep = encode_photo(decode_photo(data).with_pixels(to16(crop)), "PNG")
    for png in (out, deep):
        found = exiftool(png, "-PNG:all")
        assert found["PNG:Author"] == "Anna Muller"
        assert found["PNG:Description"] == "Boats at dawn, lake Zürich"
        assert found["PNG:Copyright"] == "CC BY 4.0, Anna Muller"
        assert found["PNG:Title-de"] == "Boote im Morgengrauen"
        assert found["PNG:Comment"] == "shot on film"
        # each text keeps its chunk type (and so its compression), in the input's order
        assert text_chunks(png) == text_chunks(data)
        title = Image.open(io.BytesIO(png)).text["Title"]
        assert (title.lang, title.tkey) == ("de", "Titel")  # type: ignore[attr-defined]
    # formats without PNG text: Author, Description and Copyright go to their EXIF tags, which
    # hold ASCII: the description with a 'ü' is left out, not written as 'Z?rich'
    for fmt in ("jpeg", "tiff", "webp"):
        other, _ = enhance_photo_bytes(data, enhancer, out_format=fmt)
        found = exiftool(other, "-EXIF:Artist", "-EXIF:ImageDescription", "-EXIF:Copyright")
        assert found["EXIF:Artist"] == "Anna Muller", fmt
        assert found["EXIF:Copyright"] == "CC BY 4.0, Anna Muller", fmt
        assert "EXIF:ImageDescription" not in found, fmt
