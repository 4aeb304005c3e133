"""Video files through LPTN, frame by frame: decode, colour conversion, enhancement, encoding.

PyAV (``pip install "lptn[video]"``) does the container and codec work with the FFmpeg
libraries its wheels bundle; no system ffmpeg is needed. Importing this package does not
import PyAV: :func:`require_av` does, with an error naming the extra when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Union

#: Extensions recognised as video files when collecting inputs (case-insensitive).
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


class VideoUnavailable(ImportError):
    """PyAV is not installed; the message names the extra that installs it."""


class VideoError(OSError):
    """A video could not be read, enhanced or written; the message names the file (and the
    frame when one is at fault) and says why in words, FFmpeg's when FFmpeg failed
    (:mod:`lptn.video.ffmpeg_errors`)."""


def is_video_file(path: Union[str, Path]) -> bool:
    """True if ``path`` has one of :data:`VIDEO_EXTENSIONS`."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def require_av() -> ModuleType:
    """The ``av`` module, or :class:`VideoUnavailable` saying how to install it."""
    try:
        import av
    except ImportError as err:
        raise VideoUnavailable(
            'video files need PyAV: pip install "lptn[video]" (or pip install av)'
        ) from err
    return av
