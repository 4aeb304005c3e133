"""What this CPU can compute, and how much LPTN asks of it, for bench_inference.py --floor.

The rate is a large square GEMM (torch.matmul, the kernels convolutions reduce to) in fp32 and
bf16 at the benchmark's thread count. LPTN's work is counted from the loaded network: the 3x3
convs of ``trans_low`` at 1/2^L, those of the mask network at 1/2^(L-1), the 1x1 mask blocks at
every level, and the pyramid's 5x5 binomial filters (counted as dense 5x5 depthwise MACs).
"""

from __future__ import annotations

import time
from typing import Dict, Tuple

import torch
from torch import nn


def gemm_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Measured GFLOP/s (2 flops per multiply-add) of a size x size x size matmul."""
    a = torch.rand(size, size).to(dtype)
    b = torch.rand(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _conv_macs_per_pixel(stack: nn.Module) -> int:
    return sum(
        m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        for m in stack.modules()
        if isinstance(m, nn.Conv2d)
    )


def lptn_macs(net: nn.Module, height: int, width: int) -> Dict[str, float]:
    """Multiply-adds of one LPTN forward pass at (height, width), by part."""
    levels = net.num_high
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))

    def pixels(j: int) -> int:
        return sizes[j][0] * sizes[j][1]

    blocks = sum(
        _conv_macs_per_pixel(net.trans_high.mask_block(i)) * pixels(levels - 1 - i)
        for i in range(levels)
    )
    # down: a 5x5 filter per output pixel; up: the same at the finer size (zeros included);
    # three channels, once for the decomposition and once for the reconstruction.
    pyramid = sum(3 * 25 * (pixels(j + 1) + 2 * pixels(j)) for j in range(levels))
    return {
        "trans_low": float(_conv_macs_per_pixel(net.trans_low.model) * pixels(levels)),
        "mask_net": float(_conv_macs_per_pixel(net.trans_high.model) * pixels(levels - 1)),
        "mask_blocks": float(blocks),
        "pyramid": float(pyramid),
    }


def floor_seconds(macs: float, gflops: float) -> float:
    """Seconds ``macs`` multiply-adds take at ``gflops`` GFLOP/s."""
    return 2 * macs / (gflops * 1e9)


def machine_rates() -> Tuple[float, float]:
    """(fp32, bf16) GEMM GFLOP/s at the current thread count; bf16 on a smaller GEMM, since
    CPUs without native bfloat16 emulate it (slowly)."""
    return gemm_gflops(torch.float32), gemm_gflops(torch.bfloat16, size=1024, repeats=2)
