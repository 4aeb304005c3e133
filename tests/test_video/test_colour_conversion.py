"""YUV <-> RGB per the stream's matrix and range, checked against the standards' formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_clips import av

from lptn.video.colour_conversion import colour_info, frame_to_rgb, rgb_to_frame
from lptn.video.video_reader import DecodedFrame, VideoReader

# Luma coefficients (Kr, Kb) of the two matrices that are most often mixed up.
KR_KB = {1: (0.2126, 0.0722), 6: (0.299, 0.114)}  # BT.709, BT.601 (SMPTE 170M)

COLOURS = np.array(
    [[200, 40, 30], [30, 180, 60], [40, 60, 210], [230, 220, 40], [128, 128, 128], [20, 20, 20]],
    dtype=np.float64,
)


def _yuv_by_formula(rgb: np.ndarray, matrix: int, full: bool) -> np.ndarray:
    """8-bit R'G'B' -> 8-bit Y'CbCr (BT.601 / BT.709 equations, limited or full range)."""
    kr, kb = KR_KB[matrix]
    e = rgb / 255.0
    y = kr * e[..., 0] + (1 - kr - kb) * e[..., 1] + kb * e[..., 2]
    cb = (e[..., 2] - y) / (2 * (1 - kb))
    cr = (e[..., 0] - y) / (2 * (1 - kr))
    if full:
        return np.stack([255 * y, 128 + 255 * cb, 128 + 255 * cr], -1)
    return np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], -1)


def _flat_clip(path: Path, matrix: int, full: bool) -> np.ndarray:
    """A lossless 4:4:4 clip whose frame i is flat COLOURS[i]; its YUV comes from the
    formulas, not from swscale. Returns the RGB colours."""
    out = av.open(str(path), "w")
    stream = out.add_stream("ffv1", rate=10)
    stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv444p"
    stream.codec_context.colorspace = matrix  # the tags travel in the stream header
    stream.codec_context.color_range = 2 if full else 1
    for i, colour in enumerate(COLOURS):
        yuv = np.round(_yuv_by_formula(colour, matrix, full)).astype(np.uint8)
        planes = np.broadcast_to(yuv[:, None, None], (3, 16, 32)).copy()
        frame = av.VideoFrame.from_ndarray(planes, format="yuv444p")
        frame.colorspace, frame.color_range = matrix, 2 if full else 1
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return COLOURS


@pytest.mark.parametrize(("matrix", "full"), [(1, False), (1, True), (6, False), (6, True)])
def test_decoding_follows_the_tagged_matrix_and_range(
    tmp_path: Path, matrix: int, full: bool
) -> None:
    path = tmp_path / "flat.mkv"
    colours = _flat_clip(path, matrix, full)
    with VideoReader(path) as reader:
        frames = [f for f in reader.items() if isinstance(f, DecodedFrame)]
    assert len(frames) == len(colours)
    for frame, colour in zip(frames, colours):
        assert frame.colour.full_range == full
        got = frame.rgb.reshape(-1, 3).mean(0)
        assert np.abs(got - colour).max() <= 1.5, (frame.index, got, colour)
    # the wrong matrix would be visibly off for the saturated colours (the check can fail)
    other = 6 if matrix == 1 else 1
    wrong = _yuv_by_formula(colours[0], other, full)
    right = _yuv_by_formula(colours[0], matrix, full)
    assert np.abs(wrong - right).max() > 5


def test_ten_bit_round_trip_keeps_ten_bit_precision() -> None:
    """16-bit RGB -> yuv444p10le -> 16-bit RGB: errors far below one 8-bit step (257)."""
    ramp = np.linspace(0.1, 0.9, 64 * 48).reshape(48, 64)
    rgb = np.round(np.stack([ramp, ramp[::-1], 0.5 + 0 * ramp], -1) * 65535).astype(np.uint16)
    probe = av.VideoFrame(64, 48, "yuv444p10le")
    probe.colorspace, probe.color_range = 1, 1
    info = colour_info(probe)
    assert info.bit_depth == 10 and info.rgb_format == "rgb48le"
    frame = rgb_to_frame(rgb, info, "yuv444p10le")
    assert frame.format.name == "yuv444p10le"
    back = frame_to_rgb(frame, info)
    assert back.dtype == np.uint16
    err = np.abs(back.astype(np.int64) - rgb).max()
    assert err < 257 / 2, err  # an 8-bit step would show as ~257


def test_untagged_video_uses_the_usual_guesses() -> None:
    small = av.VideoFrame(64, 48, "yuv420p")
    hd = av.VideoFrame(1280, 720, "yuv420p")
    jpeg = av.VideoFrame(64, 48, "yuvj420p")
    assert colour_info(small).sws_matrix == "ITU601" and not colour_info(small).full_range
    assert colour_info(hd).sws_matrix == "ITU709"
    assert colour_info(jpeg).full_range and colour_info(jpeg).pix_fmt == "yuv420p"
