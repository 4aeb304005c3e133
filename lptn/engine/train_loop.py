"""The training loop: the engine's clock around :class:`~lptn.models.lptn_model.LPTNModel`.

Iteration-based. Each iteration takes the next batch (a new epoch starts when the loader is
exhausted), sets the learning rates of that iteration, and runs one model step. Around it:

- every ``logger.print_freq`` (100) iterations a line with epoch, iteration, learning rates,
  the mean of every loss over the window, iteration and data time and the ETA, to the console,
  ``experiments/{name}/train_{name}_{time}.log`` and, with ``logger.use_tb_logger``,
  TensorBoard (``tb_logger/{name}``, or ``path.tb_logger``); a tqdm progress bar when stderr is
  a terminal (``logger.progress_bar: true | false | auto``);
- every ``val.val_freq`` iterations (and once at the end) the ``datasets.val*`` sets through
  ``val.metrics`` (:mod:`lptn.engine.validation`), outputs to ``visualization/{iter}/``, a few
  input | output | target panels to TensorBoard, and ``models/net_g_best.pth`` whenever the
  first metric of the first val set improves;
- every ``logger.save_checkpoint_freq`` (5000) iterations a checkpoint
  (:mod:`lptn.engine.checkpointer`): ``models/net_g_{iter}.pth``, ``models/net_d_{iter}.pth``
  and then ``training_states/{iter}.state``, each written atomically, *before* that
  iteration's validation; a validation that a signal or a kill interrupts runs again on
  resume. At the end ``net_g_latest.pth`` (and ``net_d_latest.pth``) plus a final checkpoint.

Start-up checks everything that can fail (options, the resume state and its weights, data,
every validation image with its size against the pyramid's ``2**num_high + 1`` minimum,
networks, losses) before it creates, renames or writes anything. Then it locks the experiment
folder (:mod:`lptn.engine.experiment_folder`): a second run with the same name is refused while
the first is alive. A new run renames an existing ``experiments/{name}`` (and
``tb_logger/{name}``) to ``{name}_archived_{YYYYmmdd_HHMMSS}``; a resumed run continues in it.
The options actually used are written beside the log as ``train_{name}_{time}.yml``; what was
logged before the log file existed (the option file's warnings included) is copied into it.

Resume (``path.resume_state: FILE`` or ``auto_resume``, the newest complete checkpoint of the
experiment, damaged ones named and passed over): the networks, optimisers, schedules, loss
scalers, RNG states, iteration, epoch, best metric and the position inside the epoch are
restored; options changed since (learning rates, optimiser settings, schedule,
``total_iter``) apply from the next iteration, each change logged. The data order is a
function of ``(seed, epoch)`` and each sample of ``(seed, epoch, index)``, and the interrupted
epoch resumes at its next batch without loading the skipped ones, so on the CPU a resumed run
is bit-identical to an uninterrupted one.

Signals: the first SIGINT / SIGTERM lets the current iteration finish, saves a checkpoint and
a resumable state and returns with ``exit_code`` 128 + signal number (130 / 143), so a
scheduler can tell a pre-empted run from a finished one (0); a second signal stops at once.

Faults while training, each logged (console and log file) with its cause: a training image
that cannot be read saves the state of the last completed iteration and stops with
:class:`TrainingDataError` naming the file; no space left on the device while saving stops
with :class:`~lptn.engine.checkpointer.DiskFullError` naming the folder, the previous
checkpoint intact.

Several processes (``runtime.distributed``, see :mod:`lptn.platform.distributed`): each trains
on its shard of every epoch with the networks in DDP; only rank 0 writes (folders, log file,
TensorBoard, images, checkpoints) while every process takes part in validation (the val set
is split between them) and in saving (each one's random streams go into the state, and each
takes its own back on resume); a signal to any process stops all of them at the same
iteration.

Non-finite losses: the model skips that update; ``train.max_consecutive_nonfinite`` (5) such
iterations in a row raise :class:`NonFiniteLossError` without saving anything further, so the
last checkpoint stays the last good one; it says how to resume from it with other options.
"""

from __future__ import annotations

import datetime
import math
import random
import signal
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from torch.utils.data import DataLoader
from tqdm import tqdm

from lptn.archs.laplacian_pyramid import min_input_size
from lptn.data import build_dataloader, build_dataset
from lptn.data.data_loader import build_prefetcher
from lptn.engine.batch_stream import BatchStream
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
from lptn.engine.experiment_folder import (
    ExperimentBusyError,
    ExperimentFolder,
    archive_existing,
    tb_log_dir,
    timestamp,
)
from lptn.engine.training_state import restore_rng_state
from lptn.engine.validation import ValidationResult, metric_is_better, validate_dataset
from lptn.models import build_model
from lptn.models.model_protocol import TrainableModel
from lptn.platform.amp_backend import check_training_requirements
from lptn.platform.checkpoint_io import bare_module
from lptn.platform.logger import (
    drop_startup_records,
    get_logger,
    keep_startup_records,
    setup_logger,
)
from lptn.platform.option_schema import whole_number
from lptn.platform.options import dataset_keys, dump_options
from lptn.platform.runtime import Runtime, set_random_seed
from lptn.platform.stop_request import StopRequest
from lptn.platform.tensorboard_logger import LoggerGroup, NullTensorBoardLogger, TensorBoardLogger
from lptn.platform.wandb_logger import WandbLogger, check_wandb_requirements, wandb_settings

DEFAULT_PRINT_FREQ = 100
DEFAULT_CHECKPOINT_FREQ = 5000
DEFAULT_MAX_NONFINITE = 5
DEFAULT_TB_COMPARISONS = 3


class NonFiniteLossError(RuntimeError):
    """Too many consecutive iterations had non-finite losses; names the last good checkpoint."""


class TrainingDataError(RuntimeError):
    """A training batch could not be loaded (e.g. a corrupt image, named); the state of the
    last completed iteration was saved first."""


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


def one_line(err: BaseException) -> str:
    """The message of ``err`` in one line; for an error re-raised by a DataLoader worker,
    the original message (the last line of the worker's traceback, without the class)."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


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


def data_parallel_gpus(opt: Dict[str, Any], runtime: Runtime) -> int:
    """The ``num_gpu`` of a single-process run (1 for ``auto``, 0 and distributed runs).

    BasicSR, and so the original LPTN files, run ``num_gpu: N > 1`` without a launcher as one
    process that splits each batch over N GPUs (DataParallel), with ``batch_size_per_gpu``
    and ``num_worker_per_gpu`` multiplied by N. lptn trains that effective batch on its one
    device, so the recipe's optimisation (batch size, learning rate) is the original's.
    """
    num_gpu = opt.get("num_gpu", "auto")
    if runtime.distributed or not isinstance(num_gpu, int) or num_gpu <= 1:
        return 1
    return num_gpu


def _positive_int_option(section: Dict[str, Any], key: str, key_path: str, default: Any) -> Any:
    value = section.get(key, default)
    return None if value is None else whole_number(value, key_path, 1)


# -------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run; :meth:`run` does everything (see the module docstring).

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
        train_opt = opt["train"]
        if "total_iter" not in train_opt:
            raise ValueError("train.total_iter: required (the number of iterations to train)")
        self.total_iter = _positive_int_option(train_opt, "total_iter", "train.total_iter", None)
        warmup = train_opt.get("warmup_iter", -1)
        self.warmup_iter = -1 if warmup is None else int(warmup)
        self.max_nonfinite = _positive_int_option(
            train_opt,
            "max_consecutive_nonfinite",
            "train.max_consecutive_nonfinite",
            DEFAULT_MAX_NONFINITE,
        )
        logger_opt = opt.get("logger") or {}
        self.print_freq = _positive_int_option(
            logger_opt, "print_freq", "logger.print_freq", DEFAULT_PRINT_FREQ
        )
        self.checkpoint_freq = _positive_int_option(
            logger_opt,
            "save_checkpoint_freq",
            "logger.save_checkpoint_freq",
            DEFAULT_CHECKPOINT_FREQ,
        )
        self.val_opt = opt.get("val") or {}
        self.val_freq = _positive_int_option(self.val_opt, "val_freq", "val.val_freq", None)
        progress = logger_opt.get("progress_bar", "auto")
        if progress not in (True, False, "auto"):
            raise ValueError(f"logger.progress_bar: true, false or auto, got {progress!r}")
        self.progress_bar = sys.stderr.isatty() if progress == "auto" else progress

        self.folder = ExperimentFolder(opt, is_main=self.is_main)
        self.experiments_root = self.folder.root
        self.models_dir = self.folder.models_dir
        self.states_dir = self.folder.states_dir
        self.visualization_dir = self.folder.visualization_dir
        self.log_dir = self.folder.log_dir
        self.checkpointer = Checkpointer(
            self.models_dir, self.states_dir, runtime, training_settings(opt)
        )

        self.iteration = 0
        self.nonfinite_streak = 0
        self.seed = 0
        self.best: Dict[str, Any] = {"metric": None, "value": None, "iter": None}
        self.tb: NullTensorBoardLogger = NullTensorBoardLogger()
        self._model: Optional[TrainableModel] = None
        self.stream: Optional[BatchStream] = None
        self.val_sets: List[Tuple[str, DataLoader]] = []
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
        point = find_resume_point(self.states_dir)
        message, damaged = describe_resume(point, self.states_dir)
        if damaged:
            get_logger().warning(message)
        else:
            get_logger().info(message)
        return point

    @property
    def model(self) -> TrainableModel:
        """The model built by :meth:`prepare`."""
        if self._model is None:
            raise RuntimeError("Trainer.prepare() has not run yet")
        return self._model

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
            self._on_main(self.folder.check_free)
            # Every process reads the state itself (each must be able to resume from it).
            point = self._resume_point()
            self._choose_seed(point)
            self._build_data()
            self._model = cast(TrainableModel, build_model(self.opt, self.runtime))
            log.info("%s", self.model.describe())
            self._on_main(self._check_data_images)
            if point is not None:
                self._restore(point)
            # Every check passed: from here on the experiment folder is locked and written.
            self._on_main(lambda: self._open_folder(resuming=point is not None))
            if self.is_main and (self.opt.get("logger") or {}).get("use_tb_logger", False):
                self.tb = TensorBoardLogger(tb_log_dir(self.opt))
                log.info("TensorBoard logs: %s", self.tb.log_dir)
            if self.is_main and wandb_settings(self.opt) is not None:
                wandb_logger = WandbLogger(self.opt)
                self.tb = LoggerGroup(self.tb, wandb_logger)
                log.info("W&B run %s: %s", wandb_logger.run_id, wandb_logger.log_dir)
        except BaseException:
            self.folder.release()
            raise
        finally:
            # Written into the log file by now; other ranks and failed starts have none.
            drop_startup_records()

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

    def _open_folder(self, resuming: bool) -> None:
        """Lock (rank 0), archive an old folder for a new run, create the folders, start the
        log file, remove what a killed save left, write the options used."""
        archived = self.folder.acquire(archive_old=not resuming)
        name = self.opt["name"]
        stamp = timestamp()
        # What was logged before the file existed goes first into it.
        setup_logger(self.log_dir / f"train_{name}_{stamp}.log", self.runtime.rank)
        log = get_logger()
        for folder, target in archived:
            log.info("existing %s renamed to %s", folder, target)
        if resuming:
            self.checkpointer.remove_temp_files()
        (self.log_dir / f"train_{name}_{stamp}.yml").write_text(
            dump_options(self.opt), encoding="utf-8"
        )
        log.info(
            "training %s on %s (%s%s), seed %d",
            name,
            self.runtime.device_name(),
            self.runtime.precision,
            f", {self.runtime.world_size} processes" if self.runtime.distributed else "",
            self.seed,
        )

    def _check_data_images(self) -> None:
        """Check every training and validation image once, from its header, before any
        folder is made: unreadable files, pairs that do not fit, images below the crop or the
        generator's minimum size, full images of several sizes in batches. The problems of
        all sets are raised together, one per line, instead of one per restart."""
        net = bare_module(self.model.net_g)
        min_size = min_input_size(int(getattr(net, "num_high", 0)))
        why = f"network_g.num_high={getattr(net, 'num_high', '?')}"
        assert self.stream is not None
        train_set = self.stream.loader.dataset
        crop = getattr(train_set, "gt_size", None) if getattr(train_set, "crop", False) else None
        if crop is not None and crop < min_size:
            raise ValueError(
                f"{getattr(train_set, 'key_path', 'datasets.train')}.gt_size: {crop} is smaller "
                f"than {min_size}, the smallest input of {why}"
            )
        sets = [("train set", train_set)] + [
            ("val set", loader.dataset) for _, loader in self.val_sets
        ]
        reports = []
        for role, dataset in sets:
            if not hasattr(dataset, "survey_images"):
                continue
            start = time.perf_counter()
            survey = dataset.survey_images(min_size, why, progress=self.progress_bar)
            if survey.problems:
                reports.append(survey.report())
                continue
            get_logger().info(
                "%s %s: %d images checked in %.1f s (readable, pairs fit, at least %dx%d)",
                role,
                survey.key_path,
                survey.count,
                time.perf_counter() - start,
                min_size,
                min_size,
            )
        if reports:
            raise ValueError("\n".join(reports))

    def _build_data(self) -> None:
        log = get_logger()
        train_keys = dataset_keys(self.opt, "train")
        if len(train_keys) != 1:
            raise ValueError(
                f"datasets: exactly one train* entry is needed, got {train_keys or 'none'}"
            )
        key = train_keys[0]
        ds_opt = self.opt["datasets"][key]
        dataset = build_dataset(ds_opt, f"datasets.{key}", seed=self.seed)
        loader = build_dataloader(
            dataset,
            self._single_process_loader_options(ds_opt, f"datasets.{key}"),
            seed=self.seed,
            num_replicas=self.runtime.world_size,
            rank=self.runtime.rank,
            phase="train",
            key_path=f"datasets.{key}",
        )
        device = self.runtime.device
        self.stream = BatchStream(
            loader, lambda ld: build_prefetcher(ld, ds_opt, device, f"datasets.{key}")
        )
        self.batches_per_epoch = len(loader)
        epochs = math.ceil(self.total_iter / self.batches_per_epoch)
        per_process = (
            f" per process x {self.runtime.world_size} processes"
            if self.runtime.distributed
            else ""
        )
        log.info(
            "train set %s: %d images, batch %d%s, %d iterations per epoch, %d iterations "
            "= %d epochs%s",
            ds_opt.get("name", key),
            # torch's Dataset declares no __len__; the image datasets have one.
            len(dataset),  # type: ignore[arg-type]
            loader.batch_size,
            per_process,
            self.batches_per_epoch,
            self.total_iter,
            epochs,
            ", crops and flips on the device"
            if getattr(dataset, "augment_on_device", False)
            else "",
        )
        for val_key in dataset_keys(self.opt, "val"):
            val_ds_opt = self.opt["datasets"][val_key]
            val_set = build_dataset(val_ds_opt, f"datasets.{val_key}", seed=self.seed)
            val_loader = build_dataloader(
                val_set,
                val_ds_opt,
                seed=self.seed,
                phase="val",
                num_replicas=self.runtime.world_size,
                rank=self.runtime.rank,
                key_path=f"datasets.{val_key}",
            )
            self.val_sets.append((val_ds_opt.get("name", val_key), val_loader))
            # torch's Dataset declares no __len__; the image datasets have one.
            val_size = len(val_set)  # type: ignore[arg-type]
            log.info("val set %s: %d images", val_ds_opt.get("name", val_key), val_size)
        if self.val_sets and not self.val_freq:
            log.info("val.val_freq is not set: validating only at the end")

    def _single_process_loader_options(self, ds_opt: Dict[str, Any], key_path: str) -> Any:
        """``ds_opt`` with the batch and workers of BasicSR's one-process ``num_gpu: N`` run
        (see :func:`data_parallel_gpus`), said in a warning; ``ds_opt`` itself otherwise."""
        gpus = data_parallel_gpus(self.opt, self.runtime)
        if gpus == 1 or "batch_size_per_gpu" not in ds_opt:
            return ds_opt
        batch = whole_number(ds_opt["batch_size_per_gpu"], f"{key_path}.batch_size_per_gpu", 1)
        workers = whole_number(
            ds_opt.get("num_worker_per_gpu", 0), f"{key_path}.num_worker_per_gpu", 0
        )
        get_logger().warning(
            "num_gpu: %d in one process: lptn trains on one device (%s) with the batch of the "
            "original's %d-GPU DataParallel run, %s.batch_size_per_gpu %d x %d = %d (and "
            "num_worker_per_gpu %d x %d = %d workers), as BasicSR does; for one process per "
            "device start train.py under torchrun with --launcher pytorch, for a batch of %d "
            "set num_gpu: 1",
            gpus,
            self.runtime.device_name(),
            gpus,
            key_path,
            batch,
            gpus,
            batch * gpus,
            workers,
            gpus,
            workers * gpus,
            batch,
        )
        return dict(ds_opt, batch_size_per_gpu=batch * gpus, num_worker_per_gpu=workers * gpus)

    def _restore(self, point: ResumePoint) -> None:
        state = point.state
        iteration = point.iteration
        self.checkpointer.restore(self.model, point)
        self.iteration = iteration
        assert self.stream is not None
        self.stream.epoch, self.stream.consumed = int(state["epoch"]), int(state["epoch_batches"])
        self.best = dict(state["best"])
        self.nonfinite_streak = int(state.get("nonfinite_streak", 0))
        if state.get("validation_pending") and self.val_sets:
            self.validation_due = iteration
        # Last, so nothing done while rebuilding (network initialisation) shifts the streams.
        self._restore_rng(state, iteration)
        get_logger().info(
            "resumed from %s: iteration %d, epoch %d (batch %d of %d)",
            point.path,
            iteration,
            self.stream.epoch,
            self.stream.consumed,
            self.batches_per_epoch,
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
        assert self.stream is not None
        return self.checkpointer.save(
            self.model,
            iteration=self.iteration,
            epoch=self.stream.epoch,
            epoch_batches=self.stream.consumed,
            seed=self.seed,
            best=self.best,
            nonfinite_streak=self.nonfinite_streak,
            validation_pending=self.validation_due == self.iteration,
        )

    # ---------------------------------------------------------------------------- validation
    def _run_validation(self) -> bool:
        """Validate now; when it completes, the checkpoint of this iteration (if one was
        written with the validation pending) is marked validated. Returns whether it did."""
        results = self.validate()
        if not results or results[-1].aborted:
            return False
        self.validation_due = None
        self.checkpointer.validation_done(self.best)
        return True

    def validate(self) -> List[ValidationResult]:
        """Every val set; updates the best metric and ``net_g_best.pth``."""
        log = get_logger()
        results = []
        # Decided from the options, the same on every process (rank 0 writes what they send).
        save_img = bool(self.val_opt.get("save_img", False))
        num_tb = (
            int(self.val_opt.get("tb_comparisons", DEFAULT_TB_COMPARISONS))
            if (self.opt.get("logger") or {}).get("use_tb_logger", False)
            or wandb_settings(self.opt) is not None
            else 0
        )
        metrics = self.val_opt.get("metrics") or {}
        for index, (name, loader) in enumerate(self.val_sets):
            save_dir = None
            if save_img:
                save_dir = self.visualization_dir / str(self.iteration)
                if len(self.val_sets) > 1:
                    save_dir = save_dir / name
            result = validate_dataset(
                self.model,
                loader,
                name,
                self.val_opt,
                save_dir,
                num_tb,
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
            self.tb.add_scalars(result.means, self.iteration, prefix=f"metrics/{name}/")
            for img_name, panel in result.comparisons:
                self.tb.add_image(f"val/{name}/{img_name}", panel, self.iteration)
            if index == 0 and metrics:
                self._track_best(next(iter(metrics)), metrics, result)
        self.tb.flush()
        return results

    def _track_best(self, metric: str, metrics: Dict[str, Any], result: ValidationResult) -> None:
        value = result.means.get(metric)
        if value is None or math.isnan(value):
            return
        old = self.best.get("value") if self.best.get("metric") == metric else None
        if metric_is_better(metrics[metric], value, old):
            self.best = {"metric": metric, "value": float(value), "iter": self.iteration}
            path = self.checkpointer.save_best(self.model)
            get_logger().info(
                "new best %s %.4f at iteration %d: saved %s", metric, value, self.iteration, path
            )

    # ------------------------------------------------------------------------------- logging
    def _log_window(self, window: _Window, bar: Any) -> None:
        lrs = self.model.get_current_learning_rate()
        losses = window.mean_losses()
        iter_time, data_time = window.mean_iter_time(), window.mean_data_time()
        eta = datetime.timedelta(seconds=int(iter_time * (self.total_iter - self.iteration)))
        assert self.stream is not None
        line = (
            f"[{self.opt['name']}] epoch {self.stream.epoch}, iter {self.iteration:,}/"
            f"{self.total_iter:,} | "
            + " ".join(f"{k} {v:.3e}" for k, v in lrs.items())
            + f" | time {iter_time:.3f}s (data {data_time:.3f}s) | eta {eta} | "
            + " ".join(f"{k} {v:.4e}" for k, v in losses.items())
        )
        get_logger().info(line)
        self.tb.add_scalars(losses, self.iteration, prefix="losses/")
        self.tb.add_scalars(lrs, self.iteration, prefix="lr/")
        self.tb.add_scalars({"iter": iter_time, "data": data_time}, self.iteration, prefix="time/")
        bar.set_postfix({k: f"{v:.3e}" for k, v in list(losses.items())[:3]}, refresh=False)

    def _check_finite(self, result: Any) -> None:
        if result.finite:
            self.nonfinite_streak = 0
            return
        self.nonfinite_streak += 1
        terms = ", ".join(f"{k}={v}" for k, v in result.nonfinite_terms().items())
        get_logger().warning(
            "iteration %d: non-finite loss (%s): skipped the update of %s (%d/%d in a row)",
            self.iteration,
            terms,
            ", ".join(result.skipped),
            self.nonfinite_streak,
            self.max_nonfinite,
        )
        if self.nonfinite_streak >= self.max_nonfinite:
            where = (
                (
                    f"the last good checkpoint is {self.last_state} (iteration "
                    f"{self.last_saved_iter}); resume from it with --set "
                    f"path.resume_state={self.last_state} (changed options, e.g. "
                    "train.optim_g.lr in the option file or with --set, apply on resume)"
                )
                if self.last_state
                else "no checkpoint had been saved yet"
            )
            message = (
                f"training stopped at iteration {self.iteration}: "
                f"{self.nonfinite_streak} consecutive iterations had non-finite losses "
                f"({terms}); {where}. Lower the learning rate, check the training "
                f"images, or train in fp32/bf16 (train.max_consecutive_nonfinite sets "
                f"the limit)"
            )
            get_logger().error(message)
            raise NonFiniteLossError(message)

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
            filename = getattr(err, "filename", None)
            where = f"in {Path(filename).parent}" if filename else f"({one_line(err)})"
            kept = (
                f"the last checkpoint {self.last_state} is intact"
                if self.last_state is not None
                else "no checkpoint was written yet"
            )
            message = (
                f"no space left on device {where}: training stopped at iteration "
                f"{self.iteration}; {kept}. Free some space, then resume with --auto_resume"
            )
            get_logger().error(message)
            raise DiskFullError(message) from err
        finally:
            self.stop.restore()
            self.tb.close()
            self.folder.release()

    def _next_batch(self) -> Any:
        """The next training batch; when a process cannot load its batch (a corrupt image,
        an unreadable file), every process saves the state of the last completed iteration and
        raises :class:`TrainingDataError` naming the cause."""
        assert self.stream is not None
        position = (self.stream.epoch, self.stream.consumed)
        fault = ""
        batch = None
        try:
            batch = self.stream.next()
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
        # The batch was not used: the resumed run must load it again.
        self.stream.epoch, self.stream.consumed = position
        faults = [f for f in self.runtime.all_gather(fault) if f]
        log = get_logger()
        for text in faults:
            log.error("training data: %s", text)
        if self.iteration == 0:
            saved = "nothing was trained yet"
        elif self.nonfinite_streak:
            saved = f"the last good checkpoint is {self.last_state}"
        else:
            self.save_checkpoint()
            saved = f"saved {self.last_state}"
        message = (
            f"training stopped at iteration {self.iteration}: a training batch could not be "
            f"loaded ({faults[0] if faults else 'see the other processes'}); {saved}. Fix or "
            "remove the file, then resume with --auto_resume"
        )
        log.error(message)
        raise TrainingDataError(message)

    def _loop(self, bar: Any) -> TrainingOutcome:
        log = get_logger()
        assert self.stream is not None
        window = _Window()
        validated_at = self.iteration  # no final validation when nothing was trained
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
        while self.iteration < self.total_iter and not self._stop_requested():
            start = time.perf_counter()
            batch = self._next_batch()
            data_time = time.perf_counter() - start
            self.iteration += 1
            self.model.update_learning_rate(self.iteration, self.warmup_iter)
            self.model.feed_data(batch)
            result = self.model.optimize_parameters(self.iteration)
            self._check_finite(result)
            window.add(result.losses, time.perf_counter() - start, data_time)
            bar.update(1)
            if self.iteration % self.print_freq == 0:
                self._log_window(window, bar)
                window = _Window()
            validate_now = bool(
                self.val_freq and self.val_sets and self.iteration % self.val_freq == 0
            )
            if validate_now:
                self.validation_due = self.iteration
            if self.checkpoint_freq and self.iteration % self.checkpoint_freq == 0:
                if self.nonfinite_streak:
                    # Keep the last checkpoint the last good one.
                    log.warning(
                        "iteration %d: checkpoint not saved (non-finite losses)", self.iteration
                    )
                else:
                    # Before the validation: a validation that never ends loses no training.
                    self.save_checkpoint()
            if validate_now:
                self._run_validation()
                validated_at = self.iteration
        interrupted = bool(self.stop_signal) and self.iteration < self.total_iter
        if not interrupted and self.val_sets and validated_at != self.iteration:
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
                best=dict(self.best),
                **outcome_args,
            )
        self.save_checkpoint()
        latest = self.checkpointer.save_latest(self.model)
        log.info("training finished at iteration %d; weights: %s", self.iteration, latest)
        if self.best.get("metric"):
            log.info(
                "best %s %.4f at iteration %s (%s)",
                self.best["metric"],
                self.best["value"],
                self.best["iter"],
                self.models_dir / "net_g_best.pth",
            )
        return TrainingOutcome(
            "finished",
            signal=None,
            last_state=self.last_state,
            best=dict(self.best),
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
    "run_training",
    "tb_log_dir",
]
