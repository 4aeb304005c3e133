"""What the image datasets share: option checks, per-sample seeding, epochs, image loading.

Seeding design: sample ``index`` of ``epoch`` draws all its randomness (crop positions, flips,
the unpaired target image) from ``sample_rng(seed, epoch, index)``. The result therefore depends
only on ``(seed, epoch, index)``: not on the worker that loads it, the number of workers, the
batch size or the order of loading. ``set_epoch`` changes the draws between epochs; the
:class:`~lptn.data.data_loader.EnlargedSampler` calls it for you. ``index`` may exceed
``len(dataset)`` (an enlarged epoch visits each image several times): the image is
``index % len(dataset)`` and the full index keeps the repeats' crops different.

Augmenting on the device (``augment_on_device``, see :mod:`lptn.data.device_augment`): a
training item then holds integer image tensors and the crop/flip parameters drawn from the
same generator in the same order; the prefetcher applies them on the device.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lptn.data.device_augment import (
    DEVICE_PREFETCH_MODES,
    CropFlip,
    collate_deferred,
    draw_crop_flip,
    pixels_to_tensor,
)
from lptn.data.file_backends import FileBackend
from lptn.data.transforms import SMALL_IMAGE_POLICIES, ensure_min_size, sample_rng

PHASES = ("train", "val", "test")


def dataset_phase(opt: Dict[str, Any], key_path: str) -> str:
    """``opt['phase']``, else inferred from the key (``datasets.val_1`` -> ``val``), else test."""
    phase = opt.get("phase")
    if phase is None:
        last = key_path.rsplit(".", 1)[-1]
        phase = next((p for p in PHASES if last.startswith(p)), "test")
    if phase not in PHASES:
        raise ValueError(f"{key_path}.phase: must be one of {', '.join(PHASES)}, got {phase!r}")
    return phase


class SeededImageDataset(Dataset):
    """Base class: holds the options, the phase, the seed and the epoch.

    Args:
        opt: the dataset's option block (``datasets.<key>``).
        key_path: where that block sits in the options, for error messages.
        seed: base seed; default ``opt['manual_seed']`` if present, else 0.
    """

    #: tells EnlargedSampler it may pass indices >= len(self) (mapped with ``% len``)
    accepts_enlarged_index = True

    def __init__(
        self, opt: Dict[str, Any], key_path: str = "datasets", seed: Optional[int] = None
    ) -> None:
        self.opt = dict(opt)
        self.key_path = key_path
        self.phase = dataset_phase(self.opt, key_path)
        if seed is None:
            seed = self.opt.get("manual_seed")
        self.seed = int(seed) if seed is not None else 0
        self.epoch = 0

        self.use_flip = bool(self.opt.get("use_flip", False))
        self.use_rot = bool(self.opt.get("use_rot", False))
        gt_size = self.opt.get("gt_size")
        if gt_size is not None and (
            isinstance(gt_size, bool) or not isinstance(gt_size, int) or gt_size <= 0
        ):
            raise ValueError(f"{key_path}.gt_size: must be a positive integer, got {gt_size!r}")
        self.gt_size: Optional[int] = gt_size
        self.small_image = self.opt.get("small_image", "error")
        if self.small_image not in SMALL_IMAGE_POLICIES:
            raise ValueError(
                f"{key_path}.small_image: must be one of "
                f"{', '.join(SMALL_IMAGE_POLICIES)}, got {self.small_image!r}"
            )
        on_device = self.opt.get("augment_on_device", "auto")
        if on_device not in (True, False, "auto"):
            raise ValueError(
                f"{key_path}.augment_on_device: true, false or auto, got {on_device!r}"
            )
        if on_device == "auto":
            on_device = self.opt.get("prefetch_mode") in DEVICE_PREFETCH_MODES
        #: training items carry integer images + crop/flip parameters for the device
        self.augment_on_device = bool(on_device) and self.phase == "train"
        #: the DataLoader's collate_fn for these items (None: the default)
        self.collate_fn = collate_deferred if self.augment_on_device else None
        #: set by subclasses: whether training items are cropped to ``gt_size``
        self.crop = False

    def input_path(self, index: int) -> str:
        """The input (``lq``) path of item ``index`` (an LMDB key for LMDB), found without
        reading the file: what a report names when the item cannot be loaded."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return sample_rng(self.seed, self.epoch, index)

    def option_key(self, name: str) -> str:
        return f"{self.key_path}.{name}"

    def load_pixels(self, backend: FileBackend, key: str) -> torch.Tensor:
        """Device augmentation: the ``HxWx3`` integer tensor of ``key`` (a view of the shared
        buffer for the memory backend), enlarged by ``small_image`` first if it is smaller
        than the crop (``error``: the error of the CPU path)."""
        view = getattr(backend, "read_tensor", None)
        pixels = view(key) if view is not None else None
        size = self.gt_size if self.crop else None
        if pixels is not None and (size is None or min(pixels.shape[:2]) >= size):
            return pixels
        img = self.load(backend, key)
        if size is not None:
            img = ensure_min_size(img, size, self.small_image, backend.describe(key))
        return pixels_to_tensor(img)

    def draw_view(self, shape: Sequence[int], rng: np.random.Generator) -> CropFlip:
        """Device augmentation: the crop and flips of an image of ``shape``, drawn as the CPU
        path draws them."""
        return draw_crop_flip(
            int(shape[0]),
            int(shape[1]),
            self.gt_size if self.crop else None,
            self.use_flip,
            self.use_rot,
            rng,
        )

    @staticmethod
    def load(backend: FileBackend, key: str) -> np.ndarray:
        """``HxWx3`` RGB uint8/uint16 image stored under ``key`` (a read-only view for the
        memory backend: transforms copy, never write)."""
        return backend.read_image(key)


__all__ = ["PHASES", "SeededImageDataset", "dataset_phase"]
