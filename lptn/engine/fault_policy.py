"""What a training run does when something goes wrong mid-run: non-finite losses, a training
batch that cannot be loaded, a full disk. Each fault is logged with its cause and ends in one
error whose message says where the last good checkpoint is and how to go on.

Apart from the loop so that each rule can be read and tested alone; the loop calls these at
the point the fault appears (:mod:`lptn.engine.train_loop`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from lptn.engine.checkpointer import DiskFullError
from lptn.platform.logger import get_logger


class NonFiniteLossError(RuntimeError):
    """Too many consecutive iterations had non-finite losses; names the last good checkpoint."""


class TrainingDataError(RuntimeError):
    """A training batch could not be loaded (e.g. a corrupt image, named); the state of the
    last completed iteration was saved first."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` in one line; for an error re-raised by a DataLoader worker,
    the original message (the last line of the worker's traceback, without the class)."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


class NonFiniteGuard:
    """Counts the iterations in a row whose losses were not finite (the model skipped their
    update) and stops the run at ``limit`` (``train.max_consecutive_nonfinite``).

    Args:
        limit: non-finite iterations in a row that raise :class:`NonFiniteLossError` (>= 1).
        streak: the count so far (a resumed run continues it).
    """

    def __init__(self, limit: int, streak: int = 0) -> None:
        self.limit = limit
        self.streak = streak

    @property
    def clean(self) -> bool:
        """Whether the last iteration was finite (a checkpoint now is a good one)."""
        return self.streak == 0

    def record(
        self,
        result: Any,
        iteration: int,
        last_state: Optional[Path],
        last_saved_iter: Optional[int],
    ) -> None:
        """Count ``result`` (a :class:`~lptn.models.lptn_model.StepResult`); a warning for a
        non-finite one, :class:`NonFiniteLossError` (logged) at the limit."""
        if result.finite:
            self.streak = 0
            return
        self.streak += 1
        terms = ", ".join(f"{k}={v}" for k, v in result.nonfinite_terms().items())
        get_logger().warning(
            "iteration %d: non-finite loss (%s): skipped the update of %s (%d/%d in a row)",
            iteration,
            terms,
            ", ".join(result.skipped),
            self.streak,
            self.limit,
        )
        if self.streak < self.limit:
            return
        where = (
            (
                f"the last good checkpoint is {last_state} (iteration "
                f"{last_saved_iter}); resume from it with --set "
                f"path.resume_state={last_state} (changed options, e.g. "
                "train.optim_g.lr in the option file or with --set, apply on resume)"
            )
            if last_state
            else "no checkpoint had been saved yet"
        )
        message = (
            f"training stopped at iteration {iteration}: "
            f"{self.streak} consecutive iterations had non-finite losses "
            f"({terms}); {where}. Lower the learning rate, check the training "
            f"images, or train in fp32/bf16 (train.max_consecutive_nonfinite sets "
            f"the limit)"
        )
        get_logger().error(message)
        raise NonFiniteLossError(message)


def log_data_faults(faults: Sequence[str]) -> None:
    """Log the one-line causes of every process whose training batch could not be loaded."""
    for text in faults:
        get_logger().error("training data: %s", text)


def data_fault_error(iteration: int, faults: Sequence[str], saved: str) -> TrainingDataError:
    """The error (logged) that stops a run whose batch could not be loaded; ``faults`` are the
    one-line causes (:func:`log_data_faults`), ``saved`` what was kept (``saved FILE``...)."""
    log = get_logger()
    message = (
        f"training stopped at iteration {iteration}: a training batch could not be "
        f"loaded ({faults[0] if faults else 'see the other processes'}); {saved}. Fix or "
        "remove the file, then resume with --auto_resume"
    )
    log.error(message)
    return TrainingDataError(message)


def disk_full_error(
    err: BaseException, iteration: int, last_state: Optional[Path]
) -> DiskFullError:
    """The error (logged) for a full disk outside a checkpoint (a log, image or event file,
    or the data loader's shared memory): the last checkpoint is complete."""
    filename = getattr(err, "filename", None)
    where = f"in {Path(filename).parent}" if filename else f"({one_line(err)})"
    kept = (
        f"the last checkpoint {last_state} is intact"
        if last_state is not None
        else "no checkpoint was written yet"
    )
    message = (
        f"no space left on device {where}: training stopped at iteration "
        f"{iteration}; {kept}. Free some space, then resume with --auto_resume"
    )
    get_logger().error(message)
    return DiskFullError(message)


__all__ = [
    "NonFiniteGuard",
    "NonFiniteLossError",
    "TrainingDataError",
    "data_fault_error",
    "disk_full_error",
    "log_data_faults",
    "one_line",
]
