"""Time the exact, fast and graph inference paths in one run and print the ratios.

Usage (from the repository root)::

    python benchmarks/bench_inference.py --sizes 2160x3840 1080x1920 480x720 \
        --precisions fp32 bf16 --repeats 5 [--threads 2] [--device cpu] [--json out.json] \
        [--graph eager compile cudagraphs autotune] [--exact-compile]

Paths: ``exact`` (the straightforward network, fp32: the reference), ``exact-compile``
(``torch.compile`` of it, the reference's compiled figure), ``fast-<precision>``
(FastLPTN with its default conv backend: oneDNN on the CPU),
``fast:<backend>-<precision>`` (FastLPTN with conv_backend generic / onednn / openvino),
``graph-<variant>-<precision>`` (GraphLPTN eager, or compiled with mode ``default`` /
``reduce-overhead`` (CUDA graphs) / ``max-autotune``), and the peer runtimes a CPU user could
deploy our ONNX export with (optional extras; CPU only): ``ort-fp32`` (ONNX Runtime) and
``openvino-fp32`` / ``openvino-bf16`` (OpenVINO on the whole graph; bf16 is OpenVINO's
precision hint, which it turns into f32 on CPUs without native bfloat16: the row says what ran).
``--peers`` adds the three peer rows.

For every size, the runs of every path alternate (exact, fast fp32, fast bf16, exact, ...),
so a change in machine load affects all of them alike; medians are reported. The input is a
real FiveK photo resized to the size. Peak memory: on the CPU the whole-process peak RSS
(VmHWM) of a fresh child process per (path, size); on CUDA the allocator peak of the last
warm-up run, in this process (weights and input included). ``--paths`` picks exact paths. The
outputs are compared with the exact path's (max abs difference, PSNR).

``--profile`` prints where the time goes at each size: the fast path by stage (pyramid and
full-resolution work, ``trans_low``, mask network) against OpenVINO's per-layer profile of the
whole graph, summed by layer type. ``--floor`` measures the machine's GEMM rate (fp32, bf16)
and reports each path against the time LPTN's multiply-adds would take at that rate.
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
sys.path.insert(0, str(REPO / "benchmarks"))

import compute_floor  # noqa: E402
from peer_runtimes import PEER_PATHS, PeerSet, available  # noqa: E402

from lptn.inference import FastLPTN, GraphLPTN  # noqa: E402
from lptn.inference.conv_stacks import BACKENDS  # noqa: E402
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
    if name in ("exact", "exact-compile") or name in PEER_PATHS:
        return True
    kind = parts[0].split(":")
    if kind[0] == "fast":
        backend_ok = len(kind) == 1 or (len(kind) == 2 and kind[1] in BACKENDS)
        return backend_ok and len(parts) == 2 and parts[1] in PRECISIONS
    return (
        parts[0] == "graph"
        and len(parts) == 3
        and parts[1] in GRAPH_VARIANTS
        and parts[2] in PRECISIONS
    )


def build_path(net: torch.nn.Module, name: str, runtime: Runtime, peers: Any = None):
    """A path name (see the module docstring) -> a callable (N, 3, H, W) -> output."""
    if name == "exact":
        return net
    if name == "exact-compile":
        return torch.compile(net)
    if name in PEER_PATHS:
        return (peers or PeerSet(net, torch.get_num_threads())).build(name)
    kind, precision = name.split("-", 1)[0], path_precision(name)
    if kind.startswith("fast"):
        backend = kind.split(":")[1] if ":" in kind else "auto"
        return FastLPTN(net, precision=precision, conv_backend=backend)
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
    peers = PeerSet(net, torch.get_num_threads(), args.child_onnx) if args.child_onnx else None
    fn = build_path(net, args.child_path, runtime, peers)
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
    if args.child_onnx:
        cmd += ["--child-onnx", str(args.child_onnx)]
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
    parser.add_argument(
        "--peers", action="store_true", help="also time ONNX Runtime and OpenVINO (CPU)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="per-stage fast path vs OpenVINO per-layer"
    )
    parser.add_argument(
        "--floor", action="store_true", help="GEMM rate and LPTN's multiply-adds per size"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the child processes")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child-path", help=argparse.SUPPRESS)
    parser.add_argument("--child-size", help=argparse.SUPPRESS)
    parser.add_argument("--child-onnx", type=Path, help=argparse.SUPPRESS)
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


def peer_versions() -> Dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("onnxruntime", "openvino"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def profile_backends() -> List[str]:
    from lptn.inference.conv_stacks import onednn_available
    from lptn.inference.openvino_stack import openvino_available

    return (["onednn"] if onednn_available() else ["generic"]) + (
        ["openvino"] if openvino_available() else []
    )


def print_ratios(row: Dict[str, Any]) -> None:
    """Each fast row against each peer row: > 1 means the fast path is faster."""
    fast = [p for p in row if p.startswith("fast")]
    peers = [p for p in row if p in PEER_PATHS]
    for f in fast:
        ratios = ", ".join(f"{row[q]['median_s'] / row[f]['median_s']:.2f}x {q}" for q in peers)
        if ratios:
            print(f"  {f} is faster than: {ratios}")


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


def fast_stage_profile(net: torch.nn.Module, x: torch.Tensor, backend: str) -> Dict[str, float]:
    """Milliseconds of one warm fp32 fast-path run by stage: ``trans_low``, mask network,
    and the rest (pyramid, mask blocks, reconstruction: the region-by-region work)."""
    fast = FastLPTN(net, conv_backend=backend)
    spent = {"trans_low": 0.0, "mask_net": 0.0}

    def timed(name: str, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def run(*args: Any, **kwargs: Any) -> torch.Tensor:
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name] += (time.perf_counter() - start) * 1e3
            return out

        return run

    with torch.inference_mode():
        fast(x)
        fast.trans_low = timed("trans_low", fast.trans_low)  # type: ignore[method-assign]
        fast.mask_net = timed("mask_net", fast.mask_net)  # type: ignore[method-assign]
        start = time.perf_counter()
        fast(x)
        total = (time.perf_counter() - start) * 1e3
    spent["pyramid + full resolution"] = total - spent["trans_low"] - spent["mask_net"]
    spent["total"] = total
    return spent


def print_profile(size: str, stages: Dict[str, Dict[str, float]], ov: Dict[str, float]) -> None:
    print(f"\n{size} profile (ms, one warm run each):")
    for backend, row in stages.items():
        print(
            f"  fast fp32, conv backend {backend}: "
            + ", ".join(f"{k} {v:.0f}" for k, v in row.items())
        )
    if ov:
        total = sum(ov.values())
        top = ", ".join(f"{k} {v:.0f}" for k, v in list(ov.items())[:6])
        print(f"  OpenVINO f32 whole graph by layer type (sum {total:.0f}): {top}")


def floor_report(net: torch.nn.Module, size: str, row: Dict[str, Any], rates: Tuple) -> Dict:
    """LPTN's multiply-adds at ``size`` and each path's time as a fraction of the floor."""
    h, w = parse_size(size)
    macs = compute_floor.lptn_macs(net, h, w)
    total = sum(macs.values())
    floors = {
        "fp32": compute_floor.floor_seconds(total, rates[0]),
        "bf16": compute_floor.floor_seconds(total, rates[1]),
    }
    report = {"gmacs": {k: v / 1e9 for k, v in macs.items()}, "floor_s": floors}
    parts = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in macs.items())
    print(f"  LPTN multiply-adds (G): {parts}; floor fp32 {floors['fp32'] * 1e3:.0f} ms")
    for p, e in row.items():
        e["floor_fraction"] = floors["fp32"] / e["median_s"]
        print(f"    {p:24s} at {100 * e['floor_fraction']:.0f}% of the fp32 GEMM rate")
    return report


def choose_paths(args: argparse.Namespace, parser: argparse.ArgumentParser) -> List[str]:
    """The path names to time, checked (``exact`` first)."""
    paths = args.paths or (
        ["exact"]
        + (["exact-compile"] if args.exact_compile else [])
        + [f"fast-{p}" for p in args.precisions]
        + [f"graph-{v}-{p}" for v in args.graph for p in args.precisions]
    )
    bad = [p for p in paths if not valid_path_name(p)]
    if bad or paths[0] != "exact":
        parser.error(f"--paths: the first must be exact; unknown: {', '.join(bad) or '-'}")
    if args.peers:
        paths += [p for p in PEER_PATHS if p not in paths]
    missing = sorted({m for p in paths if p in PEER_PATHS for m in available(p)})
    if missing:
        parser.error(
            f"the peer runtimes need {', '.join(missing)} (pip install 'lptn[onnx,openvino]')"
        )
    if args.device != "cpu" and any(p in PEER_PATHS for p in paths):
        parser.error("the peer runtimes (ort-*, openvino-*) are timed on the CPU only")
    return paths


def measure_row(
    args: argparse.Namespace,
    size: str,
    paths: List[str],
    times: Dict[str, List[float]],
    outputs: Dict[str, torch.Tensor],
    cuda_peak: Dict[str, float],
    on_cuda: bool,
) -> Dict[str, Any]:
    """Median, p90, speedup, fidelity to the exact path and peak memory of every path."""
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
    return row


def run_header(runtime: Runtime, peers: Any, rates: Any) -> Dict[str, Any]:
    """The run's machine and versions, printed and returned for the JSON."""
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
    if peers is not None:
        results["peer_precision"] = peers.ran_precision
        results["versions"] = peer_versions()
        print(f"peers: {results['versions']}; OpenVINO ran {peers.ran_precision}")
    if rates:
        results["gemm_gflops"] = {"fp32": rates[0], "bf16": rates[1]}
        print(f"GEMM rate: fp32 {rates[0]:.0f} GFLOP/s, bf16 {rates[1]:.0f} GFLOP/s")
    return results


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
    paths = choose_paths(args, parser)
    on_cuda = runtime.device.type == "cuda"
    peers = PeerSet(net, torch.get_num_threads()) if any(p in PEER_PATHS for p in paths) else None
    fns = {p: build_path(net, p, runtime, peers) for p in paths}
    if peers is not None:
        args.child_onnx = peers.onnx
    rates = compute_floor.machine_rates() if args.floor else None
    results = run_header(runtime, peers, rates)
    for size in args.sizes:
        x = photo_tensor(args.photo, parse_size(size)).to(runtime.device)
        times, outputs, cuda_peak = time_paths(fns, x, runtime, args.warmup, args.repeats)
        row = measure_row(args, size, paths, times, outputs, cuda_peak, on_cuda)
        results["sizes"][size] = row
        print_row(size, row, on_cuda)
        print_ratios(row)
        if rates:
            results.setdefault("floor", {})[size] = floor_report(net, size, row, rates)
        if args.profile and not on_cuda:
            stages = {b: fast_stage_profile(net, x, b) for b in profile_backends()}
            ov = peers.profile(x) if peers is not None else {}
            results.setdefault("profile", {})[size] = {"fast": stages, "openvino": ov}
            print_profile(size, stages, ov)
        results["load_average_end"] = os.getloadavg()
        if args.json:  # after every size, so a run cut short keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.json:
        print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
