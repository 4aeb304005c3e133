"""Temporal smoothing of LPTN's low-frequency translation, against colour pumping in video.

LPTN's low-frequency branch (``trans_low``) normalises its first feature map with an
InstanceNorm: per frame and channel, mean and variance over the whole (1/2^L resolution)
image. When something enters the frame, those statistics move, and with them the colours of
the whole frame: the output pumps while the input does not.

:class:`SmoothedFastLPTN` is the fast path (:class:`~lptn.inference.fast_lptn.FastLPTN`, the
default for photos too) with that one step changed: the statistics are an exponential moving
average over time, ``s += (1 - exp(-dt / tau)) * (s_frame - s)`` with ``dt`` the time between
frames (so variable frame rates are handled), reset on the first frame and at scene cuts. The
rest of the network, including the full-resolution work region by region, is unchanged, so
4K/8K frames stay within the fast path's memory budget; the statistics are 2 x 16 numbers per
frame. Smoothing the statistics rather than the translated low band itself does not smear
moving content across frames (the band still follows each frame's pixels); only the global
colour mapping is slowed down.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import nn

from lptn.inference.conv_stacks import ConvStack
from lptn.inference.fast_lptn import FastLPTN

# A scene cut: the frame's feature means moved by more than this many (smoothed) standard
# deviations on average, or a variance changed by more than this factor. Far above the
# frame-to-frame drift that causes pumping (a few hundredths of a deviation).
CUT_MEAN_DEVIATIONS = 0.75
CUT_VARIANCE_FACTOR = 2.0


class StatisticsSmoother:
    """Exponential moving average of per-channel InstanceNorm statistics over frames.

    Args:
        tau: time constant in seconds (> 0).
        eps: the InstanceNorm's epsilon.
    """

    def __init__(self, tau: float, eps: float = 1e-5) -> None:
        if not tau > 0:
            raise ValueError(f"temporal smoothing time constant must be > 0 s, got {tau}")
        self.tau = float(tau)
        self.eps = eps
        self.mean: Optional[torch.Tensor] = None  # (C,) float32
        self.var: Optional[torch.Tensor] = None
        self.last_time: Optional[float] = None
        self.cuts = 0

    def reset(self) -> None:
        self.mean = self.var = None
        self.last_time = None

    def _is_cut(self, mean: torch.Tensor, var: torch.Tensor) -> bool:
        assert self.mean is not None and self.var is not None
        shift = ((mean - self.mean).abs() / (self.var + self.eps).sqrt()).mean()
        ratio = (var + self.eps) / (self.var + self.eps)
        return bool(
            shift > CUT_MEAN_DEVIATIONS
            or (ratio.max() > CUT_VARIANCE_FACTOR)
            or (ratio.min() < 1 / CUT_VARIANCE_FACTOR)
        )

    def normalise(self, feat: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
        """InstanceNorm of (N, C, h, w) ``feat`` (frames in time order, ``times`` in
        seconds) with the smoothed statistics; float32 statistics, output in feat's dtype."""
        if len(times) != feat.shape[0]:
            raise ValueError(f"{feat.shape[0]} frames but {len(times)} frame times")
        x = feat.float()
        var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False)  # (N, C)
        used_mean, used_var = [], []
        for i, t in enumerate(times):
            m, v = mean[i], var[i]
            if self.mean is None or self.last_time is None or self._is_cut(m, v):
                if self.mean is not None:
                    self.cuts += 1
                self.mean, self.var = m.clone(), v.clone()
            else:
                dt = max(0.0, t - self.last_time)
                alpha = 1.0 - math.exp(-dt / self.tau)
                assert self.var is not None
                self.mean = self.mean + alpha * (m - self.mean)
                self.var = self.var + alpha * (v - self.var)
            self.last_time = t
            used_mean.append(self.mean)
            used_var.append(self.var)
        m_all = torch.stack(used_mean)[:, :, None, None]
        v_all = torch.stack(used_var)[:, :, None, None]
        y = (x - m_all) * torch.rsqrt(v_all + self.eps)
        fmt = (
            torch.channels_last
            if feat.is_contiguous(memory_format=torch.channels_last) and not feat.is_contiguous()
            else torch.contiguous_format
        )
        return y.to(feat.dtype).contiguous(memory_format=fmt)


def _split_at_norm(stack: nn.Sequential) -> tuple[nn.Sequential, nn.InstanceNorm2d, nn.Sequential]:
    layers = list(stack)
    norms = [i for i, m in enumerate(layers) if isinstance(m, nn.InstanceNorm2d)]
    if len(norms) != 1:
        raise ValueError(f"expected one InstanceNorm2d in trans_low, found {len(norms)}")
    k = norms[0]
    norm = layers[k]
    assert isinstance(norm, nn.InstanceNorm2d)
    # The sub-Sequentials hold the same modules: the parameters stay shared with the network.
    return nn.Sequential(*layers[:k]), norm, nn.Sequential(*layers[k + 1 :])


class SmoothedFastLPTN(FastLPTN):
    """:class:`FastLPTN` whose ``trans_low`` InstanceNorm uses temporally smoothed statistics.

    Call :meth:`set_frame_times` with the batch's frame times (seconds) before each forward
    pass; frames must come in time order, one video per instance (or :meth:`reset` between
    videos). Same arguments as :class:`FastLPTN` plus ``tau`` (seconds).

    Shape: (N, 3, H, W) float, N consecutive frames -> same.
    """

    def __init__(self, net: nn.Module, *, tau: float, **fast_options: object) -> None:
        super().__init__(net, **fast_options)  # type: ignore[arg-type]
        trans_low = getattr(net, "trans_low", None)
        stack = getattr(trans_low, "model", None)
        if not isinstance(stack, nn.Sequential):
            raise TypeError(f"{type(net).__name__} has no trans_low.model to smooth")
        head, norm, tail = _split_at_norm(stack)
        # The backend FastLPTN chose for its own stacks (its default when none was given).
        backend = self.low_stack.backend
        self.low_head = ConvStack(head, backend)
        self.low_tail = ConvStack(tail, backend)
        self.smoother = StatisticsSmoother(tau, eps=float(norm.eps))
        self._times: List[float] = []

    def reset(self) -> None:
        self.smoother.reset()

    def set_frame_times(self, times: Sequence[float]) -> None:
        self._times = [float(t) for t in times]

    def trans_low(self, low: torch.Tensor, strip_rows: Optional[int] = None) -> torch.Tensor:
        if len(self._times) != low.shape[0]:
            raise ValueError(
                f"set_frame_times: {len(self._times)} times given for {low.shape[0]} frames"
            )
        feat = self.low_head(self._conv_input(low))
        normed = self.smoother.normalise(feat, self._times)
        out = self.low_tail(normed, strip_rows=strip_rows)
        return torch.tanh(low + out.to(low.dtype)).contiguous()
