"""Crops and flips on the training device: the dataset draws them, the device applies them.

On a GPU a training step of LPTN takes milliseconds, and turning two decoded images per sample
into float crops (crop, flips, uint8 -> float32, HWC -> CHW, stacking, pinning) is CPU work of
the same order. With ``augment_on_device`` (default ``auto``: on when the training set's
``prefetch_mode`` is ``cuda`` or ``npu``) the training datasets leave that work to the device:

- an item holds each image as its integer ``HxWx3`` tensor (with ``io_backend: memory`` a view
  of the shared buffer, which crosses from a worker to the main process without a copy) and,
  under ``<key>_op``, the :class:`CropFlip` of that image, drawn from the sample's generator
  with exactly the draws of the CPU path (:func:`~lptn.data.transforms.draw_crop`, then
  :func:`~lptn.data.transforms.draw_flips`);
- :func:`collate_deferred` keeps the images of a batch as a list (their sizes differ);
- the prefetcher moves them to the device and :func:`apply_on_device` crops, flips, converts
  to float32 in [0, 1] and stacks them there (on the prefetch side stream when there is one).

The result equals the CPU path bit for bit (the same window, the same flips, and
``x / 255`` in float32 on both sides); plain torch, so the same code runs and is tested on the
CPU. The images cross to the device whole (a 480p uint8 image is 1 MB, about what its
256 x 256 float32 crop weighs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

from lptn.data.transforms import draw_crop, draw_flips

OP_SUFFIX = "_op"
#: prefetch modes that imply augmentation on the device when ``augment_on_device: auto``
DEVICE_PREFETCH_MODES = ("cuda", "npu")
_MAX_VALUE = {torch.uint8: 255.0, torch.int32: 65535.0}


@dataclass(frozen=True)
class CropFlip:
    """A crop window then the flips of :func:`lptn.data.transforms.augment`, in its order:
    horizontal flip, vertical flip, transpose (H <-> W)."""

    top: int
    left: int
    height: int
    width: int
    hflip: bool = False
    vflip: bool = False
    transpose: bool = False

    def to_tensor(self) -> torch.Tensor:
        """``(7,)`` int64: top, left, height, width, hflip, vflip, transpose."""
        return torch.tensor(
            [
                self.top,
                self.left,
                self.height,
                self.width,
                int(self.hflip),
                int(self.vflip),
                int(self.transpose),
            ],
            dtype=torch.int64,
        )

    @classmethod
    def from_values(cls, values: Sequence[int]) -> CropFlip:
        top, left, height, width, hflip, vflip, transpose = (int(v) for v in values)
        return cls(top, left, height, width, bool(hflip), bool(vflip), bool(transpose))


def draw_crop_flip(
    height: int,
    width: int,
    crop_size: Optional[int],
    use_flip: bool,
    use_rot: bool,
    rng: np.random.Generator,
) -> CropFlip:
    """The draws of the CPU path for one image (or one aligned pair) of ``height x width``:
    a ``crop_size`` window (none: the whole image) then three flip draws, masked by
    ``use_flip`` (horizontal) and ``use_rot`` (vertical, transpose)."""
    top = left = 0
    if crop_size is not None:
        top, left = draw_crop(height, width, crop_size, rng)
        height = width = crop_size
    hflip, vflip, transpose = draw_flips(rng)
    return CropFlip(
        top, left, height, width, use_flip and hflip, use_rot and vflip, use_rot and transpose
    )


def pixels_to_tensor(img: np.ndarray) -> torch.Tensor:
    """An ``HxWx3`` uint8 / uint16 array as an integer tensor (uint8, or int32 for 16-bit
    data, which torch handles fully); always a new, writable tensor."""
    if img.dtype == np.uint8:
        return torch.from_numpy(np.array(img, copy=True))
    if img.dtype == np.uint16:
        return torch.from_numpy(img.astype(np.int32))
    raise TypeError(f"pixels_to_tensor: expected a uint8 or uint16 image, got {img.dtype}")


def crop_flip_to_float(img: torch.Tensor, op: CropFlip) -> torch.Tensor:
    """Apply ``op`` to an ``HxWx3`` integer tensor (uint8, or int32 holding 16-bit values) on
    its device; returns the ``(3, h, w)`` float32 crop in [0, 1]."""
    scale = _MAX_VALUE.get(img.dtype)
    if scale is None:
        raise TypeError(
            f"crop_flip_to_float: expected a uint8 or int32 image tensor, got {img.dtype}"
        )
    x = img[op.top : op.top + op.height, op.left : op.left + op.width]
    if op.hflip:
        x = x.flip(1)
    if op.vflip:
        x = x.flip(0)
    if op.transpose:
        x = x.transpose(0, 1)
    # float32 division by 255 (not a multiplication by 1/255): the CPU path's exact values.
    return x.permute(2, 0, 1).float().div_(scale).contiguous()


def collate_deferred(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Batch items of a dataset that augments on the device: each image key with an
    ``<key>_op`` partner stays a list of tensors; ``_op`` entries stack to ``(B, 7)``; other
    entries collate as usual."""
    batch: Dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key + OP_SUFFIX in items[0]:
            batch[key] = values
        elif key.endswith(OP_SUFFIX):
            batch[key] = torch.stack(values)
        else:
            batch[key] = default_collate(values)
    return batch


def is_deferred(batch: Any) -> bool:
    """Whether ``batch`` came from :func:`collate_deferred` (it still carries ``_op`` entries)."""
    return isinstance(batch, dict) and any(k.endswith(OP_SUFFIX) for k in batch)


def apply_on_device(
    batch: Dict[str, Any], device: torch.device, non_blocking: bool = False
) -> Dict[str, Any]:
    """The float batch of a :func:`collate_deferred` batch: every ``<key>`` list becomes a
    ``(B, 3, h, w)`` float32 tensor on ``device``, cut and flipped there; ``_op`` entries are
    dropped; other tensors are moved as they are. Images already on ``device`` are not
    copied."""
    deferred = [k for k in batch if k + OP_SUFFIX in batch]
    out = {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
        if not k.endswith(OP_SUFFIX) and k not in deferred
    }
    for key in deferred:
        ops = batch[key + OP_SUFFIX]
        # The parameters stay on the host: reading them never waits for the device.
        rows = ops.tolist() if isinstance(ops, torch.Tensor) else list(ops)
        crops = [
            crop_flip_to_float(img.to(device, non_blocking=non_blocking), CropFlip.from_values(row))
            for img, row in zip(batch[key], rows)
        ]
        out[key] = torch.stack(crops)
    return out


__all__ = [
    "DEVICE_PREFETCH_MODES",
    "OP_SUFFIX",
    "CropFlip",
    "apply_on_device",
    "collate_deferred",
    "crop_flip_to_float",
    "draw_crop_flip",
    "is_deferred",
    "pixels_to_tensor",
]
