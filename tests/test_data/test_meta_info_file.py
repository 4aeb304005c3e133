"""meta_info_file restricts a paired dataset to the listed images (the FiveK sample split)."""

from pathlib import Path

import pytest

from lptn.data import build_dataset

REPO = Path(__file__).resolve().parents[2]
SPLIT = REPO / "options" / "train" / "LPTN" / "fivek_sample_split"


def _opt(sample: Path, listing: Path) -> dict:
    return {
        "type": "PairedImageDataset",
        "dataroot_lq": str(sample / "source"),
        "dataroot_gt": str(sample / "target"),
        "io_backend": {"type": "disk"},
        "phase": "val",
        "meta_info_file": str(listing),
    }


def test_fivek_sample_split_is_disjoint_and_complete(fivek_sample_dir: Path) -> None:
    train = build_dataset(_opt(fivek_sample_dir, SPLIT / "train.txt"), "datasets.train")
    test = build_dataset(_opt(fivek_sample_dir, SPLIT / "test.txt"), "datasets.val")
    train_names = {Path(train[i]["lq_path"]).stem for i in range(len(train))}
    test_names = {Path(test[i]["gt_path"]).stem for i in range(len(test))}
    assert len(train_names) == 13 and len(test_names) == 10
    assert not train_names & test_names
    assert train_names | test_names == {p.stem for p in (fivek_sample_dir / "source").iterdir()}


def test_unknown_name_is_an_error(fivek_sample_dir: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("a0212.png (341,512,3) 1\nnot_there\n")
    with pytest.raises(ValueError, match="meta_info_file.*not_there"):
        build_dataset(_opt(fivek_sample_dir, listing), "datasets.val")
    with pytest.raises(FileNotFoundError, match="meta_info_file"):
        build_dataset(_opt(fivek_sample_dir, tmp_path / "none.txt"), "datasets.val")
