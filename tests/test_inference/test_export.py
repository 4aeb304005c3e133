"""ONNX export: dynamic batch / height / width, onnxruntime against PyTorch, the command."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lptn.engine.cli import export_main
from lptn.inference.export import ExportableLPTN, check_onnx, export_onnx

from inference_test_utils import random_lptn

ort = pytest.importorskip("onnxruntime")


def test_exportable_graph_equals_the_network(official_net, photo_tensors) -> None:
    exportable = ExportableLPTN(official_net)
    for name, x in photo_tensors[:3]:
        with torch.no_grad():
            assert (exportable(x) - official_net(x)).abs().max() <= 1e-4, name


def test_onnx_matches_pytorch_at_two_sizes_and_batches(tmp_path: Path, official_net,
                                                       photo_tensors) -> None:
    path = export_onnx(official_net, tmp_path / "lptn.onnx")
    photos = dict(photo_tensors)
    first = photos["a4576"]                          # 343 x 512 (odd)
    second = torch.cat([photos["a0212"][:, :, :301, :211],
                        photos["a3203"][:, :, :301, :211]])  # batch 2, 301 x 211
    diffs = check_onnx(path, official_net, [first, second])
    assert max(diffs) <= 1e-4, diffs


@pytest.mark.parametrize("arch,num_high", [("LPTNPaper", 3), ("LPTN", 2)])
def test_other_variants_export(tmp_path: Path, arch: str, num_high: int) -> None:
    net = random_lptn(arch, num_high, seed=3)
    path = export_onnx(net, tmp_path / f"{arch}.onnx")
    gen = torch.Generator().manual_seed(0)
    diffs = check_onnx(path, net, [torch.rand(1, 3, 37, 45, generator=gen),
                                   torch.rand(2, 3, 64, 33, generator=gen)])
    assert max(diffs) <= 1e-4


def test_export_command(tmp_path: Path, official_checkpoint: Path,
                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model.onnx"
    assert export_main(["--weights", str(official_checkpoint), "--format", "onnx",
                        "--output", str(out)]) == 0
    assert out.is_file()
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and str(out) in printed
    assert export_main(["--weights", str(tmp_path / "missing.pth"), "--output",
                        str(tmp_path / "x.onnx")]) == 2
    assert "missing.pth" in capsys.readouterr().err
