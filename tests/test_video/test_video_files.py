"""End-to-end: clips made here go through enhance_video_file with the official checkpoint;
frames, timestamps, audio, colour, rotation and bit depth are checked on the output file."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import List

import numpy as np
import pytest
from torch import nn
from video_clips import av, frame_times, make_clip, pan_frames, stream_packets

from lptn.engine.enhance_video import VideoOptions, enhance_video_file
from lptn.inference.fast_lptn import FastLPTN
from lptn.platform.runtime import Runtime
from lptn.video.video_reader import DecodedFrame, VideoReader


def _decoded(path: Path) -> List[DecodedFrame]:
    with VideoReader(path) as reader:
        return [it for it in reader.items() if isinstance(it, DecodedFrame)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    peak = 255.0 if a.dtype == np.uint8 else 65535.0
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(peak**2 / max(mse, 1e-12)))


def _check_fidelity(src: Path, dst: Path, net: nn.Module, min_psnr: float = 35.0) -> None:
    """Each decoded output frame against the network applied to the decoded input frame."""
    fast = FastLPTN(net)
    ins, outs = _decoded(src), _decoded(dst)
    assert len(outs) == len(ins)
    for fin, fout in zip(ins, outs):
        assert fout.rgb.dtype == fin.rgb.dtype and fout.rgb.shape == fin.rgb.shape
        expected = fast.enhance_array(fin.rgb)
        psnr = _psnr(fout.rgb, expected)
        assert psnr > min_psnr, f"frame {fin.index}: PSNR {psnr:.1f} dB"
        # the enhancement is visible: the output is not just the input again
        assert _psnr(fout.rgb, fin.rgb) < psnr - 3


def _stream_info(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        return {
            "codec": cc.name,
            "size": (cc.width, cc.height),
            "pix_fmt": cc.pix_fmt,
            "colour": (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc),
            "audio": [s.codec_context.name for s in c.streams.audio],
        }


def test_h264_aac_clip_keeps_frames_timing_audio_and_colour(
    tmp_path: Path, photo: np.ndarray, generator: nn.Module, cpu_runtime: Runtime
) -> None:
    src, dst = tmp_path / "clip.mp4", tmp_path / "out" / "clip.mp4"
    make_clip(src, pan_frames(photo, 12, 96, 64), audio=True)
    result = enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=10))
    assert result.frames == 12 and result.encoder == "libx264"
    assert os.listdir(dst.parent) == [dst.name]  # no temporary file left
    info_in, info_out = _stream_info(src), _stream_info(dst)
    assert info_out == info_in  # codec family, size, yuv420p, BT.709 limited tags, aac
    assert frame_times(dst) == frame_times(src)
    audio_in, audio_out = stream_packets(src, "audio"), stream_packets(dst, "audio")
    assert len(audio_in) > 10 and audio_out == audio_in  # copied, not re-encoded
    _check_fidelity(src, dst, generator)


def test_variable_frame_rate_timestamps_subtitles_and_chapters_are_kept(
    tmp_path: Path, photo: np.ndarray, generator: nn.Module, cpu_runtime: Runtime
) -> None:
    pts = [0, 1, 3, 4, 8, 9, 10, 15, 16, 20, 21, 30]  # irregular gaps, in 1/1000 s * 33
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out" / "vfr.mkv"
    make_clip(
        src,
        pan_frames(photo, len(pts), 80, 64),
        pts=[p * 33 for p in pts],
        time_base=Fraction(1, 1000),
        rate=30,
        subtitles=[b"First cue", b"Second cue"],
        chapters=["Intro", "Main"],
    )
    times_in = frame_times(src)
    assert len(set(np.diff([float(t) for t in times_in]).round(3))) > 2  # really variable
    enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=10, tau=0.3))
    assert frame_times(dst) == times_in
    cues = stream_packets(dst, "subtitles")
    assert cues == stream_packets(src, "subtitles") and [c[1] for c in cues] == [
        b"First cue",
        b"Second cue",
    ]
    with av.open(str(dst)) as out, av.open(str(src)) as inp:
        assert out.chapters() == inp.chapters() and len(out.chapters()) == 2


def test_ten_bit_hevc_stays_ten_bit(
    tmp_path: Path, photo: np.ndarray, generator: nn.Module, cpu_runtime: Runtime
) -> None:
    src, dst = tmp_path / "deep.mkv", tmp_path / "out" / "deep.mkv"
    make_clip(
        src,
        pan_frames(photo, 8, 96, 64),
        codec="libx265",
        pix_fmt="yuv420p10le",
        options={"crf": "8", "x265-params": "log-level=error"},
        tags={"colorspace": 9, "color_primaries": 9, "color_trc": 14},  # BT.2020, 10-bit trc
    )
    result = enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=8))
    assert result.encoder == "libx265" and result.pix_fmt == "yuv420p10le"
    info = _stream_info(dst)
    assert info["codec"] == "hevc" and info["pix_fmt"] == "yuv420p10le"
    assert info["colour"] == (9, 1, 9, 14)
    frames = _decoded(src)
    # 16-bit RGB from the decoder: 10-bit levels, not 8-bit ones scaled up (x * 257)
    assert frames[0].rgb.dtype == np.uint16
    assert np.mean(frames[0].rgb % 257 != 0) > 0.5
    _check_fidelity(src, dst, generator)


def test_rotation_is_kept(
    tmp_path: Path, photo: np.ndarray, generator: nn.Module, cpu_runtime: Runtime
) -> None:
    src, dst = tmp_path / "turned.mov", tmp_path / "out" / "turned.mov"
    make_clip(src, pan_frames(photo, 6, 64, 48), rotation=90)
    enhance_video_file(src, dst, generator, cpu_runtime)
    with av.open(str(dst)) as c:
        rotations = {f.rotation for f in c.decode(video=0)}
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 48)
    assert rotations == {90}


@pytest.mark.parametrize(
    ("colorspace", "sws", "color_range"),
    [(6, "ITU601", "JPEG"), (1, "ITU709", "MPEG"), (5, "ITU601", "MPEG")],
)
def test_range_and_matrix_are_kept(
    tmp_path: Path,
    photo: np.ndarray,
    generator: nn.Module,
    cpu_runtime: Runtime,
    colorspace: int,
    sws: str,
    color_range: str,
) -> None:
    src, dst = tmp_path / "range.mp4", tmp_path / "out" / "range.mp4"
    code = 2 if color_range == "JPEG" else 1
    make_clip(
        src,
        pan_frames(photo, 6, 64, 48),
        colorspace=sws,
        color_range=color_range,
        tags={"colorspace": colorspace, "color_range": code, "color_primaries": 6},
    )
    enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=10))
    assert _stream_info(dst)["colour"][:3] == (colorspace, code, 6)
    _check_fidelity(src, dst, generator)


@pytest.mark.parametrize(
    ("name", "codec", "options", "encoder"),
    [
        ("clip.webm", "libvpx-vp9", {"crf": "20", "b": "0"}, "libvpx-vp9"),
        ("clip.avi", "mpeg4", {}, "mpeg4"),
        ("clip.mkv", "libsvtav1", {"crf": "30"}, "libsvtav1"),
    ],
)
def test_same_codec_family_and_container(
    tmp_path: Path,
    photo: np.ndarray,
    generator: nn.Module,
    cpu_runtime: Runtime,
    name: str,
    codec: str,
    options: dict,
    encoder: str,
) -> None:
    src, dst = tmp_path / name, tmp_path / "out" / name
    make_clip(src, pan_frames(photo, 4, 64, 48), codec=codec, options=options)
    result = enhance_video_file(src, dst, generator, cpu_runtime)
    assert result.encoder == encoder
    with av.open(str(dst)) as out, av.open(str(src)) as inp:
        assert out.format.name == inp.format.name
    assert frame_times(dst) == frame_times(src)
