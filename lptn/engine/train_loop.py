"""The training loop: the engine's clock around :class:`~lptn.models.lptn_model.LPTNModel`.

Iteration-based: each iteration takes the next batch, sets its learning rates and runs one
model step; around it the loop logs, validates, checkpoints (before that iteration's
validation), checks everything that can fail before it writes anything, resumes exactly, stops
cleanly on SIGINT / SIGTERM and reports faults (unreadable data, a full disk, non-finite
losses) in one line. What each of these does: docs/training.md ("The loop", "Resume and
safety", "Inside the loop and the step").
"""

from __future__ import annotations

import datetime
import random
import signal
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, cast

from tqdm import tqdm

from lptn.engine.best_model import BestModelTracker
from lptn.engine.checkpointer import (
    Checkpointer,
    DiskFullError,
    ResumePoint,
    check_checkpoint,
    describe_resume,
    find_resume_point,
    is_disk_full,
    training_settings,
)
from lptn.engine.experiment_folder import ExperimentBusyError, archive_existing, tb_log_dir
from lptn.engine.experiment_outputs import ExperimentOutputs
from lptn.engine.fault_policy import (
    NonFiniteGuard,
    NonFiniteLossError,
    TrainingDataError,
    data_fault_error,
    disk_full_error,
    log_data_faults,
    one_line,
)
from lptn.engine.training_data import TrainingData, data_parallel_gpus
from lptn.engine.training_state import restore_rng_state
from lptn.engine.validation import ValidationResult, validate_dataset
from lptn.models import build_model
from lptn.models.model_protocol import TrainableModel
from lptn.platform.amp_backend import check_training_requirements
from lptn.platform.logger import (
    drop_startup_records,
    get_logger,
    keep_startup_records,
    setup_logger,
)
from lptn.platform.runtime import Runtime, set_random_seed
from lptn.platform.stop_request import StopRequest
from lptn.platform.train_settings import (
    DataSettings,
    LoggingSettings,
    TrainingSettings,
    ValidationSettings,
)
from lptn.platform.wandb_logger import check_wandb_requirements


@dataclass
class TrainingOutcome:
    """How :func:`run_training` ended.

    Attributes:
        status: ``'finished'`` or ``'interrupted'`` (a signal).
        iteration: the last completed iteration.
        signal: the signal number that interrupted the run, if any.
        last_state: the newest training state written (or resumed from).
        best: ``{'metric', 'value', 'iter'}`` of the best validation.
    """

    status: str
    iteration: int
    experiments_root: Path
    signal: Optional[int] = None
    last_state: Optional[Path] = None
    best: Dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.signal is None else 128 + self.signal


# -------------------------------------------------------------------------------- logging
class _Window:
    """Loss values and timings since the last log line."""

    def __init__(self) -> None:
        self.losses: Dict[str, List[float]] = defaultdict(list)
        self.iter_times: List[float] = []
        self.data_times: List[float] = []

    def add(self, losses: Dict[str, float], iter_time: float, data_time: float) -> None:
        for key, value in losses.items():
            self.losses[key].append(value)
        self.iter_times.append(iter_time)
        self.data_times.append(data_time)

    def mean_losses(self) -> Dict[str, float]:
        return {k: sum(v) / len(v) for k, v in self.losses.items() if v}

    def mean_iter_time(self) -> float:
        return sum(self.iter_times) / max(1, len(self.iter_times))

    def mean_data_time(self) -> float:
        return sum(self.data_times) / max(1, len(self.data_times))


# -------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run; :meth:`run` does everything (see the module docstring).

    The parts, each apart and testable alone: the settings (:mod:`lptn.platform.train_settings`),
    the data (:class:`~lptn.engine.training_data.TrainingData`), the outputs
    (:class:`~lptn.engine.experiment_outputs.ExperimentOutputs`), the fault policy
    (:mod:`lptn.engine.fault_policy`), best-model tracking
    (:class:`~lptn.engine.best_model.BestModelTracker`) and checkpoints
    (:class:`~lptn.engine.checkpointer.Checkpointer`). What is left here: start-up order,
    agreement between processes, and the loop.

    Args:
        opt: parsed training options (``parse_options(..., is_train=True)``).
        runtime: device / precision (``build_runtime(opt, amp_config(opt).precision)``).
        auto_resume: continue from the newest complete checkpoint of this experiment when
            there is one (and say which, or that none was found).
        handle_signals: intercept SIGINT / SIGTERM (main thread only).
    """

    def __init__(
        self,
        opt: Dict[str, Any],
        runtime: Runtime,
        *,
        auto_resume: bool = False,
        handle_signals: bool = True,
    ) -> None:
        self.opt = opt
        self.runtime = runtime
        self.auto_resume = auto_resume
        self.handle_signals = handle_signals
        self.is_main = runtime.is_main_process
        self.train = TrainingSettings.from_options(opt)
        if self.train.total_iter is None:
            raise ValueError("train.total_iter: required (the number of iterations to train)")
        self.total_iter: int = self.train.total_iter
        self.logging = LoggingSettings.from_options(opt)
        self.val = ValidationSettings.from_options(opt)
        progress = self.logging.progress_bar
        self.progress_bar = sys.stderr.isatty() if progress == "auto" else bool(progress)

        self.outputs = ExperimentOutputs(opt, runtime, self.logging)
        self.experiments_root = self.outputs.folder.root
        self.checkpointer = Checkpointer(
            self.outputs.folder.models_dir,
            self.outputs.folder.states_dir,
            runtime,
            training_settings(opt),
        )
        self.iteration = 0
        self.seed = 0
        self.nonfinite = NonFiniteGuard(self.train.max_consecutive_nonfinite)
        self.best = BestModelTracker(self.val.metrics)
        self._model: Optional[TrainableModel] = None
        self._data: Optional[TrainingData] = None
        self.stop = StopRequest()
        #: the signal that stops the run, agreed by all processes (None while running)
        self.stop_signal: Optional[int] = None
        #: the iteration whose validation is due and not complete (None when there is none)
        self.validation_due: Optional[int] = None

    @property
    def last_state(self) -> Optional[Path]:
        """The newest training state written (or resumed from)."""
        return self.checkpointer.last_state

    @property
    def last_saved_iter(self) -> Optional[int]:
        return self.checkpointer.last_saved_iter

    @property
    def log_dir(self) -> Path:
        return self.outputs.folder.log_dir

    @property
    def models_dir(self) -> Path:
        return self.outputs.folder.models_dir

    @property
    def states_dir(self) -> Path:
        return self.outputs.folder.states_dir

    @property
    def visualization_dir(self) -> Path:
        return self.outputs.folder.visualization_dir

    @property
    def model(self) -> TrainableModel:
        """The model built by :meth:`prepare`."""
        if self._model is None:
            raise RuntimeError("Trainer.prepare() has not run yet")
        return self._model

    @property
    def data(self) -> TrainingData:
        """The training stream and val sets built by :meth:`prepare`."""
        if self._data is None:
            raise RuntimeError("Trainer.prepare() has not run yet")
        return self._data

    # ------------------------------------------------------------------------ preparation
    def _on_main(self, check: Callable[[], None]) -> None:
        """Run ``check`` on rank 0; with several processes its error (a one-line message)
        reaches every process, so all stop together instead of waiting for rank 0."""
        if not self.runtime.distributed:
            check()
            return
        failure: Optional[BaseException] = None
        if self.is_main:
            try:
                check()
            except (ExperimentBusyError, ValueError, OSError) as err:
                failure = err
        message = self.runtime.broadcast(str(failure) if failure is not None else "")
        if failure is not None:
            raise failure
        if message:
            # A ValueError: the command line reports it in one line with exit 2, like rank 0.
            raise ValueError(f"rank 0 could not start: {message}")

    def _resume_point(self) -> Optional[ResumePoint]:
        explicit = self.opt["path"].get("resume_state")
        if explicit:
            path = Path(explicit)
            return ResumePoint(path, check_checkpoint(path))
        if not self.auto_resume:
            return None
        states_dir = self.outputs.folder.states_dir
        point = find_resume_point(states_dir)
        message, damaged = describe_resume(point, states_dir)
        if damaged:
            get_logger().warning(message)
        else:
            get_logger().info(message)
        return point

    def prepare(self) -> None:
        """Check and build everything (options, resume state, data, model), then lock and
        create the experiment folder, logging and (when resuming) the restored state. Nothing
        on disk changes before every check has passed."""
        # A missing precision package or fused optimiser is reported before data is touched.
        check_training_requirements(self.opt)
        check_wandb_requirements(self.opt)
        setup_logger(None, self.runtime.rank)
        log = get_logger()
        # Until the log file exists (train.py started keeping them before parsing the
        # options, so the option warnings are in the log too).
        keep_startup_records()
        try:
            # Refuse early (before building anything) when another run holds the folder.
            self._on_main(self.outputs.folder.check_free)
            # Every process reads the state itself (each must be able to resume from it).
            point = self._resume_point()
            self._choose_seed(point)
            self._data = TrainingData.build(
                self.opt,
                DataSettings.from_options(self.opt),
                self.runtime,
                seed=self.seed,
                total_iter=self.total_iter,
            )
            if self.data.val_sets and not self.val.val_freq:
                log.info("val.val_freq is not set: validating only at the end")
            self._model = cast(TrainableModel, build_model(self.opt, self.runtime))
            log.info("%s", self.model.describe())
            self._on_main(lambda: self.data.check_images(self.model.net_g, self.progress_bar))
            if point is not None:
                self._restore(point)
            # Every check passed: from here on the experiment folder is locked and written.
            self._on_main(lambda: self._open_outputs(resuming=point is not None))
            self.outputs.start_monitor()
        except BaseException:
            self.outputs.folder.release()
            raise
        finally:
            # Written into the log file by now; other ranks and failed starts have none.
            drop_startup_records()

    def _open_outputs(self, resuming: bool) -> None:
        self.outputs.open(resuming=resuming, seed=self.seed)
        if resuming:
            # What a killed save left behind.
            self.checkpointer.remove_temp_files()

    def _choose_seed(self, point: Optional[ResumePoint]) -> None:
        log = get_logger()
        if point is not None:
            self.seed = int(point.state["seed"])
            if self.opt.get("manual_seed") not in (None, self.seed):
                log.warning(
                    "manual_seed %s ignored: the resumed run keeps its seed %d",
                    self.opt["manual_seed"],
                    self.seed,
                )
        elif self.opt.get("manual_seed") is not None:
            self.seed = int(self.opt["manual_seed"])
        else:
            # One seed for all processes: the data order and the sample draws depend on it.
            self.seed = int(self.runtime.broadcast(random.randint(1, 10000)))
        self.opt["manual_seed"] = self.seed
        set_random_seed(self.seed + self.runtime.rank)

    def _restore(self, point: ResumePoint) -> None:
        state = point.state
        iteration = point.iteration
        self.checkpointer.restore(self.model, point)
        self.iteration = iteration
        stream = self.data.stream
        stream.seek(int(state["epoch"]), int(state["epoch_batches"]))
        self.best = BestModelTracker(self.val.metrics, state["best"])
        self.nonfinite.streak = int(state.get("nonfinite_streak", 0))
        if state.get("validation_pending") and self.data.val_sets:
            self.validation_due = iteration
        # Last, so nothing done while rebuilding (network initialisation) shifts the streams.
        self._restore_rng(state, iteration)
        get_logger().info(
            "resumed from %s: iteration %d, epoch %d (batch %d of %d)",
            point.path,
            iteration,
            stream.epoch,
            stream.consumed,
            self.data.batches_per_epoch,
        )

    def _restore_rng(self, state: Dict[str, Any], iteration: int) -> None:
        """Each process takes back its own random streams (``rng_ranks``, written by runs of
        several processes); with a different number of processes they are re-seeded."""
        runtime = self.runtime
        per_rank = state.get("rng_ranks") or [state["rng"]]
        if len(per_rank) == runtime.world_size:
            restore_rng_state(per_rank[runtime.rank], runtime.device)
            return
        restore_rng_state(state["rng"], runtime.device)
        if runtime.distributed:
            set_random_seed((self.seed + 7919 * iteration + 104729 * runtime.rank) % 2**31)
        get_logger().warning(
            "the training state was saved by %d process(es) and is resumed "
            "by %d: the random streams (penalty mixing weights) are %s and the "
            "data shards differ, so the rest of the interrupted epoch is "
            "approximate and the run not bit-identical to an uninterrupted one",
            len(per_rank),
            runtime.world_size,
            "re-seeded" if runtime.distributed else "rank 0's",
        )

    # ------------------------------------------------------------------------------- saving
    def save_checkpoint(self) -> Optional[Path]:
        """Networks then state of the current iteration (atomic files). Rank 0 writes; every
        process must call it (their random streams are saved too), and all return once the
        files exist. Raises :class:`DiskFullError` when the device is full."""
        stream = self.data.stream
        return self.checkpointer.save(
            self.model,
            iteration=self.iteration,
            epoch=stream.epoch,
            epoch_batches=stream.consumed,
            seed=self.seed,
            best=self.best.record,
            nonfinite_streak=self.nonfinite.streak,
            validation_pending=self.validation_due == self.iteration,
        )

    def _periodic_checkpoint(self) -> None:
        if self.nonfinite.clean:
            # Before the validation: a validation that never ends loses no training.
            self.save_checkpoint()
        else:
            # Keep the last checkpoint the last good one.
            get_logger().warning(
                "iteration %d: checkpoint not saved (non-finite losses)", self.iteration
            )

    # ---------------------------------------------------------------------------- validation
    def _run_validation(self) -> bool:
        """Validate now; when it completes, the checkpoint of this iteration (if one was
        written with the validation pending) is marked validated. Returns whether it did."""
        results = self.validate()
        if not results or results[-1].aborted:
            return False
        self.validation_due = None
        self.checkpointer.validation_done(self.best.record)
        return True

    def validate(self) -> List[ValidationResult]:
        """Every val set; updates the best metric and ``net_g_best.pth``."""
        log = get_logger()
        monitor = self.outputs.monitor
        results = []
        # Decided from the options, the same on every process (rank 0 writes what they send).
        num_panels = self.val.tb_comparisons if self.logging.sends_images else 0
        val_sets = self.data.val_sets
        for index, (name, loader) in enumerate(val_sets):
            save_dir = None
            if self.val.save_img:
                save_dir = self.outputs.folder.visualization_dir / str(self.iteration)
                if len(val_sets) > 1:
                    save_dir = save_dir / name
            result = validate_dataset(
                self.model,
                loader,
                name,
                self.val,
                save_dir,
                num_panels,
                should_stop=self._stop_requested,
                runtime=self.runtime,
            )
            results.append(result)
            if result.aborted:
                log.warning(
                    "validation of %s stopped after %d images (signal)", name, result.num_images
                )
                break
            text = " ".join(f"{k}: {v:.4f}" for k, v in result.means.items())
            log.info(
                "validation %s at iteration %d (%d images): %s",
                name,
                self.iteration,
                result.num_images,
                text or "(no metrics)",
            )
            monitor.add_scalars(result.means, self.iteration, prefix=f"metrics/{name}/")
            for img_name, panel in result.comparisons:
                monitor.add_image(f"val/{name}/{img_name}", panel, self.iteration)
            if index == 0 and self.best.offer(result.means, self.iteration):
                path = self.checkpointer.save_best(self.model)
                log.info(
                    "new best %s %.4f at iteration %d: saved %s",
                    self.best.metric,
                    self.best.record["value"],
                    self.iteration,
                    path,
                )
        monitor.flush()
        return results

    def _validation_now(self) -> bool:
        """Whether this iteration validates (``val.val_freq``); marks it due, so that a
        checkpoint of this iteration records the validation as pending."""
        freq = self.val.val_freq
        if not (freq and self.data.val_sets and self.iteration % freq == 0):
            return False
        self.validation_due = self.iteration
        return True

    # ------------------------------------------------------------------------------- logging
    def _log_window(self, window: _Window, bar: Any) -> None:
        lrs = self.model.get_current_learning_rate()
        losses = window.mean_losses()
        iter_time, data_time = window.mean_iter_time(), window.mean_data_time()
        eta = datetime.timedelta(seconds=int(iter_time * (self.total_iter - self.iteration)))
        line = (
            f"[{self.opt['name']}] epoch {self.data.stream.epoch}, iter {self.iteration:,}/"
            f"{self.total_iter:,} | "
            + " ".join(f"{k} {v:.3e}" for k, v in lrs.items())
            + f" | time {iter_time:.3f}s (data {data_time:.3f}s) | eta {eta} | "
            + " ".join(f"{k} {v:.4e}" for k, v in losses.items())
        )
        get_logger().info(line)
        monitor = self.outputs.monitor
        monitor.add_scalars(losses, self.iteration, prefix="losses/")
        monitor.add_scalars(lrs, self.iteration, prefix="lr/")
        monitor.add_scalars({"iter": iter_time, "data": data_time}, self.iteration, prefix="time/")
        bar.set_postfix({k: f"{v:.3e}" for k, v in list(losses.items())[:3]}, refresh=False)

    # ------------------------------------------------------------------- agreement and faults
    def _stop_requested(self) -> bool:
        """Whether this or (with several processes) any process received SIGINT / SIGTERM.

        Processes must stop at the same iteration, or the others would wait forever in the
        next gradient exchange; the check is one small all-reduce per iteration. The agreed
        signal is kept apart from this process's own, so a signal that reaches this process
        after another's does not count as its second one.
        """
        local = self.stop.signum or 0
        agreed = int(self.runtime.max_over_ranks(local)) if self.runtime.distributed else local
        if agreed and self.stop_signal is None:
            self.stop_signal = agreed
        return bool(agreed)

    def _next_batch(self) -> Any:
        """The next training batch; when a process cannot load its batch (a corrupt image,
        an unreadable file), every process saves the state of the last completed iteration and
        raises :class:`TrainingDataError` naming the cause."""
        stream = self.data.stream
        fault = ""
        batch = None
        try:
            batch = stream.next()
        except (OSError, ValueError) as err:
            if is_disk_full(err):
                raise
            fault = one_line(err)
        failed = bool(fault)
        if self.runtime.distributed:
            # One small all-reduce: the other processes must not wait in the gradient exchange.
            failed = bool(self.runtime.max_over_ranks(1.0 if failed else 0.0))
        if not failed:
            return batch
        if not fault:
            # Another process failed: this batch is not used, the resumed run loads it again.
            stream.unread()
        faults = [f for f in self.runtime.all_gather(fault) if f]
        log_data_faults(faults)
        if self.iteration == 0:
            saved = "nothing was trained yet"
        elif not self.nonfinite.clean:
            saved = f"the last good checkpoint is {self.last_state}"
        else:
            self.save_checkpoint()
            saved = f"saved {self.last_state}"
        raise data_fault_error(self.iteration, faults, saved)

    # ---------------------------------------------------------------------------------- loop
    def run(self) -> TrainingOutcome:
        """Prepare (unless :meth:`prepare` was called already), train to ``train.total_iter``
        (or a signal), save; see the module docstring. Releases the experiment lock at the
        end, however the run ends."""
        try:
            if self._model is None:
                self.prepare()
            if self.handle_signals:
                self.stop.install()
            with ExitStack() as stack:
                bar = stack.enter_context(
                    tqdm(
                        total=self.total_iter,
                        initial=self.iteration,
                        desc=self.opt["name"],
                        unit="it",
                        dynamic_ncols=True,
                        smoothing=0.05,
                        disable=not self.progress_bar,
                    )
                )
                if self.progress_bar:
                    from tqdm.contrib.logging import logging_redirect_tqdm

                    stack.enter_context(logging_redirect_tqdm(loggers=[get_logger()]))
                return self._loop(bar)
        except DiskFullError:
            raise
        except (OSError, RuntimeError) as err:
            if not is_disk_full(err):
                raise
            # Not a checkpoint (those raise DiskFullError themselves): a log, image or event
            # file, or shared memory of the data loader. The last checkpoint is complete.
            raise disk_full_error(err, self.iteration, self.last_state) from err
        finally:
            self.stop.restore()
            self.outputs.close()

    def _loop(self, bar: Any) -> TrainingOutcome:
        """The loop: batch, learning rate, step, fault check, log, checkpoint, validation."""
        window = _Window()
        validated_at = self._start()  # no final validation when nothing was trained
        while self.iteration < self.total_iter and not self._stop_requested():
            start = time.perf_counter()
            batch = self._next_batch()
            data_time = time.perf_counter() - start
            self.iteration += 1
            self.model.update_learning_rate(self.iteration, self.train.warmup_iter)
            self.model.feed_data(batch)
            result = self.model.optimize_parameters(self.iteration)
            self.nonfinite.record(result, self.iteration, self.last_state, self.last_saved_iter)
            window.add(result.losses, time.perf_counter() - start, data_time)
            bar.update(1)
            if self.iteration % self.logging.print_freq == 0:
                self._log_window(window, bar)
                window = _Window()
            validate_now = self._validation_now()
            if self.iteration % self.logging.save_checkpoint_freq == 0:
                self._periodic_checkpoint()
            if validate_now:
                self._run_validation()
                validated_at = self.iteration
        return self._finish(validated_at)

    def _start(self) -> int:
        """Run a validation an interrupted run left due; returns the iteration it starts at."""
        log = get_logger()
        if self.validation_due is not None:
            log.info(
                "the validation of iteration %d did not complete before the run stopped: "
                "running it now",
                self.validation_due,
            )
            self._run_validation()
        if self.iteration >= self.total_iter:
            log.info(
                "nothing to do: the state is at iteration %d and train.total_iter is %d",
                self.iteration,
                self.total_iter,
            )
        log.info("start training from iteration %d", self.iteration + 1)
        return self.iteration

    def _finish(self, validated_at: int) -> TrainingOutcome:
        """After the loop: the final validation and checkpoint, or the interrupted run's."""
        log = get_logger()
        interrupted = bool(self.stop_signal) and self.iteration < self.total_iter
        if not interrupted and self.data.val_sets and validated_at != self.iteration:
            self.validation_due = self.iteration
            self.save_checkpoint()
            self._run_validation()
        outcome_args: Dict[str, Any] = dict(
            iteration=self.iteration, experiments_root=self.experiments_root
        )
        if self.stop_signal and (interrupted or self.validation_due is not None):
            self.save_checkpoint()
            during = (
                f" during the validation of iteration {self.validation_due} (it runs again on "
                "resume)"
                if self.validation_due is not None
                else ""
            )
            log.info(
                "stopped by %s at iteration %d%s; resume with --auto_resume or --set "
                "path.resume_state=%s",
                signal.Signals(self.stop_signal).name,
                self.iteration,
                during,
                self.last_state,
            )
            return TrainingOutcome(
                "interrupted",
                signal=self.stop_signal,
                last_state=self.last_state,
                best=dict(self.best.record),
                **outcome_args,
            )
        self.save_checkpoint()
        latest = self.checkpointer.save_latest(self.model)
        log.info("training finished at iteration %d; weights: %s", self.iteration, latest)
        record = self.best.record
        if record.get("metric"):
            log.info(
                "best %s %.4f at iteration %s (%s)",
                record["metric"],
                record["value"],
                record["iter"],
                self.outputs.folder.models_dir / "net_g_best.pth",
            )
        return TrainingOutcome(
            "finished",
            signal=None,
            last_state=self.last_state,
            best=dict(record),
            **outcome_args,
        )


def run_training(
    opt: Dict[str, Any], runtime: Runtime, *, auto_resume: bool = False, handle_signals: bool = True
) -> TrainingOutcome:
    """Train as the options say; see the module docstring. Raises
    :class:`NonFiniteLossError` when the losses stay non-finite."""
    return Trainer(opt, runtime, auto_resume=auto_resume, handle_signals=handle_signals).run()


__all__ = [
    "DiskFullError",
    "ExperimentBusyError",
    "NonFiniteLossError",
    "TrainingDataError",
    "TrainingOutcome",
    "Trainer",
    "archive_existing",
    "data_parallel_gpus",
    "one_line",
    "run_training",
    "tb_log_dir",
]
