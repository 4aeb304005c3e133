"""Export a generator with dynamic batch, height and width (``lptn-export``): ONNX, TorchScript or
a ``torch.export`` program.

For the LPTN family the exported model is :class:`~lptn.inference.graph_lptn.GraphLPTN`, the
fast path's maths in plain tensor operators, so no size is frozen into the file; any other
registered generator is exported as it is (:func:`export_module`). Each file is checked against
PyTorch at two sizes after writing. Formats, usage and why ``Gather`` rather than ONNX
``Resize``: docs/PERFORMANCE.md, "Export", and docs/speed.md.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from lptn.archs.lptn_arch import LPTN
from lptn.inference.generator_weights import generator_min_side
from lptn.inference.graph_lptn import GraphLPTN
from lptn.platform.atomic_file import atomic_write

FORMAT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported": ".pt2"}
# The largest side torch.export's symbolic sizes accept (a 100-megapixel photo is ~11600 px).
MAX_EXPORT_SIDE = 65536


def export_module(net: nn.Module, traced_sizes: bool = False) -> nn.Module:
    """What is exported for ``net``: :class:`GraphLPTN` for the LPTN family (``traced_sizes``
    for the tracing exporters), the generator itself otherwise, in eval mode."""
    if isinstance(net, LPTN):
        return GraphLPTN(net, traced_sizes=traced_sizes).eval()
    return net.eval()


def min_export_side(net: nn.Module) -> int:
    """The smallest height / width the exported program accepts (LPTN: ``2**num_high + 1``)."""
    return max(2, generator_min_side(net))


DEFAULT_OPSET = 17


def min_onnx_opset(net: nn.Module) -> int:
    """The lowest ONNX opset that holds ``net``'s operators: 17, or the generator's own
    ``onnx_min_opset`` (a 3D LUT's 5-D ``GridSample`` needs opset 20)."""
    return max(DEFAULT_OPSET, int(getattr(net, "onnx_min_opset", DEFAULT_OPSET)))


def export_onnx(
    net: nn.Module,
    path: str | Path,
    *,
    opset: Optional[int] = None,
    example_size: Tuple[int, int] = (64, 96),
) -> Path:
    """Write ``net`` (any registered generator) as ONNX with dynamic batch, height and width.

    Input ``input`` and output ``output``: (N, 3, H, W) float32. ``opset``: default
    :func:`min_onnx_opset`; a lower one than that raises ``ValueError``.
    """
    path = Path(path)
    needed = min_onnx_opset(net)
    if opset is None:
        opset = needed
    elif opset < needed:
        raise ValueError(
            f"--opset {opset}: {type(net).__name__} needs ONNX opset {needed} or later"
        )
    model = export_module(net, traced_sizes=True)
    example = torch.rand(1, 3, *example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (the dynamo one needs onnxscript) warns about constant
        # folding of strided slices and InstanceNorm's training flag: both harmless here.
        warnings.simplefilter("ignore")
        with atomic_write(path) as fh:
            # The TorchScript exporter writes to a binary file as well as to a path (through
            # torch.serialization's file opener); the annotation names paths only.
            torch.onnx.export(
                model,
                (example,),
                fh,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": axes, "output": axes},
            )
    return path


def export_torchscript(
    net: nn.Module, path: str | Path, example_size: Tuple[int, int] = (64, 96)
) -> Path:
    """Write ``net`` as a traced TorchScript module that runs at any batch, height and width.

    Input and output: (N, 3, H, W) float32.
    """
    path = Path(path)
    model = export_module(net, traced_sizes=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The size check in forward is a Python comparison: the tracer warns that it is
        # frozen, which is harmless (a smaller input fails in the convs instead).
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.rand(1, 3, *example_size), check_trace=False)
    with atomic_write(path) as fh:
        torch.jit.save(traced, fh)
    return path


def export_program(
    net: nn.Module, path: str | Path, example_size: Tuple[int, int] = (64, 96)
) -> Path:
    """Write ``net`` as a ``torch.export`` program (``.pt2``) with symbolic N, H and W.

    Input and output: (N, 3, H, W) float32, :func:`min_export_side` <= H, W <= 65536 (LPTN:
    2**num_high + 1).
    """
    path = Path(path)
    model = export_module(net)
    min_side = min_export_side(net)
    dims = {
        0: torch.export.Dim("batch", min=1, max=1024),
        2: torch.export.Dim("height", min=min_side, max=MAX_EXPORT_SIDE),
        3: torch.export.Dim("width", min=min_side, max=MAX_EXPORT_SIDE),
    }
    # A batch of 2 in the example: torch.export specialises sizes 0 and 1 to constants.
    example = torch.rand(2, 3, *example_size)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=(dims,))
    with atomic_write(path) as fh:
        torch.export.save(program, fh)
    return path


EXPORTERS: Dict[str, Callable[..., Path]] = {
    "onnx": export_onnx,
    "torchscript": export_torchscript,
    "exported": export_program,
}


def load_exported(path: str | Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function running the exported file ``path`` of format ``fmt`` on a CPU tensor.

    ``onnx`` needs onnxruntime; the others need only PyTorch.
    """
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
    elif fmt == "exported":
        module = torch.export.load(str(path)).module()
    else:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(EXPORTERS)})")

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return run


def check_export(
    path: str | Path, fmt: str, net: nn.Module, inputs: Sequence[torch.Tensor]
) -> List[float]:
    """Max abs difference between the exported file and ``net`` for each input."""
    run = load_exported(path, fmt)
    diffs = []
    for x in inputs:
        got = run(x)
        with torch.no_grad():
            want = net(x)
        if got.shape != want.shape:
            raise ValueError(
                f"{fmt} output shape {tuple(got.shape)} != PyTorch {tuple(want.shape)}"
            )
        diffs.append(float((got - want).abs().max()))
    return diffs


def export_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-export --weights W [--format onnx|torchscript|exported] [--output FILE]
    [--param-key params|params_ema]``; exit 2 for bad arguments or weights, 1 when the
    export differs from PyTorch."""
    from lptn.inference.generator_weights import load_generator
    from lptn.platform.checkpoint_io import PARAM_KEYS, CheckpointError, weights_entries

    parser = argparse.ArgumentParser(
        description="Export a generator (any registered architecture) with dynamic batch, height "
        "and width."
    )
    parser.add_argument("--weights", required=True, help="generator weights (.pth)")
    parser.add_argument(
        "--format",
        default="onnx",
        choices=list(EXPORTERS),
        help="onnx (default), torchscript (torch.jit) or exported (torch.export)",
    )
    parser.add_argument(
        "--output",
        help="output file (default: the weights' name with .onnx / .torchscript.pt / .pt2)",
    )
    parser.add_argument(
        "--param-key",
        choices=list(PARAM_KEYS),
        help="entry of a weights file that holds several: params or params_ema (the moving "
        "average of train.ema_decay); default params, as lptn-enhance",
    )
    parser.add_argument(
        "--opset",
        type=int,
        help=f"ONNX opset (default {DEFAULT_OPSET}, or what the generator needs: 20 for a 3D LUT)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the comparison with PyTorch at two input sizes",
    )
    args = parser.parse_args(argv)
    output = (
        Path(args.output)
        if args.output
        else Path(args.weights).with_suffix(FORMAT_SUFFIXES[args.format])
    )
    if args.format == "exported" and output.suffix != ".pt2":
        print(
            f"error: --output {output}: torch.export programs must end with .pt2", file=sys.stderr
        )
        return 2
    try:
        entries = weights_entries(args.weights)
        net = load_generator(args.weights, param_key=args.param_key).eval()
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(entries) > 1:
        # read_state_dict's choice when no key is given: the first of PARAM_KEYS present.
        chosen = args.param_key or entries[0]
        print(f"{args.weights} holds {' and '.join(entries)}: exporting {chosen} (--param-key)")
    if args.format == "onnx":
        try:
            export_onnx(net, output, opset=args.opset)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        EXPORTERS[args.format](net, output)
    print(f"wrote {output}")
    if args.no_check:
        return 0
    if args.format == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("onnxruntime is not installed: skipped the check (pip install lptn[onnx])")
            return 0
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 3, 77, 120, generator=gen), torch.rand(2, 3, 131, 97, generator=gen)]
    diffs = check_export(output, args.format, net, inputs)
    for x, diff in zip(inputs, diffs):
        print(f"{args.format} vs PyTorch, input {tuple(x.shape)}: max abs diff {diff:.2e}")
    if max(diffs) > 1e-4:
        print("error: the exported model differs from PyTorch by more than 1e-4", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main())
