"""The header-only probe: the upright size read_image will return, and cut files caught."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from photo_files import fivek_upright, save_turned_jpeg

from lptn.data.file_backends import DiskBackend, MemoryBackend
from lptn.data.image_io import ImageReadError, read_image
from lptn.data.image_probe import probe_bytes, probe_file


def test_sizes_match_the_reader_on_the_fivek_sample(fivek_sample_dir: Path) -> None:
    backend = DiskBackend(fivek_sample_dir / "target")
    for key in backend.keys():
        assert backend.probe(key) == read_image(backend.root / key).shape[:2], key


def test_a_sideways_jpeg_probes_upright(tmp_path: Path, fivek_sample_dir: Path) -> None:
    upright = fivek_upright(fivek_sample_dir, "a0535")  # 341x512
    path = save_turned_jpeg(tmp_path / "turned.jpg", upright)
    assert probe_file(path) == (341, 512) == probe_bytes(path.read_bytes(), "turned")


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_file_cut_short_is_unreadable(tmp_path: Path, fivek_sample_dir: Path, ext) -> None:
    path = tmp_path / f"cut{ext}"
    cv2.imwrite(str(path), cv2.imread(str(fivek_sample_dir / "source" / "a0212.png")))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match=f"cut{ext}.*truncated"):
        probe_file(path)


def test_bytes_after_the_jpeg_end_marker_are_accepted(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    # some cameras append data after the image: decoders ignore it, so must the check
    path = tmp_path / "tail.jpg"
    cv2.imwrite(str(path), cv2.imread(str(fivek_sample_dir / "source" / "a0212.png")))
    path.write_bytes(path.read_bytes() + b"camera trailer " * 20)
    assert probe_file(path) == (512, 341)


def test_not_a_photo_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        probe_file(path)
    with pytest.raises(ImageReadError, match="no such file"):
        probe_file(tmp_path / "gone.jpg")


def test_the_memory_backend_knows_sizes_without_reading(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    save_turned_jpeg(tmp_path / "turned.jpg", fivek_upright(fivek_sample_dir, "a0535"))
    backend = MemoryBackend(tmp_path)
    (tmp_path / "turned.jpg").unlink()  # the check reads nothing more
    assert backend.probe("turned.jpg") == (341, 512)
