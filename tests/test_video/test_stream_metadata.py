"""Stream labels survive enhancement: language, title, handler name and disposition of the
video, audio and subtitle streams, as ffprobe (and exiftool for mp4/mov track titles) reads
them from the input and the output. The inputs are FiveK pans tagged by the ffmpeg CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from torch import nn
from video_clips import make_clip, pan_frames, stream_packets

from lptn.engine.enhance_video import VideoOptions, enhance_video_file
from lptn.platform.runtime import Runtime

LABEL_TAGS = ("language", "title", "handler_name")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found (Debian: apt-get install ffmpeg libimage-exiftool-perl)")
    return found


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _labels(path: Path) -> List[Dict[str, object]]:
    """Per stream, as ffprobe shows it: type, the label tags (any case) and every disposition
    flag; mp4/mov track titles, which this ffprobe does not show, as exiftool reads them."""
    probe = subprocess.run(
        [_tool("ffprobe"), "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    streams = json.loads(probe.stdout)["streams"]
    labels: List[Dict[str, object]] = []
    for s in streams:
        tags = {k.lower(): v for k, v in s.get("tags", {}).items()}
        label: Dict[str, object] = {"type": s["codec_type"]}
        label.update({k: tags[k] for k in LABEL_TAGS if k in tags})
        label["disposition"] = s["disposition"]
        labels.append(label)
    if path.suffix in (".mp4", ".mov"):
        meta = subprocess.run(
            [_tool("exiftool"), "-j", "-s", str(path)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for key, value in json.loads(meta.stdout)[0].items():
            track = re.fullmatch(r"Track(\d+)Name", key)
            if track:
                labels[int(track.group(1)) - 1]["title"] = value
    return labels


def _stream_tags(spec: str, language: str, title: str, handler: str) -> List[str]:
    return [
        f"-metadata:s:{spec}",
        f"language={language}",
        f"-metadata:s:{spec}",
        f"title={title}",
        f"-metadata:s:{spec}",
        f"handler_name={handler}",
    ]


@pytest.mark.parametrize("container", ["mp4", "mov", "mkv", "webm"])
def test_audio_and_video_stream_labels_are_kept(
    tmp_path: Path,
    photo: np.ndarray,
    generator: nn.Module,
    cpu_runtime: Runtime,
    container: str,
) -> None:
    webm = container == "webm"
    base = tmp_path / ("base.mkv" if webm else "base.mp4")
    make_clip(
        base,
        pan_frames(photo, 6, 64, 48),
        audio=True,
        codec="libvpx-vp9" if webm else "libx264",
        options={"b": "0", "crf": "30"} if webm else None,
    )
    src, dst = tmp_path / f"tagged.{container}", tmp_path / "out" / f"tagged.{container}"
    _ffmpeg(
        "-i",
        str(base),
        *("-map", "0:v", "-map", "0:a", "-map", "0:a", "-c", "copy"),
        *(("-c:a", "libopus") if webm else ()),
        *_stream_tags("v:0", "ita", "Balcony pan", "Pan handler"),
        *_stream_tags("a:0", "fra", "Version française", "Son français"),
        *_stream_tags("a:1", "eng", "Director's commentary", "Commentary handler"),
        *("-disposition:a:0", "default", "-disposition:a:1", "comment+hearing_impaired"),
        str(src),
    )
    before = _labels(src)
    # the clip really carries the labels the output must keep
    assert [s["type"] for s in before] == ["video", "audio", "audio"]
    assert [s.get("language") for s in before] == ["ita", "fra", "eng"]
    assert before[1]["handler_name"] == "Son français"
    assert before[1]["title"] == "Version française"
    assert before[1]["disposition"]["default"] == 1  # type: ignore[index]
    enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=30))
    after = _labels(dst)
    assert len(after) == len(before)
    for index, (a, b) in enumerate(zip(before, after)):
        assert b == a, f"stream {index}"


def test_two_subtitle_streams_keep_language_and_default_forced(
    tmp_path: Path, photo: np.ndarray, generator: nn.Module, cpu_runtime: Runtime
) -> None:
    base = tmp_path / "base.mkv"
    make_clip(base, pan_frames(photo, 6, 64, 48), subtitles=[b"Bonjour", b"Au revoir"])
    src, dst = tmp_path / "subs.mkv", tmp_path / "out" / "subs.mkv"
    _ffmpeg(
        "-i",
        str(base),
        *("-map", "0:v", "-map", "0:s", "-map", "0:s", "-c", "copy"),
        *_stream_tags("s:0", "eng", "English (forced)", "Forced subtitles"),
        *("-metadata:s:s:1", "language=fra", "-metadata:s:s:1", "title=Français"),
        *("-disposition:s:0", "default+forced", "-disposition:s:1", "hearing_impaired"),
        str(src),
    )
    before = _labels(src)
    assert [(s["type"], s.get("language")) for s in before] == [
        ("video", None),
        ("subtitle", "eng"),
        ("subtitle", "fra"),
    ]
    flags = before[1]["disposition"]
    assert flags["default"] == flags["forced"] == 1  # type: ignore[index]
    assert before[2]["disposition"]["hearing_impaired"] == 1  # type: ignore[index]
    enhance_video_file(src, dst, generator, cpu_runtime, VideoOptions(crf=30))
    after = _labels(dst)
    assert len(after) == len(before)
    for index, (a, b) in enumerate(zip(before, after)):
        assert b == a, f"stream {index}"
    assert stream_packets(dst, "subtitles") == stream_packets(src, "subtitles")
