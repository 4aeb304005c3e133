"""Short test clips made with PyAV: a slow pan over a FiveK photo, optional AAC audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av")


def pan_frames(photo: np.ndarray, count: int, width: int, height: int, step: int = 2) -> List:
    """``count`` float32 RGB crops (height x width, [0, 1]) panning right by ``step`` px."""
    scale = (height + 8) / photo.shape[0]
    big = cv2.resize(
        photo, (max(width + step * count + 8, int(photo.shape[1] * scale)), height + 8)
    )
    return [big[4 : 4 + height, 4 + i * step : 4 + i * step + width] for i in range(count)]


def make_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: Optional[Sequence[int]] = None,
    time_base: Fraction = Fraction(1, 24),
    rate: int = 24,
    colorspace: str = "ITU709",
    color_range: str = "MPEG",
    tags: Optional[Dict[str, int]] = None,
    audio: bool = False,
    subtitles: Sequence[bytes] = (),
    rotation: Optional[int] = None,
    options: Optional[Dict[str, str]] = None,
    chapters: Sequence[str] = (),
) -> None:
    """Encode float RGB ``frames`` (converted with the given matrix and range, 16-bit RGB for
    pixel formats deeper than 8 bits) into ``path``; ``tags``: AVCOL_* codes for
    colorspace / color_range / color_primaries / color_trc; ``subtitles``: SubRip cue texts,
    one every 0.1 s (Matroska)."""
    height, width = frames[0].shape[:2]
    out = av.open(str(path), "w")
    vs = out.add_stream(codec, rate=rate)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    vs.time_base = time_base
    vs.codec_context.time_base = time_base
    vs.options = dict(options or {"crf": "12"})
    codes = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    codes.update(tags or {})
    for key, value in codes.items():
        setattr(vs.codec_context, key, value)
    if rotation is not None:
        vs.set_display_rotation(rotation)
    if chapters:
        out.set_chapters(
            [
                {"id": i + 1, "start": i, "end": i + 1, "time_base": Fraction(1, 10)}
                | {"metadata": {"title": title}}
                for i, title in enumerate(chapters)
            ]
        )
    aus = out.add_stream("aac", rate=48000) if audio else None
    subs = out.add_mux_stream("subrip") if subtitles else None  # pre-encoded SubRip cues
    deep = max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8
    for i, img in enumerate(frames):
        if deep:
            rgb = av.VideoFrame.from_ndarray(np.round(img * 65535).astype(np.uint16), "rgb48le")
        else:
            rgb = av.VideoFrame.from_ndarray(np.round(img * 255).astype(np.uint8), "rgb24")
        f = rgb.reformat(
            format=pix_fmt,
            src_colorspace=colorspace,
            dst_colorspace=colorspace,
            src_color_range="JPEG",
            dst_color_range=color_range,
        )
        for key, value in codes.items():
            setattr(f, key, value)
        f.pts = pts[i] if pts is not None else i
        f.time_base = time_base
        for packet in vs.encode(f):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)
    for i, text in enumerate(subtitles):
        cue = av.Packet(text)
        cue.stream, cue.time_base = subs, Fraction(1, 1000)
        cue.pts = cue.dts = 100 * i
        cue.duration = 80
        out.mux(cue)
    if aus is not None:
        last = pts[-1] if pts is not None else len(frames) - 1
        _mux_tone(out, aus, float((last + 1) * time_base))
    out.close()


def _mux_tone(out, aus, seconds: float) -> None:
    """``seconds`` of a 440 Hz mono tone, 48 kHz, encoded by the audio stream ``aus``."""
    t = np.arange(int(seconds * 48000)) / 48000.0
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(tone) - 1024 + 1, 1024):
        a = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], "fltp", "mono")
        a.sample_rate, a.pts = 48000, start
        for packet in aus.encode(a):
            out.mux(packet)
    for packet in aus.encode(None):
        out.mux(packet)


def stream_packets(path: Path, kind: str) -> List:
    """(time in s, exact; payload) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        stream = getattr(c.streams, kind)[0]
        return [
            (p.pts * p.time_base, bytes(p)) for p in c.demux(stream) if p.dts is not None and p.size
        ]


def frame_times(path: Path) -> List[Fraction]:
    """Presentation time (s, exact) of every decoded video frame, in decoding order."""
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]
