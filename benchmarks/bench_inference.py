"""Time the exact, fast and graph inference paths in one run and print the ratios.

Usage (from the repository root)::

    python benchmarks/bench_inference.py --sizes 2160x3840 1080x1920 480x720 \
        --precisions fp32 bf16 --repeats 5 [--threads 2] [--device cpu] [--json out.json] \
        [--graph eager compile cudagraphs autotune] [--exact-compile]

Paths: ``exact`` (the straightforward network, fp32: the reference), ``exact-compile``
(``torch.compile`` of it, the reference's compiled figure), ``fast-<precision>``
(FastLPTN), ``graph-<variant>-<precision>`` (GraphLPTN eager, or compiled with mode
``default`` / ``reduce-overhead`` (CUDA graphs) / ``max-autotune``).

For every size, the runs of every path alternate (exact, fast fp32, fast bf16, exact, ...),
so a change in machine load affects all of them alike; medians are reported. The input is a
real FiveK photo resized to the size. Peak memory: on the CPU the whole-process peak RSS
(VmHWM) of a fresh child process per (path, size); on CUDA the allocator peak of the last
warm-up run, in this process (weights and input included). ``--paths`` picks exact paths. The fast
path's outputs are compared with the exact path's (max abs difference, PSNR for reduced
precision).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lptn.inference import FastLPTN, GraphLPTN  # noqa: E402
from lptn.inference.generator_weights import load_generator  # noqa: E402
from lptn.platform.runtime import Runtime, build_runtime, process_memory_mb  # noqa: E402

PRECISIONS = ("fp32", "bf16", "fp16")
GRAPH_VARIANTS = {
    "eager": None,
    "compile": "default",
    "cudagraphs": "reduce-overhead",
    "autotune": "max-autotune",
}

DEFAULT_WEIGHTS = REPO.parent / "shared" / "models" / "net_g_FiveK_numhigh3.pth"
DEFAULT_PHOTO = REPO.parent / "shared" / "data" / "fivek_sample" / "source" / "a1305.png"


def parse_size(text: str) -> Tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def photo_tensor(path: Path, size: Tuple[int, int]) -> torch.Tensor:
    """A real photo resized (bicubic) to ``size``: (1, 3, H, W) float32 in [0, 1]."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read the photo {path}")
    img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    rgb = np.clip(img[:, :, ::-1].astype(np.float32) / 255.0, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def path_precision(name: str) -> str:
    return "fp32" if name.startswith("exact") else name.rsplit("-", 1)[1]


def valid_path_name(name: str) -> bool:
    parts = name.split("-")
    if name in ("exact", "exact-compile"):
        return True
    if parts[0] == "fast":
        return len(parts) == 2 and parts[1] in PRECISIONS
    return (
        parts[0] == "graph"
        and len(parts) == 3
        and parts[1] in GRAPH_VARIANTS
        and parts[2] in PRECISIONS
    )


def build_path(net: torch.nn.Module, name: str, runtime: Runtime):
    """A path name (see the module docstring) -> a callable (N, 3, H, W) -> output."""
    if name == "exact":
        return net
    if name == "exact-compile":
        return torch.compile(net)
    kind, precision = name.split("-", 1)[0], path_precision(name)
    if kind == "fast":
        return FastLPTN(net, precision=precision)
    variant = name.split("-")[1]
    return GraphLPTN(
        net, precision=precision, channels_last=True, compile_mode=GRAPH_VARIANTS[variant]
    ).to(runtime.device)


def _status_mb(field: str) -> float:
    value = process_memory_mb(field)
    return float("nan") if value is None else value


def child_memory(args: argparse.Namespace) -> None:
    """Run one path once at one size in this fresh process; print peak memory as JSON."""
    runtime = build_runtime({"device": args.device})
    net = load_generator(args.weights).to(runtime.device).eval()
    fn = build_path(net, args.child_path, runtime)
    x = photo_tensor(args.photo, parse_size(args.child_size)).to(runtime.device)
    runtime.synchronize()
    base = _status_mb("VmRSS")
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        fn(x)
    runtime.synchronize()
    report = {"process_peak_rss_mb": _status_mb("VmHWM"), "rss_before_mb": base}
    if runtime.device.type == "cuda":
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(report))


def measure_memory(args: argparse.Namespace, path: str, size: str) -> Dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child-path",
        path,
        "--child-size",
        size,
        "--weights",
        str(args.weights),
        "--photo",
        str(args.photo),
        "--device",
        args.device,
    ]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["2160x3840"])
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16", "fp16"],
        help="fast-path precisions",
    )
    parser.add_argument(
        "--graph",
        nargs="*",
        default=[],
        choices=list(GRAPH_VARIANTS),
        help="also time the graph path: eager and/or compiled variants",
    )
    parser.add_argument(
        "--exact-compile", action="store_true", help="also time torch.compile of the exact network"
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        help="exactly these paths (the first must be "
        "exact), e.g. exact fast-fp16 graph-cudagraphs-bf16",
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="let float32 convs use TF32 on CUDA (default: IEEE float32)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch / OpenMP threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--no-memory", action="store_true", help="skip the child processes")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child-path", help=argparse.SUPPRESS)
    parser.add_argument("--child-size", help=argparse.SUPPRESS)
    return parser


def time_paths(
    fns: Dict[str, Callable[[torch.Tensor], torch.Tensor]],
    x: torch.Tensor,
    runtime: Any,
    warmup: int,
    repeats: int,
) -> Tuple[Dict[str, List[float]], Dict[str, torch.Tensor], Dict[str, float]]:
    """Seconds per run of each path on ``x``, its (CPU, float) output and its CUDA peak (MB)."""
    on_cuda = runtime.device.type == "cuda"
    times: Dict[str, List[float]] = {p: [] for p in fns}
    outputs: Dict[str, torch.Tensor] = {}
    cuda_peak: Dict[str, float] = {}
    with torch.inference_mode():
        for p, fn in fns.items():
            for _ in range(warmup):
                if on_cuda:  # the last warm-up run (compiled by then) gives the peak
                    runtime.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                out = fn(x)
                if on_cuda:
                    runtime.synchronize()
                    cuda_peak[p] = torch.cuda.max_memory_allocated() / 2**20
                # Kept on the CPU, so earlier paths' outputs do not count in later peaks.
                outputs[p] = out.float().cpu()
                del out
        for _ in range(repeats):
            for p, fn in fns.items():
                runtime.synchronize()
                start = time.perf_counter()
                fn(x)
                runtime.synchronize()
                times[p].append(time.perf_counter() - start)
    return times, outputs, cuda_peak


def print_row(size: str, row: Dict[str, Any], on_cuda: bool) -> None:
    print(f"\n{size}:")
    for p, e in row.items():
        mem = e.get("memory", {})
        extra = (
            (
                f", max|diff| {e['max_abs_diff_vs_exact']:.1e}, "
                f"{e['psnr_vs_fp32_db']:.1f} dB vs exact fp32"
            )
            if p != "exact"
            else ""
        )
        peak = (
            f"CUDA peak {mem.get('cuda_peak_mb', float('nan')):.0f} MB"
            if on_cuda
            else f"peak RSS {mem.get('process_peak_rss_mb', float('nan')):.0f} MB"
        )
        print(
            f"  {p:24s} median {e['median_s'] * 1e3:9.2f} ms  (p90 "
            f"{e['p90_s'] * 1e3:9.2f})  x{e['speedup']:.2f}  {peak}{extra}"
        )


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_path:
        child_memory(args)
        return

    runtime = build_runtime({"device": args.device, "tf32": args.tf32})
    net = load_generator(args.weights).to(runtime.device).eval()
    paths = args.paths or (
        ["exact"]
        + (["exact-compile"] if args.exact_compile else [])
        + [f"fast-{p}" for p in args.precisions]
        + [f"graph-{v}-{p}" for v in args.graph for p in args.precisions]
    )
    bad = [p for p in paths if not valid_path_name(p)]
    if bad or paths[0] != "exact":
        parser.error(f"--paths: the first must be exact; unknown: {', '.join(bad) or '-'}")
    on_cuda = runtime.device.type == "cuda"
    fns = {p: build_path(net, p, runtime) for p in paths}
    results: Dict[str, Any] = {
        "device": runtime.device_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "tf32": runtime.tf32,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_start": os.getloadavg(),
        "sizes": {},
    }
    print(
        f"device: {results['device']}, torch {torch.__version__}, threads "
        f"{results['threads']}, CPU capability {results['cpu_capability']}"
    )
    for size in args.sizes:
        x = photo_tensor(args.photo, parse_size(size)).to(runtime.device)
        times, outputs, cuda_peak = time_paths(fns, x, runtime, args.warmup, args.repeats)
        exact = outputs["exact"]
        row: Dict[str, Any] = {}
        for p in paths:
            med = float(np.median(times[p]))
            entry = {
                "median_s": med,
                "p90_s": float(np.percentile(times[p], 90)),
                "runs_s": times[p],
                "speedup": float(np.median(times["exact"])) / med,
            }
            if p != "exact":
                diff = (outputs[p] - exact).abs().max().item()
                mse = ((outputs[p].clamp(0, 1) - exact.clamp(0, 1)) ** 2).double().mean().item()
                entry["max_abs_diff_vs_exact"] = diff
                entry["psnr_vs_fp32_db"] = float("inf") if mse == 0 else 10 * np.log10(1 / mse)
            if on_cuda:
                # In-process allocator peak (includes weights and the input image).
                entry["memory"] = {"cuda_peak_mb": cuda_peak.get(p, float("nan"))}
            elif not args.no_memory:
                entry["memory"] = measure_memory(args, p, size)
            row[p] = entry
        results["sizes"][size] = row
        print_row(size, row, on_cuda)
        results["load_average_end"] = os.getloadavg()
        if args.json:  # after every size, so a run cut short keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.json:
        print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
