"""Disk and LMDB backends: keys, bytes, option errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from lptn.data.file_backends import DiskBackend, LmdbBackend, make_file_backend
from lptn.data.image_io import decode_image, read_image


def test_disk_backend_lists_image_files_only(tmp_path: Path, noise_image, save_rgb) -> None:
    rng = np.random.default_rng(0)
    save_rgb(tmp_path / "b.png", noise_image(rng, 3, 3))
    save_rgb(tmp_path / "a.jpg", noise_image(rng, 3, 3))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    backend = make_file_backend({"type": "disk"}, tmp_path, "datasets.val.dataroot_lq")
    assert isinstance(backend, DiskBackend)
    assert backend.keys() == ["a.jpg", "b.png"]
    assert backend.stem("b.png") == "b"
    assert backend.display_path("b.png") == str(tmp_path / "b.png")
    np.testing.assert_array_equal(
        decode_image(backend.get("b.png"), "b"), read_image(tmp_path / "b.png")
    )


def test_unknown_backend_type_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        make_file_backend({"type": "s3"}, tmp_path, "datasets.train.dataroot_gt")
    message = str(info.value)
    assert "datasets.train.io_backend.type" in message
    assert "'s3'" in message and "disk" in message and "lmdb" in message


@pytest.mark.parametrize("backend_type", ["disk", "lmdb"])
def test_missing_root_names_path_and_key(tmp_path: Path, backend_type: str) -> None:
    missing = tmp_path / "nowhere.lmdb"
    with pytest.raises(FileNotFoundError) as info:
        make_file_backend({"type": backend_type}, missing, "datasets.test.dataroot_lq")
    assert str(missing) in str(info.value)
    assert "datasets.test.dataroot_lq" in str(info.value)


def test_folder_without_images_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no image files"):
        make_file_backend(None, tmp_path, "dataroot_gt")


def test_folder_that_is_not_an_lmdb(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data.mdb"):
        make_file_backend({"type": "lmdb"}, tmp_path, "datasets.val.dataroot_gt")


def test_lmdb_backend_reads_keys_and_survives_pickling(
    tmp_path: Path, noise_image, save_rgb, create_lmdb_script
) -> None:
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    images = {name: noise_image(rng, 5 + i, 4, np.uint16) for i, name in enumerate(["x", "y"])}
    for name, img in images.items():
        save_rgb(src / f"{name}.tif", img)
    db = create_lmdb_script.make_lmdb_from_folder(src, tmp_path / "db.lmdb", progress=False)
    backend = make_file_backend({"type": "lmdb"}, db, "dataroot_gt")
    assert isinstance(backend, LmdbBackend)
    assert backend.keys() == ["x", "y"]
    assert backend.display_path("x") == "x"
    np.testing.assert_array_equal(decode_image(backend.get("y"), "y"), images["y"])
    clone = pickle.loads(pickle.dumps(backend))  # the open handle is not pickled
    np.testing.assert_array_equal(decode_image(clone.get("x"), "x"), images["x"])
    with pytest.raises(KeyError, match="'z'"):
        backend.get("z")
    backend.close()
