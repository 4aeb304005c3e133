"""Aligned (input, target) pairs from two folders or LMDBs, matched by file name
(:mod:`lptn.data.pairing`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

from lptn.data import DATASET_REGISTRY
from lptn.data.dataset_base import SeededImageDataset
from lptn.data.file_backends import FileBackend, make_file_backend
from lptn.data.image_io import image_to_tensor, to_float
from lptn.data.pairing import (
    fit_target,
    match_pairs,
    name_patterns,
    pair_size_policy,
    pair_size_problem,
    refuse_same_folder,
)
from lptn.data.transforms import augment, ensure_min_size, paired_random_crop


@DATASET_REGISTRY.register()
class PairedImageDataset(SeededImageDataset):
    """Pixel-aligned pairs: ``dataroot_lq`` (input) and ``dataroot_gt`` (target).

    Options (BasicSR names): ``dataroot_gt``, ``dataroot_lq``, ``io_backend.type`` (disk |
    lmdb | memory), ``phase``; the pairing by ``lq_name`` / ``gt_name`` (``'{stem}_edited'``)
    or BasicSR's ``filename_tmpl`` and ``pair_size`` (error | resize_gt), see
    :mod:`lptn.data.pairing`; for phase ``train`` also
    ``gt_size`` (square crop; none = full images), ``use_flip``, ``use_rot``, ``small_image``
    (error | pad | resize, for images smaller than ``gt_size``), ``augment_on_device``
    (auto | true | false, see :mod:`lptn.data.device_augment`); ``meta_info_file``
    (optional: a text file naming the images to use, one per line).

    Items: ``{'lq': (3,H,W) float32 [0,1], 'gt': (3,H,W) float32 [0,1], 'lq_path': str,
    'gt_path': str}``; the paths are file paths, or the keys for LMDB.
    """

    def __init__(
        self, opt: Dict[str, Any], key_path: str = "datasets", seed: Optional[int] = None
    ) -> None:
        super().__init__(opt, key_path, seed)
        io_backend = self.opt.get("io_backend")
        gt_key, lq_key = self.option_key("dataroot_gt"), self.option_key("dataroot_lq")
        self.gt_backend = make_file_backend(io_backend, self.opt.get("dataroot_gt"), gt_key)
        self.lq_backend = make_file_backend(io_backend, self.opt.get("dataroot_lq"), lq_key)
        refuse_same_folder(
            self.lq_backend, self.gt_backend, key_path, "every photo would be its own target"
        )
        self.patterns = name_patterns(self.opt, key_path)
        self.pair_size = pair_size_policy(self.opt, key_path)
        self.pairs = match_pairs(self.gt_backend, self.lq_backend, self.patterns, key_path)
        if self.opt.get("meta_info_file"):
            self.pairs = self._select(self.pairs, Path(self.opt["meta_info_file"]))
        self.crop = self.phase == "train" and self.gt_size is not None and self.opt["if_fix_size"]

    def _select(self, pairs: List[Tuple[str, str]], listing: Path) -> List[Tuple[str, str]]:
        """Keep the pairs whose gt name (without extension) is listed in ``listing``, one name
        per line (the first word; BasicSR's meta_info lines work as they are)."""
        key = self.option_key("meta_info_file")
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise FileNotFoundError(f"{key}: cannot read {listing}: {err.strerror}") from err
        wanted = [Path(line.split()[0]).stem for line in lines if line.strip()]
        # a listed name is the target's file name (BasicSR) or the stem the pair shares
        by_stem = {self.gt_backend.stem(gt): (gt, lq) for gt, lq in pairs}
        for gt, lq in pairs:
            stem = self.patterns[1].stem_of(self.gt_backend.stem(gt))
            by_stem.setdefault(str(stem), (gt, lq))
        missing = [name for name in wanted if name not in by_stem]
        if missing:
            raise ValueError(
                f"{key}: {listing} names images that have no pair: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        return [by_stem[name] for name in wanted]

    def __len__(self) -> int:
        return len(self.pairs)

    def input_path(self, index: int) -> str:
        return self.lq_backend.display_path(self.pairs[index % len(self.pairs)][1])

    def image_groups(self) -> List[Tuple[Tuple[FileBackend, str], ...]]:
        return [((self.lq_backend, lq), (self.gt_backend, gt)) for gt, lq in self.pairs]

    def group_problem(self, sizes: List[Tuple[int, int]], names: List[str]) -> Optional[str]:
        return pair_size_problem(sizes[1], sizes[0], self.pair_size, names[1], names[0])

    def __getitem__(self, index: int) -> Dict[str, Any]:
        gt_key, lq_key = self.pairs[index % len(self.pairs)]
        gt_name, lq_name = self.gt_backend.describe(gt_key), self.lq_backend.describe(lq_key)
        if self.augment_on_device:
            return self._deferred_item(index, gt_key, lq_key)
        img_lq = self.load(self.lq_backend, lq_key)
        img_gt = fit_target(
            self.load(self.gt_backend, gt_key),
            (img_lq.shape[0], img_lq.shape[1]),
            self.pair_size,
            gt_name,
            lq_name,
        )
        if self.phase == "train":
            rng = self.rng_for(index)
            if self.crop:
                size = cast(int, self.gt_size)  # crop is only set when gt_size is given
                img_gt = ensure_min_size(img_gt, size, self.small_image, gt_name)
                img_lq = ensure_min_size(img_lq, size, self.small_image, lq_name)
                img_gt, img_lq = paired_random_crop(img_gt, img_lq, size, rng, gt_name, lq_name)
            img_gt, img_lq = augment([img_gt, img_lq], self.use_flip, self.use_rot, rng)
        return {
            "lq": image_to_tensor(to_float(img_lq)),
            "gt": image_to_tensor(to_float(img_gt)),
            "lq_path": self.lq_backend.display_path(lq_key),
            "gt_path": self.gt_backend.display_path(gt_key),
        }

    def _deferred_item(self, index: int, gt_key: str, lq_key: str) -> Dict[str, Any]:
        """Integer images and one crop/flip for both (see ``lptn.data.device_augment``)."""
        pix_gt = self.load_pixels(self.gt_backend, gt_key)
        pix_lq = self.load_pixels(self.lq_backend, lq_key)
        if pix_gt.shape != pix_lq.shape:
            # another size (or one enlarged by small_image): fit the target as stored
            img_lq = self.load(self.lq_backend, lq_key)
            gt_name = self.gt_backend.describe(gt_key)
            img_gt = fit_target(
                self.load(self.gt_backend, gt_key),
                (img_lq.shape[0], img_lq.shape[1]),
                self.pair_size,
                gt_name,
                self.lq_backend.describe(lq_key),
            )
            pix_gt = self.pixels_for_device(img_gt, gt_name)
        op = self.draw_view(pix_gt.shape, self.rng_for(index)).to_tensor()
        return {
            "lq": pix_lq,
            "lq_op": op,
            "gt": pix_gt,
            "gt_op": op.clone(),
            "lq_path": self.lq_backend.display_path(lq_key),
            "gt_path": self.gt_backend.display_path(gt_key),
        }


__all__ = ["PairedImageDataset", "match_pairs"]
