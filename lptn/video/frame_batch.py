"""A batch of video frames as the fast path's region source and sink.

The frames stay integer arrays; each region is converted to float32 on reading and back to
integers on writing (the conventions of :class:`~lptn.inference.tiling.ArraySource` /
:class:`~lptn.inference.tiling.ArraySink`), so a batch of 4K frames never exists as float32.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from lptn.inference.tiling import ArraySink, ArraySource, Span

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class FrameBatchSource(ArraySource):
    """Regions of N ``H x W x 3`` uint8/uint16 frames (same size and dtype) as (N, 3, h, w)
    float32 in [0, 1] on ``device``."""

    def __init__(self, frames: Sequence[np.ndarray], device: torch.device | str = "cpu") -> None:
        if not frames:
            raise ValueError("FrameBatchSource needs at least one frame")
        super().__init__(frames[0], device)
        for f in frames[1:]:
            if f.shape != frames[0].shape or f.dtype != frames[0].dtype:
                raise ValueError("frames of one batch must share their shape and dtype")
        if frames[0].dtype not in _SCALE:
            raise TypeError(f"frames must be uint8 or uint16, got {frames[0].dtype}")
        self.frames = list(frames)
        self.batch = len(frames)
        self._scale = np.float32(_SCALE[frames[0].dtype])

    def read(self, rows: Span, cols: Span) -> torch.Tensor:
        parts = np.stack([f[rows[0] : rows[1], cols[0] : cols[1]] for f in self.frames])
        arr = parts.astype(np.float32)
        arr /= self._scale
        nchw = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
        return nchw.to(self.device)


class FrameBatchSink(ArraySink):
    """Writes (N, 3, h, w) regions into N ``H x W x 3`` integer frames (:attr:`outs`)."""

    def __init__(self, batch: int, height: int, width: int, dtype: np.dtype | type) -> None:
        super().__init__(1, 1, dtype)
        self.outs: List[np.ndarray] = [
            np.empty((height, width, 3), dtype=self.dtype) for _ in range(batch)
        ]

    def view(self, rows: Span, cols: Span) -> Optional[torch.Tensor]:
        return None

    def write(self, rows: Span, cols: Span, region: torch.Tensor) -> None:
        arr = region.detach().to("cpu", torch.float32).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        arr = np.round(arr * self._scale)
        for out, part in zip(self.outs, arr):
            out[rows[0] : rows[1], cols[0] : cols[1]] = part
