"""TensorBoard output of a training run (``logger.use_tb_logger``), behind a tiny interface.

:class:`TensorBoardLogger` writes event files under ``tb_logger/{name}`` with
``torch.utils.tensorboard.SummaryWriter``; :class:`NullTensorBoardLogger` has the same methods
and writes nothing, so the loop never asks whether TensorBoard is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np


class NullTensorBoardLogger:
    """Accepts every call and records nothing."""

    log_dir: Optional[Path] = None

    def add_scalars(self, values: Dict[str, float], step: int, prefix: str = "") -> None:
        pass

    def add_image(self, tag: str, image: np.ndarray, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger(NullTensorBoardLogger):
    """Scalars and images to TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard is a dependency, but may be missing
            raise ImportError(
                "logger.use_tb_logger: true needs the 'tensorboard' package "
                "(pip install tensorboard), or set use_tb_logger: false"
            ) from err
        self.log_dir = folder = Path(log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(log_dir=str(folder))

    def add_scalars(self, values: Dict[str, float], step: int, prefix: str = "") -> None:
        """One scalar per entry, tagged ``{prefix}{key}``."""
        for key, value in values.items():
            self._writer.add_scalar(f"{prefix}{key}", float(value), step)

    def add_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """``image``: (H, W, 3) RGB uint8."""
        self._writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


__all__ = ["NullTensorBoardLogger", "TensorBoardLogger"]
