"""Inference-only model: the generator with its weights, on the runtime's device."""

from __future__ import annotations

from typing import Any, Dict

import torch

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.inference.settings import InferenceSettings, build_inference_path
from lptn.models import MODEL_REGISTRY
from lptn.platform.logger import get_logger


@MODEL_REGISTRY.register
class LPTNTestModel:
    """Builds ``network_g``, loads ``path.pretrain_network_g`` and enhances batches.

    ``strict_load_g: false`` (as in the original test files) still loads every matching key;
    mismatches are logged instead of raised. The ``inference`` block chooses the fast path
    (default), the whole-image graph path (``inference.path: graph``, optionally compiled) or
    the exact one (``inference.path: exact``); see lptn.inference.settings.
    """

    def __init__(self, opt: Dict[str, Any], runtime: Any) -> None:
        self.opt = opt
        self.runtime = runtime
        self.net_g = build_network(opt["network_g"], "network_g")
        weights = opt["path"].get("pretrain_network_g")
        if weights:
            load_network_weights(
                self.net_g,
                weights,
                strict=opt["path"]["strict_load_g"],
                param_key=opt["path"].get("param_key_g"),
            )
        else:
            get_logger().warning("path.pretrain_network_g is empty: using random weights")
        self.net_g.to(runtime.device).eval()
        self.inference = InferenceSettings.from_options(opt.get("inference"))
        self.path_g = build_inference_path(self.net_g, self.inference, runtime.precision)
        self.inference_path = self.inference.path if self.path_g is not None else "exact"
        if self.inference.compile_mode is not None and self.path_g is not None:
            self.inference_path += f"+compile({self.inference.compile_mode})"

    @torch.no_grad()
    def enhance(self, lq: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] on any device -> float32 output on the runtime's device,
        not clamped."""
        lq = lq.to(self.runtime.device, non_blocking=True)
        if self.path_g is not None:  # applies the precision to its conv stacks itself
            return self.path_g(lq).float()
        with self.runtime.autocast():
            out = self.net_g(lq)
        return out.float()
