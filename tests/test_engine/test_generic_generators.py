"""Every tool takes any registered generator: weights files name their architecture (the
``arch`` entry), and lptn-enhance / lptn-export / test.py rebuild it from the file alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from generic_test_utils import TINY_PAPER, train_tiny_paper
from PIL import Image

from lptn.archs import ARCH_REGISTRY, build_network
from lptn.archs.lptn_arch import LPTNPaper
from lptn.engine.cli import enhance_main, export_main
from lptn.inference.export import check_export, export_onnx, export_program, export_torchscript
from lptn.inference.generator_weights import load_generator
from lptn.photo import PhotoEnhancer
from lptn.platform.checkpoint_io import (
    ARCH_KEY,
    CheckpointError,
    read_arch_options,
    save_network,
)


@pytest.fixture(scope="module")
def tiny_paper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_paper(tmp_path_factory.mktemp("tiny_paper"))


def test_training_writes_the_architecture_beside_the_weights(tiny_paper: Path) -> None:
    assert read_arch_options(tiny_paper) == TINY_PAPER
    best = tiny_paper.with_name("net_g_3.pth")
    assert read_arch_options(best) == TINY_PAPER
    net = load_generator(tiny_paper)
    assert isinstance(net, LPTNPaper) and net.num_high == 2
    assert len(net.trans_low.model) == 8 + 1  # eight fixed layers and one residual block


def test_the_arch_entry_decides_the_architecture(tmp_path: Path) -> None:
    # nrb_low 3 and num_high 2: options the official file does not have.
    opt = {"type": "LPTNPaper", "nrb_low": 3, "nrb_high": 2, "num_high": 2}
    torch.manual_seed(0)
    saved = build_network(opt).eval()
    path = tmp_path / "paper.pth"
    save_network(saved, path, arch=opt)
    loaded = load_generator(path)
    assert type(loaded) is LPTNPaper
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        assert torch.equal(loaded(x), saved(x))
    raw = torch.load(path, weights_only=True)
    assert raw[ARCH_KEY] == opt and set(raw) == {"params", ARCH_KEY}


def test_the_official_file_still_loads_without_an_arch_entry(official_checkpoint: Path) -> None:
    assert read_arch_options(official_checkpoint) is None
    net = load_generator(official_checkpoint)
    assert type(net).__name__ == "LPTN" and net.num_high == 3


def test_a_file_naming_no_known_architecture_gets_one_line(tmp_path: Path) -> None:
    critic = tmp_path / "critic.pth"
    save_network(build_network({"type": "Discriminator"}), critic)
    with pytest.raises(CheckpointError) as err:
        load_generator(critic)
    text = str(err.value)
    assert str(critic) in text and "names no architecture" in text and "\n" not in text
    assert "pass the network_g options" not in text
    unknown = tmp_path / "unknown.pth"
    save_network(build_network(TINY_PAPER), unknown, arch={"type": "NoSuchNet", "n": 1})
    with pytest.raises(CheckpointError, match="unknown arch type 'NoSuchNet'.*LPTNPaper"):
        load_generator(unknown)


def test_enhance_takes_the_trained_file(
    tiny_paper: Path, fivek_sample_dir: Path, tmp_path: Path
) -> None:
    src = fivek_sample_dir / "source" / "a0212.png"
    out = tmp_path / "out"
    args = ["--input", str(src), "--output", str(out), "--weights", str(tiny_paper)]
    assert enhance_main([*args, "--no-progress"]) == 0
    written = np.asarray(Image.open(out / "a0212.png").convert("RGB"))
    photo = np.asarray(Image.open(src).convert("RGB"))
    expected = PhotoEnhancer.from_weights(tiny_paper).enhance_rgb(photo)
    assert written.shape == photo.shape
    assert np.array_equal(written, expected)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported"])
def test_export_takes_the_trained_file(
    tiny_paper: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture
) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="the ONNX check runs in onnxruntime")
    output = tmp_path / ("paper.pt2" if fmt == "exported" else f"paper.{fmt}")
    args = ["--weights", str(tiny_paper), "--format", fmt, "--output", str(output)]
    assert export_main(args) == 0
    assert "max abs diff" in capsys.readouterr().out


_LUT = "ImageAdaptive3DLUT"
_GENERATORS = [
    pytest.param({"type": "LPTNPaper", "nrb_low": 3, "nrb_high": 1, "num_high": 2}, id="paper"),
    pytest.param(
        {"type": _LUT},
        id=_LUT,
        marks=[] if _LUT in ARCH_REGISTRY else [pytest.mark.skip(reason=f"{_LUT} not registered")],
    ),
]


@pytest.mark.parametrize("opt", _GENERATORS)
def test_every_format_matches_pytorch_for_any_generator(tmp_path: Path, opt) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "net.pth"
    save_network(build_network(opt), weights, arch=opt)
    net = load_generator(weights).eval()
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 3, 77, 120, generator=gen), torch.rand(2, 3, 131, 97, generator=gen)]
    formats = ["torchscript", "exported"]
    try:
        import onnxruntime  # noqa: F401

        formats.append("onnx")
    except ImportError:  # the ONNX file is checked in onnxruntime only
        pass
    for fmt, export in (
        ("torchscript", export_torchscript),
        ("exported", export_program),
        ("onnx", export_onnx),
    ):
        if fmt in formats:
            path = export(net, tmp_path / f"net.{fmt}.pt2")
            assert max(check_export(path, fmt, net, inputs)) <= 1e-4, fmt


def test_a_3d_lut_exports_at_its_opset_and_refuses_a_lower_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A 5-D GridSample needs ONNX opset 20: the default follows the generator, and an
    # explicit lower --opset is one line, exit 2, with no file written.
    pytest.importorskip("onnxruntime", reason="the ONNX check runs in onnxruntime")
    opt = {"type": "ImageAdaptive3DLUT"}
    weights = tmp_path / "lut.pth"
    save_network(build_network(opt), weights, arch=opt)
    low = tmp_path / "low.onnx"
    assert export_main(["--weights", str(weights), "--format", "onnx", "--opset", "17",
                        "--output", str(low)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--opset 17: ImageAdaptive3DLUT needs ONNX opset 20 or later" in err
    assert len(err.strip().splitlines()) == 1 and not low.exists()
    good = tmp_path / "lut.onnx"
    assert export_main(["--weights", str(weights), "--format", "onnx", "--output", str(good)]) == 0
    assert good.is_file()
