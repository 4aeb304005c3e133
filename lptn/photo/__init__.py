"""Photos in, photos out: files with orientation, metadata, colour profiles, grey, alpha and
16-bit samples, enhanced by an LPTN generator.

- :mod:`~lptn.photo.photo_file`: read / write photo files (:class:`Photo`).
- :mod:`~lptn.photo.metadata`: EXIF orientation and the metadata copied to outputs (EXIF,
  XMP, PNG text).
- :mod:`~lptn.photo.iptc`: IPTC-IIM (keywords, by-line, city, caption) in and out (exiv2).
- :mod:`~lptn.photo.tiff_exif`: the Exif and GPS sub-IFDs of 16-bit TIFF outputs (exiv2).
- :mod:`~lptn.photo.raw_file`: camera RAW files developed by LibRaw (rawpy), with their EXIF.
- :mod:`~lptn.photo.colour`: littleCMS conversions to sRGB and back.
- :mod:`~lptn.photo.enhancer`: :class:`PhotoEnhancer`, the generator applied to arrays.
- :mod:`~lptn.photo.pipeline`: :func:`enhance_photo`, :func:`enhance_photo_bytes`.
"""

from lptn.photo.enhancer import PhotoEnhancer
from lptn.photo.errors import PhotoError
from lptn.photo.photo_file import Photo, decode_photo, encode_photo, read_photo, write_photo
from lptn.photo.pipeline import enhance_photo, enhance_photo_bytes

__all__ = [
    "Photo",
    "PhotoEnhancer",
    "PhotoError",
    "decode_photo",
    "encode_photo",
    "enhance_photo",
    "enhance_photo_bytes",
    "read_photo",
    "write_photo",
]
