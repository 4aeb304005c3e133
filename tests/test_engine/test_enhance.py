"""lptn-enhance: any size, same names/format/bit depth, bad files skipped, inputs untouched;
photo libraries (orientation, metadata, profiles, folders, skip/report, torchrun split)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.data.image_io import read_image
from lptn.engine.cli import enhance_main
from lptn.photo import PhotoEnhancer, decode_photo, enhance_photo_bytes
from lptn.photo.colour import srgb_profile_bytes


@pytest.fixture(scope="module")
def photo(fivek_sample_dir: Path) -> np.ndarray:
    """An odd-sized 8-bit RGB crop of a real FiveK photo."""
    return read_image(fivek_sample_dir / "source" / "a4576.png")[:97, :131]


@pytest.fixture(scope="module")
def official_net(official_checkpoint: Path) -> torch.nn.Module:
    return load_network_weights(build_network({"type": "LPTN"}), official_checkpoint).eval()


def _expected(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    x = torch.from_numpy(img.astype(np.float32) / peak).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(out * peak).astype(img.dtype)


def _save_rgb(path: Path, img: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def test_enhance_folder_keeps_names_formats_and_bit_depth(
    tmp_path: Path, photo: np.ndarray, official_checkpoint: Path, official_net: torch.nn.Module
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    photo16 = photo.astype(np.uint16) * 257 + 100
    _save_rgb(src / "eight.png", photo)
    _save_rgb(src / "sixteen.png", photo16)
    _save_rgb(src / "sixteen.tif", photo16)
    _save_rgb(src / "photo.jpg", photo)
    code = enhance_main(
        [
            "--weights",
            str(official_checkpoint),
            "--input",
            str(src),
            "--output",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--no-progress",
            "--path",
            "exact",
        ]
    )
    assert code == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "eight.png",
        "photo.jpg",
        "sixteen.png",
        "sixteen.tif",
    ]
    eight = read_image(out / "eight.png")
    assert eight.dtype == np.uint8 and eight.shape == photo.shape
    np.testing.assert_array_equal(eight, _expected(official_net, photo))
    for name in ("sixteen.png", "sixteen.tif"):
        sixteen = read_image(out / name)
        assert sixteen.dtype == np.uint16
        diff = np.abs(sixteen.astype(np.int64) - _expected(official_net, photo16))
        assert diff.max() <= 1  # float32 rounding at 1/65535
    jpg = read_image(out / "photo.jpg")
    assert jpg.dtype == np.uint8 and jpg.shape == photo.shape


def test_enhance_skips_bad_files_and_reports(
    tmp_path: Path, photo: np.ndarray, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _save_rgb(src / "good.png", photo)
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    _save_rgb(src / "tiny.png", photo[:6, :6])  # smaller than 2**3 + 1
    code = enhance_main(
        [
            "--weights",
            str(official_checkpoint),
            "--input",
            str(src / "*.png"),
            "--output",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "broken.png" in text and "tiny.png" in text and "1 written, 0 skipped, 2 failed" in text


def test_enhance_never_overwrites_its_input(
    tmp_path: Path, photo: np.ndarray, official_checkpoint: Path
) -> None:
    _save_rgb(tmp_path / "a.png", photo)
    before = (tmp_path / "a.png").read_bytes()
    code = enhance_main(
        [
            "--weights",
            str(official_checkpoint),
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 1
    assert (tmp_path / "a.png").read_bytes() == before


def test_enhance_jpeg_quality_changes_the_file(
    tmp_path: Path, photo: np.ndarray, official_checkpoint: Path
) -> None:
    _save_rgb(tmp_path / "p.jpg", photo)
    sizes = []
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        assert (
            enhance_main(
                [
                    "--weights",
                    str(official_checkpoint),
                    "--input",
                    str(tmp_path / "p.jpg"),
                    "--output",
                    str(out),
                    "--device",
                    "cpu",
                    "--no-progress",
                    "--jpeg-quality",
                    str(quality),
                ]
            )
            == 0
        )
        sizes.append((out / "p.jpg").stat().st_size)
    assert sizes[0] < sizes[1]


def test_enhance_bad_weights_and_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "w.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "x.png").write_bytes(b"")
    assert (
        enhance_main(
            [
                "--weights",
                str(tmp_path / "w.pth"),
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "w.pth" in capsys.readouterr().err
    assert (
        enhance_main(
            [
                "--weights",
                str(tmp_path / "w.pth"),
                "--input",
                str(tmp_path / "none*.png"),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no photos or videos found" in capsys.readouterr().err


def test_enhance_fast_path_gives_the_same_picture(
    tmp_path: Path, photo: np.ndarray, official_checkpoint: Path, official_net: torch.nn.Module
) -> None:
    _save_rgb(tmp_path / "p.png", photo)
    assert (
        enhance_main(
            [
                "--weights",
                str(official_checkpoint),
                "--input",
                str(tmp_path / "p.png"),
                "--output",
                str(tmp_path / "out"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )  # the fast path is the default
    fast = read_image(tmp_path / "out" / "p.png").astype(np.int64)
    exact = _expected(official_net, photo).astype(np.int64)
    # float32 differences of ~1e-6 can flip a value sitting on a rounding boundary.
    assert np.abs(fast - exact).max() <= 1
    assert (fast != exact).mean() < 1e-3


def test_enhance_with_openvino_kernels_gives_the_same_picture(
    tmp_path: Path,
    photo: np.ndarray,
    official_checkpoint: Path,
    official_net: torch.nn.Module,
    capsys: pytest.CaptureFixture,
) -> None:
    pytest.importorskip("openvino")
    _save_rgb(tmp_path / "p.png", photo)
    args = ["--weights", str(official_checkpoint), "--input", str(tmp_path / "p.png")]
    args += ["--device", "cpu", "--no-progress", "--conv-backend", "openvino"]
    assert enhance_main([*args, "--output", str(tmp_path / "out")]) == 0
    got = read_image(tmp_path / "out" / "p.png").astype(np.int64)
    exact = _expected(official_net, photo).astype(np.int64)
    assert np.abs(got - exact).max() <= 1
    assert (got != exact).mean() < 1e-3
    # The graph path has no conv backend to choose: the flag is named, nothing is written.
    capsys.readouterr()
    assert enhance_main([*args, "--output", str(tmp_path / "g"), "--path", "graph"]) == 2
    assert "--conv-backend" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


# --- photos as photographers have them (issue 11) -------------------------------------------


def _phone_jpeg(upright: np.ndarray) -> bytes:
    """A phone JPEG stored turned anticlockwise with orientation 6 and camera EXIF."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Google", "Pixel 7", 6
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.5)})
    buf = io.BytesIO()
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    stored.save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def _library(root: Path, photo: np.ndarray, shared_dir: Path) -> Dict[str, bytes]:
    """A small photo library: phone JPEG, Adobe RGB PNG, grey, RGBA, 16-bit TIFF, BMP, WebP."""
    adobe = (shared_dir / "data" / "icc" / "AdobeRGB1998.icc").read_bytes()
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))

    def pil(arr: np.ndarray, fmt: str, **kwargs: object) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, fmt, **kwargs)
        return buf.getvalue()

    ok, tif16 = cv2.imencode(
        ".tif", cv2.cvtColor(photo.astype(np.uint16) * 257 + 50, cv2.COLOR_RGB2BGR)
    )
    assert ok
    files = {
        "phone.jpg": _phone_jpeg(photo),
        "adobe.png": pil(photo, "PNG", icc_profile=adobe),
        "grey.png": pil(grey, "PNG"),
        "rgba.png": pil(np.dstack([photo, alpha]), "PNG"),
        "deep.tif": tif16.tobytes(),
        "plain.bmp": pil(photo, "BMP"),
        "web.webp": pil(photo, "WEBP", quality=90),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def test_builtin_weights_and_a_photo_library(
    tmp_path: Path, photo: np.ndarray, shared_dir: Path
) -> None:
    files = _library(tmp_path / "in", photo, shared_dir)
    out = tmp_path / "out"
    code = enhance_main(["--input", str(tmp_path / "in"), "--output", str(out), "--no-progress"])
    assert code == 0  # no --weights: the built-in FiveK model
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    phone = Image.open(out / "phone.jpg")
    assert phone.size == (photo.shape[1], photo.shape[0])  # upright
    exif = phone.getexif()
    assert exif[0x0112] == 1 and exif[0x0110] == "Pixel 7" and exif.get_ifd(0x8825)[1] == "N"
    assert decode_photo((out / "grey.png").read_bytes()).is_grey
    assert decode_photo((out / "deep.tif").read_bytes()).pixels.dtype == np.uint16
    rgba = decode_photo((out / "rgba.png").read_bytes())
    assert rgba.alpha is not None and rgba.alpha[0, -1] == 255 and rgba.alpha[0, 0] == 0
    assert decode_photo((out / "adobe.png").read_bytes()).icc == srgb_profile_bytes()
    # the files are exactly what the bytes API gives (one pipeline for both)
    enhancer = PhotoEnhancer.from_weights(device="auto")
    for name, data in files.items():
        assert (out / name).read_bytes() == enhance_photo_bytes(data, enhancer)[0], name


def test_output_must_be_a_writable_folder(
    tmp_path: Path, photo: np.ndarray, capsys: pytest.CaptureFixture
) -> None:
    _save_rgb(tmp_path / "a.png", photo)
    (tmp_path / "taken.txt").write_text("keep me")
    for output, words in [
        (tmp_path / "taken.txt", "is a file"),
        (tmp_path / "result.jpg", "looks like a file name"),
        (tmp_path / "taken.txt" / "sub", "cannot be written"),
    ]:
        code = enhance_main(
            ["--input", str(tmp_path / "a.png"), "--output", str(output), "--no-progress"]
        )
        err = capsys.readouterr()
        assert code == 2
        lines = err.err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in err.err
        assert "written" not in err.out  # refused before any processing
    assert (tmp_path / "taken.txt").read_text() == "keep me"
    assert not (tmp_path / "result.jpg").exists()


def test_recursive_glob_keeps_folders_and_ignores_symlink_loops(
    tmp_path: Path, photo: np.ndarray
) -> None:
    lib = tmp_path / "lib"
    for sub in ("2023/june", "2024", "2024/raw"):
        (lib / sub).mkdir(parents=True)
    _save_rgb(lib / "2023" / "june" / "p.jpg", photo)
    _save_rgb(lib / "2024" / "p.jpg", photo[:, ::-1])  # same name, other folder
    _save_rgb(lib / "2024" / "raw" / "skip.png", photo)  # not matched by *.jpg
    os.symlink(lib, lib / "2024" / "loop")  # a symlink back to the top
    out = tmp_path / "out"
    code = enhance_main(
        ["--input", str(lib / "**" / "*.jpg"), "--output", str(out), "--no-progress"]
    )
    assert code == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["2023/june/p.jpg", "2024/p.jpg"]


def test_skip_existing_report_and_bad_files_first(
    tmp_path: Path, photo: np.ndarray, shared_dir: Path
) -> None:
    src = tmp_path / "in"
    _library(src, photo[:40, :50], shared_dir)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (src / "empty.png").write_bytes(b"")
    out, report = tmp_path / "out", tmp_path / "run.jsonl"
    args = ["--input", str(src), "--output", str(out), "--no-progress", "--report", str(report)]
    assert enhance_main(args) == 1
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    statuses = [line["status"] for line in lines]
    # unreadable files are reported before any photo is processed
    assert statuses == ["failed"] * 2 + ["written"] * 7
    assert {Path(line["input"]).name for line in lines[:2]} == {"broken.jpg", "empty.png"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "grey.png").unlink()
    report.unlink()
    assert enhance_main(args + ["--skip-existing"]) == 1
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    redone = [Path(line["output"]).name for line in lines if line["status"] == "written"]
    assert redone == ["grey.png"]
    assert sum(line["status"] == "skipped" for line in lines) == 6
    for p in out.iterdir():
        if p.name != "grey.png":
            assert p.stat().st_mtime_ns == mtimes[p.name]


def test_strength_zero_gives_the_input_back(tmp_path: Path, photo: np.ndarray) -> None:
    _save_rgb(tmp_path / "a.png", photo)
    args = ["--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "o"), "--no-progress"]
    assert enhance_main(args + ["--strength", "0"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "o" / "a.png"), photo)
    assert enhance_main(args + ["--strength", "2"]) == 2


def test_torchrun_splits_the_photos_between_processes(tmp_path: Path, photo: np.ndarray) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        _save_rgb(src / f"p{i}.png", np.roll(photo[:40, :48], i, axis=1))
    report = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "lptn.enhance", "--input", str(src), "--output", str(tmp_path / "out"),
        "--device", "cpu", "--no-progress", "--report", str(report),
    ]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"p{i}.png" for i in range(4)]
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(Path(line["input"]).name for line in lines) == [f"p{i}.png" for i in range(4)]
    assert sorted(line["rank"] for line in lines) == [0, 0, 1, 1]
    assert "process 0 of 2" in run.stdout and "process 1 of 2" in run.stdout


def test_heic_photos_become_jpeg(tmp_path: Path, photo: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    src = tmp_path / "in"
    src.mkdir()
    pillow_heif.from_pillow(Image.fromarray(photo)).save(src / "IMG_0001.HEIC", quality=90)
    out = tmp_path / "out"
    assert enhance_main(["--input", str(src), "--output", str(out), "--no-progress"]) == 0
    assert [p.name for p in out.iterdir()] == ["IMG_0001.jpg"]
    assert Image.open(out / "IMG_0001.jpg").size == (photo.shape[1], photo.shape[0])
