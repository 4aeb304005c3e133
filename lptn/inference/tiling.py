"""Region plans, memory estimates, and tiled image sources / sinks for the fast path.

The fast path (:mod:`lptn.inference.fast_lptn`) reads its full-resolution input and writes its
output one region at a time. A *source* hands out float regions of the input; a *sink* takes
float regions of the output. The tensor versions wrap (N, 3, H, W) tensors; the array versions
wrap an ``H x W x 3`` uint8/uint16 numpy image, so a photo larger than memory would allow as
float32 is converted piece by piece (what ``lptn-enhance`` does with a memory budget).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch

Span = Tuple[int, int]
T = TypeVar("T")

# Largest integer sample value of each integer image dtype (matches lptn.data.image_io).
_INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def split_span(n: int, size: int) -> List[Span]:
    """``[0, n)`` cut into consecutive spans of ``size`` (the last may be shorter)."""
    if size <= 0:
        raise ValueError(f"span size must be positive, got {size}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def tile_grid(
    height: int, width: int, tile_height: int, tile_width: int
) -> List[Tuple[Span, Span]]:
    """Row-major list of ``(rows, cols)`` tiles covering a ``height x width`` map."""
    return [
        (rows, cols)
        for rows in split_span(height, tile_height)
        for cols in split_span(width, tile_width)
    ]


def for_each_region(
    fn: Callable[[T], None],
    regions: Sequence[T],
    device: torch.device,
    workers: Optional[int] = None,
) -> None:
    """Call ``fn`` on every region; on the CPU, regions run concurrently in worker threads.

    Each worker uses one intra-op thread: small per-region operations then never wait on a
    barrier with the other cores (which costs a scheduler time slice per operation when other
    processes share the CPU), and each region stays in one core's cache. ``fn`` must write
    disjoint outputs. ``workers`` defaults to ``torch.get_num_threads()``; the workers run
    without autograd and in the caller's inference mode.
    """
    threads = torch.get_num_threads()
    workers = threads if workers is None else workers
    if device.type != "cpu" or workers <= 1 or len(regions) < 2:
        for region in regions:
            fn(region)
        return

    inference = torch.is_inference_mode_enabled()  # thread-local: carry it to the workers

    def init() -> None:
        torch.set_num_threads(1)

    def call(region: T) -> None:
        with torch.inference_mode(inference), torch.no_grad():
            fn(region)

    try:
        with ThreadPoolExecutor(
            max_workers=min(workers, len(regions)),
            initializer=init,
            thread_name_prefix="lptn-region",
        ) as pool:
            for _ in pool.map(call, regions):
                pass
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# memory model (bytes), calibrated on the CPU against peak RSS; see docs/PERFORMANCE.md
# ----------------------------------------------------------------------------------------------
# Live float maps per pixel of a full-resolution region: the 6-channel upsampled pair, band,
# masked band, the 16-channel hidden map, output, plus index/gather copies.
REGION_FLOATS_PER_PIXEL = 48
# Live 64-channel activations of the conv stacks at once (input, two conv outputs, oneDNN's
# reordered copy).
CONV_LIVE_MAPS = 4
CONV_CHANNELS = 64


@dataclass(frozen=True)
class MemoryPlan:
    """How the fast path splits its work for one input size.

    ``tile``: (height, width) of the full-resolution regions. ``mask_rows`` / ``low_rows``:
    rows of the mask network's map / of the low-frequency branch (after its InstanceNorm)
    processed at once. ``store_level1``: keep the half-resolution reconstruction whole
    (faster) instead of recomputing it per region (less memory). ``estimate_mb``: the
    working memory this plan is expected to need.
    """

    tile: Tuple[int, int]
    mask_rows: int
    low_rows: int
    store_level1: bool
    estimate_mb: float
    stream_pixels: int
    budget_mb: float
    whole: Tuple[Tuple[int, int], Tuple[int, int]] = ((0, 0), (0, 0))

    @property
    def tiled(self) -> bool:
        """True when the plan differs from processing everything whole: the half-resolution
        level is recomputed per tile, or a conv stack runs in strips."""
        (mask_h, _), (low_h, _) = self.whole
        return not self.store_level1 or self.mask_rows < mask_h or self.low_rows < low_h

    def describe(self) -> str:
        return (
            f"tiles {self.tile[0]}x{self.tile[1]}, mask network in strips of "
            f"{self.mask_rows} rows, low branch in strips of {self.low_rows} rows, "
            f"half-resolution level {'kept' if self.store_level1 else 'recomputed per tile'}"
            f"; about {self.estimate_mb:.0f} MB working memory (budget {self.budget_mb:.0f})"
        )


def level_sizes(height: int, width: int, num_high: int) -> List[Tuple[int, int]]:
    """Sizes of the pyramid levels 0 (full) .. num_high (low): ceil-halving."""
    sizes = [(height, width)]
    for _ in range(num_high):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def plan_memory(
    batch: int,
    height: int,
    width: int,
    num_high: int,
    *,
    budget_mb: float,
    tile_size: Optional[int] = None,
    conv_bytes: int = 4,
    sample_bytes: int = 4,
    block_pixels: Optional[int] = 1 << 17,
    mask_halo: int = 8,
    low_halo: int = 13,
) -> MemoryPlan:
    """Choose region sizes so that the working memory stays within ``budget_mb``.

    The working memory counts what the fast path allocates besides its input and output:
    the stored pyramid levels, the conv stacks' activations and one full-resolution region.
    ``tile_size`` forces square regions of that side; otherwise regions are full-width
    strips of about ``block_pixels`` pixels (cache sized, for CPUs) or, with
    ``block_pixels=None`` (accelerators, where each operation is a kernel launch), as large as
    a quarter of the budget allows. The conv stacks get what is left, but at least
    ``8 * halo`` rows each (their halo is recomputed per strip: at most 25% extra work).
    """
    sizes = level_sizes(height, width, num_high)
    mib = float(1 << 20)
    budget = budget_mb * mib

    def plane(level: int, channels: int, nbytes: int = sample_bytes) -> int:
        return batch * channels * sizes[level][0] * sizes[level][1] * nbytes

    coarse = sum(plane(j, 6) for j in range(2, num_high + 1)) if num_high >= 2 else 0
    level1 = plane(1, 6 if num_high == 1 else 3)
    mask_map = plane(num_high - 1, 3)
    per_pixel = batch * REGION_FLOATS_PER_PIXEL * sample_bytes
    if block_pixels is None:
        block_pixels = max(int(budget / 4 // per_pixel), 1)
    if tile_size is not None:
        tile = (min(tile_size, height), min(tile_size, width))
    else:
        tile = (max(8, min(height, block_pixels // max(width, 1))), width)
    region = batch * REGION_FLOATS_PER_PIXEL * tile[0] * tile[1] * sample_bytes
    fixed = coarse + level1 + mask_map + region

    low_h, low_w = sizes[num_high]
    mask_h, mask_w = sizes[num_high - 1]
    # trans_low's head (conv 3->16 + InstanceNorm) is image-wide: two 16-channel maps.
    low_head = batch * 2 * 16 * low_h * low_w * conv_bytes
    low_row = batch * CONV_LIVE_MAPS * CONV_CHANNELS * low_w * conv_bytes
    mask_row = batch * CONV_LIVE_MAPS * CONV_CHANNELS * mask_w * conv_bytes

    # Keep the half-resolution reconstruction whole when that and everything else fit.
    level1_extra = plane(1, 3) if num_high >= 2 else 0
    store_level1 = (
        tile_size is None
        and num_high >= 2
        and fixed + level1_extra + low_head + low_row * low_h + mask_row * mask_h <= budget
    )
    if store_level1 or num_high == 1:
        fixed += level1_extra
    elif tile_size is None and tile[0] < 64:
        # Level 1 is recomputed per region with a halo of about 3 rows / columns: thin strips
        # would recompute most of it, square-ish regions of the same size very little.
        side = max(64, int(math.sqrt(tile[0] * tile[1] / 2)))
        tile = (min(height, side), min(width, 2 * side))
    left = max(budget - fixed - low_head, 0)
    # The two stacks run one after the other: each may use all that is left.
    low_rows = int(min(low_h, max(8 * low_halo, left // max(low_row, 1))))
    mask_rows = int(min(mask_h, max(8 * mask_halo, left // max(mask_row, 1))))
    conv_peak = max(
        low_head + low_row * (low_rows + 2 * low_halo), mask_row * (mask_rows + 2 * mask_halo)
    )
    return MemoryPlan(
        tile=tile,
        mask_rows=mask_rows,
        low_rows=low_rows,
        store_level1=store_level1,
        estimate_mb=(fixed + conv_peak) / mib,
        stream_pixels=block_pixels,
        budget_mb=budget_mb,
        whole=((mask_h, mask_w), (low_h, low_w)),
    )


# ----------------------------------------------------------------------------------------------
# sources and sinks
# ----------------------------------------------------------------------------------------------
class TensorSource:
    """Regions of an (N, 3, H, W) float tensor (views, no copy)."""

    def __init__(self, img: torch.Tensor) -> None:
        if img.dim() != 4:
            raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(img.shape)}")
        self.img = img
        self.batch, self.channels, self.height, self.width = img.shape
        self.device, self.dtype = img.device, img.dtype

    def read(self, rows: Span, cols: Span) -> torch.Tensor:
        return self.img[:, :, rows[0] : rows[1], cols[0] : cols[1]]


class TensorSink:
    """Writes regions into an (N, 3, H, W) tensor."""

    def __init__(self, out: torch.Tensor) -> None:
        self.out = out

    def view(self, rows: Span, cols: Span) -> Optional[torch.Tensor]:
        """The output region itself, for computing straight into it."""
        return self.out[:, :, rows[0] : rows[1], cols[0] : cols[1]]

    def write(self, rows: Span, cols: Span, region: torch.Tensor) -> None:
        target = self.out[:, :, rows[0] : rows[1], cols[0] : cols[1]]
        if region.data_ptr() != target.data_ptr():
            target.copy_(region)


class ArraySource:
    """Float32 regions of an ``H x W x 3`` uint8/uint16 (or float) RGB numpy image.

    The conversion is the one of ``lptn.data.image_io.to_float`` (division by 255 or 65535),
    done per region, so the whole image never exists as float32.
    """

    def __init__(self, img: np.ndarray, device: torch.device | str = "cpu") -> None:
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 image array, got shape {img.shape}")
        if img.dtype not in _INT_MAX and not np.issubdtype(img.dtype, np.floating):
            raise TypeError(f"unsupported image dtype {img.dtype}; expected uint8, uint16 or float")
        self.img = img
        self.batch, self.channels = 1, 3
        self.height, self.width = img.shape[:2]
        self.device, self.dtype = torch.device(device), torch.float32

    def read(self, rows: Span, cols: Span) -> torch.Tensor:
        part = self.img[rows[0] : rows[1], cols[0] : cols[1]]
        if part.dtype in _INT_MAX:
            arr = part.astype(np.float32)
            arr /= np.float32(_INT_MAX[part.dtype])
        else:
            arr = part.astype(np.float32)
        chw = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return chw.unsqueeze(0).to(self.device)


class ArraySink:
    """Writes float regions into an ``H x W x 3`` uint8/uint16 numpy image.

    Same rounding as ``lptn.data.image_io.tensor_to_image``: clamp to [0, 1], multiply by the
    maximum value, round half to even.
    """

    def __init__(self, height: int, width: int, dtype: np.dtype | type = np.uint8) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in _INT_MAX:
            raise TypeError(f"output dtype must be uint8 or uint16, got {self.dtype}")
        self.out = np.empty((height, width, 3), dtype=self.dtype)
        self._scale = np.float32(_INT_MAX[self.dtype])

    def view(self, rows: Span, cols: Span) -> Optional[torch.Tensor]:
        return None  # regions are converted to integers on writing

    def write(self, rows: Span, cols: Span, region: torch.Tensor) -> None:
        arr = region[0].detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).numpy()
        self.out[rows[0] : rows[1], cols[0] : cols[1]] = np.round(arr * self._scale)


def default_memory_budget_mb(device: torch.device) -> float:
    """Working-memory budget when none is given: 768 MB on the CPU; 4 GB on accelerators."""
    return 768.0 if device.type == "cpu" else 4096.0
