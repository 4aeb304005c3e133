"""The demo's picture: one row per test pair, ``input | each trained model | target``.

Each column has a small label at the top and each cell an optional caption underneath (the
demo puts the image's PSNR/SSIM there). Images keep their size: a cell is as wide as the
widest image and a row as tall as its tallest image, smaller images are centred on white.
Labels are drawn with OpenCV's Hershey font, so no font file is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from lptn.data.image_io import write_image

BACKGROUND = 255
TEXT_COLOUR = (30, 30, 30)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45
STRIP_HEIGHT = 20  # pixels of a label or caption strip
GAP = 6  # pixels between cells


def _check_image(img: np.ndarray, where: str) -> None:
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8):
        raise ValueError(f"{where}: expected a uint8 RGB array, got {getattr(img, 'dtype', img)}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{where}: expected an (H, W, 3) RGB array, got shape {img.shape}")


def _text_strip(text: str, width: int) -> np.ndarray:
    """A white (STRIP_HEIGHT, width, 3) strip with ``text`` centred (cut to fit)."""
    strip = np.full((STRIP_HEIGHT, width, 3), BACKGROUND, np.uint8)
    while text:
        (text_w, text_h), _ = cv2.getTextSize(text, FONT, FONT_SCALE, 1)
        if text_w <= width - 4:
            break
        text = text[:-1]
    if text:
        origin = ((width - text_w) // 2, (STRIP_HEIGHT + text_h) // 2)
        cv2.putText(strip, text, origin, FONT, FONT_SCALE, TEXT_COLOUR, 1, cv2.LINE_AA)
    return strip


def _cell(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``img`` centred on a white (height, width, 3) canvas."""
    cell = np.full((height, width, 3), BACKGROUND, np.uint8)
    top, left = (height - img.shape[0]) // 2, (width - img.shape[1]) // 2
    cell[top : top + img.shape[0], left : left + img.shape[1]] = img
    return cell


def build_panel(
    rows: Sequence[Sequence[np.ndarray]],
    column_labels: Sequence[str],
    captions: Optional[Sequence[Sequence[str]]] = None,
) -> np.ndarray:
    """Lay images out in a labelled grid.

    Args:
        rows: one sequence per row of uint8 RGB (H, W, 3) images, one per column.
        column_labels: one label per column, drawn above the first row.
        captions: optional text under each image, same shape as ``rows`` ('' for none).

    Returns:
        The panel, uint8 RGB (H, W, 3), white background.

    Raises:
        ValueError: naming the row and column of an image of the wrong type or shape, or
            a row or caption row whose length is not the number of columns.
    """
    columns = len(column_labels)
    if not rows or not columns:
        raise ValueError("build_panel: needs at least one row and one column")
    if captions is not None and len(captions) != len(rows):
        raise ValueError(f"build_panel: {len(captions)} caption rows for {len(rows)} rows")
    for r, row in enumerate(rows):
        if len(row) != columns:
            raise ValueError(f"build_panel: row {r} has {len(row)} images for {columns} columns")
        if captions is not None and len(captions[r]) != columns:
            raise ValueError(
                f"build_panel: caption row {r} has {len(captions[r])} entries for {columns} columns"
            )
        for c, img in enumerate(row):
            _check_image(img, f"build_panel: row {r}, column {c}")

    cell_w = max(img.shape[1] for row in rows for img in row)

    def hstack(blocks: List[np.ndarray]) -> np.ndarray:
        gap = np.full((blocks[0].shape[0], GAP, 3), BACKGROUND, np.uint8)
        parts: List[np.ndarray] = []
        for i, block in enumerate(blocks):
            parts.extend([gap, block] if i else [block])
        return np.concatenate(parts, axis=1)

    stripes = [hstack([_text_strip(label, cell_w) for label in column_labels])]
    for r, row in enumerate(rows):
        row_h = max(img.shape[0] for img in row)
        stripes.append(hstack([_cell(img, row_h, cell_w) for img in row]))
        if captions is not None:
            stripes.append(hstack([_text_strip(text, cell_w) for text in captions[r]]))
        stripes.append(np.full((GAP, stripes[0].shape[1], 3), BACKGROUND, np.uint8))
    body = np.concatenate(stripes[:-1], axis=0)
    # A white margin all round, so the outer images do not touch the edge.
    return cv2.copyMakeBorder(body, GAP, GAP, GAP, GAP, cv2.BORDER_CONSTANT, value=(255,) * 3)


def write_panel(
    path: Path | str,
    rows: Sequence[Sequence[np.ndarray]],
    column_labels: Sequence[str],
    captions: Optional[Sequence[Sequence[str]]] = None,
) -> Path:
    """:func:`build_panel`, written atomically to ``path`` (PNG or JPEG by extension)."""
    path = Path(path)
    write_image(path, build_panel(rows, column_labels, captions))
    return path
