"""The fast inference path: the same output as a loaded ``LPTN`` / ``LPTNPaper``, computed
with less work and bounded memory.

What it changes (never the parameters, which it shares with the wrapped network):

- The pyramid uses separable / polyphase operators (:mod:`lptn.archs.fast_pyramid`).
- Full resolution is processed region by region: each region's band, mask, 1x1 mask block
  (conv 3->16, leaky, 16->3) and reconstruction are computed together, so neither the
  full-resolution band nor the 16-channel map ever exist for the whole image. The
  half-resolution level is either kept whole or recomputed per region (memory plan).
- The conv stacks at 1/2^L (``trans_low``, with its image-wide InstanceNorm, always on the
  whole low-resolution image) and 1/2^(L-1) (mask network, in row strips with a halo equal to
  its number of 3x3 convs) run channels_last and, optionally, in bf16 / fp16.
- ``LPTNPaper``'s mask blocks act on the mask alone; a per-pixel function commutes with nearest
  resizing, so they run at the coarsest mask resolution and are gathered up.

Fidelity: float32 output within about 1e-6 of the exact path; the per-pixel arithmetic does not
depend on the region plan, so tiled and untiled outputs are equal.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Dict, Optional, Tuple, Union, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lptn.archs.fast_pyramid import (
    MapWindow,
    Span,
    down_needs,
    down_region,
    nearest_index,
    resize_nearest_region,
    take_nearest,
    up_resized_needs,
    up_resized_region_unscaled,
)
from lptn.archs.laplacian_pyramid import check_input_size
from lptn.archs.lptn_arch import LPTN, LPTNPaper
from lptn.inference.conv_stacks import ConvStack, native_reduced_precision
from lptn.inference.tiling import (
    ArraySink,
    ArraySource,
    MemoryPlan,
    TensorSink,
    TensorSource,
    default_memory_budget_mb,
    for_each_region,
    level_sizes,
    plan_memory,
    split_span,
    tile_grid,
)
from lptn.platform.logger import get_logger
from lptn.platform.option_schema import INFERENCE
from lptn.platform.runtime import DEFAULT_PRECISION, PRECISIONS

Source = Union[TensorSource, ArraySource]
Sink = Union[TensorSink, ArraySink]


def check_wrapped(wrapper: nn.Module, net: nn.Module, precision: str) -> LPTN:
    """``net``, checked: TypeError unless it is an LPTN / LPTNPaper; ValueError for an unknown
    precision."""
    name = type(wrapper).__name__
    if not isinstance(net, LPTN):
        raise TypeError(f"{name} wraps an LPTN or LPTNPaper, got {type(net).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(
            f"{name} precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return net


# GEMM kernels compute the last, partial block of columns differently (masked or scalar
# loops), so a pixel's result would depend on where its region ends. Padding the pixel count
# to a multiple of this keeps every pixel in a full block: bitwise-equal tiles.
GEMM_COLUMN_BLOCK = 64


def mask_block_weights(
    block: nn.Sequential,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(w1 (K, C), b1 (K,), w2 (C, K), b2 (C,), slope)`` of a mask block (conv1x1 C->K,
    leaky ReLU of that slope, conv1x1 K->C); the tensors are views of the parameters."""
    first = cast(nn.Conv2d, block[0])
    act = cast(nn.LeakyReLU, block[1])
    second = cast(nn.Conv2d, block[2])
    if first.bias is None or second.bias is None:
        raise ValueError("an LPTN mask block's 1x1 convolutions must have biases")
    w1, w2 = first.weight.flatten(1), second.weight.flatten(1)
    return w1, first.bias, w2, second.bias, float(act.negative_slope)


class _MaskBlock:
    """Weights of one ``trans_mask_block_i`` (conv1x1 C->16, leaky, conv1x1 16->C) as matrices."""

    def __init__(self, block: nn.Sequential) -> None:
        self.w1, b1, self.w2, b2, self.slope = mask_block_weights(block)  # w1 (16, C), w2 (C, 16)
        self.b1 = b1.unsqueeze(1)  # (16, 1)
        self.b2 = b2.unsqueeze(1)  # (C, 1)
        self.channels = self.w1.shape[1]

    def input_buffer(self, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """A (N, C, padded pixels) buffer and its (N, C, h, w) view for a region like ``like``.

        Write the block's input into the view, then call :meth:`apply` on the buffer.
        """
        n, c, h, w = like.shape
        pixels = h * w
        padded = -(-pixels // GEMM_COLUMN_BLOCK) * GEMM_COLUMN_BLOCK
        buf = like.new_empty((n, c, padded))
        buf[:, :, pixels:] = 0
        return buf, buf[:, :, :pixels].unflatten(2, (h, w))

    def apply(self, buf: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Per-pixel MLP on a padded (N, C, P) buffer -> (N, C, h, w) view of the result."""
        n, c, padded = buf.shape
        w1, b1, w2, b2 = (t.to(buf.dtype) for t in (self.w1, self.b1, self.w2, self.b2))
        outs = []
        for i in range(n):
            hidden = torch.addmm(b1, w1, buf[i])
            F.leaky_relu(hidden, self.slope, inplace=True)
            outs.append(torch.addmm(b2, w2, hidden))
        out = outs[0].unsqueeze(0) if n == 1 else torch.stack(outs)
        return out[:, :, : h * w].unflatten(2, (h, w))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel MLP on (N, C, h, w)."""
        buf, view = self.input_buffer(x)
        view.copy_(x)
        return self.apply(buf, x.shape[2], x.shape[3])


class FastLPTN(nn.Module):
    """Wraps a loaded :class:`LPTN` / :class:`LPTNPaper`; ``forward`` gives the same output.

    Args:
        net: the generator (its parameters are used as they are, not copied).
        precision: ``fp32`` (default), ``bf16`` or ``fp16`` for the conv stacks at low
            resolution; the pyramid and the full-resolution work stay in the input's dtype.
        channels_last: run the conv stacks in channels_last memory format.
        tile_size: square full-resolution regions of this side (tiled mode); None = full-width
            strips.
        conv_backend: ``auto`` (oneDNN fused convs on the CPU when available), ``generic``,
            ``onednn`` or ``openvino`` (OpenVINO's kernels, the ``openvino`` extra); see
            :mod:`lptn.inference.conv_stacks`.
        workers: CPU threads that process regions concurrently (each with one intra-op
            thread); None = ``torch.get_num_threads()``.
        memory_budget_mb: working memory the plan may use besides input and output; None = a
            device default (768 MB on the CPU).

    Shape: (N, 3, H, W) float -> (N, 3, H, W) of the same dtype, H, W >= 2**num_high + 1.

    Examples:
        >>> import numpy as np, torch
        >>> from lptn.inference.generator_weights import load_generator
        >>> net = load_generator()
        >>> fast = FastLPTN(net)
        >>> x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
        >>> with torch.no_grad():  # region by region, the network's output to float32 rounding
        ...     torch.allclose(fast(x), net(x), atol=1e-4)
        True
        >>> photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        >>> out = fast.enhance_array(photo)  # HxWx3 uint8 in, the same out
        >>> out.shape, out.dtype
        ((48, 64, 3), dtype('uint8'))
        >>> with torch.no_grad():  # the whole image through the network, in float32
        ...     ref = net(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)
        >>> ref = (ref[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        >>> int(np.abs(out.astype(int) - ref).max()) <= 1  # off by one level at most
        True
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        precision: str = DEFAULT_PRECISION,
        channels_last: bool = INFERENCE.keys["channels_last"].default,
        tile_size: Optional[int] = None,
        memory_budget_mb: Optional[float] = None,
        conv_backend: str = INFERENCE.keys["conv_backend"].default,
        workers: Optional[int] = None,
    ) -> None:
        super().__init__()
        lptn = check_wrapped(self, net, precision)
        if tile_size is not None and tile_size < 1:
            raise ValueError(f"tile_size must be a positive number of pixels, got {tile_size}")
        if memory_budget_mb is not None and memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        self.net = lptn
        self.precision = precision
        self.channels_last = channels_last
        self.tile_size = tile_size
        self.memory_budget_mb = memory_budget_mb
        self.workers = workers
        self.paper = isinstance(lptn, LPTNPaper)
        self.num_high = lptn.num_high
        self.low_stack = ConvStack(lptn.trans_low.model, conv_backend)
        self.mask_stack = ConvStack(lptn.trans_high.model, conv_backend)
        self.mask_halo = self.mask_stack.num_3x3_convs
        self._warned_precision = False

    # ------------------------------------------------------------------------------------------
    # public entry points
    # ------------------------------------------------------------------------------------------
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(img, memory_format=torch.contiguous_format)
        self.run(TensorSource(img), TensorSink(out))
        return out

    def enhance_array(self, img: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
        """``H x W x 3`` uint8/uint16 RGB -> enhanced array of the same dtype, region by region
        (a float image in [0, 1] gives uint8).

        Equal to converting the whole image to float32, running the network and rounding, but
        the float32 image and output never exist whole.
        """
        sink = ArraySink(
            img.shape[0],
            img.shape[1],
            img.dtype if img.dtype in (np.uint8, np.uint16) else np.uint8,
        )
        self.run(ArraySource(img, device), sink)
        return sink.out

    def plan(
        self, batch: int, height: int, width: int, device: torch.device | str = "cpu"
    ) -> MemoryPlan:
        """The memory plan this module uses for an input of that size."""
        device = torch.device(device)
        budget = self.memory_budget_mb or default_memory_budget_mb(device)
        # OpenVINO's maps are float32 whatever the hint, unless the CPU has native bfloat16.
        reduced = self.precision != "fp32" and not self.mask_stack.uses_openvino(device)
        conv_bytes = 2 if reduced else 4
        # CPUs: cache-sized regions; accelerators: few large regions (launch overhead).
        block = 1 << 17 if device.type == "cpu" else None
        return plan_memory(
            batch,
            height,
            width,
            self.num_high,
            budget_mb=budget,
            tile_size=self.tile_size,
            conv_bytes=conv_bytes,
            block_pixels=block,
            mask_halo=self.mask_halo,
            low_halo=self.low_stack.strip_halo,
        )

    @torch.no_grad()
    def run(self, source: Source, sink: Sink) -> None:
        """Read ``source`` and write the enhanced image into ``sink``, region by region."""
        self._warn_emulated_precision(source.device)
        with _no_autocast(source.device):
            _Pass(self, source).run(sink)

    def _warn_emulated_precision(self, device: torch.device) -> None:
        dtype = PRECISIONS[self.precision]
        if (
            self._warned_precision
            or dtype is None
            or device.type != "cpu"
            or self.mask_stack.uses_openvino(device)
            or native_reduced_precision(dtype)
        ):
            return
        self._warned_precision = True
        get_logger().warning(
            "precision %s: this CPU has no native %s convolutions, so PyTorch emulates them "
            "(several times slower than fp32); use fp32, or conv_backend openvino (the "
            "openvino extra), which keeps float32 where the CPU lacks the type",
            self.precision,
            dtype,
        )

    # ------------------------------------------------------------------------------------------
    # conv stacks
    # ------------------------------------------------------------------------------------------
    def _conv_dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision] or next(self.net.parameters()).dtype

    def _conv_input(self, x: torch.Tensor) -> torch.Tensor:
        # The stack casts to the conv dtype (or hands the precision to OpenVINO as a hint).
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def trans_low(self, low: torch.Tensor, strip_rows: Optional[int] = None) -> torch.Tensor:
        """``fake_low = tanh(low + model(low))`` on the whole low-resolution (N, 3, h, w) image
        (after its InstanceNorm, in strips of ``strip_rows`` rows when given)."""
        out = self.low_stack(self._conv_input(low), self._conv_dtype(), strip_rows=strip_rows)
        return torch.tanh(low + out.to(low.dtype)).contiguous()

    def mask_net(self, x: torch.Tensor) -> torch.Tensor:
        """``trans_high.model`` on (N, 9, h, w) -> (N, C_m, h, w) in the input's dtype."""
        return self.mask_stack(self._conv_input(x), self._conv_dtype()).to(x.dtype).contiguous()

    def mask_block(self, i: int) -> _MaskBlock:
        return _MaskBlock(self.net.trans_high.mask_block(i))


def _no_autocast(device: torch.device) -> ContextManager[Any]:
    # The full-resolution work must stay in float32 even inside a caller's autocast region.
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


class _Pass:
    """State of one forward pass: the stored pyramid levels, mask and index tables."""

    def __init__(self, fast: FastLPTN, source: Source) -> None:
        self.fast = fast
        self.source = source
        self.device = source.device
        self.L = fast.num_high
        check_input_size(source.height, source.width, self.L)
        self.sizes = level_sizes(source.height, source.width, self.L)
        self.plan = fast.plan(source.batch, source.height, source.width, source.device)
        self.blocks = [fast.mask_block(i) for i in range(self.L)]
        # d[j]: downsampled image at level j (j >= 1). stored[j]: the 6-channel map
        # [rec_j, d_j] of a level kept whole (level L, levels >= 2, level 1 when the plan
        # allows); the other levels are recomputed per region.
        self.d: Dict[int, torch.Tensor] = {}
        self.stored: Dict[int, torch.Tensor] = {}
        self.first_stored = 1 if self.plan.store_level1 else 2
        # mask_maps[j]: map whose nearest resize is level j's mask (all at level L-1 size);
        # mask_index[j]: (row, column) tables from level j to it.
        self.mask_maps: Dict[int, torch.Tensor] = {}
        self.mask_index: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------------------------------
    def run(self, sink: Sink) -> None:
        L = self.L
        self._build_downsampled()
        fake_low = self.fast.trans_low(self.d[L], self.plan.low_rows)
        self._store_level(L, fake_low)
        self._build_mask(fake_low)
        for j in range(L - 1, 0, -1):
            if j >= self.first_stored:
                self._compute_stored_level(j)
        h0, w0 = self.sizes[0]

        def output_region(region: Tuple[Span, Span]) -> None:
            rows, cols = region
            sink.write(rows, cols, self._rec_region(0, rows, cols, sink.view(rows, cols)))

        for_each_region(
            output_region, tile_grid(h0, w0, *self.plan.tile), self.device, self.fast.workers
        )

    # ------------------------------------------------------------------------------------------
    # pyramid levels
    # ------------------------------------------------------------------------------------------
    def _build_downsampled(self) -> None:
        src = self.source
        n = src.batch
        for j in range(1, self.L + 1):
            h, w = self.sizes[j]
            ph, pw = self.sizes[j - 1]
            if j >= self.first_stored or j == self.L:
                buf = torch.empty((n, 6, h, w), dtype=src.dtype, device=src.device)
                self.stored[j] = buf
                out = buf[:, 3:6]
            else:
                out = torch.empty((n, 3, h, w), dtype=src.dtype, device=src.device)
            strip = max(1, self.plan.stream_pixels // max(pw, 1))

            def down_strip(rows: Span, j: int = j, out: torch.Tensor = out) -> None:
                ph, pw = self.sizes[j - 1]
                need = down_needs(rows, ph)
                if j == 1:
                    window = src.read(need, (0, pw))
                else:
                    window = self.d[j - 1][:, :, need[0] : need[1]]
                down_region(
                    MapWindow(window, need[0], 0, ph, pw),
                    rows,
                    (0, out.shape[3]),
                    out=out[:, :, rows[0] : rows[1]],
                )

            for_each_region(down_strip, split_span(h, strip), self.device, self.fast.workers)
            self.d[j] = out

    def _store_level(self, j: int, rec: torch.Tensor) -> None:
        self.stored[j][:, 0:3] = rec

    def _compute_stored_level(self, j: int) -> None:
        h, w = self.sizes[j]
        strip = max(1, self.plan.stream_pixels // max(w, 1))
        buf = self.stored[j]

        def level_strip(rows: Span) -> None:
            self._rec_region(j, rows, (0, w), out=buf[:, 0:3, rows[0] : rows[1]])

        for_each_region(level_strip, split_span(h, strip), self.device, self.fast.workers)

    def _d_region(self, j: int, rows: Span, cols: Span) -> torch.Tensor:
        if j == 0:
            return self.source.read(rows, cols)
        return self.d[j][:, :, rows[0] : rows[1], cols[0] : cols[1]]

    def _pair_window(self, j: int, rows: Span, cols: Span) -> MapWindow:
        """[rec_j, d_j] (6 channels) over at least ``rows x cols`` of level j, as a window."""
        h, w = self.sizes[j]
        if j in self.stored:
            return MapWindow(self.stored[j], 0, 0, h, w)
        rec = self._rec_region(j, rows, cols)
        pair = torch.cat([rec, self._d_region(j, rows, cols)], 1)
        return MapWindow(pair, rows[0], cols[0], h, w)

    def _band_region(self, j: int, rows: Span, cols: Span) -> torch.Tensor:
        """band_j over a region: d_j - resize(up(d_{j+1}))."""
        size = self.sizes[j]
        up = up_resized_region_unscaled(self.d[j + 1], size, rows, cols)
        return torch.add(self._d_region(j, rows, cols), up, alpha=-1.0 / 64.0)

    def _rec_region(
        self, j: int, rows: Span, cols: Span, out: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Reconstruction at level j (< L) over a region: resize(up(rec_{j+1})) + new band_j.

        ``out``, when given, receives the result (a region of the output or a stored level).
        """
        size = self.sizes[j]
        hn, wn = self.sizes[j + 1]
        need_r = up_resized_needs(rows, hn, size[0])
        need_c = up_resized_needs(cols, wn, size[1])
        pair = self._pair_window(j + 1, need_r, need_c)
        up = up_resized_region_unscaled(pair, size, rows, cols)  # 6 channels, x64
        band = torch.add(self._d_region(j, rows, cols), up[:, 3:6], alpha=-1.0 / 64.0)
        mask = self._mask_region(j, rows, cols)
        i = self.L - 1 - j
        if self.fast.paper:
            new_band = band.mul_(mask)
        else:
            block = self.blocks[i]
            buf, view = block.input_buffer(band)
            torch.addcmul(band, band, mask, out=view)
            new_band = block.apply(buf, band.shape[2], band.shape[3])
        return torch.add(new_band, up[:, 0:3], alpha=1.0 / 64.0, out=out)

    # ------------------------------------------------------------------------------------------
    # mask
    # ------------------------------------------------------------------------------------------
    def _build_mask(self, fake_low: torch.Tensor) -> None:
        L, k = self.L, self.L - 1
        h, w = self.sizes[k]
        halo = self.fast.mask_halo
        low = self.d[L]
        mask = None
        for rows in split_span(h, self.plan.mask_rows):
            lo, hi = max(0, rows[0] - halo), min(h, rows[1] + halo)
            full_cols = (0, w)
            net_in = torch.cat(
                [
                    self._band_region(k, (lo, hi), full_cols),
                    resize_nearest_region(low, (h, w), (lo, hi), full_cols),
                    resize_nearest_region(fake_low, (h, w), (lo, hi), full_cols),
                ],
                1,
            )
            part = self.fast.mask_net(net_in)[:, :, rows[0] - lo : rows[1] - lo]
            if mask is None:
                mask = part.new_empty((part.shape[0], part.shape[1], h, w))
            mask[:, :, rows[0] : rows[1]] = part
        assert mask is not None
        if self.fast.paper:
            # block_i after nearest resizing == nearest resizing after block_i (per pixel), so
            # the carried masks are the blocks applied in turn at this resolution.
            carried = {}
            current = mask
            for i in range(self.L):
                current = self.blocks[i](current)
                carried[k - i] = current
            self.mask_maps = carried
        else:
            self.mask_maps = {j: mask for j in range(self.L)}
        # index tables from level j to the mask resolution (nearest resizes chained)
        for j in range(k, -1, -1):
            if j == k:
                ri = torch.arange(self.sizes[k][0])
                ci = torch.arange(self.sizes[k][1])
            else:
                prev_r, prev_c = self.mask_index[j + 1]
                ri = prev_r[nearest_index(self.sizes[j + 1][0], self.sizes[j][0])]
                ci = prev_c[nearest_index(self.sizes[j + 1][1], self.sizes[j][1])]
            self.mask_index[j] = (ri, ci)

    def _mask_region(self, j: int, rows: Span, cols: Span) -> torch.Tensor:
        ri, ci = self.mask_index[j]
        return take_nearest(
            self.mask_maps[j], ri[rows[0] : rows[1]], ci[cols[0] : cols[1]], rows[0], cols[0]
        )
