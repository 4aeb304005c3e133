"""The runtimes a CPU user could deploy our ONNX export with, for bench_inference.py.

ONNX Runtime and OpenVINO are optional extras (``pip install 'lptn[onnx,openvino]'``); each
runs the file ``lptn-export`` writes, exported once per benchmark run into a temporary folder.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

PEER_PATHS = ("ort-fp32", "openvino-fp32", "openvino-bf16")
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def export_onnx(net: torch.nn.Module, folder: Path) -> Path:
    """Our ONNX export of ``net`` (dynamic batch, height, width) into ``folder``."""
    from lptn.inference.export import export_onnx as export

    path = folder / "lptn.onnx"
    export(net, path)
    return path


def _numpy_input(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def ort_runner(onnx_path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: _numpy_input(x)})[0])

    return run


def openvino_compiled(onnx_path: Path, precision: str, threads: int, profile: bool = False) -> Any:
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision],
        "INFERENCE_NUM_THREADS": str(threads),
        "PERFORMANCE_HINT": "LATENCY",
    }
    if profile:
        config["PERF_COUNT"] = "YES"
    return core.compile_model(core.read_model(str(onnx_path)), "CPU", config)


def openvino_runner(
    onnx_path: Path, precision: str, threads: int
) -> Tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """A callable and the precision OpenVINO chose for the hint."""
    compiled = openvino_compiled(onnx_path, precision, threads)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        request.infer({0: _numpy_input(x)})
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))

    return run, compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def openvino_profile(onnx_path: Path, x: torch.Tensor, threads: int) -> Dict[str, float]:
    """Milliseconds per layer type of one OpenVINO f32 run of the whole graph on ``x``
    (its PERF_COUNT profile, second run, summed by layer type)."""
    compiled = openvino_compiled(onnx_path, "fp32", threads, profile=True)
    request = compiled.create_infer_request()
    data = _numpy_input(x)
    request.infer({0: data})
    request.infer({0: data})
    by_type: Dict[str, float] = defaultdict(float)
    for info in request.profiling_info:
        by_type[info.node_type] += info.real_time.total_seconds() * 1e3
    return dict(sorted(by_type.items(), key=lambda kv: -kv[1]))


class PeerSet:
    """Builds the peer paths; holds the temporary ONNX file for the run."""

    def __init__(self, net: torch.nn.Module, threads: int, onnx: Optional[Path] = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="lptn-bench-")
        # A memory-measuring child process gets the parent's file: exporting would count in
        # its peak.
        self.onnx = onnx or export_onnx(net.cpu(), Path(self._tmp.name))
        self.threads = threads
        self.ran_precision: Dict[str, str] = {}

    def build(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        runtime, precision = name.split("-", 1)
        if runtime == "ort":
            self.ran_precision[name] = "f32"
            return ort_runner(self.onnx, self.threads)
        run, ran = openvino_runner(self.onnx, precision, self.threads)
        self.ran_precision[name] = ran
        return run

    def profile(self, x: torch.Tensor) -> Dict[str, float]:
        return openvino_profile(self.onnx, x, self.threads)


def available(name: str) -> List[str]:
    """The packages ``name`` needs that are not installed."""
    import importlib.util

    need = {"ort": "onnxruntime", "openvino": "openvino"}[name.split("-")[0]]
    return [] if importlib.util.find_spec(need) else [need]
