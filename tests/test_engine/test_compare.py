"""lptn-compare: the official checkpoint, a tiny trained LPTNPaper and the identity on a
FiveK sample subset, one table as markdown, CSV and HTML."""

from __future__ import annotations

import csv
import html.parser
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from generic_test_utils import train_tiny_paper
from PIL import Image
from train_test_utils import write_options

from lptn.engine.cli import compare_main
from lptn.metrics import calculate_metric

PAIRS = ("a0212", "a0481", "a4576")


def _sample_subset(fivek_sample_dir: Path, root: Path) -> Dict[str, Path]:
    folders = {"source": root / "source", "target": root / "target"}
    for side, folder in folders.items():
        folder.mkdir(parents=True)
        for stem in PAIRS:
            (folder / f"{stem}.png").symlink_to(fivek_sample_dir / side / f"{stem}.png")
    return folders


def _options(data: Dict[str, Path], path: Path) -> Path:
    return write_options(
        {
            "name": "compare_sample",
            "model_type": "LPTNTestModel",
            "num_gpu": 0,
            "datasets": {
                "test": {
                    "name": "fivek_subset",
                    "type": "PairedImageDataset",
                    "dataroot_lq": str(data["source"]),
                    "dataroot_gt": str(data["target"]),
                    "io_backend": {"type": "disk"},
                }
            },
            "network_g": {"type": "LPTN"},
            "path": {"pretrain_network_g": None},
        },
        path,
    )


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: List[str] = []
        self.links: List[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        attr = dict(attrs)
        if tag == "img":
            self.sources.append(attr["src"])
        if tag == "a":
            self.links.append(attr["href"])


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_compare_writes_one_table_for_every_model_and_the_identity(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path, capsys
) -> None:
    tiny = train_tiny_paper(tmp_path / "train")
    data = _sample_subset(fivek_sample_dir, tmp_path / "data")
    option_file = _options(data, tmp_path / "compare.yml")
    out = tmp_path / "compare"
    code = compare_main(
        [
            "-opt", str(option_file),
            "--weights", str(official_checkpoint), str(tiny),
            "--names", "official", "tiny_paper",
            "--output", str(out),
            "--device", "cpu",
            "--speed-runs", "1",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    with open(out / "compare.csv", newline="", encoding="utf-8") as fh:
        rows = {row["model"]: row for row in csv.DictReader(fh)}
    assert list(rows) == ["identity", "official", "tiny_paper"]
    assert rows["identity"]["parameters"] == "0"
    official_net = torch.load(official_checkpoint, weights_only=True)
    official_params = sum(
        v.numel() for k, v in official_net.items() if ".trans_mask_block." not in k
    )
    assert int(rows["official"]["parameters"]) == official_params
    assert rows["tiny_paper"]["architecture"].startswith("LPTNPaper, nrb_low 1")
    for row in rows.values():
        assert row["images"] == "3" and row["failed"] == "0"
        assert float(row["ms_480p"]) > 0 and float(row["ms_4K"]) > 0
    for model in ("official", "tiny_paper"):  # 24 times the pixels (the identity does nothing)
        assert float(rows[model]["ms_4K"]) > float(rows[model]["ms_480p"])

    # The identity's scores are the input's against the target, measured independently here.
    for metric in ("psnr", "deltae2000"):
        opt = {"psnr": {"type": "calculate_psnr"}, "deltae2000": {"type": "calculate_deltae",
               "formula": "ciede2000"}}[metric]  # fmt: skip
        expected = np.mean(
            [
                calculate_metric(
                    {"img": _rgb(data["source"] / f"{s}.png"),
                     "img2": _rgb(data["target"] / f"{s}.png")}, opt, metric
                )
                for s in PAIRS
            ]
        )  # fmt: skip
        assert float(rows["identity"][metric]) == pytest.approx(expected, rel=1e-9)
    # The official model's PSNR is that of the outputs it saved; it beats the identity here.
    saved = out / "images" / "fivek_subset" / "official"
    psnr = np.mean(
        [
            calculate_metric(
                {"img": _rgb(saved / f"{s}.png"), "img2": _rgb(data["target"] / f"{s}.png")},
                {"type": "calculate_psnr"},
                "psnr",
            )
            for s in PAIRS
        ]
    )
    assert float(rows["official"]["psnr"]) == pytest.approx(psnr, rel=1e-9)
    assert float(rows["official"]["psnr"]) > float(rows["identity"]["psnr"])

    markdown = (out / "compare.md").read_text(encoding="utf-8")
    assert markdown in printed
    assert markdown.count("\n") == 2 + 3 and "| fivek_subset | tiny_paper |" in markdown

    page = _Links()
    page.feed((out / "compare.html").read_text(encoding="utf-8"))
    # input, three models and the target per image, each thumbnail a file beside the page
    assert len(page.sources) == 5 * len(PAIRS)
    assert all((out / src).is_file() for src in page.sources)
    assert len(page.links) == 5 * len(PAIRS)
    assert all((out / link).resolve().is_file() for link in page.links)
    assert any(link.endswith("official/a0212.png") for link in page.links)


def test_compare_names_a_weights_file_that_does_not_load(
    tmp_path: Path, fivek_sample_dir: Path, capsys
) -> None:
    data = _sample_subset(fivek_sample_dir, tmp_path / "data")
    option_file = _options(data, tmp_path / "compare.yml")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    out = tmp_path / "compare"
    args = ["-opt", str(option_file), "--weights", str(broken), "--output", str(out)]
    assert compare_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(broken) in err[0]
    assert not (out / "compare.md").exists()
