"""The ``inference`` options and the fast path as default of test.py / test_speed.py / enhance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lptn.archs import build_network
from lptn.data.image_io import read_image, write_image
from lptn.engine.cli import enhance_main, speed_main
from lptn.inference import FastLPTN, GraphLPTN
from lptn.inference.settings import InferenceOptionError, InferenceSettings, build_inference_path
from lptn.models import build_model
from lptn.platform.runtime import build_runtime

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "block,key",
    [
        ({"path": "quick"}, "inference.path"),
        ({"tile_size": 8}, "inference.tile_size"),
        ({"tile_size": "big"}, "inference.tile_size"),
        ({"memory_budget_mb": -1}, "inference.memory_budget_mb"),
        ({"conv_backend": "cudnn"}, "inference.conv_backend"),
        ({"tiles": 3}, "inference.tiles"),
        ({"channels_last": "yes"}, "inference.channels_last"),
        ("fast", "inference"),
        ({"compile": "fastest", "path": "graph"}, "inference.compile"),
        ({"compile": True}, "inference.compile"),
        ({"path": "graph", "tile_size": 64}, "inference.tile_size"),
        ({"path": "graph", "conv_backend": "onednn"}, "inference.conv_backend"),
    ],
)
def test_bad_inference_options_name_the_key(block, key: str) -> None:
    with pytest.raises(InferenceOptionError, match=key.replace(".", r"\.")):
        InferenceSettings.from_options(block)


def test_openvino_kernels_without_the_package_are_refused_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The import system refuses a None entry: as on a machine without the extra.
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(
        InferenceOptionError, match=r"inference\.conv_backend: openvino .*lptn\[openvino\]"
    ):
        InferenceSettings.from_options({"conv_backend": "openvino"})
    with pytest.raises(ValueError, match="openvino package"):
        FastLPTN(build_network({"type": "LPTN", "num_high": 2}), conv_backend="openvino")
    photo = tmp_path / "p.png"
    write_image(photo, np.zeros((24, 32, 3), np.uint8))
    out = tmp_path / "out"
    args = ["--input", str(photo), "--output", str(out), "--no-progress"]
    assert enhance_main([*args, "--conv-backend", "openvino"]) == 2  # before any photo
    assert "--conv-backend openvino needs the openvino package" in capsys.readouterr().err
    assert not out.exists()


def test_settings_build_the_right_path() -> None:
    from lptn.archs import build_network

    net = build_network({"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 2})
    assert build_inference_path(net, InferenceSettings(path="exact")) is None
    fast = build_inference_path(net, InferenceSettings.from_options({"tile_size": 64}), "bf16")
    assert isinstance(fast, FastLPTN) and fast.tile_size == 64 and fast.precision == "bf16"
    assert build_inference_path(torch.nn.Conv2d(3, 3, 1), InferenceSettings()) is None
    graph = build_inference_path(
        net, InferenceSettings.from_options({"path": "graph", "compile": "reduce-overhead"}), "fp16"
    )
    assert isinstance(graph, GraphLPTN) and graph.precision == "fp16"
    assert graph.compile_mode == "reduce-overhead" and graph.unrolled_mask_blocks


def _test_options(checkpoint: Path, **inference) -> dict:
    opt = {
        "name": "t",
        "model_type": "LPTNTestModel",
        "num_gpu": 0,
        "network_g": {"type": "LPTN", "nrb_low": 5, "nrb_high": 3, "num_high": 3},
        "path": {"pretrain_network_g": str(checkpoint), "strict_load_g": True},
    }
    if inference:
        opt["inference"] = inference
    return opt


def test_test_model_defaults_to_the_fast_path(official_checkpoint: Path, photo_tensors) -> None:
    runtime = build_runtime({"device": "cpu"})
    fast = build_model(_test_options(official_checkpoint), runtime)
    exact = build_model(_test_options(official_checkpoint, path="exact"), runtime)
    assert fast.inference_path == "fast" and exact.inference_path == "exact"
    x = photo_tensors[0][1]
    assert (fast.enhance(x) - exact.enhance(x)).abs().max() <= 1e-4


def test_speed_report_names_path_and_precision(tmp_path: Path) -> None:
    opt = tmp_path / "speed.yml"
    opt.write_text(
        "name: s\nmodel_type: LPTNTestModel\nnum_gpu: 0\n"
        "network_g: {type: LPTN, nrb_low: 1, nrb_high: 1, num_high: 2}\n"
        "val: {num_img: 1, times_per_img: 1, warmup: 0, fix_img_size: [40, 48]}\n"
    )
    for path in ("fast", "exact", "graph"):
        assert (
            speed_main(
                [
                    "-opt",
                    str(opt),
                    "--precision",
                    "bf16",
                    "--set",
                    f"path.results_root={tmp_path / path}",
                    f"path.log={tmp_path}",
                    f"inference.path={path}",
                ]
            )
            == 0
        )
        report = json.loads((tmp_path / path / "speed.json").read_text())
        assert report["path"] == path and report["precision"] == "bf16"
        assert report["tf32"] is False


def test_enhance_tiles_by_budget_and_gives_the_same_file(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "in"
    img = read_image(fivek_sample_dir / "source" / "a4576.png")[:200, :301]
    write_image(src / "photo.png", img)
    write_image(src / "deep.png", img.astype(np.uint16) * 257)
    runs = {"default": [], "tiled": ["--tile", "48"], "budget": ["--memory-budget", "1"]}
    for name, extra in runs.items():
        code = enhance_main(
            [
                "--weights",
                str(official_checkpoint),
                "--input",
                str(src),
                "--output",
                str(tmp_path / name),
                "--device",
                "cpu",
                "--no-progress",
                *extra,
            ]
        )
        assert code == 0
        logged = capsys.readouterr().out  # enhance logs to the console
        assert ("tiled to fit the memory budget" in logged) == (name != "default"), name
    for file in ("photo.png", "deep.png"):
        default = read_image(tmp_path / "default" / file)
        for name in ("tiled", "budget"):
            assert np.array_equal(read_image(tmp_path / name / file), default), (name, file)


def test_enhance_rejects_bad_tiling_options(tmp_path: Path, capsys) -> None:
    assert (
        enhance_main(
            [
                "--weights",
                "w.pth",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--tile",
                "4",
            ]
        )
        == 2
    )
    assert "--tile" in capsys.readouterr().err
    assert (
        enhance_main(
            [
                "--weights",
                "w.pth",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--memory-budget",
                "0",
            ]
        )
        == 2
    )
    assert "--memory-budget" in capsys.readouterr().err
    assert (
        enhance_main(
            [
                "--weights",
                "w.pth",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--compile",
            ]
        )
        == 2
    )
    assert "--path graph" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: an unknown mode is a usage error
        enhance_main(
            [
                "--weights",
                "w.pth",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--path",
                "graph",
                "--compile",
                "fastest",
            ]
        )
    assert "invalid choice: 'fastest'" in capsys.readouterr().err
    assert (
        enhance_main(
            [
                "--weights",
                "w.pth",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--path",
                "graph",
                "--tile",
                "64",
            ]
        )
        == 2
    )
    assert "--tile" in capsys.readouterr().err


def test_enhance_graph_path_writes_every_photo(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "in"
    img = read_image(fivek_sample_dir / "source" / "a2917.png")
    write_image(src / "photo.png", img)
    # 4000 x 1024 px: over the CPU's default 768 MB budget for the whole-image graph path.
    write_image(src / "large.png", np.tile(img, (12, 2, 1))[:4000, :1024])
    outputs = {}
    for path in ("graph", "exact"):
        assert (
            enhance_main(
                [
                    "--weights",
                    str(official_checkpoint),
                    "--input",
                    str(src),
                    "--output",
                    str(tmp_path / path),
                    "--device",
                    "cpu",
                    "--no-progress",
                    "--path",
                    path,
                ]
            )
            == 0
        )
        outputs[path] = read_image(tmp_path / path / "photo.png").astype(int)
        logged = capsys.readouterr().out
        assert ("large.png (4000x1024): the graph path needs about" in logged) == (path == "graph")
        assert "photo.png (" not in logged
    assert outputs["graph"].shape == img.shape
    assert np.abs(outputs["graph"] - outputs["exact"]).max() <= 1
