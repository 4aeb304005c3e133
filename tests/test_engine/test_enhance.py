"""lptn-enhance: any size, same names/format/bit depth, bad files skipped, inputs untouched."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.data.image_io import read_image
from lptn.engine.cli import enhance_main


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
    assert "no image files" in capsys.readouterr().err


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
