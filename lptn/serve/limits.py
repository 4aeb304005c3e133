"""The limits on what one request may send, with their defaults (the command's options).

Kept apart from the web code so that the command can state the defaults without the
``serve`` extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from lptn.platform.option_schema import PHOTO


@dataclass(frozen=True)
class Limits:
    """What one request may send: bytes of the body, pixels announced by the image header,
    the seconds its head and then its body may take to arrive, and the uploads received at
    once; ``jpeg_quality`` (1..100) of JPEG and WebP results. The defaults are the command's (the
    schema's ``PHOTO`` block for the photo options, checked by ``PhotoSettings``)."""

    max_upload_mb: float = 50.0
    max_megapixels: float = PHOTO.keys["max_megapixels"].default
    jpeg_quality: int = PHOTO.keys["jpeg_quality"].default
    # Twice the default queue: photos keep arriving while the queue is full.
    max_uploads: int = 32
    # 50 MB in 60 s needs about 7 Mbit/s; raise it for slower links.
    upload_timeout_s: float = 60.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
