"""Adobe / Resolve ``.cube`` 3D LUT files: :func:`write_cube` and :func:`read_cube`.

The format (Adobe "Cube LUT Specification" 1.0): ``TITLE``, ``LUT_3D_SIZE S``, ``DOMAIN_MIN`` /
``DOMAIN_MAX``, then ``S^3`` lines of ``R G B`` with red changing fastest, then green, then blue.
That is the C order of :mod:`lptn.archs.lut3d_arch`'s ``lut[c, ib, ig, ir]``, so a LUT is
written as ``lut.reshape(3, -1).T``. DaVinci Resolve, Premiere, Photoshop, darktable and ffmpeg's
``lut3d`` filter read these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from lptn.platform.atomic_file import write_text_atomic

#: the domain written and the only one read (the models' colours are in [0, 1]).
DOMAIN: Tuple[float, float] = (0.0, 1.0)


def write_cube(path: str | Path, lut: torch.Tensor | np.ndarray, title: str = "lptn") -> Path:
    """Write ``lut`` (3, S, S, S) (``lut[c, ib, ig, ir]``, values in output RGB, typically
    [0, 1]; values outside are kept, as the format allows) to ``path`` atomically.

    ``title`` goes on the ``TITLE`` line (double quotes and line breaks are replaced).
    Values are written with 7 significant digits (float32's precision). Returns ``path``.
    """
    table = (
        lut.detach().cpu().double().numpy()
        if isinstance(lut, torch.Tensor)
        else np.asarray(lut, np.float64)
    )
    if (
        table.ndim != 4
        or table.shape[0] != 3
        or not (table.shape[1] == table.shape[2] == table.shape[3])
    ):
        raise ValueError(f"write_cube: {path}: LUT must be (3, S, S, S), got {table.shape}")
    if not np.isfinite(table).all():
        raise ValueError(f"write_cube: {path}: LUT has non-finite values")
    size = table.shape[1]
    clean_title = " ".join(str(title).replace('"', "'").split())
    lines = [
        f'TITLE "{clean_title}"',
        f"LUT_3D_SIZE {size}",
        f"DOMAIN_MIN {DOMAIN[0]:g} {DOMAIN[0]:g} {DOMAIN[0]:g}",
        f"DOMAIN_MAX {DOMAIN[1]:g} {DOMAIN[1]:g} {DOMAIN[1]:g}",
    ]
    rows = table.reshape(3, -1).T
    body = "\n".join(f"{r:.7g} {g:.7g} {b:.7g}" for r, g, b in rows.tolist())
    path = Path(path)
    # Atomic: an interrupted export never leaves a truncated LUT that an editor would load.
    write_text_atomic(path, "\n".join(lines) + "\n" + body + "\n")
    return path


def _row(line: str, where: str) -> list[float]:
    """One table row: three numbers (red, green, blue), or a ValueError naming ``where``."""
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        raise ValueError(f"{where}: not three numbers: {line!r}") from None
    if len(values) != 3:
        raise ValueError(f"{where}: not three numbers: {line!r}")
    return values


def read_cube(path: str | Path) -> torch.Tensor:
    """Read a 3D ``.cube`` file -> float32 (3, S, S, S) (``lut[c, ib, ig, ir]``).

    Accepts comments (``#``), ``TITLE`` and the default or an explicit [0, 1] domain. A 1D
    LUT, another domain, an unknown keyword or a wrong number of rows raises ``ValueError``
    naming the file (and line).
    """
    path = Path(path)
    size = None
    rows: list[list[float]] = []
    for number, raw in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head = line.split()[0].upper()
        where = f"{path}, line {number}"
        if head == "TITLE":
            continue
        if head == "LUT_3D_SIZE":
            size = int(line.split()[1])
        elif head == "LUT_1D_SIZE":
            raise ValueError(f"{where}: a 1D LUT; lptn reads 3D LUTs only")
        elif head in ("DOMAIN_MIN", "DOMAIN_MAX"):
            want = DOMAIN[0] if head == "DOMAIN_MIN" else DOMAIN[1]
            if [float(v) for v in line.split()[1:]] != [want] * 3:
                raise ValueError(f"{where}: {line!r}; lptn reads the [0, 1] domain only")
        elif head[0].isalpha():
            raise ValueError(f"{where}: unknown keyword {head!r}")
        else:
            rows.append(_row(line, where))
    if size is None:
        raise ValueError(f"{path}: no LUT_3D_SIZE line")
    if len(rows) != size**3:
        raise ValueError(f"{path}: LUT_3D_SIZE {size} needs {size**3} rows, found {len(rows)}")
    table = torch.tensor(rows, dtype=torch.float32).T
    return table.reshape(3, size, size, size).contiguous()
