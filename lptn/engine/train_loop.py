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
- every ``logger.save_checkpoint_freq`` (5000) iterations ``models/net_g_{iter}.pth``,
  ``models/net_d_{iter}.pth`` and then ``training_states/{iter}.state``
  (:mod:`lptn.engine.training_state`), each written atomically. At the end ``net_g_latest.pth``
  (and ``net_d_latest.pth``) plus a final checkpoint of the last iteration.

Experiment folder: a new run renames an existing ``experiments/{name}`` (and
``tb_logger/{name}``) to ``{name}_archived_{YYYYmmdd_HHMMSS}``; a resumed run continues in it.
The options actually used are written beside the log as ``train_{name}_{time}.yml``.

Resume (``path.resume_state: FILE`` or ``auto_resume``, the newest state of the experiment):
the networks, optimisers, schedules, loss scalers, RNG states, iteration, epoch, best metric
and the position inside the epoch are restored. The data order is a function of
``(seed, epoch)`` and each sample of ``(seed, epoch, index)``, and the interrupted epoch
resumes at its next batch without loading the skipped ones, so on the CPU a resumed run is
bit-identical to an uninterrupted one.

Signals: the first SIGINT / SIGTERM lets the current iteration finish, saves a checkpoint and
a resumable state and returns with ``exit_code`` 128 + signal number (130 / 143), so a
scheduler can tell a pre-empted run from a finished one (0); a second signal stops at once.

Several processes (``runtime.distributed``, see :mod:`lptn.platform.distributed`): each trains
on its shard of every epoch with the networks in DDP; only rank 0 writes (folders, log file,
TensorBoard, images, checkpoints) while every process takes part in validation (the val set
is split between them) and in saving (each one's random streams go into the state, and each
takes its own back on resume); a signal to any process stops all of them at the same
iteration.

Non-finite losses: the model skips that update; ``train.max_consecutive_nonfinite`` (5) such
iterations in a row raise :class:`NonFiniteLossError` without saving anything further, so the
last checkpoint stays the last good one.
"""

from __future__ import annotations

import datetime
import itertools
import math
import random
import signal
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from torch.utils.data import DataLoader
from tqdm import tqdm

from lptn.data import build_dataloader, build_dataset
from lptn.data.data_loader import build_prefetcher
from lptn.engine.batch_stream import BatchStream
from lptn.engine.training_state import (
    capture_rng_state,
    find_latest_state,
    load_training_state,
    make_training_state,
    restore_rng_state,
    save_training_state,
    state_path,
)
from lptn.engine.validation import ValidationResult, metric_is_better, validate_dataset
from lptn.models import build_model
from lptn.platform.amp_backend import amp_config, check_training_requirements
from lptn.platform.checkpoint_io import save_network
from lptn.platform.logger import get_logger, setup_logger
from lptn.platform.options import dataset_keys, dump_options
from lptn.platform.runtime import Runtime, set_random_seed
from lptn.platform.stop_request import StopRequest
from lptn.platform.tensorboard_logger import NullTensorBoardLogger, TensorBoardLogger

DEFAULT_PRINT_FREQ = 100
DEFAULT_CHECKPOINT_FREQ = 5000
DEFAULT_MAX_NONFINITE = 5
DEFAULT_TB_COMPARISONS = 3


class NonFiniteLossError(RuntimeError):
    """Too many consecutive iterations had non-finite losses; names the last good checkpoint."""


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


def training_precision(opt: Dict[str, Any]) -> str:
    """``fp32``, ``bf16`` or ``fp16`` from ``train.amp: {enabled: bool, dtype: bf16|fp16}``
    (see :mod:`lptn.platform.amp_backend` for the other ``train.amp`` keys)."""
    return amp_config(opt).precision


def _timestamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d_%H%M%S")


def archive_existing(path: str | Path) -> Optional[Path]:
    """Rename an existing ``path`` to ``{path}_archived_{YYYYmmdd_HHMMSS}``; returns the new
    name (None when ``path`` did not exist)."""
    path = Path(path)
    if not path.exists():
        return None
    stamp = _timestamp()
    target = path.with_name(f"{path.name}_archived_{stamp}")
    for n in itertools.count(1):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}_archived_{stamp}_{n}")
    path.rename(target)
    return target


def tb_log_dir(opt: Dict[str, Any]) -> Path:
    """``path.tb_logger`` or ``tb_logger/{name}`` beside the ``experiments`` folder."""
    explicit = opt["path"].get("tb_logger")
    if explicit:
        return Path(explicit)
    return Path(opt["path"]["experiments_root"]).parent.parent / "tb_logger" / opt["name"]


def resolve_resume_state(opt: Dict[str, Any], auto_resume: bool) -> Optional[Path]:
    """``path.resume_state`` when set; else, with ``auto_resume``, the newest loadable state in
    ``path.training_states`` (None when there is none)."""
    explicit = opt["path"].get("resume_state")
    if explicit:
        return Path(explicit)
    if auto_resume:
        return find_latest_state(opt["path"]["training_states"])
    return None


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


def _positive_int_option(section: Dict[str, Any], key: str, key_path: str, default: Any) -> Any:
    value = section.get(key, default)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != int(value)
        or value < 1
    ):
        raise ValueError(f"{key_path}: expected a positive whole number, got {value!r}")
    return int(value)


# -------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run; :meth:`run` does everything (see the module docstring).

    Args:
        opt: parsed training options (``parse_options(..., is_train=True)``).
        runtime: device / precision (``build_runtime(opt, training_precision(opt))``).
        auto_resume: continue from the newest state of this experiment when there is one.
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

        paths = opt["path"]
        self.experiments_root = Path(paths["experiments_root"])
        self.models_dir = Path(paths["models"])
        self.states_dir = Path(paths["training_states"])
        self.visualization_dir = Path(paths["visualization"])
        self.log_dir = Path(paths["log"])

        self.iteration = 0
        self.nonfinite_streak = 0
        self.seed = 0
        self.best: Dict[str, Any] = {"metric": None, "value": None, "iter": None}
        self.last_state: Optional[Path] = None
        self.last_saved_iter: Optional[int] = None
        self.tb: NullTensorBoardLogger = NullTensorBoardLogger()
        self.model: Any = None
        self.stream: Optional[BatchStream] = None
        self.val_sets: List[Tuple[str, DataLoader]] = []
        self.stop = StopRequest()
        #: the signal that stops the run, agreed by all processes (None while running)
        self.stop_signal: Optional[int] = None
        self._archived: List[Tuple[Path, Path]] = []

    # ------------------------------------------------------------------------ preparation
    def _prepare_folders(self, resuming: bool) -> None:
        if not self.is_main:
            return
        if not resuming:
            for folder in (self.experiments_root, tb_log_dir(self.opt)):
                archived = archive_existing(folder)
                if archived is not None:
                    self._archived.append((folder, archived))
        for folder in (self.experiments_root, self.models_dir, self.states_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def prepare(self) -> None:
        """Folders, logging, seed, data, model and (when resuming) the restored state."""
        # A missing precision package or fused optimiser is reported before any folder or data
        # is touched.
        check_training_requirements(self.opt)
        # Every process reads the state itself (each must be able to resume from it).
        resume_path = resolve_resume_state(self.opt, self.auto_resume)
        # Read the state before touching any folder: a bad path must not archive anything.
        state = load_training_state(resume_path) if resume_path is not None else None
        self._prepare_folders(resuming=resume_path is not None)
        stamp = _timestamp()
        name = self.opt["name"]
        setup_logger(self.log_dir / f"train_{name}_{stamp}.log", self.runtime.rank)
        log = get_logger()
        for folder, archived in self._archived:
            log.info("existing %s renamed to %s", folder, archived)

        if state is not None:
            self.seed = int(state["seed"])
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
        if self.is_main:
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

        self._build_data()
        self.model = build_model(self.opt, self.runtime)
        log.info("%s", self.model.describe())
        if state is not None:
            self._restore(state, resume_path)  # type: ignore[arg-type]
        if self.is_main and (self.opt.get("logger") or {}).get("use_tb_logger", False):
            self.tb = TensorBoardLogger(tb_log_dir(self.opt))
            log.info("TensorBoard logs: %s", self.tb.log_dir)

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
            ds_opt,
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

    def _restore(self, state: Dict[str, Any], path: Path) -> None:
        iteration = int(state["iter"])
        # The weights of a state live in the models folder of its own experiment.
        models_dir = path.resolve().parent.parent / "models"
        self.model.load_networks(models_dir, iteration)
        self.model.load_state_dict(state["model"])
        self.iteration = iteration
        assert self.stream is not None
        self.stream.epoch, self.stream.consumed = int(state["epoch"]), int(state["epoch_batches"])
        self.best = dict(state["best"])
        self.nonfinite_streak = int(state.get("nonfinite_streak", 0))
        self.last_state = path
        self.last_saved_iter = iteration
        # Last, so nothing done while rebuilding (network initialisation) shifts the streams.
        self._restore_rng(state, iteration)
        get_logger().info(
            "resumed from %s: iteration %d, epoch %d (batch %d of %d)",
            path,
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
        files exist."""
        if self.last_saved_iter == self.iteration:
            return self.last_state
        assert self.stream is not None
        rng_ranks = (
            self.runtime.all_gather(capture_rng_state(self.runtime.device))
            if self.runtime.distributed
            else None
        )
        if self.is_main:
            self.model.save_networks(self.models_dir, self.iteration)
            state = make_training_state(
                iteration=self.iteration,
                epoch=self.stream.epoch,
                epoch_batches=self.stream.consumed,
                seed=self.seed,
                best=self.best,
                nonfinite_streak=self.nonfinite_streak,
                model_state=self.model.state_dict(),
                device=self.runtime.device,
            )
            if rng_ranks is not None:
                state["rng_ranks"] = rng_ranks
            save_training_state(state, self.states_dir)
        self.runtime.barrier()
        self.last_state = state_path(self.states_dir, self.iteration)
        self.last_saved_iter = self.iteration
        get_logger().info("saved checkpoint of iteration %d: %s", self.iteration, self.last_state)
        return self.last_state

    # ---------------------------------------------------------------------------- validation
    def validate(self) -> List[ValidationResult]:
        """Every val set; updates the best metric and ``net_g_best.pth``."""
        log = get_logger()
        results = []
        # Decided from the options, the same on every process (rank 0 writes what they send).
        save_img = bool(self.val_opt.get("save_img", False))
        num_tb = (
            int(self.val_opt.get("tb_comparisons", DEFAULT_TB_COMPARISONS))
            if (self.opt.get("logger") or {}).get("use_tb_logger", False)
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
            if self.is_main:
                save_network(self.model.net_g, self.models_dir / "net_g_best.pth")
            get_logger().info(
                "new best %s %.4f at iteration %d: saved %s",
                metric,
                value,
                self.iteration,
                self.models_dir / "net_g_best.pth",
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
                    f"path.resume_state={self.last_state}"
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
        (or a signal), save; see the module docstring."""
        if self.model is None:
            self.prepare()
        if self.handle_signals:
            self.stop.install()
        try:
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
        finally:
            self.stop.restore()
            self.tb.close()

    def _loop(self, bar: Any) -> TrainingOutcome:
        log = get_logger()
        assert self.stream is not None
        if self.iteration >= self.total_iter:
            log.info(
                "nothing to do: the state is at iteration %d and train.total_iter is %d",
                self.iteration,
                self.total_iter,
            )
        window = _Window()
        validated_at = self.iteration  # no final validation when nothing was trained
        log.info("start training from iteration %d", self.iteration + 1)
        while self.iteration < self.total_iter and not self._stop_requested():
            start = time.perf_counter()
            batch = self.stream.next()
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
            if self.val_freq and self.val_sets and self.iteration % self.val_freq == 0:
                self.validate()
                validated_at = self.iteration
            if self.checkpoint_freq and self.iteration % self.checkpoint_freq == 0:
                if self.nonfinite_streak:
                    # Keep the last checkpoint the last good one.
                    log.warning(
                        "iteration %d: checkpoint not saved (non-finite losses)", self.iteration
                    )
                else:
                    self.save_checkpoint()
        outcome_args: Dict[str, Any] = dict(
            iteration=self.iteration, experiments_root=self.experiments_root
        )
        if self.stop_signal and self.iteration < self.total_iter:
            self.save_checkpoint()
            log.info(
                "stopped by %s at iteration %d; resume with --auto_resume or --set "
                "path.resume_state=%s",
                signal.Signals(self.stop_signal).name,
                self.iteration,
                self.last_state,
            )
            return TrainingOutcome(
                "interrupted",
                signal=self.stop_signal,
                last_state=self.last_state,
                best=dict(self.best),
                **outcome_args,
            )
        if self.val_sets and validated_at != self.iteration:
            self.validate()
        self.save_checkpoint()
        if self.is_main:
            self.model.save_networks(self.models_dir, "latest")
        self.runtime.barrier()
        log.info(
            "training finished at iteration %d; weights: %s",
            self.iteration,
            self.models_dir / "net_g_latest.pth",
        )
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
    "NonFiniteLossError",
    "TrainingOutcome",
    "Trainer",
    "archive_existing",
    "resolve_resume_state",
    "run_training",
    "tb_log_dir",
    "training_precision",
]
