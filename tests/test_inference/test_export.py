"""Export (ONNX, TorchScript, torch.export): dynamic batch / height / width, the exported
files against PyTorch, the command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inference_test_utils import random_lptn

from lptn.engine.cli import export_main
from lptn.inference.export import check_export, export_onnx, export_program, export_torchscript
from lptn.inference.graph_lptn import GraphLPTN


def _two_sizes(photo_tensors):
    photos = dict(photo_tensors)
    first = photos["a4576"]  # 343 x 512 (odd)
    second = torch.cat(
        [photos["a0212"][:, :, :301, :211], photos["a3203"][:, :, :301, :211]]
    )  # batch 2, 301 x 211
    return [first, second]


def test_traced_size_graph_equals_the_network(official_net, photo_tensors) -> None:
    exportable = GraphLPTN(official_net, traced_sizes=True)
    for name, x in photo_tensors[:3]:
        with torch.no_grad():
            assert (exportable(x) - official_net(x)).abs().max() <= 1e-4, name


@pytest.mark.parametrize(
    "fmt,export", [("torchscript", export_torchscript), ("exported", export_program)]
)
def test_pytorch_formats_run_at_other_sizes_and_batches(
    tmp_path: Path, official_net, photo_tensors, fmt, export
) -> None:
    path = export(official_net, tmp_path / "lptn.pt2")
    diffs = check_export(path, fmt, official_net, _two_sizes(photo_tensors))
    assert max(diffs) <= 1e-4, diffs


def test_pytorch_formats_for_other_variants(tmp_path: Path) -> None:
    net = random_lptn("LPTNPaper", 2, seed=3)
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 3, 37, 45, generator=gen), torch.rand(3, 3, 64, 33, generator=gen)]
    for fmt, export in (("torchscript", export_torchscript), ("exported", export_program)):
        path = export(net, tmp_path / f"paper.{fmt}.pt2")
        assert max(check_export(path, fmt, net, inputs)) <= 1e-4, fmt


def test_onnx_matches_pytorch_at_two_sizes_and_batches(
    tmp_path: Path, official_net, photo_tensors
) -> None:
    pytest.importorskip("onnxruntime")
    path = export_onnx(official_net, tmp_path / "lptn.onnx")
    diffs = check_export(path, "onnx", official_net, _two_sizes(photo_tensors))
    assert max(diffs) <= 1e-4, diffs


@pytest.mark.parametrize("arch,num_high", [("LPTNPaper", 3), ("LPTN", 2)])
def test_other_variants_export(tmp_path: Path, arch: str, num_high: int) -> None:
    pytest.importorskip("onnxruntime")
    net = random_lptn(arch, num_high, seed=3)
    path = export_onnx(net, tmp_path / f"{arch}.onnx")
    gen = torch.Generator().manual_seed(0)
    diffs = check_export(
        path,
        "onnx",
        net,
        [torch.rand(1, 3, 37, 45, generator=gen), torch.rand(2, 3, 64, 33, generator=gen)],
    )
    assert max(diffs) <= 1e-4


def test_export_command(
    tmp_path: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    assert (
        export_main(
            ["--weights", str(official_checkpoint), "--format", "onnx", "--output", str(out)]
        )
        == 0
    )
    assert out.is_file()
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and str(out) in printed
    assert (
        export_main(
            ["--weights", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "x.onnx")]
        )
        == 2
    )
    assert "missing.pth" in capsys.readouterr().err


def test_export_command_pytorch_formats(
    tmp_path: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    for fmt, name in (("torchscript", "m.torchscript.pt"), ("exported", "m.pt2")):
        out = tmp_path / name
        assert (
            export_main(
                ["--weights", str(official_checkpoint), "--format", fmt, "--output", str(out)]
            )
            == 0
        )
        assert out.is_file()
        assert f"{fmt} vs PyTorch" in capsys.readouterr().out
    assert (
        export_main(
            [
                "--weights",
                str(official_checkpoint),
                "--format",
                "exported",
                "--output",
                str(tmp_path / "m.pth"),
            ]
        )
        == 2
    )
    assert ".pt2" in capsys.readouterr().err
