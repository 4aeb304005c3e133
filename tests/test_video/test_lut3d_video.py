"""lptn-enhance with 3D-LUT weights on a video: each output frame is the network's output on
that input frame as lptn decodes it, within a level (4:4:4 at CRF 0, the reference taken
through the same YUV conversion)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import numpy as np
from video_clips import make_clip, pan_frames

from lptn.engine.cli import enhance_main
from lptn.photo import PhotoEnhancer
from lptn.platform.checkpoint_io import save_network
from lptn.video.colour_conversion import ColourInfo, frame_to_rgb, rgb_to_frame
from lptn.video.video_reader import DecodedFrame, VideoReader

# The 3D-LUT network with a visible grade lives with the inference tests' helpers.
INFERENCE_TESTS = str(Path(__file__).resolve().parents[1] / "test_inference")
if INFERENCE_TESTS not in sys.path:
    sys.path.append(INFERENCE_TESTS)
from inference_test_utils import graded_lut_network  # noqa: E402


def _decoded(path: Path) -> List[DecodedFrame]:
    """The frames as lptn decodes them (``rgb``: HxWx3 uint8 RGB)."""
    with VideoReader(path) as reader:
        return [f for f in reader.items() if isinstance(f, DecodedFrame)]


def _through_yuv(rgb: np.ndarray, info: ColourInfo) -> np.ndarray:
    """``rgb`` after the output's lossless 4:4:4 YUV and back, lptn's conversions both ways."""
    return frame_to_rgb(rgb_to_frame(rgb, info, "yuv444p"), info)


def test_lut_weights_enhance_a_video_like_the_network(tmp_path: Path, photo: np.ndarray) -> None:
    weights = tmp_path / "lut3d.pth"
    save_network(graded_lut_network(), weights, arch={"type": "ImageAdaptive3DLUT"})
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    # 4:4:4 in, and so out, at CRF 0 (lossless): the YUV rounding after the network is the
    # only loss, and the reference goes through the same conversion.
    make_clip(src / "pan.mp4", pan_frames(photo, 6, 128, 96), pix_fmt="yuv444p")
    args = ["--weights", str(weights), "--input", str(src), "--output", str(out), "--crf", "0"]
    assert enhance_main([*args, "--device", "cpu", "--no-progress"]) == 0
    frames_in, frames_out = _decoded(src / "pan.mp4"), _decoded(out / "pan.mp4")
    assert len(frames_in) == len(frames_out) == 6
    exact = PhotoEnhancer.from_weights(weights, device="cpu")
    for i, (before, after) in enumerate(zip(frames_in, frames_out)):
        want = exact.enhance_rgb(before.rgb)
        assert np.abs(want.astype(int) - before.rgb.astype(int)).max() > 20, i  # visible
        want = _through_yuv(want, after.colour).astype(int)
        assert np.abs(after.rgb.astype(int) - want).max() <= 1, i
