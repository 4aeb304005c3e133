"""lptn-enhance with videos beside photos: globs and folders, bad videos reported by file and
frame with no partial output, the rest of the batch still written, bad options exit 2."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from video_clips import frame_times, make_clip, pan_frames

from lptn.engine.cli import enhance_main
from lptn.engine.enhance_video import enhance_video_file
from lptn.platform.runtime import Runtime
from lptn.video import VideoError, VideoUnavailable, require_av


def _make_inputs(folder: Path, photo: np.ndarray) -> None:
    folder.mkdir()
    small = np.round(photo[:60, :80] * 255).astype(np.uint8)
    assert cv2.imwrite(str(folder / "still.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    make_clip(folder / "good.mp4", pan_frames(photo, 8, 64, 48), audio=True)
    make_clip(folder / "long.mkv", pan_frames(photo, 12, 64, 48))
    data = (folder / "long.mkv").read_bytes()
    (folder / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])  # truncated download
    (folder / "long.mkv").unlink()
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))


def _run(args: list) -> int:
    return enhance_main([*args, "--device", "cpu", "--no-progress"])


def test_folder_of_photos_and_videos(
    tmp_path: Path,
    photo: np.ndarray,
    official_checkpoint: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _make_inputs(src, photo)
    code = _run(
        ["--weights", str(official_checkpoint), "--input", str(src), "--output", str(out)]
        + ["--temporal-smoothing", "0.5", "--crf", "16"]
    )
    assert code == 1  # two bad videos
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4", "still.png"]  # no partials
    assert frame_times(out / "good.mp4") == frame_times(src / "good.mp4")
    log = capsys.readouterr().out  # the lptn logger prints there
    assert "2 written, 0 skipped, 2 failed" in log
    assert re.search(r"cut\.mkv: frame \d+: the file ends early", log)
    assert "broken.mp4: cannot open as a video" in log


def test_glob_selects_videos(tmp_path: Path, photo: np.ndarray, official_checkpoint: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _make_inputs(src, photo)
    code = _run(
        ["--weights", str(official_checkpoint), "--input", str(src / "g*.mp4")]
        + ["--output", str(out), "--video-codec", "libx265"]
    )
    assert code == 0
    assert [p.name for p in out.iterdir()] == ["good.mp4"]
    import av

    with av.open(str(out / "good.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"  # --video-codec honoured


@pytest.mark.parametrize(
    "bad",
    [["--crf", "99"], ["--temporal-smoothing", "-1"], ["--video-batch", "0"]],
)
def test_bad_video_options_exit_2(tmp_path: Path, official_checkpoint: Path, bad: list) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(["--weights", str(official_checkpoint), "--input", "x", "--output", "y", *bad])
    assert exc.value.code == 2


def test_unknown_encoder_fails_without_output(
    tmp_path: Path, photo: np.ndarray, generator, cpu_runtime: Runtime
) -> None:
    from lptn.engine.enhance_video import VideoOptions

    src, dst = tmp_path / "a.mp4", tmp_path / "out" / "a.mp4"
    make_clip(src, pan_frames(photo, 4, 64, 48))
    with pytest.raises(VideoError, match="--video-codec nosuchcodec"):
        enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(codec="nosuchcodec"))
    assert not dst.exists() and not list(dst.parent.glob("*"))


def test_missing_pyav_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # what an environment without PyAV gives
    with pytest.raises(VideoUnavailable, match=r"lptn\[video\]"):
        require_av()


def test_corrupt_bitstream_names_file_and_frame(
    tmp_path: Path, photo: np.ndarray, generator, cpu_runtime: Runtime
) -> None:
    src, dst = tmp_path / "bad.mp4", tmp_path / "out" / "bad.mp4"
    make_clip(src, pan_frames(photo, 12, 96, 64), audio=True)
    data = bytearray(src.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 3000, 7):
        data[k] ^= 0x5A  # damage the middle of the file
    src.write_bytes(bytes(data))
    # FFmpeg's words, not "[Errno 1094995529]", and where in the video it failed
    words = "cannot read or decode: Invalid data found when processing input$"
    with pytest.raises(VideoError, match=rf"bad\.mp4: frame \d+ at \d+\.\d{{3}} s: {words}"):
        enhance_video_file(src, dst, generator, cpu_runtime)
    assert not dst.exists() and not list(dst.parent.glob("*"))


def test_smoothing_needs_the_fast_path(
    tmp_path: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    code = _run(
        ["--weights", str(official_checkpoint), "--input", str(tmp_path), "--output", "y"]
        + ["--temporal-smoothing", "1", "--path", "exact"]
    )
    assert code == 2
    assert "--temporal-smoothing works on the fast path only" in capsys.readouterr().err


def test_encoder_must_fit_the_container(
    tmp_path: Path, photo: np.ndarray, generator, cpu_runtime: Runtime
) -> None:
    from lptn.engine.enhance_video import VideoOptions

    src, dst = tmp_path / "a.webm", tmp_path / "out" / "a.webm"
    make_clip(src, pan_frames(photo, 3, 64, 48), codec="libvpx-vp9", options={"b": "0"})
    with pytest.raises(VideoError, match="libx264: the output's container cannot hold it"):
        enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(codec="libx264"))
    assert not dst.exists() and not list(dst.parent.glob("*"))


def test_ten_bit_vp9_in_webm_falls_back_to_a_ten_bit_encoder_webm_can_hold() -> None:
    import av

    from lptn.video.colour_conversion import ColourInfo
    from lptn.video.video_writer import EncoderSettings, choose_encoder

    deep = ColourInfo(1, 1, 1, 1, "ITU709", False, "yuv420p10le", 10)
    with av.open(os.devnull, "w", format="webm") as webm:
        codecs = set(webm.supported_codecs)
    # PyAV's wheels build libvpx-vp9 8-bit only (so far); WebM holds VP8, VP9 and AV1
    vp9_formats = [f.name for f in av.codec.Codec("libvpx-vp9", "w").video_formats]
    expected = "libvpx-vp9" if "yuv420p10le" in vp9_formats else "libsvtav1"
    assert choose_encoder("vp9", deep, 64, 48, EncoderSettings(), "cpu", codecs) == (
        expected,
        "yuv420p10le",
    )
    # without the container's restriction the first 10-bit fallback would be libx264
    assert choose_encoder("vp9", deep, 64, 48, EncoderSettings())[0] in (expected, "libx264")
