"""Fit one 3D LUT to what a model does to photos, so its look can travel as a ``.cube`` file.

Least squares over the photos' pixels: the LUT ``L`` minimising
``mean((trilinear(source, L) - enhanced)^2) + smoothness * TV(L)``, with ``TV`` the total
variation of :func:`lptn.losses.lut_regularizer_loss.lut_total_variation`. The objective is
quadratic in ``L`` (the lookup is linear in the table), so L-BFGS from the identity converges in
a few dozen steps. Colours no photo contains are filled in by the smoothness term. A LUT is
global: what a model does differently in two places of a photo with the same colour (LPTN's
high-frequency bands) is averaged, which :func:`fit_psnr` measures.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lptn.archs.lut3d_arch import apply_lut, identity_lut
from lptn.losses.lut_regularizer_loss import lut_total_variation


def _pixels(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """(1, 3, 1, P) float32: every pixel of every (N, 3, H, W) image, side by side."""
    return torch.cat(
        [img.detach().float().permute(1, 0, 2, 3).reshape(3, -1) for img in images], 1
    )[None, :, None]


def fit_lut(
    sources: Sequence[torch.Tensor],
    enhanced: Sequence[torch.Tensor],
    size: int = 33,
    smoothness: float = 1e-4,
    steps: int = 100,
) -> torch.Tensor:
    """Fit a (3, size, size, size) LUT mapping ``sources`` to ``enhanced``.

    Args:
        sources: (N, 3, H, W) images in [0, 1].
        enhanced: what the look made of each source, the same shapes (not clamped is fine).
        size: LUT points per axis (33 for ``.cube`` tools).
        smoothness: weight of the total variation, relative to the per-pixel MSE.
        steps: L-BFGS iterations at most.
    """
    if len(sources) != len(enhanced) or not sources:
        raise ValueError(f"fit_lut: {len(sources)} sources for {len(enhanced)} enhanced images")
    for i, (a, b) in enumerate(zip(sources, enhanced)):
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(
                f"fit_lut: pair {i}: shapes {tuple(a.shape)} and {tuple(b.shape)} must be the "
                f"same (N, 3, H, W)"
            )
    x, y = _pixels(sources), _pixels(enhanced)
    lut = identity_lut(size)[None].clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [lut], lr=1, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (apply_lut(x, lut) - y).pow(2).mean() + smoothness * lut_total_variation(lut)
        loss.backward()
        return loss

    optimizer.step(objective)
    return lut.detach()[0]


def fit_psnr(source: torch.Tensor, enhanced: torch.Tensor, lut: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of the LUT applied to ``source`` against ``enhanced``, both clamped to
    [0, 1] as a saved photo would be; (N, 3, H, W) and (3, S, S, S)."""
    fitted = apply_lut(source.float(), lut[None].expand(source.shape[0], -1, -1, -1, -1))
    mse = (fitted.clamp(0, 1) - enhanced.float().clamp(0, 1)).pow(2).mean().item()
    return float("inf") if mse == 0 else float(10 * torch.log10(torch.tensor(1 / mse)))
