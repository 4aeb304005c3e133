"""Bounded memory for generators that take global context from a small copy, then apply it
locally (an image-adaptive LUT: weights from a downsampled image, then a per-pixel lookup).

Such a generator offers the *context protocol* (:func:`offers_context`):

- ``context_size``: ``(h, w)``, the size of the small copy, in pixels;
- ``context(x_small)``: (N, 3, h, w) float in [0, 1] -> its context (any tensor or tuple);
- ``apply_context(x_tile, context)``: (N, 3, th, tw) -> (N, 3, th, tw), each pixel from its
  own value and the context only (not ``apply``: that is ``nn.Module.apply``),

and its ``forward(x)`` is ``apply_context(x, context(small_copy(x)))``, the small copy being
``F.interpolate(x, context_size, mode="bilinear", align_corners=False)``.
:class:`ContextTiledPath` then runs a photo of any size in strips: the small copy is computed
from two rows of the input per row of the copy, so the full-resolution image never exists as
float32 (what LPTN's fast path does for the pyramid).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Protocol, Sequence, Tuple, Union, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lptn.inference.tiling import (
    ArraySink,
    ArraySource,
    Span,
    TensorSink,
    TensorSource,
    default_memory_budget_mb,
    split_span,
    tile_grid,
)

Source = Union[ArraySource, TensorSource]
Sink = Union[ArraySink, TensorSink]
# Float32 planes alive per pixel of a strip: input, output and about two of the apply's
# intermediates (a lookup's corner weights), each 3 channels.
_PLANES_PER_PIXEL = 4 * 3 * 4


class ContextGenerator(Protocol):
    """The context protocol (module docstring)."""

    context_size: Sequence[int]

    def context(self, x_small: torch.Tensor) -> Any: ...

    def apply_context(self, x_tile: torch.Tensor, context: Any) -> torch.Tensor: ...


def offers_context(net: nn.Module) -> bool:
    """Whether ``net`` offers the context protocol of this module's docstring."""
    return all(callable(getattr(net, name, None)) for name in ("context", "apply_context")) and (
        getattr(net, "context_size", None) is not None
    )


def small_copy(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """The protocol's small copy of (N, 3, H, W) ``x``: (N, 3, h, w), bilinear."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def bilinear_taps(n_in: int, n_out: int) -> Tuple[List[int], List[int], torch.Tensor]:
    """For each of ``n_out`` outputs, the two inputs and the second's weight that
    ``F.interpolate(mode="bilinear", align_corners=False)`` uses along one axis."""
    scale = n_in / n_out
    first, second, weights = [], [], []
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(math.floor(src)), n_in - 1)
        first.append(lo)
        second.append(lo + 1 if lo < n_in - 1 else lo)
        weights.append(src - lo)
    return first, second, torch.tensor(weights, dtype=torch.float32)


def small_copy_from(source: Source, size: Tuple[int, int]) -> torch.Tensor:
    """:func:`small_copy` of the whole ``source``, reading only the rows it needs (two per
    output row): (N, 3, h, w) float32 on the source's device."""
    height, width = size
    r0, r1, wr = bilinear_taps(source.height, height)
    c0, c1, wc = bilinear_taps(source.width, width)
    needed = sorted(set(r0) | set(r1))
    where = {row: i for i, row in enumerate(needed)}
    rows = torch.cat([source.read((r, r + 1), (0, source.width)) for r in needed], dim=2)
    rows = rows.float()
    device = rows.device
    wr, wc = wr.to(device)[:, None], wc.to(device)
    top = rows[:, :, [where[r] for r in r0]]
    bottom = rows[:, :, [where[r] for r in r1]]
    mixed = top + (bottom - top) * wr
    left, right = mixed[..., c0], mixed[..., c1]
    return left + (right - left) * wc


class ContextTiledPath:
    """Runs a context-protocol generator region by region within a memory budget.

    Args:
        net: a generator for which :func:`offers_context` holds.
        tile_size: square tiles of this side; None = full-width strips sized to the budget.
        memory_budget_mb: working memory for the strips; None = 768 MB on the CPU, 4096 else.
    """

    def __init__(
        self,
        net: nn.Module,
        tile_size: Optional[int] = None,
        memory_budget_mb: Optional[float] = None,
    ) -> None:
        if not offers_context(net):
            raise TypeError(f"{type(net).__name__} does not offer context() / apply_context()")
        self.net = net
        self.protocol = cast(ContextGenerator, net)
        self.tile_size = tile_size
        self.memory_budget_mb = memory_budget_mb

    def regions(self, batch: int, height: int, width: int, device: torch.device) -> List[Any]:
        """The ``(rows, cols)`` regions an input of that size is applied in."""
        if self.tile_size is not None:
            return tile_grid(height, width, self.tile_size, self.tile_size)
        budget = (self.memory_budget_mb or default_memory_budget_mb(device)) * 2**20
        strip = max(1, int(budget // (batch * width * _PLANES_PER_PIXEL)))
        full: Span = (0, width)
        return [(rows, full) for rows in split_span(height, strip)]

    def run(self, source: Source, sink: Sink) -> None:
        """Context from the small copy of ``source``, then ``apply_context`` region by region."""
        height, width = (int(s) for s in self.protocol.context_size)
        context = self.protocol.context(small_copy_from(source, (height, width)))
        for rows, cols in self.regions(source.batch, source.height, source.width, source.device):
            sink.write(rows, cols, self.protocol.apply_context(source.read(rows, cols), context))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> the generator's output, computed region by region."""
        out = torch.empty_like(x, dtype=torch.float32)
        self.run(TensorSource(x), TensorSink(out))
        return out

    def enhance_array(self, img: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
        """``H x W x 3`` uint8/uint16 RGB -> enhanced array of the same dtype; the float32
        image never exists whole."""
        sink = ArraySink(img.shape[0], img.shape[1], img.dtype)
        self.run(ArraySource(img, device), sink)
        return sink.out
