"""FFmpeg's errors read in words, with the file: a truncated mp4 (cut from a real clip), random
bytes named .mp4, a full disk (a real 16 KiB tmpfs) and the same through lptn-enhance."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from torch import nn
from video_clips import av, make_clip, pan_frames

from lptn.engine.cli import enhance_main
from lptn.engine.enhance_video import VideoOptions, enhance_video_file
from lptn.platform.runtime import Runtime
from lptn.video import VideoError

INVALID = "Invalid data found when processing input"  # FFmpeg's words for AVERROR_INVALIDDATA


def _bad_inputs(folder: Path, photo: np.ndarray) -> tuple[Path, Path]:
    """``cut.mp4``: the first 60 % of a real clip (the mp4 index, at the end, is lost);
    ``noise.mp4``: 5000 random bytes, in which FFmpeg finds no format and logs no reason
    (other random bytes are probed as mp4 by their name and read "moov atom not found")."""
    folder.mkdir(exist_ok=True)
    full, cut, noise = folder / "full.mp4", folder / "cut.mp4", folder / "noise.mp4"
    make_clip(full, pan_frames(photo, 12, 96, 64), audio=True)
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    full.unlink()
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    return cut, noise


def test_truncated_mp4_and_random_bytes_are_reported_in_words(
    tmp_path: Path,
    photo: np.ndarray,
    generator: nn.Module,
    cpu_runtime: Runtime,
    capfd: pytest.CaptureFixture,
) -> None:
    cut, noise = _bad_inputs(tmp_path / "in", photo)
    expected = {
        cut: f"{cut}: cannot open as a video: {INVALID} (moov atom not found)",
        noise: f"{noise}: cannot open as a video: {INVALID}",
    }
    # twice the same failure (FFmpeg's log skips a repeated line), then another file, whose
    # message must not carry the first file's reason
    for src in (cut, cut, noise):
        dst = tmp_path / "out" / src.name
        with pytest.raises(VideoError) as caught:
            enhance_video_file(src, dst, generator, cpu_runtime, show_progress=False)
        assert str(caught.value) == expected[src]
        assert not dst.exists()
    assert av.logging.get_level() is None  # FFmpeg's log is off again
    assert "moov" not in capfd.readouterr().err  # FFmpeg's line went into the message only


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs (tests run as root), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_is_reported_in_words(
    tmp_path: Path,
    photo: np.ndarray,
    generator: nn.Module,
    cpu_runtime: Runtime,
    full_disk: Path,
) -> None:
    src, dst = tmp_path / "clip.mp4", full_disk / "clip.mp4"
    make_clip(src, pan_frames(photo, 12, 96, 64), audio=True)
    with pytest.raises(VideoError) as caught:  # lossless (CRF 0) frames overflow 16 KiB
        enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=0), False)
    message = str(caught.value)
    assert message.startswith(f"{dst}: ") and message.endswith(": No space left on device")
    assert "Errno" not in message
    assert not list(full_disk.iterdir())  # the partial output is gone


def test_lptn_enhance_prints_the_words(
    tmp_path: Path,
    photo: np.ndarray,
    official_checkpoint: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    cut, noise = _bad_inputs(tmp_path / "in", photo)
    code = enhance_main(
        ["--weights", str(official_checkpoint), "--input", str(cut.parent)]
        + ["--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
    )
    assert code == 1
    log = capsys.readouterr().out  # the lptn logger prints there
    assert f"{cut}: cannot open as a video: {INVALID} (moov atom not found)" in log
    assert f"{noise}: cannot open as a video: {INVALID}\n" in log
    assert "Errno" not in log and "1094995529" not in log
