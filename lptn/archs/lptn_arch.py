"""The LPTN generator (docs/REFERENCE.md section 2): ``LPTN`` (released) and ``LPTNPaper``.

Sequential indices follow the official checkpoint's key layout
(``trans_low.model.{0,3,5..}``, ``trans_high.model.*``, ``trans_high.trans_mask_block_{i}``), so
the released file loads strictly. The output is not clamped.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from lptn.archs import ARCH_REGISTRY
from lptn.archs.laplacian_pyramid import LaplacianPyramid


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


def _as_conv(module: nn.Module) -> nn.Conv2d:
    assert isinstance(module, nn.Conv2d), module
    return module


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None, conv
    return conv.bias


class ResidualBlock(nn.Module):
    """``x + conv3x3(leaky(conv3x3(x)))`` at constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _conv3x3(channels, channels), nn.LeakyReLU(), _conv3x3(channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class TransLow(nn.Module):
    """Translates the low-frequency image: ``tanh(low + f(low))``, (N, 3, h, w) -> same."""

    def __init__(self, num_residual_blocks: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            _conv3x3(3, 16),
            nn.InstanceNorm2d(16),
            nn.LeakyReLU(),
            _conv3x3(16, 64),
            nn.LeakyReLU(),
            *[ResidualBlock(64) for _ in range(num_residual_blocks)],
            _conv3x3(64, 16),
            nn.LeakyReLU(),
            _conv3x3(16, 3),
        )

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return torch.tanh(low + self.model(low))


class TransHigh(nn.Module):
    """Mask network at the coarsest band plus one 1x1 refinement block per band.

    ``model``: (N, 9, h, w) -> (N, mask_channels, h, w). ``trans_mask_block_i`` refines band
    ``L-1-i`` (i = 0 is the coarsest).
    """

    def __init__(self, num_residual_blocks: int, num_high: int, mask_channels: int) -> None:
        super().__init__()
        self.num_high = num_high
        self.model = nn.Sequential(
            _conv3x3(9, 64),
            nn.LeakyReLU(),
            *[ResidualBlock(64) for _ in range(num_residual_blocks)],
            _conv3x3(64, mask_channels),
        )
        for i in range(num_high):
            setattr(
                self,
                f"trans_mask_block_{i}",
                nn.Sequential(
                    nn.Conv2d(mask_channels, 16, 1), nn.LeakyReLU(), nn.Conv2d(16, mask_channels, 1)
                ),
            )

    def mask_block(self, i: int) -> nn.Sequential:
        return getattr(self, f"trans_mask_block_{i}")


class LPTN(nn.Module):
    """Laplacian Pyramid Translation Network, the released variant (3-channel masks).

    Args:
        nrb_low: residual blocks in the low-frequency branch.
        nrb_high: residual blocks in the mask network.
        num_high: number of high-frequency pyramid levels L.
        init: ``"default"`` (PyTorch's initialisation, as the original) or ``"identity"``
            (:meth:`init_as_identity`: the bands pass through unchanged at the start).

    Shape: (N, 3, H, W) -> (N, 3, H, W), float in about [0, 1], H and W >= 2**L + 1.
    """

    mask_channels = 3
    identity_mask = 0.0  # the mask for which refine_band leaves a band unchanged

    def __init__(
        self,
        nrb_low: int = 5,
        nrb_high: int = 3,
        num_high: int = 3,
        init: Literal["default", "identity"] = "default",
    ) -> None:
        super().__init__()
        self.num_high = num_high
        self.pyramid = LaplacianPyramid(num_high)
        self.trans_low = TransLow(nrb_low)
        self.trans_high = TransHigh(nrb_high, num_high, self.mask_channels)
        if init == "identity":
            self.init_as_identity()
        elif init != "default":
            raise ValueError(f"init: expected 'default' or 'identity', got {init!r}")

    @torch.no_grad()
    def init_as_identity(self) -> None:
        """Start from a network that changes nothing but the low-frequency image's ``tanh``.

        Afterwards ``forward(img) == reconstruct(bands(img), tanh(low(img)))`` exactly (float
        rounding aside): the mask network's last convolution is zero (mask =
        :attr:`identity_mask`), each 1x1 refinement block computes ``x`` as
        ``(leaky(x) - leaky(-x)) / 1.01`` through its first 2C hidden units (the other hidden
        units keep their random weights and feed in with zero weight, so they can still learn),
        and the low branch's last convolution is zero. ``tanh`` cannot be undone this way:
        ``tanh(low)`` darkens bright low frequencies, which training then learns to correct.
        Useful where training should move away from the input (unpaired GAN training, which
        otherwise spends its first iterations undoing a random network's artefacts).
        """
        c = self.mask_channels
        eye = torch.eye(c)[:, :, None, None]
        gain = 1 + nn.LeakyReLU().negative_slope  # leaky(x) - leaky(-x) == gain * x
        for i in range(self.num_high):
            block = self.trans_high.mask_block(i)
            first, second = _as_conv(block[0]), _as_conv(block[2])
            first.weight[:c], first.weight[c : 2 * c] = eye, -eye
            _bias(first)[: 2 * c] = 0
            second.weight.zero_()
            second.weight[:, :c], second.weight[:, c : 2 * c] = eye / gain, -eye / gain
            _bias(second).zero_()
        mask_out = _as_conv(self.trans_high.model[-1])
        mask_out.weight.zero_()
        _bias(mask_out).fill_(self.identity_mask)
        low_out = _as_conv(self.trans_low.model[-1])
        low_out.weight.zero_()
        _bias(low_out).zero_()

    def refine_band(
        self, i: int, band: torch.Tensor, mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Released rule: ``block_i(band * mask + band)``; the resized mask is carried on."""
        return self.trans_high.mask_block(i)(band * mask + band), mask

    def translate_bands(
        self, pyramid: List[torch.Tensor], fake_low: torch.Tensor
    ) -> List[torch.Tensor]:
        """New high-frequency bands, fine to coarse, from the input pyramid and ``fake_low``."""
        low, coarse = pyramid[-1], pyramid[-2]
        size = coarse.shape[-2:]
        high_in = torch.cat(
            [coarse, F.interpolate(low, size=size), F.interpolate(fake_low, size=size)], dim=1
        )
        mask = self.trans_high.model(high_in)
        new_bands = []
        for i in range(self.num_high):
            band = pyramid[-2 - i]
            mask = F.interpolate(mask, size=band.shape[-2:])
            new_band, mask = self.refine_band(i, band, mask)
            new_bands.append(new_band)
        return new_bands[::-1]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        pyramid = self.pyramid.decompose(img)
        fake_low = self.trans_low(pyramid[-1])
        new_bands = self.translate_bands(pyramid, fake_low)
        return self.pyramid.reconstruct([*new_bands, fake_low])


class LPTNPaper(LPTN):
    """The variant described in the paper: 1-channel masks, each refined by its block.

    Same parameter names as :class:`LPTN`; only the mask channel counts differ.
    """

    mask_channels = 1
    identity_mask = 1.0

    def refine_band(
        self, i: int, band: torch.Tensor, mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        mask = self.trans_high.mask_block(i)(mask)
        return band * mask, mask


ARCH_REGISTRY.register(LPTN)
ARCH_REGISTRY.register(LPTNPaper)


def lptn_options_from_state_dict(state_dict: Dict[str, torch.Tensor]) -> Optional[Dict[str, Any]]:
    """Guess the ``network_g`` block that fits an LPTN-family state_dict, or None.

    Reads the layer layout: residual blocks in ``trans_low.model`` / ``trans_high.model``,
    the number of ``trans_mask_block_i`` and the mask channel count.
    """
    low = {
        int(k.split(".")[2])
        for k in state_dict
        if k.startswith("trans_low.model.") and k.split(".")[3] == "block"
    }
    high = {
        int(k.split(".")[2])
        for k in state_dict
        if k.startswith("trans_high.model.") and k.split(".")[3] == "block"
    }
    blocks = {
        int(m.group(1))
        for k in state_dict
        if (m := re.match(r"trans_high\.trans_mask_block_(\d+)\.", k))
    }
    first = state_dict.get("trans_high.trans_mask_block_0.0.weight")
    if not blocks or first is None:
        return None
    return {
        "type": "LPTN" if first.shape[1] == 3 else "LPTNPaper",
        "nrb_low": len(low),
        "nrb_high": len(high),
        "num_high": len(blocks),
    }
