"""Validation during training: the val sets through the generator and the ``val.metrics``.

The numbers are those of ``test.py`` by construction: the output is quantised with
:func:`~lptn.data.image_io.tensor_to_image` and measured with
:func:`~lptn.metrics.calculate_metric` one image at a time, exactly as
:func:`lptn.engine.evaluate.evaluate_dataset` does, in float32 (no autocast), and averaged the
same way.

With several processes the val set is split between them (no image twice), the per-image
values are gathered, and the means equal one process's; only rank 0 writes images.

Options (under ``val``): ``metrics`` (the first metric of the first val set decides the best
model; ``better: lower`` in a metric block flips its direction, and a metric that declares
itself lower-is-better, as ``calculate_deltae``, needs no such key), ``save_img`` (outputs to
``visualization/{iter}/``, in a sub-folder per dataset when there are several), ``suffix``,
``tb_comparisons`` (how many input | output | target panels per dataset go to TensorBoard,
default 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from lptn.data.image_io import write_image
from lptn.engine.evaluate import enhance_and_measure, mean_metric, output_name
from lptn.metrics import metric_direction
from lptn.models.model_protocol import EnhancementModel
from lptn.platform.train_settings import ValidationSettings


@dataclass
class ValidationResult:
    """Mean metrics of one val set and up to ``tb_comparisons`` (name, panel) pairs, where a
    panel is the (H, 3W, 3) uint8 concatenation input | output | target."""

    dataset_name: str
    means: Dict[str, float]
    num_images: int
    comparisons: List[Tuple[str, np.ndarray]] = field(default_factory=list)
    aborted: bool = False


def metric_is_better(metric_opt: Dict[str, Any], new: float, old: Optional[float]) -> bool:
    """Whether ``new`` beats ``old`` for a metric block: its ``better`` key, else the metric's
    own direction (``calculate_deltae`` is lower-is-better), else higher."""
    direction = metric_direction(metric_opt)
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return not math.isnan(new)
    return new > old if direction == "higher" else new < old


def validate_dataset(
    model: EnhancementModel,
    loader: DataLoader,
    dataset_name: str,
    settings: ValidationSettings,
    save_dir: Optional[Path] = None,
    num_comparisons: int = 3,
    should_stop: Callable[[], bool] = lambda: False,
    runtime: Any = None,
) -> ValidationResult:
    """Enhance every image of ``loader`` (batch 1) with ``model.enhance`` and measure it.

    Args:
        model: has ``enhance(lq) -> (1, 3, H, W)`` float output.
        loader: items with ``lq``, ``lq_path`` and, for metrics, ``gt``; with several
            processes, this process's share of the val set in the order of
            :class:`~lptn.data.data_loader.ShardSampler` (dataset index ``rank + k * world``).
        dataset_name: the val set's ``name``, carried in the result (logs, best-model tracking).
        settings: the ``val`` settings (``metrics``, ``suffix``).
        save_dir: where outputs go as PNG named like the inputs; None saves nothing.
        num_comparisons: panels of the first images of the set kept for TensorBoard.
        should_stop: polled between images; when it turns true the pass ends early and the
            result is marked ``aborted`` (its means then cover only the images seen). With
            several processes it must give the same answer on all of them.
        runtime: the training runtime; with several processes (``runtime.distributed``) the
            per-image metric values of all processes are gathered and averaged in dataset
            order, exactly as one process would, and only rank 0 writes images and keeps
            panels (the other processes send theirs to it).
    """
    metrics = dict(settings.metrics)
    world = runtime.world_size if runtime is not None else 1
    rank = runtime.rank if runtime is not None else 0
    total = len(loader.dataset)  # type: ignore[arg-type]
    records: List[Tuple[int, Dict[str, float]]] = []
    comparisons: List[Tuple[str, np.ndarray]] = []
    aborted = False
    batches = iter(loader)
    with torch.inference_mode():
        # Every process runs the same number of steps (its share is one image shorter at most)
        # so that the exchanges of images below pair up.
        for step in range(math.ceil(total / world)):
            if should_stop():
                aborted = True
                break
            index = rank + step * world
            sent = None
            if index < total:
                data = next(batches)
                result = enhance_and_measure(model, data, metrics)
                records.append((index, result.scores))
                panel = None
                if index < num_comparisons and (
                    result.target is None or result.target.shape == result.output.shape
                ):
                    panel = (result.name, result.comparison_panel(data["lq"][0]))
                sent = (
                    output_name(data["lq_path"][0], settings.suffix),
                    result.output if save_dir is not None else None,
                    panel,
                )
            if world == 1:
                received: Optional[List[Any]] = [sent]
            elif save_dir is not None or step * world < num_comparisons:
                received = runtime.gather_to_main(sent)
            else:
                received = None
            for item in received if rank == 0 and received else []:
                if item is None:
                    continue
                file_name, output, panel = item
                if output is not None:
                    write_image(save_dir / file_name, output)
                if panel is not None:
                    comparisons.append(panel)
    if world > 1:
        records = [r for part in runtime.all_gather(records) for r in part]
        records.sort(key=lambda r: r[0])
    per_image = [scores for _, scores in records]
    means = {m: mean_metric([s[m] for s in per_image if m in s]) for m in metrics}
    return ValidationResult(dataset_name, means, len(per_image), comparisons, aborted)


__all__ = ["ValidationResult", "metric_is_better", "validate_dataset"]
