"""FFmpeg errors in words, for the messages of :class:`~lptn.video.VideoError`.

``str()`` of a PyAV error reads ``[Errno 1094995529] Invalid data found when processing input:
'clip.mp4'``: the AVERROR code as a number, FFmpeg's words for it and the file again. Messages
keep only the words, plus FFmpeg's own reason when it logged one ("moov atom not found"). PyAV
keeps FFmpeg's log switched off, so :func:`ffmpeg_log` switches it on, silenced, around a call
whose failure needs the reason.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from lptn.video import require_av


class FFmpegLog:
    """The error lines FFmpeg logs from the moment this is made (see :func:`ffmpeg_log`)."""

    def __init__(self) -> None:
        self.av = require_av()
        # PyAV counts every error-level line, repeated ones too, and keeps the last
        self._start = self.av.logging.get_last_error()[0]

    def last_error(self) -> Optional[str]:
        """The text of the last error line FFmpeg logged since, or None."""
        count, entry = self.av.logging.get_last_error()
        if count > self._start and entry:
            return str(entry[2]).strip() or None
        return None


def error_words(err: BaseException, log: Optional[FFmpegLog] = None) -> str:
    """``err`` in words: FFmpeg's (or the OS's) text for its error code, without the number and
    the file name, followed in brackets by the last error line FFmpeg logged in ``log``."""
    words = str(getattr(err, "strerror", None) or err)
    reason = log.last_error() if log is not None else None
    if reason and reason.lower() not in words.lower():
        words = f"{words} ({reason})"
    return words


@contextmanager
def ffmpeg_log() -> Iterator[FFmpegLog]:
    """Keep FFmpeg's error lines during the block, printing none of this thread's; yields the
    :class:`FFmpegLog` that reads them.

    The log is on for the block only: FFmpeg also logs from its own decoding threads, and PyAV's
    log callback takes the GIL there. When the application has set PyAV's log level itself, its
    logging is left as it is (and still feeds the reasons).
    """
    av = require_av()
    if av.logging.get_level() is not None:
        yield FFmpegLog()
        return
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=True):  # this thread's lines go to the message only
            yield FFmpegLog()
    finally:
        av.logging.set_level(None)
