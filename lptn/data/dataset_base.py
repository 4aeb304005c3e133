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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from lptn.data.device_augment import (
    DEVICE_PREFETCH_MODES,
    CropFlip,
    collate_deferred,
    draw_crop_flip,
    pixels_to_tensor,
)
from lptn.data.file_backends import FileBackend
from lptn.data.transforms import ensure_min_size, sample_rng

PHASES = ("train", "val", "test")


@dataclass
class ImageSurvey:
    """What :meth:`SeededImageDataset.survey_images` found in one set: ``count`` images
    checked, every ``problems`` line (each names its file(s)), and one example name per
    ``(height, width)`` of the samples."""

    key_path: str
    count: int
    problems: List[str] = field(default_factory=list)
    sample_sizes: Dict[Tuple[int, int], str] = field(default_factory=dict)

    def report(self) -> str:
        """The problems as one message: a head line, then one line each."""
        head = (
            f"{self.key_path}: {len(self.problems)} data problem"
            f"{'s' if len(self.problems) != 1 else ''} in {self.count} images checked:"
        )
        return "\n".join([head] + [f"  {line}" for line in self.problems])

    def raise_problems(self) -> None:
        if self.problems:
            raise ValueError(self.report())


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

        # Checked and defaulted by the schema (build_dataset).
        self.use_flip: bool = self.opt["use_flip"]
        self.use_rot: bool = self.opt["use_rot"]
        self.gt_size: Optional[int] = self.opt["gt_size"]
        self.small_image: str = self.opt["small_image"]
        on_device = self.opt["augment_on_device"]
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
        return self.pixels_for_device(self.load(backend, key), backend.describe(key))

    def pixels_for_device(self, img: np.ndarray, name: str) -> torch.Tensor:
        """Device augmentation: ``img`` enlarged by ``small_image`` as needed, as a tensor."""
        if self.crop and self.gt_size is not None:
            img = ensure_min_size(img, self.gt_size, self.small_image, name)
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

    def image_groups(self) -> List[Tuple[Tuple[FileBackend, str], ...]]:
        """Every image the set reads, grouped: the images of one sample (the input first,
        then its target). Subclasses list theirs; used by :meth:`survey_images`."""
        raise NotImplementedError

    def group_problem(self, sizes: List[Tuple[int, int]], names: List[str]) -> Optional[str]:
        """Why images of these ``(height, width)`` cannot form one sample, or None. Default:
        they must have one size."""
        if len(set(sizes)) <= 1:
            return None
        listed = ", ".join(f"{n} is {h}x{w}" for (h, w), n in zip(sizes, names))
        return f"paired images differ in size: {listed} (HxW)"

    def _minimum_side(self, min_size: int, why: str) -> Tuple[int, str]:
        """The smallest height and width (pixels) an image may have, and what asks for it."""
        if not (self.crop and self.gt_size is not None):
            return min_size, why
        if self.small_image != "error":
            return 0, why  # small_image pads or enlarges to the crop; the crop is checked apart
        if self.gt_size > min_size:
            gt_key = self.option_key("gt_size")
            return self.gt_size, f"the crop size {gt_key} (or small_image: pad | resize)"
        return min_size, why

    def _probe_all(
        self, items: List[Tuple[FileBackend, str]], progress: bool, threads: int
    ) -> List[Any]:
        """``(height, width)`` of each image from its header, in order, or the one-line reason
        it cannot be read (a str)."""

        def probe(item: Tuple[FileBackend, str]) -> Any:
            backend, key = item
            try:
                return backend.probe(key)
            except (OSError, KeyError, ValueError) as err:  # ImageReadError is an OSError
                return str(err).strip().splitlines()[0] if str(err).strip() else repr(err)

        with (
            tqdm(
                total=len(items),
                desc=f"checking {self.key_path}",
                unit="img",
                disable=not progress,
                leave=False,
            ) as bar,
            ThreadPoolExecutor(max_workers=max(1, threads)) as pool,
        ):
            results = []
            for result in pool.map(probe, items):
                results.append(result)
                bar.update(1)
        return results

    def survey_images(
        self, min_size: int, why: str, *, progress: bool = False, threads: int = 4
    ) -> ImageSurvey:
        """Check every image of the set from its header (:meth:`FileBackend.probe`), without
        stopping at the first problem: readable, at least ``min_size`` pixels high and wide
        (``why`` says where that minimum comes from; for training crops with
        ``small_image: error`` also ``gt_size``), the images of a sample fitting together
        (:meth:`group_problem`) and, for training on full images (``if_fix_size: false``) in
        batches of more than one, all samples of one size (a batch is one tensor).

        ``progress`` shows a tqdm bar on stderr; ``threads`` read headers in parallel (the
        files are read from disk, the GIL is released meanwhile).
        """
        need, need_why = self._minimum_side(min_size, why)
        groups = self.image_groups()
        flat = [item for group in groups for item in group]
        results = self._probe_all(flat, progress, threads)
        survey = ImageSurvey(self.key_path, len(flat))
        position = 0
        for group in groups:
            sizes, names, readable = [], [], True
            for backend, key in group:
                result, name = results[position], backend.describe(key)
                position += 1
                if isinstance(result, str):
                    survey.problems.append(f"unreadable: {result}")
                    readable = False
                    continue
                h, w = result
                if h < need or w < need:
                    survey.problems.append(
                        f"too small: {name} is {h}x{w} (HxW), smaller than {need}x{need}, "
                        f"the minimum of {need_why}"
                    )
                sizes.append((h, w))
                names.append(name)
            if not readable:
                continue
            problem = self.group_problem(sizes, names)
            if problem is not None:
                survey.problems.append(problem)
            else:
                survey.sample_sizes.setdefault(sizes[0], names[0])
        batch = self.opt.get("batch_size_per_gpu") or 1
        if (
            self.phase == "train"
            and not self.crop
            and int(batch) > 1
            and len(survey.sample_sizes) > 1
        ):
            examples = ", ".join(
                f"{h}x{w} ({name})" for (h, w), name in sorted(survey.sample_sizes.items())[:4]
            )
            survey.problems.append(
                f"{self.option_key('if_fix_size')}: false trains on full images, and a batch "
                f"of {batch} needs one size but the images have {len(survey.sample_sizes)} "
                f"(HxW: {examples}{', ...' if len(survey.sample_sizes) > 4 else ''}); set "
                f"{self.option_key('batch_size_per_gpu')}: 1, or crop with if_fix_size: true "
                "and gt_size"
            )
        return survey

    @staticmethod
    def load(backend: FileBackend, key: str) -> np.ndarray:
        """``HxWx3`` RGB uint8/uint16 image stored under ``key`` (a read-only view for the
        memory backend: transforms copy, never write)."""
        return backend.read_image(key)


__all__ = ["PHASES", "ImageSurvey", "SeededImageDataset", "dataset_phase"]
