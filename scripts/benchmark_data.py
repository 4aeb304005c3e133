"""Training data-loader throughput (samples/s) for each file backend: disk, lmdb, memory.

Builds the training dataset the way ``train.py`` does (same dataset classes, loader and
prefetcher) for every combination of ``--backends``, ``--workers`` and ``--augment`` and times
``--batches`` batches after a warm-up, the batches ending on ``--device`` (on an accelerator
the clock stops after a synchronisation). A sample is one training item: for the unpaired
recipe one source crop and one target crop.

    python scripts/benchmark_data.py --lq ../shared/data/fivek_sample/source \\
        --gt ../shared/data/fivek_sample/target --workers 0 2 --augment cpu device

``--augment device`` is ``augment_on_device: true``: the loader hands out integer images and
crop/flip parameters and the prefetcher cuts them on ``--device`` (with ``--device cpu`` that
work runs on the main process's CPU). Without ``--lmdb-lq/--lmdb-gt`` the LMDBs are built
from the folders in a temporary directory (PNG level 1, as create_lmdb.py writes them).
The table goes to stdout; ``--json FILE`` also writes every measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lptn.data import build_dataloader, build_dataset  # noqa: E402
from lptn.data.data_loader import build_prefetcher  # noqa: E402
from lptn.platform import device_backend  # noqa: E402
from lptn.platform.runtime import Runtime, device_options, select_device  # noqa: E402

BACKENDS = ("disk", "lmdb", "memory")


def _rss_mb() -> Optional[float]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def dataset_options(
    args: argparse.Namespace, backend: str, lq: str, gt: str, augment: str, workers: int, ratio: int
) -> Dict[str, Any]:
    """The ``datasets.train`` block of one measurement."""
    opt: Dict[str, Any] = {
        "name": "benchmark",
        "type": args.type,
        "phase": "train",
        "dataroot_lq": lq,
        "dataroot_gt": gt,
        "io_backend": {"type": backend},
        "gt_size": args.gt_size,
        "use_flip": True,
        "use_rot": True,
        "use_shuffle": True,
        "batch_size_per_gpu": args.batch_size,
        "num_worker_per_gpu": workers,
        "dataset_enlarge_ratio": ratio,
        "pin_memory": args.device != "cpu",
        "augment_on_device": augment == "device",
        "prefetch_mode": "cuda" if args.device not in ("cpu", "mps") else None,
    }
    if args.device == "npu":
        opt["prefetch_mode"] = "npu"
    return opt


def measure(
    opt: Dict[str, Any],
    device: torch.device,
    batches: int,
    warmup: int,
    repeat: int = 1,
    seed: int = 0,
) -> Dict[str, Any]:
    """Build the dataset and loader of ``opt``, warm up, then time ``repeat`` runs of
    ``batches`` batches; ``samples_per_s`` is their median (a shared machine is noisy)."""
    rss_before = _rss_mb()
    start = time.perf_counter()
    dataset = build_dataset(opt, "datasets.train", seed=seed)
    build_s = time.perf_counter() - start
    loader = build_dataloader(dataset, opt, seed=seed, phase="train", key_path="datasets.train")
    loader.sampler.set_epoch(0)
    prefetcher = build_prefetcher(loader, opt, device)
    for _ in range(warmup):  # worker start-up and first decodes are not the steady state
        if prefetcher.next() is None:
            raise RuntimeError("the epoch is shorter than the warm-up")
    rates = []
    for _ in range(repeat):
        device_backend.synchronize(device)
        start = time.perf_counter()
        count = 0
        for _ in range(batches):
            batch = prefetcher.next()
            if batch is None:
                raise RuntimeError("the epoch ended before the timed batches")
            count += batch["lq"].shape[0]
        device_backend.synchronize(device)
        rates.append(count / (time.perf_counter() - start))
    rss_after = _rss_mb()
    backend = getattr(dataset, "lq_backend", None)
    return {
        "backend": opt["io_backend"]["type"],
        "workers": opt["num_worker_per_gpu"],
        "augment": "device" if opt["augment_on_device"] else "cpu",
        "samples_per_s": statistics.median(rates),
        "samples_per_s_runs": rates,
        "build_s": build_s,
        "images": len(dataset),  # type: ignore[arg-type]
        "rss_growth_mb": (rss_after - rss_before) if rss_before and rss_after else None,
        "decoded_mb": (
            getattr(backend, "nbytes", 0)
            + getattr(
                getattr(dataset, "ref_backend", None) or getattr(dataset, "gt_backend", None),
                "nbytes",
                0,
            )
        )
        / 2**20
        if opt["io_backend"]["type"] == "memory"
        else None,
    }


def make_lmdbs(lq: str, gt: str, folder: Path) -> List[str]:
    sys.path.insert(0, str(ROOT / "scripts" / "data_preparation"))
    from create_lmdb import make_lmdb_from_folder

    return [
        str(
            make_lmdb_from_folder(
                src, folder / f"{name}.lmdb", progress=False, workers=min(4, os.cpu_count() or 1)
            )
        )
        for name, src in (("lq", lq), ("gt", gt))
    ]


def machine_description(device: torch.device) -> str:
    runtime = Runtime(device=device)
    return (
        f"{runtime.device_name()}; {os.cpu_count()} CPU cores; python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )


def format_table(rows: List[Dict[str, Any]]) -> str:
    lines = [
        "| backend | workers | augment | samples/s | dataset build (s) | decoded (MiB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        decoded = f"{r['decoded_mb']:.0f}" if r["decoded_mb"] is not None else "-"
        lines.append(
            f"| {r['backend']} | {r['workers']} | {r['augment']} | "
            f"{r['samples_per_s']:.1f} | {r['build_s']:.2f} | {decoded} |"
        )
    return "\n".join(lines)


def parse_args(argv: Optional[Iterable[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lq", required=True, help="source-domain (input) image folder")
    parser.add_argument("--gt", required=True, help="target-domain image folder")
    parser.add_argument("--lmdb-lq", help="LMDB of --lq (default: built in a temporary folder)")
    parser.add_argument("--lmdb-gt", help="LMDB of --gt")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument(
        "--type",
        default="UnPairedImageDataset",
        choices=["UnPairedImageDataset", "PairedImageDataset"],
    )
    parser.add_argument("--gt-size", type=int, default=256, help="crop size (default 256)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 2],
        help="DataLoader worker counts to try (default: 0 2)",
    )
    parser.add_argument(
        "--augment",
        nargs="+",
        default=["cpu"],
        choices=["cpu", "device"],
        help="where crops/flips run (default: cpu)",
    )
    parser.add_argument("--batches", type=int, default=20, help="timed batches (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs per setting; the median is reported (default 3)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "npu", "auto"])
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1 or args.repeat < 1 or args.warmup < 0:
        parser.error("--batches, --batch-size and --repeat must be positive, --warmup not negative")
    return args


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = parse_args(argv)
    chosen = device_options({"device": args.device})
    device = select_device(chosen["device"], chosen["num_gpu"])
    args.device = device.type
    with tempfile.TemporaryDirectory(prefix="lptn_bench_") as tmp:
        sources = {"disk": (args.lq, args.gt), "memory": (args.lq, args.gt)}
        if "lmdb" in args.backends:
            if args.lmdb_lq and args.lmdb_gt:
                sources["lmdb"] = (args.lmdb_lq, args.lmdb_gt)
            else:
                print("building temporary LMDBs ...", flush=True)
                lq_db, gt_db = make_lmdbs(args.lq, args.gt, Path(tmp))
                sources["lmdb"] = (lq_db, gt_db)
        images = len(
            build_dataset(
                {"type": args.type, "phase": "val", "dataroot_lq": args.lq, "dataroot_gt": args.gt},
                "datasets.benchmark",
            )
        )
        # Enough samples per epoch for the warm-up and the timed batches.
        needed = args.batches * args.repeat + args.warmup + 1
        ratio = max(1, math.ceil(needed * args.batch_size / images))
        rows = []
        for backend in args.backends:
            for workers in args.workers:
                for augment in args.augment:
                    opt = dataset_options(args, backend, *sources[backend], augment, workers, ratio)
                    row = measure(opt, device, args.batches, args.warmup, args.repeat)
                    rows.append(row)
                    print(
                        f"{backend:7s} workers {workers} augment {augment:6s}: "
                        f"{row['samples_per_s']:8.1f} samples/s",
                        flush=True,
                    )
    report = {
        "machine": machine_description(device),
        "device": str(device),
        "dataset": {"lq": args.lq, "gt": args.gt, "type": args.type, "images": images},
        "gt_size": args.gt_size,
        "batch_size": args.batch_size,
        "rows": rows,
    }
    print(
        f"\n{report['machine']}; {args.type}, {images} images, crops {args.gt_size}, "
        f"batch {args.batch_size}, median of {args.repeat} x {args.batches} timed batches\n"
    )
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
