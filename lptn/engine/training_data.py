"""The data of a training run: the one training stream and the validation loaders, built
from the options, and the start-up check of every image in them.

Apart from the loop so that building and checking the data can be run and tested alone.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Tuple

from torch import nn
from torch.utils.data import DataLoader

from lptn.archs.laplacian_pyramid import min_input_size
from lptn.data import build_dataloader, build_dataset
from lptn.data.data_loader import build_prefetcher
from lptn.engine.batch_stream import BatchStream
from lptn.platform.checkpoint_io import bare_module
from lptn.platform.logger import get_logger
from lptn.platform.runtime import Runtime
from lptn.platform.train_settings import DataSettings


def data_parallel_gpus(opt: Dict[str, Any], runtime: Runtime) -> int:
    """The ``num_gpu`` of a single-process run (1 for ``auto``, 0 and distributed runs).

    BasicSR, and so the original LPTN files, run ``num_gpu: N > 1`` without a launcher as one
    process that splits each batch over N GPUs (DataParallel), with ``batch_size_per_gpu``
    and ``num_worker_per_gpu`` multiplied by N. lptn trains that effective batch on its one
    device, so the recipe's optimisation (batch size, learning rate) is the original's.
    """
    num_gpu = opt["num_gpu"]
    if runtime.distributed or not isinstance(num_gpu, int) or num_gpu <= 1:
        return 1
    return num_gpu


def _single_process_loader_options(
    opt: Dict[str, Any], runtime: Runtime, ds_opt: Dict[str, Any], key_path: str
) -> Any:
    """``ds_opt`` with the batch and workers of BasicSR's one-process ``num_gpu: N`` run
    (see :func:`data_parallel_gpus`), said in a warning; ``ds_opt`` itself otherwise."""
    gpus = data_parallel_gpus(opt, runtime)
    if gpus == 1 or "batch_size_per_gpu" not in ds_opt:
        return ds_opt
    # Checked by the schema (batch >= 1, workers >= 0).
    batch = int(ds_opt["batch_size_per_gpu"])
    workers = int(ds_opt["num_worker_per_gpu"])
    get_logger().warning(
        "num_gpu: %d in one process: lptn trains on one device (%s) with the batch of the "
        "original's %d-GPU DataParallel run, %s.batch_size_per_gpu %d x %d = %d (and "
        "num_worker_per_gpu %d x %d = %d workers), as BasicSR does; for one process per "
        "device start train.py under torchrun with --launcher pytorch, for a batch of %d "
        "set num_gpu: 1",
        gpus,
        runtime.device_name(),
        gpus,
        key_path,
        batch,
        gpus,
        batch * gpus,
        workers,
        gpus,
        workers * gpus,
        batch,
    )
    return dict(ds_opt, batch_size_per_gpu=batch * gpus, num_worker_per_gpu=workers * gpus)


class TrainingData:
    """The training stream and the val loaders of one run (each process: its shard).

    Attributes:
        stream: endless training batches that know their position.
        val_sets: ``(name, loader)`` of every ``datasets.val*``, in file order.
        batches_per_epoch: training batches in one epoch (of this process).
    """

    def __init__(
        self, stream: BatchStream, val_sets: List[Tuple[str, DataLoader]], batches_per_epoch: int
    ) -> None:
        self.stream = stream
        self.val_sets = val_sets
        self.batches_per_epoch = batches_per_epoch

    @classmethod
    def build(
        cls,
        opt: Dict[str, Any],
        settings: DataSettings,
        runtime: Runtime,
        *,
        seed: int,
        total_iter: int,
    ) -> TrainingData:
        """Build the sets and loaders (no image is read yet) and log their sizes."""
        log = get_logger()
        key = settings.train_key
        ds_opt = opt["datasets"][key]
        dataset = build_dataset(ds_opt, f"datasets.{key}", seed=seed)
        loader = build_dataloader(
            dataset,
            _single_process_loader_options(opt, runtime, ds_opt, f"datasets.{key}"),
            seed=seed,
            num_replicas=runtime.world_size,
            rank=runtime.rank,
            phase="train",
            key_path=f"datasets.{key}",
        )
        device = runtime.device
        stream = BatchStream(
            loader, lambda ld: build_prefetcher(ld, ds_opt, device, f"datasets.{key}")
        )
        batches_per_epoch = len(loader)
        per_process = (
            f" per process x {runtime.world_size} processes" if runtime.distributed else ""
        )
        log.info(
            "train set %s: %d images, batch %d%s, %d iterations per epoch, %d iterations "
            "= %d epochs%s",
            ds_opt["name"],
            # torch's Dataset declares no __len__; the image datasets have one.
            len(dataset),  # type: ignore[arg-type]
            loader.batch_size,
            per_process,
            batches_per_epoch,
            total_iter,
            math.ceil(total_iter / batches_per_epoch),
            ", crops and flips on the device"
            if getattr(dataset, "augment_on_device", False)
            else "",
        )
        val_sets: List[Tuple[str, DataLoader]] = []
        for val_key in settings.val_keys:
            val_ds_opt = opt["datasets"][val_key]
            val_set = build_dataset(val_ds_opt, f"datasets.{val_key}", seed=seed)
            val_loader = build_dataloader(
                val_set,
                val_ds_opt,
                seed=seed,
                phase="val",
                num_replicas=runtime.world_size,
                rank=runtime.rank,
                key_path=f"datasets.{val_key}",
            )
            val_sets.append((val_ds_opt["name"], val_loader))
            # torch's Dataset declares no __len__; the image datasets have one.
            val_size = len(val_set)  # type: ignore[arg-type]
            log.info("val set %s: %d images", val_ds_opt["name"], val_size)
        return cls(stream, val_sets, batches_per_epoch)

    def check_images(self, net_g: nn.Module, progress: bool) -> None:
        """Check every training and validation image once, from its header, before any
        folder is made: unreadable files, pairs that do not fit, images below the crop or the
        generator's minimum size, full images of several sizes in batches. The problems of
        all sets are raised together (a ``ValueError``), one per line, instead of one per
        restart."""
        net = bare_module(net_g)
        min_size = min_input_size(int(getattr(net, "num_high", 0)))
        why = f"network_g.num_high={getattr(net, 'num_high', '?')}"
        train_set = self.stream.loader.dataset
        crop = getattr(train_set, "gt_size", None) if getattr(train_set, "crop", False) else None
        if crop is not None and crop < min_size:
            raise ValueError(
                f"{getattr(train_set, 'key_path', 'datasets.train')}.gt_size: {crop} is smaller "
                f"than {min_size}, the smallest input of {why}"
            )
        sets = [("train set", train_set)] + [
            ("val set", loader.dataset) for _, loader in self.val_sets
        ]
        reports = []
        for role, dataset in sets:
            if not hasattr(dataset, "survey_images"):
                continue
            start = time.perf_counter()
            survey = dataset.survey_images(min_size, why, progress=progress)
            if survey.problems:
                reports.append(survey.report())
                continue
            get_logger().info(
                "%s %s: %d images checked in %.1f s (readable, pairs fit, at least %dx%d)",
                role,
                survey.key_path,
                survey.count,
                time.perf_counter() - start,
                min_size,
                min_size,
            )
        if reports:
            raise ValueError("\n".join(reports))


__all__ = ["TrainingData", "data_parallel_gpus"]
