"""The demo's picture (scripts/demo_panel.py): layout, labels, errors and the written file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lptn.data.image_io import read_image

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("demo_panel", REPO / "scripts" / "demo_panel.py")
panel_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(panel_mod)

GAP, STRIP = panel_mod.GAP, panel_mod.STRIP_HEIGHT


def _solid(h: int, w: int, rgb: tuple) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def _rows() -> list:
    # Two rows of different sizes; distinct colours show where each image lands.
    return [
        [_solid(40, 60, (200, 0, 0)), _solid(40, 60, (0, 200, 0)), _solid(40, 60, (0, 0, 200))],
        [
            _solid(30, 50, (200, 200, 0)),
            _solid(30, 50, (0, 200, 200)),
            _solid(30, 50, (90, 90, 90)),
        ],
    ]


def test_layout_places_every_image_in_its_cell():
    rows = _rows()
    panel = panel_mod.build_panel(rows, ["input", "LPTN", "target"], [["a", "b", "c"]] * 2)
    cell_w = 60
    width = 2 * GAP + 3 * cell_w + 2 * GAP
    height = 2 * GAP + STRIP + (40 + STRIP) + GAP + (30 + STRIP)
    assert panel.shape == (height, width, 3) and panel.dtype == np.uint8
    # First row: images fill their cells exactly, below the label strip.
    top = GAP + STRIP
    for c, img in enumerate(rows[0]):
        left = GAP + c * (cell_w + GAP)
        np.testing.assert_array_equal(panel[top : top + 40, left : left + cell_w], img)
    # Second row: the narrower images are centred horizontally in the 60 px cells.
    top = GAP + STRIP + 40 + STRIP + GAP
    for c, img in enumerate(rows[1]):
        left = GAP + c * (cell_w + GAP) + 5
        np.testing.assert_array_equal(panel[top : top + 30, left : left + 50], img)
        assert (panel[top : top + 30, left - 5 : left] == 255).all()


def test_labels_and_captions_are_drawn_in_their_strips():
    rows = _rows()
    bare = panel_mod.build_panel(rows, ["", "", ""], [["", "", ""]] * 2)
    labelled = panel_mod.build_panel(rows, ["input", "LPTN", "target"], [["", "30.1 dB", ""]] * 2)
    changed = np.any(bare != labelled, axis=2)
    ys, xs = np.nonzero(changed)
    # The labels sit in the top strip; the captions only under the middle column.
    label_band = (ys >= GAP) & (ys < GAP + STRIP)
    assert label_band.sum() > 50
    caption_y = GAP + STRIP + 40
    in_caption = (ys >= caption_y) & (ys < caption_y + STRIP)
    assert in_caption.sum() > 50
    middle = (xs >= GAP + 60 + GAP) & (xs < GAP + 2 * 60 + GAP)
    assert middle[in_caption].all()
    # Nothing outside the strips changes: the images are untouched.
    assert (label_band | in_caption | (ys >= caption_y + STRIP)).all()


def test_long_text_is_cut_to_the_cell():
    rows = [[_solid(20, 30, (10, 10, 10))]]
    panel = panel_mod.build_panel(rows, ["a label far too long for a thirty pixel cell"])
    assert panel.shape[1] == 2 * GAP + 30


@pytest.mark.parametrize(
    "rows, labels, captions, message",
    [
        ([], ["a"], None, "at least one row"),
        ([[_solid(4, 4, (0, 0, 0))]], ["a", "b"], None, "row 0 has 1 images for 2 columns"),
        ([[np.zeros((4, 4, 3), np.float32)]], ["a"], None, "row 0, column 0: expected a uint8"),
        ([[np.zeros((4, 4), np.uint8)]], ["a"], None, r"row 0, column 0: .*shape \(4, 4\)"),
        ([[_solid(4, 4, (0, 0, 0))]], ["a"], [["x", "y"]], "caption row 0 has 2 entries"),
    ],
)
def test_bad_input_is_named(rows, labels, captions, message):
    with pytest.raises(ValueError, match=message):
        panel_mod.build_panel(rows, labels, captions)


def test_write_panel_round_trips_as_png(tmp_path: Path):
    rows = _rows()
    path = panel_mod.write_panel(tmp_path / "out" / "panel.png", rows, ["in", "out", "gt"])
    np.testing.assert_array_equal(
        read_image(path), panel_mod.build_panel(rows, ["in", "out", "gt"])
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["panel.png"]  # no temp file left
