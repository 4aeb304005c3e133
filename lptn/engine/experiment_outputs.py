"""The outputs of a training run: its folder (locked), the log file, the options used, and
the run monitor (TensorBoard, W&B, both or neither) that receives scalars and images.

Only rank 0 writes; on the other processes the folder is not locked and the monitor is the
null one, so the loop calls the same methods everywhere.
"""

from __future__ import annotations

from typing import Any, Dict

from lptn.engine.experiment_folder import ExperimentFolder, tb_log_dir, timestamp
from lptn.platform.atomic_file import write_text_atomic
from lptn.platform.logger import get_logger, setup_logger
from lptn.platform.options import dump_options
from lptn.platform.runtime import Runtime
from lptn.platform.tensorboard_logger import LoggerGroup, NullTensorBoardLogger, TensorBoardLogger
from lptn.platform.train_settings import LoggingSettings
from lptn.platform.wandb_logger import WandbLogger


class ExperimentOutputs:
    """Folder, log file and monitor of one run.

    Args:
        opt: the checked options (``name``, ``path``, ``logger``; written out by :meth:`open`).
        runtime: rank and device (for the log lines).
        logging: the ``logger`` settings (TensorBoard, W&B).

    Attributes:
        folder: the experiment folder and its lock.
        monitor: where scalars and images go: TensorBoard and / or W&B, else a null monitor.
    """

    def __init__(self, opt: Dict[str, Any], runtime: Runtime, logging: LoggingSettings) -> None:
        self.opt = opt
        self.runtime = runtime
        self.logging = logging
        self.folder = ExperimentFolder(opt, is_main=runtime.is_main_process)
        self.monitor: NullTensorBoardLogger = NullTensorBoardLogger()

    def open(self, *, resuming: bool, seed: int) -> None:
        """Lock (rank 0), archive an old folder for a new run, create the folders, start the
        log file and write the options used (``train_{name}_{time}.log`` / ``.yml``)."""
        archived = self.folder.acquire(archive_old=not resuming)
        name = self.opt["name"]
        stamp = timestamp()
        # What was logged before the file existed goes first into it.
        setup_logger(self.folder.log_dir / f"train_{name}_{stamp}.log", self.runtime.rank)
        log = get_logger()
        for folder, target in archived:
            log.info("existing %s renamed to %s", folder, target)
        write_text_atomic(self.folder.log_dir / f"train_{name}_{stamp}.yml", dump_options(self.opt))
        log.info(
            "training %s on %s (%s%s), seed %d",
            name,
            self.runtime.device_name(),
            self.runtime.precision,
            f", {self.runtime.world_size} processes" if self.runtime.distributed else "",
            seed,
        )

    def start_monitor(self) -> None:
        """TensorBoard (``logger.use_tb_logger``) and W&B (``logger.wandb.project``) on rank 0."""
        if not self.runtime.is_main_process:
            return
        log = get_logger()
        if self.logging.use_tb_logger:
            self.monitor = TensorBoardLogger(tb_log_dir(self.opt))
            log.info("TensorBoard logs: %s", self.monitor.log_dir)
        if self.logging.wandb:
            wandb_logger = WandbLogger(self.opt)
            self.monitor = LoggerGroup(self.monitor, wandb_logger)
            log.info("W&B run %s: %s", wandb_logger.run_id, wandb_logger.log_dir)

    def close(self) -> None:
        """Close the monitor and release the folder's lock (however the run ended)."""
        try:
            self.monitor.close()
        finally:
            self.folder.release()


__all__ = ["ExperimentOutputs"]
