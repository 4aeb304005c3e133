"""Checkpoints of a training run: saving, finding, checking and restoring them.

A checkpoint of iteration N is ``models/net_g_N.pth`` (and ``net_d_N.pth``), written first,
then ``training_states/N.state`` (:mod:`lptn.engine.training_state`); every file is written
atomically (:func:`~lptn.platform.checkpoint_io.save_atomic`), so a kill or a full disk during
a save leaves at worst a ``.{name}.*.tmp`` file beside the previous checkpoints, never a
truncated one. A checkpoint counts as complete when its state and every weights file it needs
load with ``weights_only=True``; auto-resume takes the newest complete one, naming each damaged
file it passes over, and removes the temporary files of a killed save.

Every call into the model's save / load interface (``save_networks``, ``load_networks``,
``state_dict``, ``load_state_dict``, the best generator) is made here and nowhere else in the
engine.

Options changed between the saved run and the resumed one are applied, each with a log line:
optimiser settings (``lr``, ``betas``, ``weight_decay``...) replace the saved ones, and the
schedule (``scheduler``, ``warmup_iter``) and ``total_iter`` are read from the options anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from lptn.engine.training_state import (
    TrainingStateError,
    capture_rng_state,
    list_states,
    load_training_state,
    make_training_state,
    save_training_state,
    state_path,
)
from lptn.models.model_protocol import TrainableModel
from lptn.platform.atomic_file import TEMP_SUFFIX
from lptn.platform.checkpoint_io import CheckpointError, is_disk_full, read_state_dict
from lptn.platform.runtime import Runtime

logger = logging.getLogger("lptn")

#: option keys of ``train`` whose values are kept in the state, to report changes on resume
SETTINGS_KEYS = ("total_iter", "warmup_iter", "scheduler", "optim_g", "optim_d")


class DiskFullError(RuntimeError):
    """No space left on the device while saving; names the folder and the intact checkpoint."""


def temp_files(folder: Path) -> List[Path]:
    """The temporary files a killed atomic save leaves (``.{name}.*.tmp``) in ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file())


def training_settings(opt: Dict[str, Any]) -> Dict[str, Any]:
    """The ``train`` options that a resumed run may change (kept in each state)."""
    train_opt = opt.get("train") or {}
    return {k: train_opt.get(k) for k in SETTINGS_KEYS}


@dataclass
class ResumePoint:
    """A checkpoint to continue from: its state file, the loaded state, and the damaged
    files passed over to find it (newest first)."""

    path: Path
    state: Dict[str, Any]
    damaged: List[str] = field(default_factory=list)

    @property
    def iteration(self) -> int:
        return int(self.state["iter"])


def _weights_dir(state_file: Path) -> Path:
    # The weights of a state live in the models folder of its own experiment.
    return state_file.resolve().parent.parent / "models"


def _network_names(state: Dict[str, Any]) -> List[str]:
    optimizers = (state.get("model") or {}).get("optimizers") or {}
    return sorted(optimizers) or ["net_g"]


def check_checkpoint(state_file: Path) -> Dict[str, Any]:
    """Load ``state_file`` and check that the weights beside it load (``weights_only``).

    Raises:
        TrainingStateError: the state is damaged or not an lptn state.
        CheckpointError: a weights file of it is missing or damaged (named).
    """
    state = load_training_state(state_file)
    models = _weights_dir(state_file)
    for name in _network_names(state):
        read_state_dict(models / f"{name}_{int(state['iter'])}.pth")
    return state


def find_resume_point(states_dir: str | Path) -> Optional[ResumePoint]:
    """The newest complete checkpoint in ``states_dir`` (None when there is none); each
    damaged state or weights file passed over is logged with the reason."""
    damaged: List[str] = []
    for path in list_states(states_dir):
        try:
            state = check_checkpoint(path)
        except (TrainingStateError, CheckpointError) as err:
            logger.warning("auto-resume: damaged checkpoint skipped: %s", err)
            damaged.append(str(err).split(": ", 1)[0])
            continue
        return ResumePoint(path, state, damaged)
    return None


class Checkpointer:
    """Saves and restores the checkpoints of one run (see the module docstring).

    Args:
        models_dir, states_dir: where weights and states go.
        runtime: rank 0 writes; with several processes every process takes part in a save
            (their random streams go into the state) and all learn whether it failed.
        settings: :func:`training_settings` of the options, stored in every state.
    """

    def __init__(
        self,
        models_dir: Path,
        states_dir: Path,
        runtime: Runtime,
        settings: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.states_dir = Path(states_dir)
        self.runtime = runtime
        self.settings = dict(settings or {})
        self.last_state: Optional[Path] = None
        self.last_saved_iter: Optional[int] = None
        # The state written last while its iteration's validation is still running: rewritten
        # once the validation completes (same random streams, updated best metric).
        self._pending: Optional[Dict[str, Any]] = None

    # ----------------------------------------------------------------------------- resume
    def remove_temp_files(self) -> List[Path]:
        """Delete what a killed save left (only while this run holds the experiment lock)."""
        removed = []
        for folder in (self.models_dir, self.states_dir):
            for tmp in temp_files(folder):
                tmp.unlink()
                removed.append(tmp)
                logger.info("removed %s (left by an interrupted save)", tmp)
        return removed

    def restore(self, model: TrainableModel, point: ResumePoint) -> None:
        """Networks, optimisers, schedules and scalers of ``point`` into ``model``; then the
        options that changed since it was saved are applied (logged one by one)."""
        state = point.state
        iteration = point.iteration
        configured = _optimizer_settings(model)
        model.load_networks(_weights_dir(point.path), iteration)
        model.load_state_dict(state["model"])
        self._apply_changed_options(model, configured, state.get("settings") or {}, iteration)
        self.last_state = point.path
        self.last_saved_iter = iteration
        # Its validation did not complete: once the resumed run has done it, the state is
        # rewritten as it was saved, with the validation marked done.
        own = point.path.resolve().parent == self.states_dir.resolve()
        self._pending = state if own and state.get("validation_pending") else None

    def _apply_changed_options(
        self,
        model: TrainableModel,
        configured: Dict[str, List[Dict[str, Any]]],
        saved_settings: Dict[str, Any],
        iteration: int,
    ) -> None:
        where = f"from iteration {iteration + 1}"
        for name, groups in configured.items():
            key = f"train.optim_{name[-1]}"
            optimizer = model.optimizers[name]
            schedule = model.schedulers[name]
            for index, (wanted, group) in enumerate(zip(groups, optimizer.param_groups)):
                for hyper, value in wanted.items():
                    if hyper in ("lr", "initial_lr"):
                        continue
                    if not _same(group.get(hyper), value):
                        logger.warning(
                            "%s.%s changed on resume: %r in the state, %r in the options: "
                            "the options apply %s",
                            key,
                            hyper,
                            group.get(hyper),
                            value,
                            where,
                        )
                        group[hyper] = value
                base = float(wanted["initial_lr"])
                if schedule.base_lrs[index] != base:
                    logger.warning(
                        "%s.lr changed on resume: %g in the state, %g in the options: the "
                        "options apply %s",
                        key,
                        schedule.base_lrs[index],
                        base,
                        where,
                    )
                    schedule.base_lrs[index] = base
                    group["initial_lr"] = base
        for key in ("total_iter", "warmup_iter", "scheduler"):
            if key in saved_settings and saved_settings[key] != self.settings.get(key):
                logger.warning(
                    "train.%s changed on resume: %r in the state, %r in the options: the "
                    "options apply %s",
                    key,
                    saved_settings[key],
                    self.settings.get(key),
                    where,
                )

    # ----------------------------------------------------------------------------- saving
    def save(
        self,
        model: TrainableModel,
        *,
        iteration: int,
        epoch: int,
        epoch_batches: int,
        seed: int,
        best: Dict[str, Any],
        nonfinite_streak: int,
        validation_pending: bool = False,
    ) -> Optional[Path]:
        """Networks then state of ``iteration``; every process calls it and all return once
        the files exist. ``validation_pending``: the validation of this iteration has not run
        yet (a resumed run runs it first unless :meth:`validation_done` is called).

        Raises:
            DiskFullError: no space left (on every process); the previous checkpoint is
                intact and this iteration's partial files are removed.
        """
        if self.last_saved_iter == iteration:
            return self.last_state
        runtime = self.runtime
        rng_ranks = (
            runtime.all_gather(capture_rng_state(runtime.device)) if runtime.distributed else None
        )
        failure = ""
        if runtime.is_main_process:
            state = make_training_state(
                iteration=iteration,
                epoch=epoch,
                epoch_batches=epoch_batches,
                seed=seed,
                best=best,
                nonfinite_streak=nonfinite_streak,
                model_state=model.state_dict(),
                device=runtime.device,
            )
            state["settings"] = self.settings
            state["validation_pending"] = bool(validation_pending)
            if rng_ranks is not None:
                state["rng_ranks"] = rng_ranks
            try:
                model.save_networks(self.models_dir, iteration)
                save_training_state(state, self.states_dir)
            except OSError as err:
                if not is_disk_full(err):
                    raise
                # Weights without their state are no checkpoint: give their space back.
                for name in model.networks():
                    (self.models_dir / f"{name}_{iteration}.pth").unlink(missing_ok=True)
                failure = self._disk_full_message(err, iteration)
            self._pending = state if validation_pending and not failure else None
        if runtime.distributed:
            # Instead of a barrier: every process learns whether rank 0's save failed.
            failure = runtime.broadcast(failure)
        if failure:
            logger.error(failure)
            raise DiskFullError(failure)
        self.last_state = state_path(self.states_dir, iteration)
        self.last_saved_iter = iteration
        logger.info("saved checkpoint of iteration %d: %s", iteration, self.last_state)
        return self.last_state

    def validation_done(self, best: Dict[str, Any]) -> None:
        """The validation of the last saved iteration completed: rewrite its state with the
        new best metric and without the pending mark (rank 0)."""
        state, self._pending = self._pending, None
        if state is None or not self.runtime.is_main_process:
            return
        state["best"] = dict(best)
        state["validation_pending"] = False
        self._write(lambda: save_training_state(state, self.states_dir), int(state["iter"]))

    def save_best(self, model: TrainableModel) -> Path:
        """The generator as ``models/net_g_best.pth`` (rank 0), with its moving average when
        the model keeps one (what validation measured)."""
        path = self.models_dir / "net_g_best.pth"
        if self.runtime.is_main_process:
            self._write(lambda: model.save_network("net_g", path), None)
        return path

    def save_latest(self, model: TrainableModel) -> Path:
        """``net_g_latest.pth`` (and ``net_d_latest.pth``); every process waits for them."""
        if self.runtime.is_main_process:
            self._write(lambda: model.save_networks(self.models_dir, "latest"), None)
        self.runtime.barrier()
        return self.models_dir / "net_g_latest.pth"

    def _write(self, action: Any, iteration: Optional[int]) -> None:
        try:
            action()
        except OSError as err:
            if not is_disk_full(err):
                raise
            message = self._disk_full_message(err, iteration)
            logger.error(message)
            raise DiskFullError(message) from err

    def _disk_full_message(self, err: OSError, iteration: Optional[int]) -> str:
        target = getattr(err, "filename", None)
        folder = Path(target).parent if target else self.models_dir.parent
        what = f"the checkpoint of iteration {iteration}" if iteration is not None else "a file"
        previous = (
            f"the previous checkpoint {self.last_state} (iteration {self.last_saved_iter}) "
            "is intact"
            if self.last_state is not None
            else "no earlier checkpoint exists"
        )
        return (
            f"no space left on device in {folder}: {what} was not written; {previous}. "
            "Free some space, then resume with --auto_resume"
        )


def _same(a: Any, b: Any) -> bool:
    """Equality of optimiser settings: lists and tuples alike, tensors by value."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        try:
            return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))
        except (TypeError, RuntimeError):
            return False
    return bool(a == b)


def _optimizer_settings(model: TrainableModel) -> Dict[str, List[Dict[str, Any]]]:
    """Each optimiser's parameter-group settings as built from the options (before a state
    overwrites them); ``initial_lr`` is the configured base rate."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for name, optimizer in model.optimizers.items():
        schedule = model.schedulers[name]
        groups = []
        for index, group in enumerate(optimizer.param_groups):
            settings = {k: v for k, v in group.items() if k != "params"}
            settings["initial_lr"] = schedule.base_lrs[index]
            groups.append(settings)
        out[name] = groups
    return out


def describe_resume(point: Optional[ResumePoint], states_dir: Path) -> Tuple[str, bool]:
    """The auto-resume line for the log and whether it is a warning (damaged files)."""
    if point is None:
        return (
            f"auto-resume: no complete training state in {states_dir}: starting a new run "
            "from iteration 1",
            False,
        )
    skipped = f" (passed over damaged: {', '.join(point.damaged)})" if point.damaged else ""
    return (
        f"auto-resume: resuming from {point.path} (iteration {point.iteration}){skipped}",
        bool(point.damaged),
    )


__all__ = [
    "Checkpointer",
    "DiskFullError",
    "ResumePoint",
    "SETTINGS_KEYS",
    "check_checkpoint",
    "describe_resume",
    "find_resume_point",
    "is_disk_full",
    "temp_files",
    "training_settings",
]
