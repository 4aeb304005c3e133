"""Unpaired training data: a source-domain image and an independently drawn target-domain one."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, cast

import numpy as np

from lptn.data import DATASET_REGISTRY
from lptn.data.dataset_base import SeededImageDataset
from lptn.data.file_backends import FileBackend, make_file_backend
from lptn.data.image_io import image_to_tensor, to_float
from lptn.data.pairing import refuse_same_folder
from lptn.data.transforms import augment, ensure_min_size, random_crop


@DATASET_REGISTRY.register()
class UnPairedImageDataset(SeededImageDataset):
    """Source images (``dataroot_lq``) each with a random target-domain image (``dataroot_gt``).

    The two folders (or LMDBs) may hold any number of images of any sizes. Unlike the
    original code, which paired them by index, the target image of sample ``index`` is drawn
    uniformly from the target set with the sample's own generator (seed, epoch, index), so it
    is independent of the source image yet repeatable; ``set_epoch`` gives new draws.

    Options: ``dataroot_lq``, ``dataroot_gt``, ``io_backend.type``, ``phase``; for phase
    ``train`` also ``if_fix_size`` (default true) with ``gt_size`` (independent square crops of
    each image), ``use_flip``, ``use_rot`` (independent for each image), ``small_image``,
    ``augment_on_device`` (see :mod:`lptn.data.device_augment`). Other phases return full
    images.

    Items: ``{'lq': (3,H,W) float32 [0,1], 'ref': (3,H',W') float32 [0,1], 'lq_path': str,
    'ref_path': str}``. ``len`` is the number of source images.
    """

    def __init__(
        self, opt: Dict[str, Any], key_path: str = "datasets", seed: Optional[int] = None
    ) -> None:
        super().__init__(opt, key_path, seed)
        io_backend = self.opt.get("io_backend")
        self.lq_backend = make_file_backend(
            io_backend, self.opt.get("dataroot_lq"), self.option_key("dataroot_lq")
        )
        self.ref_backend = make_file_backend(
            io_backend, self.opt.get("dataroot_gt"), self.option_key("dataroot_gt")
        )
        refuse_same_folder(
            self.lq_backend,
            self.ref_backend,
            key_path,
            "the target domain would be the source domain itself",
        )
        self.lq_keys = self.lq_backend.keys()
        self.ref_keys = self.ref_backend.keys()
        self.crop = self.phase == "train" and self.opt["if_fix_size"]
        if self.crop and self.gt_size is None:
            raise ValueError(
                f"{self.option_key('gt_size')}: required for training with "
                "if_fix_size true (or set if_fix_size: false and batch size 1)"
            )

    def __len__(self) -> int:
        return len(self.lq_keys)

    def input_path(self, index: int) -> str:
        return self.lq_backend.display_path(self.lq_keys[index % len(self.lq_keys)])

    def image_groups(self) -> List[Tuple[Tuple[FileBackend, str], ...]]:
        groups: List[Tuple[Tuple[FileBackend, str], ...]] = [
            ((self.lq_backend, k),) for k in self.lq_keys
        ]
        return groups + [((self.ref_backend, k),) for k in self.ref_keys]

    def ref_index(self, index: int) -> int:
        """Which target image sample ``index`` of the current epoch uses."""
        return int(self.rng_for(index).integers(len(self.ref_keys)))

    def _train_view(self, img: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
        if self.crop:
            size = cast(int, self.gt_size)  # __init__ requires gt_size when cropping
            img = ensure_min_size(img, size, self.small_image, name)
            img = random_crop(img, size, rng, name)
        return augment([img], self.use_flip, self.use_rot, rng)[0]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self.rng_for(index)
        # First draw of the sample's stream, the same number ref_index() reports.
        ref_key = self.ref_keys[int(rng.integers(len(self.ref_keys)))]
        lq_key = self.lq_keys[index % len(self.lq_keys)]
        if self.augment_on_device:
            # The same draws in the same order as below: lq crop + flips, then ref's.
            pix_lq = self.load_pixels(self.lq_backend, lq_key)
            lq_op = self.draw_view(pix_lq.shape, rng)
            pix_ref = self.load_pixels(self.ref_backend, ref_key)
            ref_op = self.draw_view(pix_ref.shape, rng)
            return {
                "lq": pix_lq,
                "lq_op": lq_op.to_tensor(),
                "ref": pix_ref,
                "ref_op": ref_op.to_tensor(),
                "lq_path": self.lq_backend.display_path(lq_key),
                "ref_path": self.ref_backend.display_path(ref_key),
            }
        img_lq = self.load(self.lq_backend, lq_key)
        img_ref = self.load(self.ref_backend, ref_key)
        if self.phase == "train":
            img_lq = self._train_view(img_lq, self.lq_backend.describe(lq_key), rng)
            img_ref = self._train_view(img_ref, self.ref_backend.describe(ref_key), rng)
        return {
            "lq": image_to_tensor(to_float(img_lq)),
            "ref": image_to_tensor(to_float(img_ref)),
            "lq_path": self.lq_backend.display_path(lq_key),
            "ref_path": self.ref_backend.display_path(ref_key),
        }


__all__ = ["UnPairedImageDataset"]
