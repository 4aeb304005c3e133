"""One image array through the chosen inference path: integers in, integers out."""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np
import torch
from torch import nn

from lptn.data.image_io import image_to_tensor, tensor_to_image, to_float
from lptn.inference.context_tiling import ContextTiledPath
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.settings import InferencePath
from lptn.platform.runtime import Runtime


def enhance_array(
    net: nn.Module, img: np.ndarray, runtime: Runtime, path: Optional[InferencePath] = None
) -> np.ndarray:
    """HxWx3 uint8/uint16 RGB -> enhanced image of the same dtype.

    With ``path`` a :class:`FastLPTN` (the fast path) or a
    :class:`~lptn.inference.context_tiling.ContextTiledPath`, the image is processed region by
    region from the integer array within its memory budget; with a :class:`GraphLPTN`, or None
    (``net`` alone, the exact path), on the whole image.
    """
    if isinstance(path, (FastLPTN, ContextTiledPath)):
        with torch.inference_mode():
            return path.enhance_array(img, runtime.device)
    x = image_to_tensor(to_float(img)).unsqueeze(0).to(runtime.device)
    # GraphLPTN lowers the precision of its conv stacks itself; the pyramid stays float32.
    precision = contextlib.nullcontext() if path is not None else runtime.autocast()
    with torch.inference_mode(), precision:
        out = (path or net)(x)
    return tensor_to_image(out.float()[0].cpu(), dtype=img.dtype.type)
