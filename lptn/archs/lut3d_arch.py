"""Image-adaptive 3D lookup tables (Zeng et al., TPAMI 2020): ``ImageAdaptive3DLUT``.

A small CNN looks at a 256x256 bilinear copy of the photo and predicts ``N`` weights; the
photo's LUT is the weighted sum of ``N`` learnable basis LUTs, applied to every full-resolution
pixel by trilinear interpolation. The lookup is a 5-D ``grid_sample`` (pure PyTorch, so it
runs on CPU, CUDA and NPU alike and exports to ONNX from opset 20); docs/lut3d.md.

LUT layout, here and in :mod:`lptn.inference.cube_lut`: ``lut[:, c, ib, ig, ir]`` is output
channel ``c`` (R, G, B) at the input colour ``(ir, ig, ib) / (S - 1)``: red varies along the
last axis, which is grid_sample's ``x`` (W), green along ``y`` (H), blue along ``z`` (D).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from lptn.archs import ARCH_REGISTRY


def identity_lut(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The identity LUT, (3, S, S, S) in [0, 1]: ``lut[c, ib, ig, ir]`` = (r, g, b)[c]."""
    axis = torch.linspace(0, 1, size, dtype=dtype)
    blue, green, red = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack((red, green, blue))


def apply_lut(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup: ``image`` (B, 3, H, W) RGB in [0, 1], ``lut`` (B, 3, S, S, S) -> (B, 3,
    H, W). Colours outside [0, 1] take the nearest LUT face (the table is not extrapolated)."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"apply_lut: image must be (B, 3, H, W), got {tuple(image.shape)}")
    if lut.dim() != 5 or lut.shape[1] != 3 or image.shape[0] != lut.shape[0]:
        raise ValueError(
            f"apply_lut: lut must be (B, 3, S, S, S) with the image's B = {image.shape[0]}, "
            f"got {tuple(lut.shape)}"
        )
    # (B, 1, H, W, 3) with the last axis (x, y, z) = (r, g, b), mapped to [-1, 1].
    grid = (image.permute(0, 2, 3, 1) * 2 - 1).unsqueeze(1).to(lut.dtype)
    out = F.grid_sample(lut, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.squeeze(2)


class WeightPredictor(nn.Module):
    """The paper's classifier: (B, 3, H, W) -> (B, N) mixing weights, from a 256x256 copy.

    Five stride-2 3x3 convolutions (LeakyReLU, instance norm on all but the last) take 256 to 8;
    dropout and an 8x8 convolution give one weight per basis LUT.
    """

    def __init__(self, num_luts: int, input_size: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.input_size = input_size
        widths = (3, 16, 32, 64, 128, 128)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            if i < len(widths) - 2:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
        layers += [nn.Dropout(dropout), nn.Conv2d(128, num_luts, input_size // 32)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(
            x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
        )
        return self.model(small).flatten(1)


@ARCH_REGISTRY.register
class ImageAdaptive3DLUT(nn.Module):
    """Image-adaptive 3D LUT: (B, 3, H, W) in [0, 1] -> (B, 3, H, W), not clamped.

    Args:
        num_luts: basis LUTs N (the paper: 3); the first starts as the identity, the rest 0,
            and the weights start near (1, 0, ...): the untrained network is about the identity.
        lut_size: points per axis S (33: the ``.cube`` convention, 35,937 entries per channel).
        dropout: before the weight head, as the paper (active in training only).

    ``basis_luts`` (N, 3, S, S, S) holds the bases; after each forward pass ``mix_weights``
    holds its (B, N) weights (in the graph), for the smoothness regulariser.
    """

    #: ONNX opset the 5-D GridSample of the lookup needs (torch refuses it below 20).
    onnx_min_opset = 20

    def __init__(self, num_luts: int = 3, lut_size: int = 33, dropout: float = 0.5) -> None:
        super().__init__()
        if num_luts < 1 or lut_size < 2:
            raise ValueError(
                f"ImageAdaptive3DLUT: num_luts {num_luts} >= 1, lut_size {lut_size} >= 2"
            )
        bases = torch.zeros(num_luts, 3, lut_size, lut_size, lut_size)
        bases[0] = identity_lut(lut_size)
        self.basis_luts = nn.Parameter(bases)
        self.predictor = WeightPredictor(num_luts, dropout=dropout)
        # The weights start near (1, 0, ..., 0) for every photo, so the untrained network is
        # about the identity (torch's default head gives weights of order 1: MSE ~ 1 at the
        # start, and a diverging first steps). Not exactly 0: a zero weight times a zero basis
        # gets no gradient, and those bases would never train.
        head = self.predictor.model[-1]
        assert isinstance(head, nn.Conv2d) and head.bias is not None
        with torch.no_grad():
            head.weight.mul_(0.01)
            head.bias.zero_()
            head.bias[0] = 1.0
        self.mix_weights: Optional[torch.Tensor] = None

    def predict_lut(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the photo's LUT (B, 3, S, S, S), layout in the module doc."""
        weights = self.predictor(x)
        self.mix_weights = weights
        mixed = weights @ self.basis_luts.flatten(1).to(weights.dtype)
        return mixed.view(x.shape[0], *self.basis_luts.shape[1:])

    def apply_lut(self, x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
        """Apply a LUT from :meth:`predict_lut` to ``x`` (B, 3, H, W) at any resolution."""
        return apply_lut(x, lut)

    # The "global context from a small copy, then a local apply" protocol of
    # lptn.inference.context_tiling: big photos are enhanced in tiles under a memory budget.
    @property
    def context_size(self) -> Tuple[int, int]:
        """(h, w) of the small copy the weights are predicted from."""
        return (self.predictor.input_size, self.predictor.input_size)

    def context(self, x_small: torch.Tensor) -> torch.Tensor:
        """The LUT of a photo from its small copy (:attr:`context_size`)."""
        return self.predict_lut(x_small)

    def apply_context(self, x_tile: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Apply the photo's LUT to a tile of it: each pixel depends on itself only."""
        return apply_lut(x_tile, context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_lut(x, self.predict_lut(x))
