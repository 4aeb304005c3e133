"""Resume: N iterations, stop, resume, N more == 2N straight, bit for bit (CPU)."""

from __future__ import annotations

from pathlib import Path

import torch
from train_test_utils import make_image_folders, parsed, tiny_options

from lptn.engine.checkpointer import find_resume_point
from lptn.engine.train_loop import run_training
from lptn.engine.training_state import load_training_state
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


def _assert_equal_tree(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resume_mid_epoch_is_bit_identical(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=5)
    # 5 images, batch 2, drop_last: 2 batches per epoch, so iteration 3 stops inside epoch 1.
    # warm-up and a milestone inside the run check that the schedule resumes too.
    common = dict(checkpoint_freq=3, extra_train={"warmup_iter": 2})
    straight = run_training(
        parsed(tiny_options(data, name="straight", total_iter=6, **common), tmp_path),
        CPU,
        handle_signals=False,
    )
    assert straight.status == "finished" and straight.iteration == 6

    first = run_training(
        parsed(tiny_options(data, name="split", total_iter=3, **common), tmp_path),
        CPU,
        handle_signals=False,
    )
    state3 = load_training_state(first.last_state)
    assert (state3["iter"], state3["epoch"], state3["epoch_batches"]) == (3, 1, 1)
    # Global RNGs are disturbed between the runs: the resumed run must restore them.
    torch.manual_seed(999)
    resumed = run_training(
        parsed(
            tiny_options(data, name="split", total_iter=6, **common),
            tmp_path,
            [f"path.resume_state={first.last_state}"],
        ),
        CPU,
        handle_signals=False,
    )
    assert resumed.status == "finished" and resumed.iteration == 6

    a_models = straight.experiments_root / "models"
    b_models = resumed.experiments_root / "models"
    for net in ("net_g", "net_d"):
        _assert_equal_tree(
            _weights(a_models / f"{net}_6.pth"), _weights(b_models / f"{net}_6.pth"), net
        )
        _assert_equal_tree(
            _weights(a_models / f"{net}_latest.pth"), _weights(b_models / f"{net}_latest.pth"), net
        )
    state_a = load_training_state(straight.last_state)
    state_b = load_training_state(resumed.last_state)
    _assert_equal_tree(state_a["model"], state_b["model"], "model")
    _assert_equal_tree(state_a["rng"], state_b["rng"], "rng")
    assert (state_b["iter"], state_b["epoch"], state_b["epoch_batches"]) == (6, 2, 2)
    # The weights actually moved (the comparison is not between two untouched networks).
    assert not torch.equal(
        _weights(a_models / "net_g_3.pth")["trans_low.model.0.weight"],
        _weights(a_models / "net_g_6.pth")["trans_low.model.0.weight"],
    )


def test_auto_resume_finds_the_newest_state(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    opt = parsed(
        tiny_options(data, name="auto", gan=False, total_iter=4, checkpoint_freq=2), tmp_path
    )
    run_training(opt, CPU, handle_signals=False)
    states = opt["path"]["training_states"]
    assert sorted(p.name for p in Path(states).iterdir()) == ["2.state", "4.state"]
    point = find_resume_point(states)
    assert point is not None and point.path == Path(states) / "4.state"

    longer = parsed(
        tiny_options(data, name="auto", gan=False, total_iter=6, checkpoint_freq=2), tmp_path
    )
    outcome = run_training(longer, CPU, auto_resume=True, handle_signals=False)
    assert outcome.iteration == 6
    # Resuming continues in the same folder: nothing was archived.
    assert not list(tmp_path.joinpath("experiments").glob("auto_archived_*"))
    assert load_training_state(outcome.last_state)["iter"] == 6
