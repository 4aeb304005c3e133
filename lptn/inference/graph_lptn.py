"""The whole-image graph path: the fast path's maths as plain tensor operators.

:class:`GraphLPTN` computes what ``LPTN`` / ``LPTNPaper`` compute, on the whole image at once,
with operators that compilers and exporters understand and with no size frozen in:

- down: reflect padding, then the separable 5-tap binomial filter as two strided depthwise
  convs (only the kept rows/columns are computed);
- up: border extension, one depthwise 3x3 conv giving the four polyphase outputs, and
  ``pixel_shuffle`` to interleave them (no multiplications by inserted zeros);
- nearest resizing: PyTorch's float32 index formula
  ``min(floor(float32(i) * (float32(in) / float32(out))), in - 1)`` and ``index_select``, so
  odd and very large sizes map exactly as in ``F.interpolate``;
- the conv stacks (``trans_low``, the mask network) are the network's own layers, optionally
  under autocast (bf16 / fp16) and in channels_last; the pyramid stays float32.

It is the path for ``torch.compile`` (``inference.path: graph`` with ``inference.compile``; on
CUDA ``compile: reduce-overhead`` replays CUDA graphs), and the model that ``lptn-export``
writes (ONNX, TorchScript, ``torch.export``). Unlike :class:`~lptn.inference.FastLPTN` it has
no memory plan: the whole image and its 16-channel maps are in memory at once.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, List, Optional, Union, cast

import torch
import torch.nn.functional as F
from torch import nn

from lptn.archs.fast_pyramid import nearest_index_formula
from lptn.archs.laplacian_pyramid import check_input_size
from lptn.archs.lptn_arch import LPTNPaper
from lptn.inference.fast_lptn import check_wrapped, mask_block_weights
from lptn.platform.compilation import COMPILE_MODES, CUDAGRAPH_MODES
from lptn.platform.runtime import DEFAULT_PRECISION, PRECISIONS

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)

# A size is a Python int (SymInt under torch.compile / torch.export) or, for the TorchScript
# ONNX exporter, a 0-d int64 tensor: tracing keeps tensor sizes symbolic but freezes ints.
Size = Union[int, torch.Tensor]


def _dim(x: torch.Tensor, dim: int, traced: bool) -> Size:
    return torch._shape_as_tensor(x)[dim] if traced else x.shape[dim]


def nearest_table(in_size: Size, out_size: Size, device: torch.device) -> torch.Tensor:
    """Source index of each output position of a nearest resize ``in_size -> out_size``.

    The scale is computed in float32 as ``F.interpolate`` does, so the table equals
    PyTorch's own at every size (a float64 scale differs above about 4096 px).
    """
    # Both sizes are of one kind: _dim gives tensors for both when tracing, else ints.
    if isinstance(in_size, torch.Tensor):
        out_t = cast(torch.Tensor, out_size)
        scale = in_size.to(torch.float32) / out_t.to(torch.float32)
        index = torch.arange(out_t, dtype=torch.float32) * scale  # type: ignore[call-overload]
        return torch.minimum(index.floor().to(torch.int64), in_size - 1).to(device)
    return nearest_index_formula(in_size, cast(int, out_size), device)


def resize_nearest(
    x: torch.Tensor, height: Size, width: Size, traced: bool = False
) -> torch.Tensor:
    """``F.interpolate(x, size=(height, width))`` (mode nearest), exactly; (N, C, h, w) ->
    (N, C, height, width)."""
    x = x.index_select(2, nearest_table(_dim(x, 2, traced), height, x.device))
    return x.index_select(3, nearest_table(_dim(x, 3, traced), width, x.device))


def _mask_block_unrolled(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` (conv1x1 C->K, leaky ReLU, conv1x1 K->C) as per-pixel arithmetic.

    Written out as K broadcast multiply-adds so a compiler fuses the block into one pass over
    the image and the K-channel map is never stored; eager execution would be slow.
    """
    w1, b1, w2, b2, slope = mask_block_weights(block)  # w1 (K, C), w2 (C, K)
    out = b2.view(1, -1, 1, 1)
    for k in range(w1.shape[0]):
        hidden = F.leaky_relu((x * w1[k].view(1, -1, 1, 1)).sum(1, keepdim=True) + b1[k], slope)
        out = out + hidden * w2[:, k].view(1, -1, 1, 1)
    return out


class GraphLPTN(nn.Module):
    """Whole-image, compiler- and exporter-friendly equivalent of ``LPTN`` / ``LPTNPaper``.

    Args:
        net: the generator; its parameters are shared, not copied.
        precision: ``fp32`` (default), ``bf16`` or ``fp16`` for the two conv stacks (autocast
            on the input's device); the pyramid and the mask blocks stay float32.
        channels_last: feed the conv stacks channels_last tensors (cuDNN / oneDNN prefer it
            in reduced precision).
        compile_mode: None (eager), or a ``torch.compile`` mode (see :data:`COMPILE_MODES`);
            the mask blocks are then written as fusible per-pixel arithmetic.
        traced_sizes: sizes as 0-d tensors, for the TorchScript tracer (ONNX export).

    Shape: (N, 3, H, W) float32 in [0, 1] -> (N, 3, H, W) float32, H, W >= 2**num_high + 1.
    """

    # Buffers registered in __init__ (declared so that they type as tensors).
    down_v: torch.Tensor
    down_h: torch.Tensor
    up_w: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        *,
        precision: str = DEFAULT_PRECISION,
        channels_last: bool = False,
        compile_mode: Optional[str] = None,
        traced_sizes: bool = False,
    ) -> None:
        super().__init__()
        lptn = check_wrapped(self, net, precision)
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"compile mode: expected one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}"
            )
        self.net = lptn
        self.paper = isinstance(lptn, LPTNPaper)
        self.num_high = lptn.num_high
        self.precision = precision
        self.channels_last = channels_last
        self.traced_sizes = traced_sizes
        self.unrolled_mask_blocks = compile_mode is not None
        self.compile_mode = compile_mode
        b = torch.tensor(_BINOMIAL) / 16.0
        self.register_buffer("down_v", b.view(1, 1, 5, 1).repeat(3, 1, 1, 1), persistent=False)
        self.register_buffer("down_h", b.view(1, 1, 1, 5).repeat(3, 1, 1, 1), persistent=False)
        # Polyphase taps at offsets (-1, 0, +1): even outputs (1, 6, 1) / 8, odd (0, 4, 4) / 8.
        taps = torch.tensor([[1.0, 6.0, 1.0], [0.0, 4.0, 4.0]]) / 8.0
        phases = torch.stack([torch.outer(taps[p], taps[q]) for p in (0, 1) for q in (0, 1)])
        self.register_buffer("up_w", phases.view(4, 1, 3, 3).repeat(3, 1, 1, 1), persistent=False)
        self._run = (
            self._forward
            if compile_mode is None
            else torch.compile(self._forward, mode=compile_mode)
        )

    # ----------------------------------------------------------------------------- pyramid
    def _down(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        x = F.conv2d(x, self.down_v, stride=(2, 1), groups=3)
        return F.conv2d(x, self.down_h, stride=(1, 2), groups=3)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        # Border rule of the zero-inserted map's reflect padding: x[-1] = x[1], x[n] = x[n-1].
        x = torch.cat([x[:, :, 1:2], x, x[:, :, -1:]], 2)
        x = torch.cat([x[:, :, :, 1:2], x, x[:, :, :, -1:]], 3)
        return F.pixel_shuffle(F.conv2d(x, self.up_w, groups=3), 2)

    def _resize_like(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        t = self.traced_sizes
        return resize_nearest(x, _dim(like, 2, t), _dim(like, 3, t), t)

    # ------------------------------------------------------------------------- conv stacks
    def _reduced_precision(self, device: torch.device) -> ContextManager[Any]:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def _conv_stack(self, stack: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._reduced_precision(x.device):
            out = stack(x)
        return out.float().contiguous()

    def _mask_block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        block = self.net.trans_high.mask_block(i)
        return _mask_block_unrolled(block, x) if self.unrolled_mask_blocks else block(x)

    # ----------------------------------------------------------------------------- forward
    def _forward(self, img: torch.Tensor) -> torch.Tensor:
        net = self.net
        levels: List[torch.Tensor] = [img]
        for _ in range(self.num_high):
            levels.append(self._down(levels[-1]))
        bands = [
            levels[j] - self._resize_like(self._up(levels[j + 1]), levels[j])
            for j in range(self.num_high)
        ]
        low = levels[-1]
        fake_low = self._conv_stack(net.trans_low, low)
        coarse = bands[-1]
        mask = self._conv_stack(
            net.trans_high.model,
            torch.cat(
                [coarse, self._resize_like(low, coarse), self._resize_like(fake_low, coarse)], 1
            ),
        )
        out = fake_low
        for i in range(self.num_high):
            band = bands[-1 - i]
            mask = self._resize_like(mask, band)
            if self.paper:
                mask = self._mask_block(i, mask)
                new_band = band * mask
            else:
                new_band = self._mask_block(i, band * mask + band)
            out = self._resize_like(self._up(out), band) + new_band
        return out

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 -> (N, 3, H, W) float32 (not clamped)."""
        check_input_size(img.shape[-2], img.shape[-1], self.num_high)
        if self.compile_mode in CUDAGRAPH_MODES and img.device.type == "cuda":
            # A replayed CUDA graph writes its output into the same buffer every call: mark
            # the call as a new step and hand out a copy the next call cannot overwrite.
            torch.compiler.cudagraph_mark_step_begin()
            return self._run(img).clone()
        return self._run(img)

    def working_memory_mb(self, height: int, width: int, batch: int = 1) -> float:
        """Rough working memory (MB) of one forward call besides input and output, from
        measured peaks: about 250 bytes per pixel eager (the whole-image 16-channel map of the
        mask blocks) and 120 compiled (fused mask blocks), float32."""
        per_pixel = 120.0 if self.unrolled_mask_blocks else 250.0
        return batch * height * width * per_pixel / 2**20
