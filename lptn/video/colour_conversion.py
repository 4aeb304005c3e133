"""YUV video frames <-> RGB arrays for the network, per the stream's own colour description.

libswscale (through PyAV's ``VideoFrame.reformat``) does the conversion, told explicitly which
YUV matrix (BT.601 / BT.709 / BT.2020 ...) and range (limited "MPEG" / full "JPEG") the frame
uses, so nothing depends on swscale's defaults. Frames deeper than 8 bits go through 16-bit RGB
(``rgb48le``) and come back at their own depth: 10-bit video stays 10-bit.

The network sees the encoded (gamma) RGB values, like the sRGB photos it was trained on; the
primaries and the transfer function are not converted, only carried to the output as tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lptn.video import require_av

# AVColorSpace (the stream's matrix coefficients) -> libswscale's colourspace name.
_SWS_MATRIX = {
    1: "ITU709",  # BT.709
    4: "FCC",
    5: "ITU601",  # BT.470BG (PAL BT.601)
    6: "ITU601",  # SMPTE 170M (NTSC BT.601)
    7: "SMPTE240M",
    9: "BT2020",  # BT.2020 non-constant luminance
    10: "BT2020",  # BT.2020 constant luminance: swscale has the NCL matrix only
}
AVCOL_RANGE_UNSPECIFIED, AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 0, 1, 2
# Pixel formats that mean full range by their name (deprecated by FFmpeg, still produced).
_FULL_RANGE_FORMATS = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}


def _interpolation() -> Any:
    # Bilinear chroma resampling with exact rounding (swscale's default rounding is coarser).
    flags = require_av().video.reformatter.Interpolation
    return flags.BILINEAR | flags.ACCURATE_RND


@dataclass(frozen=True)
class ColourInfo:
    """How a stream's pixels are to be read.

    ``matrix``, ``colour_range``, ``primaries``, ``transfer``: the stream's AVColorSpace,
    AVColorRange, AVColorPrimaries and AVColorTransferCharacteristic codes as tagged (2 / 0 =
    unspecified). ``sws_matrix`` and ``full_range`` are what the conversion uses: tagged
    values, or the usual guesses when untagged (BT.709 from 720 lines up, BT.601 below;
    limited range unless the pixel format says full). ``pix_fmt``: the decoded format
    (``yuvj*`` mapped to ``yuv*``); ``bit_depth``: bits per luma sample.
    """

    matrix: int
    colour_range: int
    primaries: int
    transfer: int
    sws_matrix: str
    full_range: bool
    pix_fmt: str
    bit_depth: int

    @property
    def rgb_format(self) -> str:
        """``rgb24`` for 8-bit video, ``rgb48le`` (16-bit RGB) for deeper video."""
        return "rgb24" if self.bit_depth <= 8 else "rgb48le"

    @property
    def sws_range(self) -> str:
        return "JPEG" if self.full_range else "MPEG"

    def describe(self) -> str:
        return (
            f"{self.pix_fmt}, {self.bit_depth}-bit, {self.sws_matrix} matrix, "
            f"{'full' if self.full_range else 'limited'} range"
        )


def colour_info(frame: Any) -> ColourInfo:
    """The :class:`ColourInfo` of a decoded ``av.VideoFrame``."""
    fmt = frame.format.name
    matrix, colour_range = int(frame.colorspace), int(frame.color_range)
    sws = _SWS_MATRIX.get(matrix)
    if sws is None:
        sws = "ITU709" if frame.height >= 720 else "ITU601"
    full = colour_range == AVCOL_RANGE_JPEG or (
        colour_range == AVCOL_RANGE_UNSPECIFIED and fmt in _FULL_RANGE_FORMATS
    )
    if fmt in _FULL_RANGE_FORMATS:
        fmt = _FULL_RANGE_FORMATS[fmt]
        colour_range = AVCOL_RANGE_JPEG
    bits = max(c.bits for c in frame.format.components) if frame.format.components else 8
    return ColourInfo(
        matrix=matrix,
        colour_range=colour_range,
        primaries=int(frame.color_primaries),
        transfer=int(frame.color_trc),
        sws_matrix=sws,
        full_range=full,
        pix_fmt=fmt,
        bit_depth=bits,
    )


def frame_to_rgb(frame: Any, info: ColourInfo) -> np.ndarray:
    """Decoded ``av.VideoFrame`` -> ``H x W x 3`` RGB array, uint8 (8-bit video) or uint16
    (deeper video, full 16-bit scale), full range."""
    rgb = frame.reformat(
        format=info.rgb_format,
        src_colorspace=info.sws_matrix,
        dst_colorspace=info.sws_matrix,
        src_color_range=info.sws_range,
        dst_color_range="JPEG",
        interpolation=_interpolation(),
    )
    return rgb.to_ndarray()


def rgb_to_frame(rgb: np.ndarray, info: ColourInfo, pix_fmt: str) -> Any:
    """``H x W x 3`` uint8/uint16 RGB -> ``av.VideoFrame`` in ``pix_fmt``, with the matrix,
    range, primaries and transfer of ``info`` (as tags and, matrix and range, in the
    numbers)."""
    av = require_av()
    fmt = "rgb24" if rgb.dtype == np.uint8 else "rgb48le"
    src = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
    out = src.reformat(
        format=pix_fmt,
        src_colorspace=info.sws_matrix,
        dst_colorspace=info.sws_matrix,
        src_color_range="JPEG",
        dst_color_range=info.sws_range,
        interpolation=_interpolation(),
    )
    out.colorspace = info.matrix
    out.color_range = info.colour_range
    out.color_primaries = info.primaries
    out.color_trc = info.transfer
    return out
