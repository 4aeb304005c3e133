"""Inference-only model: the generator with its weights, on the runtime's device."""
from __future__ import annotations

from typing import Any, Dict

import torch

from lptn.archs import build_network
from lptn.engine.checkpoint import load_network_weights
from lptn.engine.logger import get_logger
from lptn.models import MODEL_REGISTRY


@MODEL_REGISTRY.register
class LPTNTestModel:
    """Builds ``network_g``, loads ``path.pretrain_network_g`` and enhances batches.

    ``strict_load_g: false`` (as in the original test files) still loads every matching key;
    mismatches are logged instead of raised.
    """

    def __init__(self, opt: Dict[str, Any], runtime: Any) -> None:
        self.opt = opt
        self.runtime = runtime
        self.net_g = build_network(opt["network_g"], "network_g")
        weights = opt["path"].get("pretrain_network_g")
        if weights:
            load_network_weights(self.net_g, weights, strict=opt["path"].get("strict_load_g", True),
                                 param_key=opt["path"].get("param_key_g"))
        else:
            get_logger().warning("path.pretrain_network_g is empty: using random weights")
        self.net_g.to(runtime.device).eval()

    @torch.no_grad()
    def enhance(self, lq: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] on any device -> float32 output on the runtime's device,
        not clamped."""
        lq = lq.to(self.runtime.device, non_blocking=True)
        with self.runtime.autocast():
            out = self.net_g(lq)
        return out.float()
