"""Fast inference: the fast path, tiled processing with a memory budget, the whole-image
graph path (torch.compile), and export."""

from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.graph_lptn import GraphLPTN

__all__ = ["FastLPTN", "GraphLPTN"]
