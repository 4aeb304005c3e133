"""Aligned (input, target) pairs from two folders or LMDBs, matched by file name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

from lptn.data import DATASET_REGISTRY
from lptn.data.dataset_base import SeededImageDataset
from lptn.data.file_backends import FileBackend, make_file_backend
from lptn.data.image_io import image_to_tensor, to_float
from lptn.data.transforms import augment, ensure_min_size, paired_random_crop

_SHOW = 5  # how many unmatched names an error lists


def _stem_index(backend: FileBackend, option_key: str) -> Dict[str, str]:
    index: Dict[str, str] = {}
    for key in backend.keys():
        stem = backend.stem(key)
        if stem in index:
            raise ValueError(
                f"{option_key}: {backend.root} holds two images named {stem!r} "
                f"({index[stem]} and {key}); pairs are matched by name"
            )
        index[stem] = key
    return index


def match_pairs(
    gt: FileBackend, lq: FileBackend, filename_tmpl: str, gt_key: str, lq_key: str
) -> List[Tuple[str, str]]:
    """``(gt_key, lq_key)`` pairs: the lq name of gt ``X.ext`` is ``filename_tmpl.format('X')``.

    Raises:
        ValueError: some file on either side has no partner (the first few are listed).
    """
    gt_stems = _stem_index(gt, gt_key)
    lq_stems = _stem_index(lq, lq_key)
    pairs, no_lq, used = [], [], set()
    for stem, g in sorted(gt_stems.items()):
        try:
            want = filename_tmpl.format(stem)
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(
                f"{gt_key.rsplit('.', 1)[0]}.filename_tmpl: {filename_tmpl!r} must "
                f"hold one '{{}}' for the name ({err})"
            ) from err
        if want in lq_stems:
            pairs.append((g, lq_stems[want]))
            used.add(want)
        else:
            no_lq.append(g)
    no_gt = [k for s, k in sorted(lq_stems.items()) if s not in used]
    if no_lq or no_gt:
        lines = [
            f"unmatched images between {gt_key}={gt.root} and {lq_key}={lq.root} "
            f"(filename_tmpl {filename_tmpl!r}):"
        ]
        if no_lq:
            lines.append(
                f"  {len(no_lq)} in {gt.root} without a partner: "
                + ", ".join(no_lq[:_SHOW])
                + (", ..." if len(no_lq) > _SHOW else "")
            )
        if no_gt:
            lines.append(
                f"  {len(no_gt)} in {lq.root} without a partner: "
                + ", ".join(no_gt[:_SHOW])
                + (", ..." if len(no_gt) > _SHOW else "")
            )
        raise ValueError("\n".join(lines))
    return pairs


@DATASET_REGISTRY.register()
class PairedImageDataset(SeededImageDataset):
    """Pixel-aligned pairs: ``dataroot_lq`` (input) and ``dataroot_gt`` (target).

    Options (BasicSR names): ``dataroot_gt``, ``dataroot_lq``, ``io_backend.type`` (disk |
    lmdb), ``filename_tmpl`` (default ``'{}'``), ``phase``; for phase ``train`` also
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
        self.filename_tmpl = str(self.opt.get("filename_tmpl", "{}"))
        self.pairs = match_pairs(
            self.gt_backend, self.lq_backend, self.filename_tmpl, gt_key, lq_key
        )
        if self.opt.get("meta_info_file"):
            self.pairs = self._select(self.pairs, Path(self.opt["meta_info_file"]))
        self.crop = (
            self.phase == "train"
            and self.gt_size is not None
            and self.opt.get("if_fix_size", True) is not False
        )

    def _select(self, pairs: List[Tuple[str, str]], listing: Path) -> List[Tuple[str, str]]:
        """Keep the pairs whose gt name (without extension) is listed in ``listing``, one name
        per line (the first word; BasicSR's meta_info lines work as they are)."""
        key = self.option_key("meta_info_file")
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise FileNotFoundError(f"{key}: cannot read {listing}: {err.strerror}") from err
        wanted = [Path(line.split()[0]).stem for line in lines if line.strip()]
        by_stem = {self.gt_backend.stem(gt): (gt, lq) for gt, lq in pairs}
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

    def __getitem__(self, index: int) -> Dict[str, Any]:
        gt_key, lq_key = self.pairs[index % len(self.pairs)]
        gt_name, lq_name = self.gt_backend.describe(gt_key), self.lq_backend.describe(lq_key)
        if self.augment_on_device:
            return self._deferred_item(index, gt_key, lq_key)
        img_gt = self.load(self.gt_backend, gt_key)
        img_lq = self.load(self.lq_backend, lq_key)
        if img_gt.shape != img_lq.shape:
            raise ValueError(
                f"paired images differ in size: {gt_name} is "
                f"{img_gt.shape[0]}x{img_gt.shape[1]}, {lq_name} is "
                f"{img_lq.shape[0]}x{img_lq.shape[1]} (HxW)"
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
            raise ValueError(
                f"paired images differ in size: {self.gt_backend.describe(gt_key)} "
                f"is {pix_gt.shape[0]}x{pix_gt.shape[1]}, "
                f"{self.lq_backend.describe(lq_key)} is "
                f"{pix_lq.shape[0]}x{pix_lq.shape[1]} (HxW)"
            )
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
