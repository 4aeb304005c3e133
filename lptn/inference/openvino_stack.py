"""Run a segment of an LPTN conv stack (3x3 convs, LeakyReLU, residual blocks) in OpenVINO.

Why: on the AVX2 CPU measured (docs/PERFORMANCE.md) OpenVINO's convolution kernels were up
to 1.3x faster at 4K than the oneDNN ones PyTorch reaches, while the rest of the fast path
(pyramid, region-by-region full-resolution work, bounded memory) is ours and cheaper than
running the whole exported graph. So :class:`~lptn.inference.conv_stacks.ConvStack` can hand its
norm-free segments to OpenVINO (``conv_backend: openvino``, opt-in: see conv_stacks for why
``auto`` does not pick it).

The graph is built from the segment's weights with OpenVINO's operator set (no tracing), with
dynamic batch, height and width, and compiled once per weights version and precision hint.
OpenVINO treats the precision as a hint: ``bf16`` runs in bfloat16 only on CPUs with native
support (AVX512_BF16, AMX) and in float32 elsewhere; :attr:`OpenVinoSegment.precision` says
what it chose.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

#: The OpenVINO precision hint for a torch conv dtype.
PRECISION_HINTS = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    # One Core for the process, never destroyed before the models it compiled: compiled
    # models outliving a temporary Core crashed the interpreter when garbage-collected.
    import openvino as ov

    return ov.Core()


def openvino_available() -> bool:
    """True when the optional ``openvino`` package can be imported."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except ValueError:  # an entry of None in sys.modules: imports of it are refused
        return False


#: What to tell someone who asked for the OpenVINO kernels without the package.
MISSING_OPENVINO = "needs the openvino package (pip install 'lptn[openvino]')"


def _conv(ops: Any, x: Any, weight: torch.Tensor, bias: torch.Tensor) -> Any:
    w = ops.constant(weight.detach().float().cpu().numpy())
    y = ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1])
    b = bias.detach().float().cpu().numpy().reshape(1, -1, 1, 1)
    return ops.add(y, ops.constant(b))


def _leaky(ops: Any, x: Any, slope: float) -> Any:
    return ops.prelu(x, ops.constant(np.array([slope], dtype=np.float32)))


def build_segment_model(steps: Sequence[Tuple[Any, ...]], in_channels: int) -> Any:
    """An ``openvino.Model`` computing ``steps`` (ConvStack steps without ``norm``) on a
    (N, in_channels, H, W) float32 input with dynamic N, H, W."""
    import openvino as ov
    import openvino.opset13 as ops

    param = ops.parameter([-1, in_channels, -1, -1], np.float32, name="x")
    x: Any = param
    for step in steps:
        kind = step[0]
        if kind == "conv":
            x = _conv(ops, x, step[1].weight, step[1].bias)
            if step[2] is not None:
                x = _leaky(ops, x, step[2])
        elif kind == "res":
            t = _leaky(ops, _conv(ops, x, step[1].weight, step[1].bias), step[2])
            x = ops.add(x, _conv(ops, t, step[3].weight, step[3].bias))
        elif kind == "leaky":
            x = _leaky(ops, x, step[1])
        else:
            raise ValueError(f"an OpenVINO segment has no {kind!r} step (convs, residuals, leaky)")
    return ov.Model([x], [param], "lptn_conv_segment")


class OpenVinoSegment:
    """One compiled segment; call it on a CPU (N, C, H, W) tensor.

    Args:
        steps: the ConvStack steps of the segment (convs, residual blocks, LeakyReLU).
        in_channels: channels of the segment's input.
        threads: OpenVINO inference threads (PyTorch's intra-op thread count by default).

    The compiled model is rebuilt when a parameter of the segment changes (training updates
    the network between validations) or a new precision is asked for.
    """

    def __init__(
        self, steps: Sequence[Tuple[Any, ...]], in_channels: int, threads: Optional[int] = None
    ) -> None:
        self.steps = list(steps)
        self.in_channels = in_channels
        self.threads = threads
        self._compiled: Dict[str, Tuple[Tuple[int, ...], Any]] = {}
        self._lock = threading.Lock()

    def _params(self) -> List[torch.Tensor]:
        params: List[torch.Tensor] = []
        for step in self.steps:
            for item in step[1:]:
                if isinstance(item, torch.nn.Conv2d):
                    params += list(item.parameters())
        return params

    def _version(self) -> Tuple[int, ...]:
        params = self._params()
        return tuple(p._version for p in params) + tuple(p.data_ptr() for p in params)

    def compiled(self, dtype: torch.dtype) -> Any:
        """The compiled model for ``dtype``'s precision hint, built on first use."""
        hint = PRECISION_HINTS[dtype]
        version = self._version()
        with self._lock:
            cached = self._compiled.get(hint)
            if cached is None or cached[0] != version:
                config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
                threads = self.threads or torch.get_num_threads()
                config["INFERENCE_NUM_THREADS"] = str(threads)
                model = build_segment_model(self.steps, self.in_channels)
                cached = (version, _core().compile_model(model, "CPU", config))
                self._compiled[hint] = cached
            return cached[1]

    def precision(self, dtype: torch.dtype) -> str:
        """The precision OpenVINO runs for a ``dtype`` request (``f32`` or ``bf16``, ...)."""
        return str(self.compiled(dtype).get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def __call__(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(N, C, H, W) CPU tensor -> the segment's output as a float32 (N, K, H, W) tensor.

        ``dtype`` selects the precision hint; input and output cross as float32 NCHW.
        """
        compiled = self.compiled(dtype)
        data = np.ascontiguousarray(x.detach().float().contiguous().numpy())
        request = compiled.create_infer_request()  # one per call: requests are not shared
        request.infer({0: data})
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))
