"""Each part of the Trainer alone: the training data and its stream position, the fault
policy, best-model tracking, the experiment's outputs, the settings from the schema."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from train_test_utils import make_image_folders, parsed, tiny_options

from lptn.engine.best_model import BestModelTracker
from lptn.engine.experiment_folder import ExperimentFolder
from lptn.engine.experiment_outputs import ExperimentOutputs
from lptn.engine.fault_policy import NonFiniteGuard, NonFiniteLossError, disk_full_error
from lptn.engine.training_data import TrainingData
from lptn.models.lptn_model import StepResult
from lptn.platform.number_check import SchemaViolation
from lptn.platform.runtime import Runtime
from lptn.platform.train_settings import (
    DataSettings,
    LoggingSettings,
    TrainingSettings,
    ValidationSettings,
)

CPU = Runtime(torch.device("cpu"))


def _data(tmp_path: Path, count: int = 4) -> TrainingData:
    folders = make_image_folders(tmp_path / "data", count=count)
    opt = parsed(tiny_options(folders, name="parts", total_iter=4), tmp_path)
    return TrainingData.build(opt, DataSettings.from_options(opt), CPU, seed=3, total_iter=4)


def test_batch_stream_owns_its_position(tmp_path: Path) -> None:
    data = _data(tmp_path)  # 4 images, batch 2: two batches per epoch
    stream = data.stream
    assert data.batches_per_epoch == 2 and (stream.epoch, stream.consumed) == (0, 0)
    stream.next()
    stream.next()
    assert (stream.epoch, stream.consumed) == (0, 2)
    third = stream.next()  # the next epoch starts
    assert (stream.epoch, stream.consumed) == (1, 1)
    stream.unread()  # taken but not used: back to before it, and loaded again
    assert (stream.epoch, stream.consumed) == (0, 2)
    again = stream.next()
    assert (stream.epoch, stream.consumed) == (1, 1)
    assert torch.equal(third["lq"], again["lq"]) and torch.equal(third["ref"], again["ref"])
    with pytest.raises(RuntimeError, match="started already"):
        stream.seek(0, 0)

    # A resumed stream starts where the state says, with the batch the first run had next.
    resumed = _data(tmp_path / "second").stream
    resumed.seek(1, 1)
    after_resume = resumed.next()
    follows = stream.next()
    assert (resumed.epoch, resumed.consumed) == (stream.epoch, stream.consumed) == (1, 2)
    assert torch.equal(after_resume["lq"], follows["lq"])


def test_a_batch_that_cannot_be_loaded_leaves_the_position(tmp_path: Path) -> None:
    data = _data(tmp_path)
    stream = data.stream
    stream.next()
    for image in (tmp_path / "data").rglob("*.png"):
        image.write_bytes(b"not a png")
    with pytest.raises((OSError, ValueError)):
        stream.next()
    assert (stream.epoch, stream.consumed) == (0, 1)


def test_the_data_check_names_a_crop_below_the_pyramid(tmp_path: Path) -> None:
    from lptn.archs.lptn_arch import LPTN

    data = _data(tmp_path)
    with pytest.raises(ValueError, match=r"gt_size: 32 is smaller than 33.*num_high=5"):
        data.check_images(LPTN(nrb_low=1, nrb_high=1, num_high=5), progress=False)
    data.check_images(LPTN(nrb_low=1, nrb_high=1, num_high=3), progress=False)


def test_the_non_finite_guard_counts_in_a_row_and_stops_at_the_limit(tmp_path: Path) -> None:
    guard = NonFiniteGuard(limit=2)
    bad = StepResult({"l_g_pix": math.nan}, skipped=("net_g",))
    good = StepResult({"l_g_pix": 0.5})
    guard.record(bad, 1, None, None)
    assert guard.streak == 1 and not guard.clean
    guard.record(good, 2, None, None)
    assert guard.clean
    guard.record(bad, 3, None, None)
    state = tmp_path / "2.state"
    with pytest.raises(NonFiniteLossError, match=r"at iteration 4: 2 consecutive.*l_g_pix=nan"):
        guard.record(bad, 4, state, 2)
    with pytest.raises(NonFiniteLossError, match=f"path.resume_state={state}"):
        NonFiniteGuard(limit=1).record(bad, 5, state, 2)


def test_a_full_disk_outside_a_checkpoint_names_the_folder(tmp_path: Path) -> None:
    err = OSError(28, "No space left on device", str(tmp_path / "log" / "x.log"))
    message = str(disk_full_error(err, 7, tmp_path / "6.state"))
    assert f"in {tmp_path / 'log'}" in message and "iteration 7" in message
    assert f"the last checkpoint {tmp_path / '6.state'} is intact" in message
    assert "no checkpoint was written yet" in str(disk_full_error(err, 7, None))


def test_best_model_tracking_follows_the_metric_direction() -> None:
    tracker = BestModelTracker({"psnr": {"type": "calculate_psnr"}})
    assert tracker.offer({"psnr": 20.0}, 2)
    assert not tracker.offer({"psnr": 19.0}, 4)
    assert not tracker.offer({"psnr": math.nan}, 6)
    assert tracker.offer({"psnr": 21.5}, 8)
    assert tracker.record == {"metric": "psnr", "value": 21.5, "iter": 8}

    lower = BestModelTracker({"de": {"type": "calculate_deltae"}}, {"metric": "de", "value": 5.0})
    assert not lower.offer({"de": 6.0}, 2) and lower.offer({"de": 4.0}, 4)
    # A saved record of another metric (the option file changed) is replaced.
    other = BestModelTracker({"ssim": {"type": "calculate_ssim"}}, tracker.record)
    assert other.offer({"ssim": 0.1}, 10) and other.record["metric"] == "ssim"
    assert not BestModelTracker({}).offer({"psnr": 30.0}, 1)


def test_experiment_outputs_open_and_close(tmp_path: Path) -> None:
    folders = make_image_folders(tmp_path / "data", count=2)
    opt = parsed(tiny_options(folders, name="outputs"), tmp_path)
    outputs = ExperimentOutputs(opt, CPU, LoggingSettings.from_options(opt))
    outputs.open(resuming=False, seed=9)
    outputs.start_monitor()  # no TensorBoard, no W&B: the null monitor
    root = outputs.folder.root
    assert [p.suffix for p in sorted(root.glob("train_outputs_*"))] == [".log", ".yml"]
    assert outputs.folder.locked
    outputs.close()
    ExperimentFolder(opt).check_free()  # the lock is released


def test_settings_come_from_the_schema_and_refuse_bad_values() -> None:
    opt = {"datasets": {"train": {"type": "PairedImageDataset"}}, "train": {}}
    train = TrainingSettings.from_options(opt)
    assert (train.net_d_iters, train.net_d_init_iters, train.d_step_input) == (1, 0, "recompute")
    assert (train.pixel_target, train.warmup_iter, train.ema_decay) == ("gt", -1, 0.0)
    unpaired = {"datasets": {"train": {"type": "UnPairedImageDataset"}}}
    assert TrainingSettings.from_options(unpaired).pixel_target == "input"
    logging = LoggingSettings.from_options({})
    assert (logging.progress_bar, logging.use_tb_logger, logging.sends_images) == (
        "auto",
        False,
        False,
    )
    val = ValidationSettings.from_options({"val": {"metrics": {"psnr": {"type": "x"}}}})
    assert (val.val_freq, val.save_img, val.best_metric, val.suffix) == (None, False, "psnr", None)
    for block, message in (
        ({"train": {"net_d_iters": 0}}, "train.net_d_iters must be an integer >= 1, got 0"),
        ({"train": {"d_step_input": "x"}}, "train.d_step_input must be one of recompute, reuse"),
        ({"logger": {"print_freq": True}}, "logger.print_freq must be an integer >= 1, got True"),
        ({"val": {"tb_comparisons": -1}}, "val.tb_comparisons must be an integer >= 0"),
    ):
        with pytest.raises(SchemaViolation, match=message):
            for settings in (TrainingSettings, LoggingSettings, ValidationSettings):
                settings.from_options(block)
    with pytest.raises(SchemaViolation, match="exactly one train"):
        DataSettings.from_options({"datasets": {"val": {"phase": "val"}}})
