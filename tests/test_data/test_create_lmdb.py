"""create_lmdb.py: folder -> LMDB in the BasicSR layout, read back through the datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from photo_files import (
    adobe_rgb_from_srgb,
    fivek_upright,
    save_tagged,
    save_tiff16,
    save_turned_jpeg,
    sixteen_bit,
)

from lptn.data import build_dataset
from lptn.data.file_backends import DiskBackend, LmdbBackend, read_lmdb_meta_info
from lptn.data.image_io import decode_image, read_image

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_generated_images_round_trip(
    tmp_path: Path, noise_image, save_rgb, create_lmdb_script
) -> None:
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    save_rgb(src / "rgb8.png", noise_image(rng, 10, 7))
    save_rgb(src / "rgb16.png", noise_image(rng, 6, 9, np.uint16))
    save_rgb(src / "tiff16.tiff", noise_image(rng, 5, 5, np.uint16))
    save_rgb(src / "grey.png", noise_image(rng, 4, 3)[..., 0])
    save_rgb(src / "photo.jpg", noise_image(rng, 8, 8))
    (src / "readme.txt").write_text("ignored")
    out = create_lmdb_script.make_lmdb_from_folder(
        src, tmp_path / "out.lmdb", compress_level=3, progress=False
    )
    assert (out / "data.mdb").is_file()
    lines = (out / "meta_info.txt").read_text().splitlines()
    assert lines == [
        "grey.png (4,3,3) 3",
        "photo.png (8,8,3) 3",
        "rgb16.png (6,9,3) 3",
        "rgb8.png (10,7,3) 3",
        "tiff16.png (5,5,3) 3",
    ]
    assert [e[0] for e in read_lmdb_meta_info(out)] == ["grey", "photo", "rgb16", "rgb8", "tiff16"]
    backend = LmdbBackend(out)
    for path in sorted(src.iterdir()):
        if path.suffix == ".txt":
            continue
        stored = decode_image(backend.get(path.stem), path.stem)
        original = read_image(path)  # the JPEG's decoded pixels are stored losslessly
        assert stored.dtype == original.dtype
        np.testing.assert_array_equal(stored, original)
    backend.close()


def test_refuses_to_overwrite_unless_asked(
    tmp_path: Path, noise_image, save_rgb, create_lmdb_script
) -> None:
    rng = np.random.default_rng(4)
    save_rgb(tmp_path / "a" / "one.png", noise_image(rng, 3, 3))
    save_rgb(tmp_path / "b" / "two.png", noise_image(rng, 3, 3))
    make = create_lmdb_script.make_lmdb_from_folder
    out = make(tmp_path / "a", tmp_path / "x.lmdb", progress=False)
    with pytest.raises(FileExistsError, match="x.lmdb.*--overwrite"):
        make(tmp_path / "b", out, progress=False)
    assert LmdbBackend(out).keys() == ["one"]
    make(tmp_path / "b", out, overwrite=True, progress=False)
    assert LmdbBackend(out).keys() == ["two"]
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "x.lmdb"]  # no temporary folders left


def test_clashing_names_and_bad_output_are_errors(
    tmp_path: Path, noise_image, save_rgb, create_lmdb_script
) -> None:
    rng = np.random.default_rng(5)
    save_rgb(tmp_path / "src" / "same.png", noise_image(rng, 3, 3))
    save_rgb(tmp_path / "src" / "same.jpg", noise_image(rng, 3, 3))
    with pytest.raises(ValueError, match="same LMDB key 'same'"):
        create_lmdb_script.make_lmdb_from_folder(
            tmp_path / "src", tmp_path / "o.lmdb", progress=False
        )
    with pytest.raises(ValueError, match=r"must end with \.lmdb"):
        create_lmdb_script.make_lmdb_from_folder(
            tmp_path / "src", tmp_path / "o.db", progress=False
        )


def test_map_grows_when_the_estimate_is_too_small(
    tmp_path: Path, noise_image, save_rgb, create_lmdb_script
) -> None:
    rng = np.random.default_rng(6)
    images = {f"n{i}": noise_image(rng, 64, 64, np.uint16) for i in range(3)}
    for name, img in images.items():
        save_rgb(tmp_path / "src" / f"{name}.png", img)
    out = create_lmdb_script.make_lmdb_from_folder(
        tmp_path / "src", tmp_path / "o.lmdb", map_size=64 * 1024, progress=False, workers=2
    )
    backend = LmdbBackend(out)
    for name, img in images.items():
        np.testing.assert_array_equal(decode_image(backend.get(name), name), img)
    backend.close()


def test_fivek_sample_lmdb_reads_identically_through_the_dataset(
    tmp_path: Path, fivek_sample_dir: Path, create_lmdb_script
) -> None:
    make = create_lmdb_script.make_lmdb_from_folder
    src_db = make(
        fivek_sample_dir / "source", tmp_path / "FiveK_test_source.lmdb", progress=False, workers=2
    )
    tgt_db = make(
        fivek_sample_dir / "target", tmp_path / "FiveK_test_target.lmdb", progress=False, workers=2
    )
    common = {"type": "PairedImageDataset", "phase": "val"}
    disk = build_dataset(
        {
            **common,
            "dataroot_lq": str(fivek_sample_dir / "source"),
            "dataroot_gt": str(fivek_sample_dir / "target"),
            "io_backend": {"type": "disk"},
        },
        "datasets.val",
    )
    lmdb_ds = build_dataset(
        {
            **common,
            "dataroot_lq": str(src_db),
            "dataroot_gt": str(tgt_db),
            "io_backend": {"type": "lmdb"},
        },
        "datasets.val",
    )
    assert len(disk) == len(lmdb_ds) == 23
    for i in range(len(disk)):
        a, b = disk[i], lmdb_ds[i]
        assert b["lq_path"] == Path(a["lq_path"]).stem and b["gt_path"] == Path(a["gt_path"]).stem
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    # the start-up check reads the LMDB's headers (4 threads) as it reads the files'
    from_disk, from_lmdb = (ds.survey_images(9, "network_g.num_high=3") for ds in (disk, lmdb_ds))
    assert from_disk.problems == from_lmdb.problems == []
    assert set(from_disk.sample_sizes) == set(from_lmdb.sample_sizes)


def _run_script(*args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_fivek_mode_builds_the_four_lmdbs(tmp_path: Path, noise_image, save_rgb) -> None:
    rng = np.random.default_rng(8)
    for split in ("train", "test"):
        for sub in ("A", "B"):
            for name in ("p1", "p2"):
                save_rgb(
                    tmp_path / "FiveK_480p" / split / sub / f"{name}.jpg", noise_image(rng, 6, 5)
                )
    result = _run_script(
        "scripts/data_preparation/create_lmdb.py", "--fivek", str(tmp_path), "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    for split in ("train", "test"):
        for role, sub in (("source", "A"), ("target", "B")):
            db = tmp_path / f"FiveK_{split}_{role}.lmdb"
            backend = LmdbBackend(db)
            assert backend.keys() == ["p1", "p2"]
            np.testing.assert_array_equal(
                decode_image(backend.get("p2"), "p2"),
                read_image(tmp_path / "FiveK_480p" / split / sub / "p2.jpg"),
            )
            backend.close()
    again = _run_script("scripts/data_preparation/create_lmdb.py", "--fivek", str(tmp_path))
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_cli_reports_missing_fivek_layout(tmp_path: Path) -> None:
    result = _run_script("scripts/data_preparation/create_lmdb.py", "--fivek", str(tmp_path))
    assert result.returncode == 1
    assert str(tmp_path / "FiveK_480p" / "train" / "A") in result.stderr


def test_download_fails_fast_offline_and_says_where_to_put_files(tmp_path: Path) -> None:
    # A proxy on a closed local port makes the download fail the same way with or without
    # network on the test machine.
    proxy = "http://127.0.0.1:9"
    result = _run_script(
        "scripts/data_preparation/download_datasets.py",
        "--root",
        str(tmp_path / "FiveK"),
        "--timeout",
        "3",
        https_proxy=proxy,
        HTTPS_PROXY=proxy,
        http_proxy=proxy,
        HTTP_PROXY=proxy,
        no_proxy="",
        NO_PROXY="",
    )
    assert result.returncode != 0
    assert str(tmp_path / "FiveK" / "FiveK_480p" / "test" / "B") in result.stderr
    assert "create_lmdb.py --fivek" in result.stderr
    assert not list((tmp_path / "FiveK").glob("*.download*"))


def test_packed_photos_read_equal_to_the_files(
    tmp_path: Path, fivek_sample_dir: Path, adobe_icc: Path, create_lmdb_script
) -> None:
    """An LMDB stores what the photo reader returns (upright, sRGB, 16 bits kept) and the lmdb
    backend decodes it back to exactly the same array as the file read."""
    folder = tmp_path / "photos"
    icc = adobe_icc.read_bytes()
    upright = fivek_upright(fivek_sample_dir, "a0212")
    save_turned_jpeg(folder / "turned.JPG", upright)
    save_tagged(folder / "adobe.jpg", adobe_rgb_from_srgb(upright, adobe_icc), icc, "JPEG")
    save_tiff16(folder / "deep.tif", sixteen_bit(upright))
    save_tiff16(
        folder / "deep_adobe.tif", sixteen_bit(adobe_rgb_from_srgb(upright, adobe_icc)), icc
    )
    db = create_lmdb_script.make_lmdb_from_folder(folder, tmp_path / "x.lmdb", progress=False)
    disk, packed = DiskBackend(folder), LmdbBackend(db)
    shapes = {key: shape for key, _, shape in read_lmdb_meta_info(db)}
    assert shapes["turned"] == (*upright.shape[:2], 3)  # upright in meta_info too
    for name in disk.keys():
        key = Path(name).stem
        from_file, from_lmdb = disk.read_image(name), packed.read_image(key)
        assert from_lmdb.dtype == from_file.dtype, name
        np.testing.assert_array_equal(from_lmdb, from_file, err_msg=name)
        assert packed.probe(key) == disk.probe(name) == from_file.shape[:2]
    assert packed.read_image("deep").dtype == np.uint16
    packed.close()
