"""Run LPTN's conv stacks (``trans_low.model``, ``trans_high.model``) with fewer memory passes.

The stacks are ``nn.Sequential`` of Conv2d (3x3, padding 1), LeakyReLU, InstanceNorm2d and
ResidualBlock. :class:`ConvStack` reads that structure once and executes it with

- ``generic`` (any device): ``F.conv2d`` with in-place LeakyReLU and in-place residual adds,
  so no activation map is allocated twice;
- ``onednn`` (CPU only): oneDNN convolutions with the LeakyReLU fused in and the
  residual add fused into the second conv of each block, through
  ``torch.ops.mkldnn._convolution_pointwise``;
- ``openvino`` (CPU only, the optional ``openvino`` package): the norm-free segments compiled
  by OpenVINO (:mod:`lptn.inference.openvino_stack`).

``auto`` takes ``onednn`` on the CPU when PyTorch has the operator, else ``generic``; a
failure of an automatic choice falls back to ``generic``. ``openvino`` is opt-in: measured
against ``onednn`` (docs/PERFORMANCE.md) it was 0-30 % faster at 4K and equal at 1080p, but its
kept activation buffers raised a 100-megapixel run above the 2 GB the oneDNN path stays under.
``generic`` and ``onednn`` give the module's own result (bitwise in float32 on the CPU used
for the tests), ``openvino`` the same to float32 rounding (about 1e-6). The parameters are read
from the module at every call, so they stay shared with the network; for reduced precision a
converted copy (OpenVINO: a compiled model) is cached and refreshed when a parameter changes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from lptn.archs.lptn_arch import ResidualBlock
from lptn.inference.openvino_stack import MISSING_OPENVINO, OpenVinoSegment, openvino_available
from lptn.platform.option_schema import CONV_BACKENDS

BACKENDS = CONV_BACKENDS


def onednn_available() -> bool:
    """True when PyTorch was built with oneDNN's fused pointwise convolution operator."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return (
            ops is not None
            and torch.backends.mkldnn.is_available()
            and hasattr(ops, "_convolution_pointwise")
            and hasattr(ops, "_convolution_pointwise_")
        )
    except (AttributeError, RuntimeError):
        return False


def native_reduced_precision(dtype: torch.dtype) -> bool:
    """Whether oneDNN has native CPU kernels for ``dtype`` (bfloat16: AVX512_BF16 or AMX;
    float16: AVX512_FP16 or AMX-FP16). Without them PyTorch emulates it, several times slower
    than float32 (measured 9x for bf16 on an AVX2-only EPYC, docs/PERFORMANCE.md)."""
    check = {
        torch.bfloat16: "_is_mkldnn_bf16_supported",
        torch.float16: "_is_mkldnn_fp16_supported",
    }.get(dtype)
    if check is None:
        return True
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        return False


Step = Tuple[Any, ...]


def _check_conv(conv: nn.Module, where: str) -> nn.Conv2d:
    """``conv`` if it is a 3x3 convolution with bias, stride 1 and padding 1; else ValueError."""
    if (
        not isinstance(conv, nn.Conv2d)
        or conv.kernel_size != (3, 3)
        or conv.stride != (1, 1)
        or conv.padding != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.bias is None
    ):
        raise ValueError(f"{where}: ConvStack expects 3x3 convs with bias, stride 1, padding 1")
    return conv


def _conv_params(conv: nn.Conv2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a convolution :func:`_check_conv` accepted (it has a bias)."""
    assert conv.bias is not None
    return conv.weight, conv.bias


def compile_steps(stack: nn.Sequential) -> List[Step]:
    """Flatten a conv stack into steps: ('conv', conv, leaky_slope or None),
    ('res', conv1, slope, conv2), ('norm', eps), ('leaky', slope)."""
    layers = list(stack)
    steps: List[Step] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Conv2d):
            _check_conv(layer, f"layer {i}")
            if isinstance(nxt, nn.LeakyReLU):
                steps.append(("conv", layer, float(nxt.negative_slope)))
                i += 2
                continue
            steps.append(("conv", layer, None))
        elif isinstance(layer, ResidualBlock):
            c1 = _check_conv(layer.block[0], f"layer {i}.block.0")
            c2 = _check_conv(layer.block[2], f"layer {i}.block.2")
            act = cast(nn.LeakyReLU, layer.block[1])
            steps.append(("res", c1, float(act.negative_slope), c2))
        elif isinstance(layer, nn.InstanceNorm2d):
            if layer.affine or layer.track_running_stats:
                raise ValueError(f"layer {i}: only affine=False InstanceNorm2d is supported")
            steps.append(("norm", float(layer.eps)))
        elif isinstance(layer, nn.LeakyReLU):
            steps.append(("leaky", float(layer.negative_slope)))
        else:
            raise ValueError(f"layer {i}: unsupported layer {type(layer).__name__} in a conv stack")
        i += 1
    return steps


class ConvStack:
    """Executes one ``nn.Sequential`` conv stack; see the module docstring.

    Args:
        stack: the Sequential (parameters are read from it, not copied, in float32).
        backend: ``auto`` (oneDNN on the CPU when available), ``generic`` or ``onednn``.
    """

    def __init__(self, stack: nn.Sequential, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"conv backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "openvino" and not openvino_available():
            raise ValueError(f"conv backend 'openvino' {MISSING_OPENVINO}")
        self.stack = stack
        self.steps = compile_steps(stack)
        self.backend = backend
        self._cache: Dict[
            torch.dtype, Tuple[Tuple[int, ...], Dict[int, Tuple[torch.Tensor, torch.Tensor]]]
        ] = {}
        self._onednn_failed = False
        self._segments: Dict[Tuple[int, ...], OpenVinoSegment] = {}

    @property
    def num_3x3_convs(self) -> int:
        """Receptive-field radius in pixels (each 3x3 conv adds one)."""
        return sum(2 if s[0] == "res" else 1 for s in self.steps if s[0] in ("conv", "res"))

    def _weights(self, dtype: torch.dtype) -> Dict[int, Tuple[torch.Tensor, torch.Tensor]]:
        convs = [m for m in self.stack.modules() if isinstance(m, nn.Conv2d)]
        params = {id(c): _conv_params(c) for c in convs}
        if convs[0].weight.dtype == dtype:
            return params
        # Reduced precision: a converted copy, refreshed when any parameter changes.
        key = tuple(p._version for pair in params.values() for p in pair) + tuple(
            p.data_ptr() for pair in params.values() for p in pair
        )
        cached = self._cache.get(dtype)
        if cached is None or cached[0] != key:
            cached = (
                key,
                {k: (w.detach().to(dtype), b.detach().to(dtype)) for k, (w, b) in params.items()},
            )
            self._cache[dtype] = cached
        return cached[1]

    def uses_openvino(self, device: torch.device) -> bool:
        """Whether a call on ``device`` runs through OpenVINO (which works in float32 unless
        the CPU has native bfloat16)."""
        return self.backend == "openvino" and device.type == "cpu"

    def _use_openvino(self, x: torch.Tensor) -> bool:
        if self.backend != "openvino":
            return False
        if x.device.type != "cpu":
            raise RuntimeError(f"conv backend 'openvino' runs on the CPU, got a {x.device} tensor")
        return True

    def _use_onednn(self, x: torch.Tensor) -> bool:
        if self.backend in ("generic", "openvino") or self._onednn_failed:
            return False
        ok = (
            x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.bfloat16)
            and onednn_available()
        )
        if self.backend == "onednn" and not ok:
            raise RuntimeError(
                "conv backend 'onednn' needs a CPU tensor in float32/bfloat16 and "
                "a PyTorch built with oneDNN"
            )
        return ok

    @property
    def _split(self) -> int:
        """Index of the first step after the last InstanceNorm (0 without one)."""
        norms = [i for i, s in enumerate(self.steps) if s[0] == "norm"]
        return norms[-1] + 1 if norms else 0

    @property
    def strip_halo(self) -> int:
        """Rows of context a strip needs on each side: 3x3 convs after the last norm."""
        return sum(
            2 if s[0] == "res" else 1 for s in self.steps[self._split :] if s[0] in ("conv", "res")
        )

    def __call__(
        self, x: torch.Tensor, dtype: Optional[torch.dtype] = None, strip_rows: Optional[int] = None
    ) -> torch.Tensor:
        """Run the stack on (N, C, H, W) ``x`` in ``dtype`` (default: x's dtype).

        With ``strip_rows``, everything up to the last InstanceNorm (whose statistics are
        image-wide) runs on the whole map and the rest in row strips with a halo of
        :attr:`strip_halo` rows, which bounds the memory of the 64-channel maps; the result is
        the same. ``x`` itself is never modified.
        """
        dtype = dtype or x.dtype
        if self._use_openvino(x):
            # OpenVINO takes float32 and applies the precision itself (a hint it may refuse).
            x, weights = x.float(), {}
        else:
            x = x.to(dtype)
            weights = self._weights(dtype)
        height = x.shape[2]
        if strip_rows is None or strip_rows >= height:
            return self._run(self.steps, x, weights, dtype)
        head = self._run(self.steps[: self._split], x, weights, dtype) if self._split else x
        halo, tail = self.strip_halo, self.steps[self._split :]
        out: Optional[torch.Tensor] = None
        for start in range(0, height, strip_rows):
            stop = min(start + strip_rows, height)
            lo, hi = max(0, start - halo), min(height, stop + halo)
            part = self._run(tail, head[:, :, lo:hi], weights, dtype)[:, :, start - lo : stop - lo]
            if out is None:
                out = torch.empty(
                    (part.shape[0], part.shape[1], height, part.shape[3]),
                    dtype=part.dtype,
                    device=part.device,
                )
            out[:, :, start:stop] = part
        assert out is not None
        return out

    def _run(
        self,
        steps: List[Step],
        x: torch.Tensor,
        weights: Dict[int, Tuple[torch.Tensor, torch.Tensor]],
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """``steps`` on ``x``; ``dtype``: the conv precision (x's own, except for OpenVINO,
        which takes float32 and the precision as a hint)."""
        if self._use_openvino(x):
            return self._run_openvino(steps, x, dtype)
        if self._use_onednn(x):
            try:
                return self._run_onednn(steps, x, weights)
            except RuntimeError:
                if self.backend == "onednn":
                    raise
                self._onednn_failed = True  # e.g. an operator signature change: stay generic
        return self._run_generic(steps, x, weights)

    def _run_openvino(self, steps: List[Step], x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        segment: List[Step] = []
        for step in [*steps, None]:
            if step is not None and step[0] != "norm":
                segment.append(step)
                continue
            if segment:
                key = tuple(id(s) for s in segment)
                runner = self._segments.get(key)
                if runner is None:
                    runner = self._segments[key] = OpenVinoSegment(segment, x.shape[1])
                x = runner(x, dtype)
                segment = []
            if step is not None:
                x = _instance_norm(x.float(), step[1])
        return x

    def _run_generic(
        self,
        steps: List[Step],
        x: torch.Tensor,
        weights: Dict[int, Tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        owned = False  # whether x may be modified in place
        for step in steps:
            kind = step[0]
            if kind == "conv":
                w, b = weights[id(step[1])]
                x = F.conv2d(x, w, b, padding=1)
                owned = True
                if step[2] is not None:
                    F.leaky_relu_(x, step[2])
            elif kind == "res":
                w1, b1 = weights[id(step[1])]
                w2, b2 = weights[id(step[3])]
                t = F.conv2d(x, w1, b1, padding=1)
                F.leaky_relu_(t, step[2])
                t = F.conv2d(t, w2, b2, padding=1)
                x = t.add_(x)
                owned = True
            else:
                x = _pointwise_step(step, x, owned)
                owned = True
        return x

    def _run_onednn(
        self,
        steps: List[Step],
        x: torch.Tensor,
        weights: Dict[int, Tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        pointwise = torch.ops.mkldnn._convolution_pointwise
        pointwise_ = torch.ops.mkldnn._convolution_pointwise_
        pad, one = [1, 1], [1, 1]
        owned = False
        for step in steps:
            kind = step[0]
            if kind == "conv":
                w, b = weights[id(step[1])]
                if step[2] is None:
                    x = pointwise(x, w, b, pad, one, one, 1, "none", [], None)
                else:
                    x = pointwise(x, w, b, pad, one, one, 1, "leaky_relu", [step[2]], None)
                owned = True
            elif kind == "res":
                w1, b1 = weights[id(step[1])]
                w2, b2 = weights[id(step[3])]
                t = pointwise(x, w1, b1, pad, one, one, 1, "leaky_relu", [step[2]], None)
                if not owned:
                    x = x.clone(
                        memory_format=torch.channels_last
                        if x.is_contiguous(memory_format=torch.channels_last)
                        else torch.contiguous_format
                    )
                # x += conv(t), written into x: the block's output replaces its input.
                x = pointwise_.binary(x, t, w2, b2, pad, one, one, 1, "add", 1.0, None, [], None)
                owned = True
            else:
                x = _pointwise_step(step, x, owned)
                owned = True
        return x


def _pointwise_step(step: Step, x: torch.Tensor, owned: bool) -> torch.Tensor:
    """The steps both backends run the same way: InstanceNorm and a lone LeakyReLU (in place
    when ``x`` is owned by the stack)."""
    if step[0] == "norm":
        return _instance_norm(x, step[1])
    if step[0] == "leaky":
        return F.leaky_relu_(x, step[1]) if owned else F.leaky_relu(x, step[1])
    raise ValueError(f"unknown conv-stack step {step[0]!r}")


def _instance_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    # Image-wide statistics in float32 even when the convs run in bf16 / fp16; keep the
    # memory format (the fused oneDNN ops need channels_last to fuse the residual add).
    fmt = (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        else torch.contiguous_format
    )
    y = F.instance_norm(x if x.dtype in (torch.float32, torch.float64) else x.float(), eps=eps)
    return y.to(x.dtype).contiguous(memory_format=fmt)
