"""train.ema_decay through the training loop: bit-identical resume, net_g_best, test.py's
path.param_key_g and lptn-enhance's --param-key choosing the moving average."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_resume import _assert_equal_tree
from train_test_utils import (
    make_image_folders,
    parsed,
    tiny_options,
    tiny_test_options,
    write_options,
)

from lptn.data.image_io import read_image
from lptn.engine.cli import enhance_main, evaluate_main, export_main
from lptn.engine.train_loop import run_training
from lptn.engine.training_state import load_training_state
from lptn.inference.generator_weights import load_generator
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))
EMA = {"ema_decay": 0.9}


def _files(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_with_ema_is_bit_identical(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=5)
    # 5 images, batch 2: iteration 3 stops inside epoch 1; validation every 2 iterations.
    common = dict(unpaired=False, gan=False, checkpoint_freq=3, val=True, val_freq=2)
    straight = run_training(
        parsed(
            tiny_options(data, name="straight", total_iter=5, extra_train=EMA, **common), tmp_path
        ),
        CPU,
        handle_signals=False,
    )
    first = run_training(
        parsed(tiny_options(data, name="split", total_iter=3, extra_train=EMA, **common), tmp_path),
        CPU,
        handle_signals=False,
    )
    torch.manual_seed(999)
    resumed = run_training(
        parsed(
            tiny_options(data, name="split", total_iter=5, extra_train=EMA, **common),
            tmp_path,
            [f"path.resume_state={first.last_state}"],
        ),
        CPU,
        handle_signals=False,
    )
    assert straight.iteration == resumed.iteration == 5
    a_models = straight.experiments_root / "models"
    b_models = resumed.experiments_root / "models"
    for label in ("5", "latest"):
        a, b = _files(a_models / f"net_g_{label}.pth"), _files(b_models / f"net_g_{label}.pth")
        assert set(a) == {"params", "params_ema", "arch"}
        _assert_equal_tree(a, b, f"net_g_{label}")
    _assert_equal_tree(
        load_training_state(straight.last_state)["model"],
        load_training_state(resumed.last_state)["model"],
        "model",
    )
    assert straight.best == resumed.best
    # The average lags behind the weights (it is not a copy of them).
    final = _files(a_models / "net_g_5.pth")
    assert any(not torch.equal(final["params"][k], final["params_ema"][k]) for k in final["params"])
    # Validation ran the average, so the best file carries it too.
    assert set(_files(a_models / "net_g_best.pth")) == {"params", "params_ema", "arch"}


def test_test_py_and_enhance_choose_the_average(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    outcome = run_training(
        parsed(
            tiny_options(
                data,
                name="ema",
                unpaired=False,
                gan=False,
                total_iter=4,
                checkpoint_freq=4,
                extra_train={"ema_decay": 0.5},
            ),
            tmp_path,
        ),
        CPU,
        handle_signals=False,
    )
    weights = outcome.experiments_root / "models" / "net_g_latest.pth"
    test_opt = {**tiny_test_options("ema_test", data, weights), "inference": {"path": "exact"}}
    option_file = write_options(test_opt, tmp_path / "ema_test.yml")
    psnr = {}
    for key in ("params", "params_ema"):
        results = tmp_path / "results" / key
        code = evaluate_main(
            [
                "-opt",
                str(option_file),
                "--set",
                f"path.param_key_g={key}",
                f"path.results_root={results}",
                f"path.visualization={results / 'vis'}",
                f"path.log={results}",
            ]
        )
        assert code == 0
        psnr[key] = json.loads((results / "metrics.json").read_text())["tiny"]["mean"]["psnr"]
        assert f"weights entry: {key}" in (results / "report.html").read_text()
    assert psnr["params"] != psnr["params_ema"]

    # lptn-enhance --param-key params_ema gives the average's output, the default the weights'.
    outputs = {}
    for key in (None, "params_ema"):
        out_dir = tmp_path / f"enhanced_{key}"
        argv = [
            "--weights",
            str(weights),
            "--input",
            str(data["source"] / "img_0.png"),
            "--output",
            str(out_dir),
            "--device",
            "cpu",
            "--no-progress",
            "--path",
            "exact",
        ]
        assert enhance_main(argv + (["--param-key", key] if key else [])) == 0
        outputs[key] = read_image(out_dir / "img_0.png")
    src = read_image(data["source"] / "img_0.png")
    x = torch.from_numpy(src.astype(np.float32) / 255).permute(2, 0, 1)[None]
    for key, out in outputs.items():
        net = load_generator(weights, param_key=key).eval()
        with torch.no_grad():
            expected = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out, np.round(expected * 255).astype(np.uint8))
    assert not np.array_equal(outputs[None], outputs["params_ema"])


def test_lptn_export_chooses_params_or_params_ema_like_lptn_enhance(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime judges the exported ONNX files")
    data = make_image_folders(tmp_path / "data", count=4)
    outcome = run_training(
        parsed(
            tiny_options(
                data,
                name="ema_export",
                unpaired=False,
                gan=False,
                total_iter=3,
                checkpoint_freq=3,
                extra_train={"ema_decay": 0.5},
            ),
            tmp_path,
        ),
        CPU,
        handle_signals=False,
    )
    weights = outcome.experiments_root / "models" / "net_g_3.pth"
    assert set(_files(weights)) == {"params", "params_ema", "arch"}
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    outputs = {}
    for key in (None, "params", "params_ema"):
        output = tmp_path / f"export_{key}.onnx"
        argv = ["--weights", str(weights), "--output", str(output), "--no-check"]
        capsys.readouterr()
        assert export_main(argv + (["--param-key", key] if key else [])) == 0
        chosen = key or "params"
        assert f"holds params and params_ema: exporting {chosen}" in capsys.readouterr().out
        session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        outputs[key] = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            expected = load_generator(weights, param_key=chosen).eval()(x).numpy()
        np.testing.assert_allclose(outputs[key], expected, atol=1e-4)
    # The default is lptn-enhance's (params); the moving average is a different network.
    np.testing.assert_array_equal(outputs[None], outputs["params"])
    assert np.abs(outputs["params"] - outputs["params_ema"]).max() > 1e-3

    # A file without the moving average: asking for it is one line, exit 2.
    plain = tmp_path / "plain.pth"
    torch.save({"params": _files(weights)["params"]}, plain)
    capsys.readouterr()
    assert export_main(["--weights", str(plain), "--param-key", "params_ema"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {plain}: has no 'params_ema' entry (it has params)"
    assert not plain.with_suffix(".onnx").exists()
