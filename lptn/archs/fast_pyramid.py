"""Separable / polyphase Laplacian-pyramid operators that work on any region of a level.

Same results as :mod:`lptn.archs.laplacian_pyramid` (up to float rounding, about 1e-7), computed
with less work and memory:

- ``blur`` is the 5x5 binomial kernel ``outer(b, b) / 256``, b = [1, 4, 6, 4, 1]: separable,
  so each pass is a 5-tap filter along one axis.
- ``down`` keeps the even rows and columns of the blur: only those are computed.
- ``up`` (zero insertion, then blur with ``4 * kernel``) is, per axis, two polyphase filters
  that never multiply by the inserted zeros: even outputs ``(x[i-1] + 6 x[i] + x[i+1]) / 8``,
  odd outputs ``(x[i] + x[i+1]) / 2``. The reflect padding of the zero-inserted map becomes
  ``x[-1] = x[1]`` at the start and ``x[n] = x[n-1]`` at the end of each axis.
- ``nearest`` resizing (F.interpolate's default mode) is a row and a column index table,
  computed with PyTorch's own float32 formula ``floor(i * (in / out))``. For odd sizes above
  about 4096 pixels that formula is NOT a plain slice or ``i // 2`` (float rounding moves the
  last index), so the tables are used, never the idealised mapping.

Every operator takes a *region* (``rows = (start, stop)``, ``cols = (start, stop)`` in the
coordinates of its output) and reads only the input rows/columns that region needs, applying
the whole-image border rule wherever the region touches the image border. That is what makes
tiled processing exact. Tensors are NCHW, any float dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

import torch

Span = Tuple[int, int]
# (global index of the window's first sample, size of the whole map) along one axis
Window = Tuple[int, int]

ROWS, COLS = 2, 3


@dataclass(frozen=True)
class MapWindow:
    """A rectangular window ``data`` (N, C, h, w) of a larger map of size ``height x width``
    whose top-left sample is at ``(row0, col0)`` of the map."""

    data: torch.Tensor
    row0: int
    col0: int
    height: int
    width: int

    @staticmethod
    def of(x: MapLike) -> MapWindow:
        """A plain tensor is the window covering its whole map."""
        if isinstance(x, MapWindow):
            return x
        return MapWindow(x, 0, 0, x.shape[ROWS], x.shape[COLS])

    def crop(self, rows: Optional[Span], cols: Optional[Span]) -> MapWindow:
        """The sub-window over map rows/cols ``[start, stop)`` (None keeps an axis)."""
        data, row0, col0 = self.data, self.row0, self.col0
        if rows is not None:
            data = data.narrow(ROWS, rows[0] - row0, rows[1] - rows[0])
            row0 = rows[0]
        if cols is not None:
            data = data.narrow(COLS, cols[0] - col0, cols[1] - cols[0])
            col0 = cols[0]
        return MapWindow(data, row0, col0, self.height, self.width)

    @property
    def row_window(self) -> Window:
        return self.row0, self.height

    @property
    def col_window(self) -> Window:
        return self.col0, self.width


MapLike = Union[torch.Tensor, MapWindow]


# ----------------------------------------------------------------------------------------------
# nearest resizing
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def _nearest_index_cpu(in_size: int, out_size: int) -> torch.Tensor:
    return nearest_source_index(in_size, out_size)


def nearest_source_index(
    in_size: int, out_size: int, device: Optional[torch.device] = None
) -> torch.Tensor:
    """Source index of each output index of F.interpolate(mode='nearest'), int64 (out_size,).

    Mirrors ATen: the scale is ``float32(in) / float32(out)`` and the source index is
    ``min(floor(float32(i) * scale), in - 1)``, all in float32.
    """
    if in_size == out_size:
        return torch.arange(out_size, device=device)
    return nearest_index_formula(in_size, out_size, device)


def nearest_index_formula(
    in_size: int, out_size: int, device: Optional[torch.device] = None
) -> torch.Tensor:
    """:func:`nearest_source_index` without the identity shortcut: no Python branch on the
    sizes, so it also runs on symbolic sizes (``torch.compile``, ``torch.export``)."""
    scale = torch.full((), in_size, dtype=torch.float32, device=device) / torch.full(
        (), out_size, dtype=torch.float32, device=device
    )
    index = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    return index.floor().long().clamp(max=in_size - 1)


def nearest_index(in_size: int, out_size: int) -> torch.Tensor:
    """Cached CPU copy of :func:`nearest_source_index` (do not modify the result)."""
    return _nearest_index_cpu(int(in_size), int(out_size))


def is_consecutive(index: torch.Tensor) -> bool:
    """True when the CPU int64 ``index`` is ``first, first + 1, ..., first + n - 1``."""
    n = index.numel()
    if int(index[-1]) - int(index[0]) != n - 1:
        return False
    return n < 3 or bool(torch.equal(index, torch.arange(int(index[0]), int(index[0]) + n)))


def take(x: torch.Tensor, dim: int, index: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """``x.index_select(dim, index - offset)``, but a view when the indices are consecutive.

    ``index`` is a CPU int64 tensor, so deciding costs no device synchronisation.
    """
    if is_consecutive(index):
        return x.narrow(dim, int(index[0]) - offset, index.numel())
    return x.index_select(dim, (index - offset).to(x.device))


def shift_pattern(index: torch.Tensor, start: int) -> Optional[int]:
    """``k`` such that ``index[i] == (start + i) >> k`` for every i, else None.

    That is the pattern of nearest resizing by a factor 2^k, which a broadcast copy does much
    faster than a gather.
    """
    n = index.numel()
    for k in range(0, 16):
        if int(index[0]) == start >> k and int(index[-1]) == (start + n - 1) >> k:
            if torch.equal(index, torch.arange(start, start + n) >> k):
                return k
            return None
    return None


def take_nearest(
    x: torch.Tensor,
    rows_index: torch.Tensor,
    cols_index: torch.Tensor,
    rows_start: int,
    cols_start: int,
) -> torch.Tensor:
    """``x[:, :, rows_index][..., cols_index]`` for the region of a nearest resize starting at
    ``(rows_start, cols_start)`` of the resized map; a broadcast copy in the usual case."""
    kr = shift_pattern(rows_index, rows_start)
    kc = shift_pattern(cols_index, cols_start)
    if kr is None or kc is None:
        return take(take(x, ROWS, rows_index), COLS, cols_index)
    r0, c0 = int(rows_index[0]), int(cols_index[0])
    src = x[:, :, r0 : int(rows_index[-1]) + 1, c0 : int(cols_index[-1]) + 1]
    n, c, h, w = src.shape
    fr, fc = 1 << kr, 1 << kc
    big = src[:, :, :, None, :, None].expand(n, c, h, fr, w, fc).reshape(n, c, h * fr, w * fc)
    return big[
        :,
        :,
        rows_start - (r0 << kr) : rows_start - (r0 << kr) + rows_index.numel(),
        cols_start - (c0 << kc) : cols_start - (c0 << kc) + cols_index.numel(),
    ]


def resize_nearest_region(
    x: torch.Tensor, out_size: Tuple[int, int], rows: Span, cols: Span
) -> torch.Tensor:
    """``F.interpolate(x, size=out_size)[..., r0:r1, c0:c1]`` reading only what it needs."""
    ri = nearest_index(x.shape[ROWS], out_size[0])[rows[0] : rows[1]]
    ci = nearest_index(x.shape[COLS], out_size[1])[cols[0] : cols[1]]
    return take_nearest(x, ri, ci, rows[0], cols[0])


# ----------------------------------------------------------------------------------------------
# border extension
# ----------------------------------------------------------------------------------------------
def _extended(
    x: torch.Tensor,
    dim: int,
    lo: int,
    hi: int,
    left: Sequence[int],
    right: Sequence[int],
    window: Window,
) -> torch.Tensor:
    """Global indices ``lo .. hi-1`` along ``dim`` of a map of which ``x`` holds a window.

    ``left[k]`` stands for global index ``-1-k`` and ``right[k]`` for ``n+k`` (border rules of
    the whole map); every index must map into the window. The result is a view of ``x`` when
    no border sample is needed.
    """
    start, n = window
    pieces: List[torch.Tensor] = []
    for i in range(lo, min(0, hi)):
        pieces.append(x.narrow(dim, left[-1 - i] - start, 1))
    a, b = max(lo, 0), min(hi, n)
    if b > a:
        pieces.append(x.narrow(dim, a - start, b - a))
    for i in range(max(n, lo), hi):
        pieces.append(x.narrow(dim, right[i - n] - start, 1))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim)


def _reflect2(n: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    # reflect padding of 2: x[-1] = x[1], x[-2] = x[2], x[n] = x[n-2], x[n+1] = x[n-3]
    return (1, 2), (n - 2, n - 3)


def _up_border(n: int) -> Tuple[Tuple[int], Tuple[int]]:
    # reflect padding of the zero-inserted map, seen from the coarse samples
    return (1,), (n - 1,)


def _strided(x: torch.Tensor, dim: int, start: int, count: int, step: int) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + step * (count - 1) + 1, step)
    return x[tuple(index)]


# ----------------------------------------------------------------------------------------------
# down: blur, keep even samples
# ----------------------------------------------------------------------------------------------
def down_1d(x: torch.Tensor, dim: int, span: Span, window: Optional[Window] = None) -> torch.Tensor:
    """Even samples ``span`` of the [1, 4, 6, 4, 1] filter along ``dim``, NOT divided by 16.

    Output sample i reads input samples 2i-2 .. 2i+2 (reflect padding at the borders of the
    whole map). ``x`` may be a window ``(start, n)`` of the whole map along ``dim``; it must
    hold the samples :func:`down_needs` names.
    """
    window = window or (0, x.shape[dim])
    n = window[1]
    if n < 3:
        raise ValueError(f"down_1d: size {n} along dim {dim} is too small for reflect padding 2")
    m = span[1] - span[0]
    left, right = _reflect2(n)
    xe = _extended(x, dim, 2 * span[0] - 2, 2 * span[1] + 1, left, right, window)
    # Only power-of-two scalings are fused into additions (exact products), so a value does
    # not depend on whether the kernel's vector or scalar loop computed it: regions and the
    # whole map give bitwise-equal results.
    out = _strided(xe, dim, 2, m, 2) * 6.0
    out += _strided(xe, dim, 0, m, 2) + _strided(xe, dim, 4, m, 2)
    out.add_(_strided(xe, dim, 1, m, 2) + _strided(xe, dim, 3, m, 2), alpha=4)
    return out


def down_needs(span: Span, n: int) -> Span:
    """Input samples (clipped to ``[0, n)``) that output samples ``span`` of ``down`` read."""
    return max(0, 2 * span[0] - 2), min(n, 2 * span[1] + 1)


def down_region(
    x: MapLike, rows: Span, cols: Span, out: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Region of ``downsample(map)`` = ``blur(map)[:, :, ::2, ::2]``: (N, C, r1-r0, c1-c0).

    ``x`` is the whole map or a :class:`MapWindow` holding at least :func:`down_needs`;
    ``out``, when given, receives the result.
    """
    w = MapWindow.of(x).crop(None, down_needs(cols, MapWindow.of(x).width))
    v = down_1d(w.data, ROWS, rows, w.row_window)
    return torch.mul(down_1d(v, COLS, cols, w.col_window), 1.0 / 256.0, out=out)


def down_size(n: int) -> int:
    """Size of a level after ``down``: ``ceil(n / 2)``."""
    return (n + 1) // 2


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Whole-image ``down``: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    return down_region(x, (0, down_size(x.shape[ROWS])), (0, down_size(x.shape[COLS])))


# ----------------------------------------------------------------------------------------------
# up: zero insertion + blur * 4, polyphase
# ----------------------------------------------------------------------------------------------
def up_1d(x: torch.Tensor, dim: int, span: Span, window: Optional[Window] = None) -> torch.Tensor:
    """Samples ``span`` (of 2n) of the zero-insertion upsampling along ``dim``, times 8.

    Even output 2i: ``x[i-1] + 6 x[i] + x[i+1]``; odd output 2i+1: ``4 (x[i] + x[i+1])``.
    ``x`` may be a window ``(start, n)`` of the whole map; see :func:`up_needs`.
    """
    window = window or (0, x.shape[dim])
    n = window[1]
    i0, i1 = span[0] // 2, (span[1] - 1) // 2 + 1
    m = i1 - i0
    left, right = _up_border(n)
    xe = _extended(x, dim, i0 - 1, i1 + 1, left, right, window)
    a, b, c = xe.narrow(dim, 0, m), xe.narrow(dim, 1, m), xe.narrow(dim, 2, m)
    even = b * 6.0  # not add(alpha=6): see down_1d
    even += a + c
    odd = torch.add(b, c).mul_(4)
    out = torch.stack((even, odd), dim + 1).flatten(dim, dim + 1)
    return out.narrow(dim, span[0] - 2 * i0, span[1] - span[0])


def up_needs(span: Span, n: int) -> Span:
    """Coarse samples (clipped to ``[0, n)``) that samples ``span`` of ``up`` (of 2n) read."""
    return max(0, span[0] // 2 - 1), min(n, (span[1] - 1) // 2 + 2)


def up_region_unscaled(x: MapLike, rows: Span, cols: Span) -> torch.Tensor:
    """Region of ``64 * upsample(map)`` (rows/cols within 2H, 2W); scale by 1/64 when used."""
    w = MapWindow.of(x)
    w = w.crop(up_needs(rows, w.height), None)
    # Columns first: the interleaving copy then runs on half the rows.
    h = up_1d(w.data, COLS, cols, w.col_window)
    return up_1d(h, ROWS, rows, w.row_window)


def up_region(x: MapLike, rows: Span, cols: Span) -> torch.Tensor:
    """Region of ``upsample(map)`` (zero insertion to 2H x 2W, blur with ``4 * kernel``)."""
    return up_region_unscaled(x, rows, cols).mul_(1.0 / 64.0)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Whole-image ``up``: (N, C, H, W) -> (N, C, 2H, 2W)."""
    return up_region(x, (0, 2 * x.shape[ROWS]), (0, 2 * x.shape[COLS]))


def resized_up_span(n: int, out_size: int, span: Span) -> Tuple[torch.Tensor, Span]:
    """For samples ``span`` of ``nearest_resize(up(map of n), out_size)``: their index table
    (into the 2n samples of ``up``) and the range of ``up`` samples it touches."""
    index = nearest_index(2 * n, out_size)[span[0] : span[1]]
    return index, (int(index[0]), int(index[-1]) + 1)


def up_resized_needs(span: Span, n: int, out_size: int) -> Span:
    """Coarse samples that samples ``span`` of ``nearest_resize(up(map), out_size)`` read."""
    return up_needs(resized_up_span(n, out_size, span)[1], n)


def up_resized_region_unscaled(
    x: MapLike, size: Tuple[int, int], rows: Span, cols: Span
) -> torch.Tensor:
    """Region of ``64 * nearest_resize(upsample(map), size)``: the exact path's ``_match_size``.

    Reads only the samples of the map that the region needs (see :func:`up_resized_needs`).
    """
    w = MapWindow.of(x)
    ri, r_span = resized_up_span(w.height, size[0], rows)
    ci, c_span = resized_up_span(w.width, size[1], cols)
    u = up_region_unscaled(w, r_span, c_span)
    return take(take(u, ROWS, ri, r_span[0]), COLS, ci, c_span[0])


# ----------------------------------------------------------------------------------------------
# whole pyramid (same layout as laplacian_pyramid.pyramid_decompose / reconstruct)
# ----------------------------------------------------------------------------------------------
def full(x: torch.Tensor) -> Tuple[Span, Span]:
    """The region covering all of ``x``."""
    return (0, x.shape[ROWS]), (0, x.shape[COLS])


def pyramid_decompose(img: torch.Tensor, num_high: int) -> List[torch.Tensor]:
    """``[band_0 (H, W), ..., band_{L-1}, low]``, equal to the exact decomposition."""
    from lptn.archs.laplacian_pyramid import check_input_size

    check_input_size(img.shape[ROWS], img.shape[COLS], num_high)
    pyramid = []
    current = img
    for _ in range(num_high):
        down = downsample(current)
        size = (current.shape[ROWS], current.shape[COLS])
        up = up_resized_region_unscaled(down, size, *full(current))
        pyramid.append(torch.add(current, up, alpha=-1.0 / 64.0))
        current = down
    pyramid.append(current)
    return pyramid


def pyramid_reconstruct(pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`pyramid_decompose`, equal to the exact reconstruction."""
    img = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        size = (band.shape[ROWS], band.shape[COLS])
        up = up_resized_region_unscaled(img, size, *full(band))
        img = torch.add(band, up, alpha=1.0 / 64.0)
    return img
