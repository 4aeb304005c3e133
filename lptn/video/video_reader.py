"""Demux and decode a video file: RGB frames with their timestamps, and the packets of the
streams that are copied as they are (audio, subtitles)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

import numpy as np

from lptn.video import VideoError, require_av
from lptn.video.colour_conversion import ColourInfo, colour_info, frame_to_rgb
from lptn.video.ffmpeg_errors import error_words, ffmpeg_log

# Stream kinds copied packet by packet into the output (no re-encoding).
COPIED_STREAM_TYPES = ("audio", "subtitle")


@dataclass
class DecodedFrame:
    """One decoded video frame.

    ``rgb``: ``H x W x 3`` uint8 (8-bit video) or uint16 (deeper), full-range RGB in the
    stream's own primaries and transfer. ``pts`` in units of ``time_base`` (seconds =
    ``pts * time_base``); ``index``: position in decoding output order, from 0.
    """

    index: int
    rgb: np.ndarray
    pts: int
    time_base: Fraction
    colour: ColourInfo
    #: the frame's display matrix (9 int32, FFmpeg layout), None when the video is upright
    display_matrix: Optional[List[int]] = None

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)


class VideoReader:
    """Opens ``path`` and yields, in file order, :class:`DecodedFrame` for the first video
    stream and ``av.Packet`` for the copied streams (:attr:`copied_streams`).

    Raises :class:`VideoError` naming the file (and the frame and its time) when the file
    cannot be opened or decoded, in FFmpeg's words, or ends before the frame count its header
    announces.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.av = require_av()
        self.path = Path(path)
        # FFmpeg logs why a file does not open ("moov atom not found" for a cut mp4)
        with ffmpeg_log() as log:
            try:
                self.container = self.av.open(str(self.path), "r")
            except (self.av.error.FFmpegError, OSError) as err:
                raise VideoError(
                    f"{self.path}: cannot open as a video: {error_words(err, log)}"
                ) from err
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{self.path}: no video stream")
        self.video = self.container.streams.video[0]
        # Frame threads decode in parallel with the rest of the pipeline.
        self.video.thread_type = "AUTO"
        self.copied_streams = [s for s in self.container.streams if s.type in COPIED_STREAM_TYPES]
        self.skipped_streams = [
            s
            for s in self.container.streams
            if s is not self.video and s.type not in COPIED_STREAM_TYPES
        ]
        cc = self.video.codec_context
        # the codec family (``av1``), not the decoder's name (``libdav1d``)
        self.codec_name: str = getattr(cc.codec, "canonical_name", None) or cc.name
        self.width: int = cc.width
        fmt = cc.format
        #: bits per sample of the decoded video (8 when the header does not say)
        self.bit_depth: int = max((c.bits for c in fmt.components), default=8) if fmt else 8
        self.height: int = cc.height
        self.bit_rate: Optional[int] = cc.bit_rate or self.container.bit_rate or None
        self.frame_rate: Optional[Fraction] = self.video.average_rate or self.video.guessed_rate
        self.time_base: Fraction = self.video.time_base or Fraction(1, 1000)
        self.frame_count: int = int(self.video.frames or 0)
        self.duration: Optional[float] = _stream_duration(self.video)
        self._decoded = 0
        self._last_end = 0.0  # end time (s) of the last decoded frame

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def items(self) -> Iterator[Union[DecodedFrame, Any]]:
        """Decoded frames of the video stream and raw packets of the copied streams."""
        av = self.av
        streams = [self.video, *self.copied_streams]
        try:
            for packet in self.container.demux(streams):
                # demux ends each stream with an empty packet: it flushes the decoder
                if packet.stream is self.video:
                    yield from self._decode(packet)
                elif packet.dts is not None:
                    yield packet
        except av.error.FFmpegError as err:
            # the failing frame starts where the last decoded one ends
            raise VideoError(
                f"{self.path}: frame {self._decoded} at {self._last_end:.3f} s: cannot read or "
                f"decode: {error_words(err)}"
            ) from err
        if self.frame_count and self._decoded < self.frame_count:
            raise VideoError(
                f"{self.path}: frame {self._decoded}: the file ends early (truncated?): "
                f"{self._decoded} of {self.frame_count} frames decoded"
            )
        # Containers without a frame count (Matroska) announce the stream's duration.
        rate = float(self.frame_rate or 25)
        if (
            not self.frame_count
            and self.duration
            and (self._last_end < self.duration - max(2.0 / rate, 0.1))
        ):
            raise VideoError(
                f"{self.path}: frame {self._decoded}: the file ends early (truncated?): video "
                f"stops at {self._last_end:.2f} s of {self.duration:.2f} s"
            )

    def _decode(self, packet: Any) -> Iterator[DecodedFrame]:
        for frame in packet.decode():
            index = self._decoded
            if getattr(frame, "is_corrupt", False):
                raise VideoError(f"{self.path}: frame {index}: corrupt data")
            info = colour_info(frame)
            pts = frame.pts
            tb = frame.time_base or self.time_base
            if pts is None:
                # Some containers (AVI) give no timestamps: count frames at the nominal rate.
                rate = self.frame_rate or Fraction(25)
                pts = int(round(index / (rate * tb)))
            self._decoded += 1
            step = frame.duration * tb if frame.duration else 1 / (self.frame_rate or 25)
            self._last_end = max(self._last_end, float(pts * tb + step))
            yield DecodedFrame(
                index=index,
                rgb=frame_to_rgb(frame, info),
                pts=pts,
                time_base=tb,
                colour=info,
                display_matrix=_display_matrix(frame) if index == 0 else None,
            )


def _stream_duration(stream: Any) -> Optional[float]:
    """The stream's announced duration in seconds, or None when the file does not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska: "HH:MM:SS.nnnnnnnnn"
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


def _display_matrix(frame: Any) -> Optional[List[int]]:
    """The frame's DISPLAYMATRIX side data as 9 ints, or None when absent."""
    try:
        sides = list(frame.side_data)
    except (AttributeError, TypeError):
        return None
    for side in sides:
        if "DISPLAYMATRIX" in str(side.type):
            raw = bytes(side)
            if len(raw) >= 36:
                return list(struct.unpack("<9i", raw[:36]))
    return None
