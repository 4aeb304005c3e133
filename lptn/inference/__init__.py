"""Fast inference: the fast path, tiled processing with a memory budget, and export."""
from lptn.inference.fast_lptn import FastLPTN

__all__ = ["FastLPTN"]
