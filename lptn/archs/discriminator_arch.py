"""The released WGAN critic (docs/REFERENCE.md section 3)."""

from __future__ import annotations

import torch
from torch import nn

from lptn.archs import ARCH_REGISTRY


@ARCH_REGISTRY.register
class Discriminator(nn.Module):
    """Critic for the unpaired recipe: any (N, 3, H, W) image -> (N, 1, 1, 1) score.

    The input is resized to ``input_size`` x ``input_size`` (bilinear) first, so the critic
    sees whole images at a fixed scale whatever the crop size.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 256) -> None:
        super().__init__()
        if input_size != 256:
            raise ValueError("network_d.input_size: the released critic's final 8x8 conv needs 256")
        self.input_size = input_size
        widths = [16, 32, 64, 128, 128]
        # Index 0 is the resize so that conv/norm indices match the original layout
        # (model.1, model.3, ...) and discriminators saved by the original code load strictly.
        layers: list[nn.Module] = [
            nn.Upsample(size=(input_size, input_size), mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.InstanceNorm2d(widths[0], affine=True),
        ]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 8))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
