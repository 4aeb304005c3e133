"""The Exif and GPS sub-IFDs of 16-bit TIFF outputs, written with exiv2 (optional extra).

Pillow has no 16-bit RGB image mode and tifffile cannot write sub-IFDs, so a 16-bit TIFF is
written in two steps: tifffile writes the pixels, the ICC profile, the XMP packet and the
descriptive IFD0 tags (camera, date, copyright...); then :func:`add_exif_sub_ifds` lets exiv2
(the C++ metadata library photo tools use, through its Python binding ``exiv2``: ``pip install
'lptn[tiff-exif]'``) add the Exif and GPS sub-IFDs (exposure, capture date, GPS...). exiv2
rewrites only the directory structure; the pixel strips, the ICC profile and the XMP packet
keep their bytes.
"""

from __future__ import annotations

from typing import Optional

from PIL import Image

from lptn.photo.metadata import SUB_IFDS

TIFF_EXIF_EXTRA_HINT = (
    "the Exif and GPS sub-IFDs (capture date, exposure, GPS...) of 16-bit TIFF outputs need "
    "the optional extra 'tiff-exif' (pip install 'lptn[tiff-exif]', which installs exiv2)"
)

# exiv2 groups of IFD0 and of the image directories: tifffile wrote what they must hold.
_IMAGE_GROUP_PREFIXES = ("Image", "SubImage", "Thumbnail")


def has_sub_ifds(exif: Optional[Image.Exif]) -> bool:
    """True when ``exif`` holds an Exif or GPS sub-IFD with at least one tag."""
    return exif is not None and any(exif.get_ifd(tag) for tag in SUB_IFDS)


def exiv2_available() -> bool:
    """True when the ``exiv2`` binding (extra ``tiff-exif``) can be imported."""
    try:
        import exiv2  # noqa: F401
    except ImportError:
        return False
    return True


def add_exif_sub_ifds(tiff: bytes, exif: Image.Exif) -> bytes:
    """``tiff`` (a whole TIFF file) with the Exif and GPS sub-IFDs of ``exif`` added.

    IFD0 keeps what it has (the image structure, ICC profile, XMP and the descriptive tags
    tifffile wrote); only tags of the sub-IFDs (and camera maker notes) are taken from
    ``exif``. Needs the ``exiv2`` binding (check :func:`exiv2_available` first).

    Raises:
        ValueError: exiv2 cannot parse or write the metadata.
    """
    import exiv2

    blob = exif.tobytes()
    if blob.startswith(b"Exif\x00\x00"):  # Pillow's APP1 form; exiv2 reads the TIFF structure
        blob = blob[6:]
    try:
        source = exiv2.ImageFactory.open(blob)
        source.readMetadata()
        image = exiv2.ImageFactory.open(tiff)
        image.readMetadata()
        # Write the XMP packet tifffile stored as it is (exiv2 would re-serialise it).
        image.writeXmpFromPacket(True)
        target = image.exifData()
        for datum in source.exifData():
            if not datum.groupName().startswith(_IMAGE_GROUP_PREFIXES):
                target.add(datum)
        image.writeMetadata()
        io = image.io()
        return bytes(io.data())
    except exiv2.Exiv2Error as err:
        raise ValueError(f"exiv2 could not add the EXIF to the TIFF: {err}") from err
