"""lptn-enhance meets every input in one clear line (issue 19): files that are not photos or
videos, symlink loops with --report, decompression bombs, an output folder above the inputs,
damaged weights files; one summary line per run; outputs keep the input's modification time."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from PIL import Image

from lptn.engine.cli import enhance_main
from lptn.inference.settings import MAX_MEGAPIXELS

REPO = Path(__file__).resolve().parents[2]
# 2021-06-01 12:00:00 UTC, in ns: an input modification time no run can have by chance.
OLD_MTIME_NS = 1_622_548_800_000_000_000


@pytest.fixture(scope="module")
def crop(fivek_sample_dir: Path) -> np.ndarray:
    """A small 8-bit RGB crop of a real FiveK photo."""
    rgb = np.asarray(Image.open(fivek_sample_dir / "source" / "a4576.png").convert("RGB"))
    return np.ascontiguousarray(rgb[:40, :56])


def _save(path: Path, img: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, fmt)
    return path


def _run(args: List[str]) -> int:
    return enhance_main([*args, "--device", "cpu", "--no-progress"])


def _files(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _report(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- 1. files that are not photos or videos ---------------------------------------------------


@pytest.mark.parametrize("name, fmt", [("anim.gif", "GIF"), ("data.xyz", "PNG"), ("a.psd", "PNG")])
def test_unsupported_file_given_directly_is_one_line(
    tmp_path: Path, crop: np.ndarray, capsys: pytest.CaptureFixture, name: str, fmt: str
) -> None:
    src = _save(tmp_path / name, crop, fmt)
    code = _run(["--input", str(src), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "KeyError" not in err
    assert str(src) in lines[0] and f"{Path(name).suffix} files are not supported" in lines[0]
    assert _files(tmp_path / "out") == []


def test_files_that_are_not_photos_are_counted_and_listed(
    tmp_path: Path, crop: np.ndarray, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "in"
    _save(src / "good.png", crop)
    _save(src / "sub" / "deep.jpg", crop)
    _save(src / "anim.gif", crop, "GIF")
    _save(src / "layers.psd", crop, "PNG")
    (src / "notes.txt").write_text("shoot notes")
    (src / ".DS_Store").write_bytes(b"\x00")  # hidden: not matched by the glob, not counted
    out, report = tmp_path / "out", tmp_path / "run.jsonl"
    code = _run(["--input", str(src / "**" / "*"), "--output", str(out), "--report", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert _files(out) == ["good.png", "sub/deep.jpg"]
    assert "2 written, 0 skipped, 0 failed, 3 ignored as not photos or videos" in printed
    for name in ("anim.gif", "layers.psd", "notes.txt"):
        assert f"ignored (not a photo or video): {src / name}" in printed
    lines = _report(report)
    ignored = sorted(Path(line["input"]).name for line in lines if line["status"] == "ignored")
    assert ignored == ["anim.gif", "layers.psd", "notes.txt"]
    # a glob that matches only such files: exit 2, the message counts and names them
    code = _run(["--input", str(src / "*.gif"), "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "no photos or videos found" in err[0] and "1 other file(s)" in err[0]
    assert str(src / "anim.gif") in err[0]


# --- 2. a symlink loop in a glob, with --report ------------------------------------------------


def test_symlink_loops_with_report_are_followed_once(
    tmp_path: Path, crop: np.ndarray, capsys: pytest.CaptureFixture
) -> None:
    lib = tmp_path / "lib"
    _save(lib / "p.jpg", crop)
    _save(lib / "2024" / "q.jpg", crop[:, ::-1])
    os.symlink(lib, lib / "2024" / "loop")  # a folder link back to the top
    os.symlink("self.jpg", lib / "2024" / "self.jpg")  # a link to itself (ELOOP when opened)
    out, report = tmp_path / "out", tmp_path / "run.jsonl"
    code = _run(
        ["--input", str(lib / "**" / "*.jpg"), "--output", str(out), "--report", str(report)]
    )
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    assert code == 1  # the self-link cannot be read; the photos are written
    assert _files(out) == ["2024/q.jpg", "p.jpg"]
    lines = _report(report)
    assert sorted((Path(x["input"]).name, x["status"]) for x in lines) == [
        ("p.jpg", "written"),
        ("q.jpg", "written"),
        ("self.jpg", "failed"),
    ]
    failed = next(x for x in lines if x["status"] == "failed")
    assert "symbolic links" in failed["error"] and str(lib / "2024" / "self.jpg") in failed["error"]


# --- 3. a decompression bomb ---------------------------------------------------------------


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A one-colour RGB PNG of side x side pixels, ~1.2 MB: zlib of one repeated row."""
    row = b"\x00" + bytes([200, 120, 40]) * side  # filter byte "none", then the pixels
    packer = zlib.compressobj(9)
    idat = b"".join([packer.compress(row) for _ in range(side)] + [packer.flush()])

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_fails_from_its_header_and_the_batch_goes_on(
    tmp_path: Path, crop: np.ndarray, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "in"
    _save(src / "a.png", crop)
    _save(src / "z.jpg", crop)
    _bomb_png(src / "m_bomb.png")
    assert (src / "m_bomb.png").stat().st_size < 2_000_000
    with Image.open(src / "m_bomb.png") as im:  # Pillow reads it as a valid 400 MP photo
        assert im.size == (20000, 20000)
    out, report = tmp_path / "out", tmp_path / "run.jsonl"
    code = _run(["--input", str(src), "--output", str(out), "--report", str(report)])
    printed = capsys.readouterr().out
    assert code == 1
    assert _files(out) == ["a.png", "z.jpg"]
    lines = _report(report)
    # refused before any photo was processed: from the header, not after decoding
    assert [(Path(x["input"]).name, x["status"]) for x in lines] == [
        ("m_bomb.png", "failed"),
        ("a.png", "written"),
        ("z.jpg", "written"),
    ]
    limit = f"is over --max-megapixels {MAX_MEGAPIXELS:g}; not decoded"
    assert f"{src / 'm_bomb.png'}: 20000x20000 (400 megapixels) {limit}" in lines[0]["error"]
    assert "2 written, 0 skipped, 1 failed" in printed
    # the limit is the user's: the 40x56 crop is 0.00224 MP; a bad value is exit 2, one line
    one = ["--input", str(src / "a.png"), "--output", str(tmp_path / "one")]
    assert _run([*one, "--max-megapixels", "0.002"]) == 1
    assert "56x40 (0.00224 megapixels) is over --max-megapixels 0.002" in capsys.readouterr().out
    assert _run([*one, "--max-megapixels", "0.003"]) == 0
    assert _run([*one, "--max-megapixels", "0"]) == 2
    assert "--max-megapixels must be a positive number" in capsys.readouterr().err


def test_the_service_and_the_command_share_the_default_limit() -> None:
    from lptn.serve.command import build_parser

    assert build_parser().parse_args([]).max_megapixels == MAX_MEGAPIXELS
    # medium-format photos (100-150 MP) and pixel-shift composites (240 MP) pass; a
    # 20000x20000 bomb (400 MP) does not
    assert 240 < MAX_MEGAPIXELS < 400


# --- 4. an output folder above the input folder ----------------------------------------------


def test_output_folder_above_the_inputs(
    tmp_path: Path, crop: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tmp_path / "shoot"
    _save(top / "in" / "a.png", crop)
    _save(top / "in" / "b.jpg", crop)
    (top / "work").mkdir()
    monkeypatch.chdir(top / "work")
    report = top / "run.jsonl"
    args = ["--input", "../in", "--output", "..", "--report", str(report)]
    assert _run(args) == 0
    assert sorted(p.name for p in top.iterdir() if p.is_file()) == ["a.png", "b.jpg", "run.jsonl"]
    # run again: the outputs beside the input folder are not taken as inputs
    report.unlink()
    assert _run([*args, "--skip-existing"]) == 0
    assert sorted((Path(x["input"]).name, x["status"]) for x in _report(report)) == [
        ("a.png", "skipped"),
        ("b.jpg", "skipped"),
    ]
    # an output folder inside a recursive glob's tree is not searched, on a later run either
    enhanced = top / "in" / "enhanced"
    args = ["--input", str(top / "**" / "*.png"), "--output", str(enhanced)]
    for _ in range(2):
        report.unlink()
        assert _run([*args, "--report", str(report)]) == 0
        # shoot/a.png (an output of the first run, now in the searched tree) and in/a.png
        assert sorted(x["input"] for x in _report(report)) == [
            str(top / "a.png"),
            str(top / "in" / "a.png"),
        ]
    assert _files(enhanced) == ["a.png", "in/a.png"]


# --- 5. damaged weights files -----------------------------------------------------------------


def _weights_error(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture) -> str:
    _save(tmp_path / "in" / "a.png", np.full((20, 20, 3), 128, np.uint8))
    code = _run(["--weights", str(weights), "--input", str(tmp_path / "in")] + ["--output", "o"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(weights) in lines[0], err
    assert "weights_only=False" not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("keep", [0.004, 0.5, 0.999])
def test_truncated_checkpoint_is_one_line(
    tmp_path: Path,
    official_checkpoint: Path,
    capsys: pytest.CaptureFixture,
    keep: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    data = official_checkpoint.read_bytes()
    cut = tmp_path / "net_g_cut.pth"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert "damaged weights file" in _weights_error(tmp_path, cut, capsys)


def test_truncated_zip_checkpoint_and_text_file_are_one_line(
    tmp_path: Path,
    official_checkpoint: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    # the official file is in torch.save's older format; the same weights in today's zip one
    zipped = tmp_path / "zipped.pth"
    torch.save(torch.load(official_checkpoint, weights_only=True), zipped)
    data = zipped.read_bytes()
    assert data[:4] == b"PK\x03\x04"
    zipped.write_bytes(data[: len(data) // 2])
    assert "damaged weights file" in _weights_error(tmp_path, zipped, capsys)
    text = tmp_path / "model.pth"
    text.write_text("network_g:\n  type: LPTN\n  nrb_low: 5\n")  # an option file renamed
    assert "not a PyTorch weights file" in _weights_error(tmp_path, text, capsys)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "it is empty" in _weights_error(tmp_path, empty, capsys)
    photos = tmp_path / "photos.pth"  # a zip archive of photos, renamed
    with zipfile.ZipFile(photos, "w") as archive:
        archive.write(tmp_path / "in" / "a.png", "a.png")
    assert "a zip archive of other files" in _weights_error(tmp_path, photos, capsys)


# --- 6. one summary line per run --------------------------------------------------------------


def test_a_run_prints_one_summary_line_and_no_alias_notice(
    tmp_path: Path, crop: np.ndarray
) -> None:
    _save(tmp_path / "in" / "a.png", crop)
    _save(tmp_path / "in" / "b.png", crop[::-1])
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "lptn.enhance", "--input", str(tmp_path / "in")]
    cmd += ["--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout + run.stderr
    summaries = [line for line in text.splitlines() if "written," in line]
    assert summaries == [f"2 written, 0 skipped, 0 failed (output folder: {tmp_path / 'out'})"]
    assert "alias" not in text


def test_the_alias_notice_is_at_debug(official_checkpoint: Path, lptn_log) -> None:
    import logging

    from lptn.archs import build_network
    from lptn.archs.weight_loading import load_network_weights

    logging.getLogger("lptn").setLevel(logging.DEBUG)  # the fixture restores the level
    load_network_weights(build_network({"type": "LPTN"}), official_checkpoint)
    levels = [r.levelname for r in lptn_log.records if "alias keys" in r.getMessage()]
    assert levels == ["DEBUG"]


# --- 7. the input's modification time --------------------------------------------------------


def _tiny_video(path: Path, crop: np.ndarray, frames: int = 3) -> None:
    av = pytest.importorskip("av", reason="PyAV (the 'video' extra) makes the test video")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = crop.shape[1], crop.shape[0], "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(crop, 2 * i, axis=1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_outputs_keep_the_input_modification_time(tmp_path: Path, crop: np.ndarray) -> None:
    src = tmp_path / "in"
    _save(src / "a.png", crop)
    _save(src / "sub" / "b.jpg", crop)
    _tiny_video(src / "clip.mp4", crop)
    for i, path in enumerate(sorted(p for p in src.rglob("*") if p.is_file())):
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS + i * 1_000_000_000))
    out = tmp_path / "out"
    assert _run(["--input", str(src / "**" / "*"), "--output", str(out)]) == 0
    for rel in ("a.png", "sub/b.jpg", "clip.mp4"):
        assert os.stat(out / rel).st_mtime_ns == os.stat(src / rel).st_mtime_ns, rel
    # --no-keep-mtime: the time of writing (after the inputs' 2021 times)
    fresh = tmp_path / "fresh"
    assert _run(["--input", str(src / "**" / "*"), "--output", str(fresh), "--no-keep-mtime"]) == 0
    for rel in ("a.png", "sub/b.jpg", "clip.mp4"):
        assert os.stat(fresh / rel).st_mtime_ns > OLD_MTIME_NS + 10**12, rel
