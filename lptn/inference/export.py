"""Export a generator to ONNX with dynamic batch, height and width (``lptn-export``).

The exported graph is :class:`ExportableLPTN`: the fast path's maths written with traceable
operators only, so no size is frozen into the graph:

- down: reflect padding, then the separable 5-tap filter as two strided depthwise convs;
- up: border extension, one depthwise 3x3 conv giving the four polyphase outputs, and
  ``pixel_shuffle`` (ONNX DepthToSpace) to interleave them;
- nearest resizing: index tables computed in the graph with PyTorch's float32 formula
  ``min(floor(float(i) * (float(in) / float(out))), in - 1)`` and ``index_select`` (Gather),
  so odd and very large sizes map exactly as in PyTorch (ONNX Resize rounds differently);
- the conv stacks and mask blocks are the network's own layers.

Usage::

    lptn-export --weights net_g.pth --format onnx --output lptn.onnx

The result is checked with onnxruntime against PyTorch at two input sizes when onnxruntime is
installed (``--no-check`` skips that).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lptn.archs.lptn_arch import LPTN, LPTNPaper

_B = (1.0, 4.0, 6.0, 4.0, 1.0)


def _traced_index(in_size: torch.Tensor, out_size: torch.Tensor) -> torch.Tensor:
    """Nearest-resize source index table as graph operations (sizes are 0-d int64 tensors)."""
    scale = in_size.to(torch.float32) / out_size.to(torch.float32)
    index = torch.arange(out_size, dtype=torch.float32) * scale  # type: ignore[call-overload]
    return torch.minimum(index.floor().to(torch.int64), in_size - 1)


def _size(x: torch.Tensor, dim: int) -> torch.Tensor:
    # A 0-d tensor, so tracing keeps it symbolic.
    return torch._shape_as_tensor(x)[dim]


def _resize_nearest(x: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, size=(height, width))`` (mode nearest), exactly, with dynamic sizes."""
    x = x.index_select(2, _traced_index(_size(x, 2), height))
    return x.index_select(3, _traced_index(_size(x, 3), width))


class ExportableLPTN(nn.Module):
    """Whole-image, trace-friendly equivalent of ``LPTN`` / ``LPTNPaper`` (shared parameters).

    Shape: (N, 3, H, W) float32 -> (N, 3, H, W), H, W >= 2**num_high + 1.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not isinstance(net, LPTN):
            raise TypeError(f"ExportableLPTN wraps an LPTN or LPTNPaper, got {type(net).__name__}")
        self.net = net
        self.paper = isinstance(net, LPTNPaper)
        self.num_high = net.num_high
        b = torch.tensor(_B) / 16.0
        self.register_buffer("down_v", b.view(1, 1, 5, 1).repeat(3, 1, 1, 1), persistent=False)
        self.register_buffer("down_h", b.view(1, 1, 1, 5).repeat(3, 1, 1, 1), persistent=False)
        # Polyphase taps at offsets (-1, 0, +1): even (1, 6, 1) / 8, odd (0, 4, 4) / 8.
        taps = torch.tensor([[1.0, 6.0, 1.0], [0.0, 4.0, 4.0]]) / 8.0
        phases = torch.stack([torch.outer(taps[p], taps[q]) for p in (0, 1) for q in (0, 1)])
        self.register_buffer("up_w", phases.view(4, 1, 3, 3).repeat(3, 1, 1, 1),
                             persistent=False)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        x = F.conv2d(x, self.down_v.to(x.dtype), stride=(2, 1), groups=3)
        return F.conv2d(x, self.down_h.to(x.dtype), stride=(1, 2), groups=3)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        # Border rule of the zero-inserted map's reflect padding: x[-1] = x[1], x[n] = x[n-1].
        x = torch.cat([x[:, :, 1:2], x, x[:, :, -1:]], 2)
        x = torch.cat([x[:, :, :, 1:2], x, x[:, :, :, -1:]], 3)
        return F.pixel_shuffle(F.conv2d(x, self.up_w.to(x.dtype), groups=3), 2)

    def _up_to(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return _resize_nearest(self._up(x), _size(like, 2), _size(like, 3))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        net = self.net
        levels: List[torch.Tensor] = [img]
        for _ in range(self.num_high):
            levels.append(self._down(levels[-1]))
        bands = [levels[j] - self._up_to(levels[j + 1], levels[j]) for j in range(self.num_high)]
        low = levels[-1]
        fake_low = net.trans_low(low)
        coarse = bands[-1]
        h, w = _size(coarse, 2), _size(coarse, 3)
        mask = net.trans_high.model(torch.cat(
            [coarse, _resize_nearest(low, h, w), _resize_nearest(fake_low, h, w)], 1))
        img_out = fake_low
        for i in range(self.num_high):
            band = bands[-1 - i]
            mask = _resize_nearest(mask, _size(band, 2), _size(band, 3))
            block = net.trans_high.mask_block(i)
            if self.paper:
                mask = block(mask)
                new_band = band * mask
            else:
                new_band = block(band * mask + band)
            img_out = self._up_to(img_out, band) + new_band
        return img_out


def export_onnx(net: nn.Module, path: str | Path, *, opset: int = 17,
                example_size: Tuple[int, int] = (64, 96)) -> Path:
    """Write ``net`` (LPTN / LPTNPaper) as ONNX with dynamic batch, height and width.

    Input ``input`` and output ``output``: (N, 3, H, W) float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = ExportableLPTN(net).eval()
    example = torch.rand(1, 3, *example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (the dynamo one needs onnxscript) warns about constant
        # folding of strided slices and InstanceNorm's training flag: both harmless here.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": axes, "output": axes})
    return path


def check_onnx(path: str | Path, net: nn.Module, inputs: Sequence[torch.Tensor]) -> List[float]:
    """Max abs difference between onnxruntime and ``net`` for each input (needs onnxruntime)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = []
    for x in inputs:
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = net(x).numpy()
        if got.shape != want.shape:
            raise ValueError(f"onnxruntime output shape {got.shape} != PyTorch {want.shape}")
        diffs.append(float(np.abs(got - want).max()))
    return diffs


def export_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-export --weights W --format onnx [--output FILE]``."""
    from lptn.engine.checkpoint import CheckpointError
    from lptn.engine.enhance import load_generator

    parser = argparse.ArgumentParser(
        description="Export an LPTN generator with dynamic batch, height and width.")
    parser.add_argument("--weights", required=True, help="generator weights (.pth)")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    parser.add_argument("--output", help="output file (default: the weights' name with .onnx)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the onnxruntime comparison at two input sizes")
    args = parser.parse_args(argv)
    output = Path(args.output) if args.output else Path(args.weights).with_suffix(".onnx")
    try:
        net = load_generator(args.weights).eval()
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    export_onnx(net, output, opset=args.opset)
    print(f"wrote {output}")
    if not args.no_check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("onnxruntime is not installed: skipped the check (pip install lptn[onnx])")
            return 0
        gen = torch.Generator().manual_seed(0)
        inputs = [torch.rand(1, 3, 77, 120, generator=gen),
                  torch.rand(2, 3, 131, 97, generator=gen)]
        diffs = check_onnx(output, net, inputs)
        for x, diff in zip(inputs, diffs):
            print(f"onnxruntime vs PyTorch, input {tuple(x.shape)}: max abs diff {diff:.2e}")
        if max(diffs) > 1e-4:
            print("error: the exported model differs from PyTorch by more than 1e-4",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main())
