"""Validation during training: best model, saved images, TensorBoard, test.py's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_test_utils import make_image_folders, parsed, tiny_options

from lptn.data import build_dataset
from lptn.engine.evaluate import evaluate_dataset
from lptn.engine.train_loop import run_training
from lptn.engine.training_state import load_training_state
from lptn.models import build_model
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


def test_validation_tracks_the_best_model_like_test_py(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    raw = tiny_options(
        data,
        name="val",
        unpaired=False,
        gan=False,
        total_iter=6,
        checkpoint_freq=2,
        val=True,
        val_freq=2,
    )
    raw["logger"]["use_tb_logger"] = True
    opt = parsed(raw, tmp_path)
    outcome = run_training(opt, CPU, handle_signals=False)
    root = outcome.experiments_root
    log = next(root.glob("train_val_*.log")).read_text()

    # One validation line per val_freq, with the metric, in the log file.
    values = {}
    for line in log.splitlines():
        if "validation tiny_val at iteration" in line:
            it = int(line.split("at iteration ")[1].split()[0])
            values[it] = float(line.rsplit("psnr: ", 1)[1])
    assert sorted(values) == [2, 4, 6]
    best_iter = max(values, key=values.get)
    assert outcome.best["iter"] == best_iter and outcome.best["metric"] == "psnr"
    assert outcome.best["value"] == pytest.approx(values[best_iter], abs=1e-4)
    # The best weights are those of the best iteration (checkpoints every 2 iterations).
    best = _weights(root / "models" / "net_g_best.pth")
    at_best = _weights(root / "models" / f"net_g_{best_iter}.pth")
    assert all(torch.equal(best[k], at_best[k]) for k in at_best)
    assert load_training_state(outcome.last_state)["best"] == outcome.best

    # test.py's evaluation of net_g_best.pth gives the same PSNR.
    test_opt = {
        "name": "check",
        "model_type": "LPTNTestModel",
        "network_g": opt["network_g"],
        "path": {"pretrain_network_g": str(root / "models" / "net_g_best.pth")},
        "val": {"metrics": opt["val"]["metrics"]},
    }
    dataset = build_dataset(opt["datasets"]["val"], "datasets.val")
    result = evaluate_dataset(build_model(test_opt, CPU), dataset, "tiny_val", test_opt["val"])
    assert result["mean"]["psnr"] == outcome.best["value"]

    # Outputs of each validation, named like the inputs.
    for it in (2, 4, 6):
        names = sorted(p.name for p in (root / "visualization" / str(it)).iterdir())
        assert names == [f"img_{i}.png" for i in range(4)]

    # TensorBoard: losses, learning rates, metrics and input|output|target panels.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = tmp_path / "tb_logger" / "val"
    events = EventAccumulator(str(tb_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"losses/l_g_pix", "lr/lr_g", "time/iter", "metrics/tiny_val/psnr"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in events.Scalars("metrics/tiny_val/psnr")] == [2, 4, 6]
    panels = [t for t in tags["images"] if t.startswith("val/tiny_val/")]
    assert len(panels) == 3
    image = events.Images(panels[0])[0]
    assert (image.width, image.height) == (3 * 40, 40)


def test_metric_direction() -> None:
    from lptn.engine.validation import metric_is_better

    psnr = {"type": "calculate_psnr"}
    assert metric_is_better(psnr, 20.0, None)
    assert metric_is_better(psnr, 21.0, 20.0) and not metric_is_better(psnr, 19.0, 20.0)
    lower = {"type": "some_distance", "better": "lower"}
    assert metric_is_better(lower, 0.1, 0.2) and not metric_is_better(lower, 0.3, 0.2)
    assert not metric_is_better(psnr, float("nan"), None)
    with pytest.raises(ValueError, match="better"):
        metric_is_better({"better": "up"}, 1.0, 0.0)
