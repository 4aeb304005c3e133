"""Which input goes with which target: names as photographers export them, sizes that differ.

A pair shares a *stem*: ``lq_name`` and ``gt_name`` are patterns of the file name without its
extension, each holding ``{stem}`` once (``'{stem}'``, ``'{stem}_edited'``, ``'{stem}-Edit'``,
``'edited_{stem}'``). Extensions never take part: ``IMG_0001.CR2`` or ``IMG_0001.JPG`` pairs with
``IMG_0001_edited.jpg``. BasicSR's ``filename_tmpl`` (the input name from the target name,
``'{}_lq'``) is ``lq_name`` written with ``{}``; it is read as such. Every file that finds no
partner, on both sides, is named in one error; so are two files of one stem on one side.

``pair_size``: what a target exported at another size than its input gets. ``error`` (default)
refuses the pair; ``resize_gt`` resizes the target to the input's size (area averaging when
shrinking, bicubic when enlarging) provided the two have the same shape within 1% (a crop
is never "resized" into alignment).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from lptn.data.file_backends import FileBackend
from lptn.platform.option_schema import DATASET, PAIR_SIZE_POLICIES

STEM = "{stem}"
#: largest relative difference of aspect ratio that ``resize_gt`` accepts
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class NamePattern:
    """A file-name pattern (without extension) holding ``{stem}`` once."""

    text: str
    option_key: str

    def __post_init__(self) -> None:
        if self.text.count(STEM) != 1:
            raise ValueError(
                f"{self.option_key}: {self.text!r} must hold {STEM} exactly once "
                "(e.g. '{stem}_edited')"
            )

    def stem_of(self, name: str) -> Optional[str]:
        """The stem of file name ``name`` (extension already removed), None if it does not fit."""
        prefix, suffix = self.text.split(STEM)
        if len(name) <= len(prefix) + len(suffix):
            return None
        if not (name.startswith(prefix) and name.endswith(suffix)):
            return None
        return name[len(prefix) : len(name) - len(suffix)]


def name_patterns(opt: Mapping[str, Any], key_path: str) -> Tuple[NamePattern, NamePattern]:
    """``(lq pattern, gt pattern)`` from ``lq_name``/``gt_name``, or from ``filename_tmpl``."""
    lq_text = opt.get("lq_name")
    tmpl = opt.get("filename_tmpl")
    if tmpl == "{}":  # BasicSR's identity template, in the original option files
        tmpl = None
    if tmpl is not None and lq_text is not None:
        raise ValueError(
            f"{key_path}.filename_tmpl and {key_path}.lq_name both name the inputs; keep one "
            f"(filename_tmpl {tmpl!r} is lq_name {str(tmpl).replace('{}', STEM)!r})"
        )
    if tmpl is not None:
        try:
            lq_text = str(tmpl).format(STEM)
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(
                f"{key_path}.filename_tmpl: {tmpl!r} must hold one '{{}}' for the name ({err})"
            ) from err
        if lq_text.count(STEM) != 1:
            raise ValueError(f"{key_path}.filename_tmpl: {tmpl!r} must hold one '{{}}'")
    if lq_text is None:
        lq_text = DATASET.keys["lq_name"].default
    gt_text = opt["gt_name"]
    return NamePattern(str(lq_text), f"{key_path}.lq_name"), NamePattern(
        str(gt_text), f"{key_path}.gt_name"
    )


def pair_size_policy(opt: Mapping[str, Any], key_path: str) -> str:
    """``opt['pair_size']``, checked and defaulted by the schema (``build_dataset``)."""
    return str(opt["pair_size"])


def same_location(a: Path, b: Path) -> bool:
    """True when two roots are one folder (or LMDB), however they are spelt."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def refuse_same_folder(lq: FileBackend, gt: FileBackend, key_path: str, what: str) -> None:
    """Refuse one folder as both sides: every photo would be learnt against itself."""
    if same_location(lq.root, gt.root):
        raise ValueError(
            f"{key_path}.dataroot_lq and {key_path}.dataroot_gt are the same folder "
            f"({lq.root}): {what}; put the inputs and the targets in two folders"
        )


def _index(
    backend: FileBackend, pattern: NamePattern
) -> Tuple[Dict[str, str], List[str], List[str]]:
    """``({stem: key}, keys not fitting the pattern, 'two files of one stem' lines)``."""
    by_stem: Dict[str, List[str]] = {}
    misfits = []
    for key in backend.keys():
        stem = pattern.stem_of(backend.stem(key))
        if stem is None:
            misfits.append(key)
        else:
            by_stem.setdefault(stem, []).append(key)
    clashes = [
        f"{', '.join(keys)} (one photo per name: keep one of them)"
        for stem, keys in sorted(by_stem.items())
        if len(keys) > 1
    ]
    return {stem: keys[0] for stem, keys in by_stem.items()}, misfits, clashes


def _suggestion(lq_stems: Sequence[str], gt_stems: Sequence[str]) -> str:
    """A ``gt_name`` that would pair most of the unmatched targets, when one suffix does."""
    known = set(lq_stems)
    suffixes: Dict[str, int] = {}
    for name in gt_stems:
        for cut in range(len(name) - 1, 0, -1):
            if name[:cut] in known:
                suffixes[name[cut:]] = suffixes.get(name[cut:], 0) + 1
                break
    if not suffixes:
        return ""
    suffix, count = max(suffixes.items(), key=lambda item: item[1])
    if count * 2 < len(gt_stems):
        return ""
    return f"; {count} target names are an input name + {suffix!r}: try gt_name: '{{stem}}{suffix}'"


def match_pairs(
    gt: FileBackend,
    lq: FileBackend,
    patterns: Tuple[NamePattern, NamePattern],
    key_path: str,
) -> List[Tuple[str, str]]:
    """``(gt_key, lq_key)`` pairs sorted by stem.

    Raises:
        ValueError: listing, for both sides at once, every file without a partner, every file
            whose name does not fit its pattern, and files sharing a stem on one side.
    """
    lq_pattern, gt_pattern = patterns
    gt_stems, gt_misfits, gt_clashes = _index(gt, gt_pattern)
    lq_stems, lq_misfits, lq_clashes = _index(lq, lq_pattern)
    pairs = [(gt_stems[s], lq_stems[s]) for s in sorted(gt_stems) if s in lq_stems]
    lines = []
    for root, stems, other, misfits, clashes in (
        (f"{key_path}.dataroot_gt={gt.root}", gt_stems, lq_stems, gt_misfits, gt_clashes),
        (f"{key_path}.dataroot_lq={lq.root}", lq_stems, gt_stems, lq_misfits, lq_clashes),
    ):
        alone = sorted(misfits + [k for s, k in stems.items() if s not in other])
        if alone:
            lines.append(f"  {len(alone)} in {root} without a partner: {', '.join(alone)}")
        for clash in clashes:
            lines.append(f"  in {root}: {clash}")
    if lines:
        hint = ""
        if not pairs or len(pairs) * 2 < len(gt_stems):
            hint = _suggestion([lq.stem(k) for k in lq.keys()], [gt.stem(k) for k in gt.keys()])
        head = (
            f"{key_path}: {len(pairs)} pairs, and images that cannot be paired "
            f"(lq_name {lq_pattern.text!r}, gt_name {gt_pattern.text!r}; "
            f"extensions are ignored){hint}:"
        )
        raise ValueError("\n".join([head] + lines))
    return pairs


def pair_size_problem(
    gt_hw: Tuple[int, int], lq_hw: Tuple[int, int], policy: str, gt_name: str, lq_name: str
) -> Optional[str]:
    """Why a target of ``gt_hw`` cannot go with an input of ``lq_hw`` (HxW), or None."""
    if gt_hw == lq_hw:
        return None
    sizes = f"{gt_name} is {gt_hw[0]}x{gt_hw[1]}, {lq_name} is {lq_hw[0]}x{lq_hw[1]} (HxW)"
    if policy == "error":
        return (
            f"paired images differ in size: {sizes}; export both at one size, "
            "or pair_size: resize_gt"
        )
    gt_aspect, lq_aspect = gt_hw[1] / gt_hw[0], lq_hw[1] / lq_hw[0]
    if abs(gt_aspect / lq_aspect - 1.0) > ASPECT_TOLERANCE:
        return (
            f"paired images differ in shape, not only in size: {sizes}; "
            "pair_size: resize_gt only rescales a target of the input's shape "
            "(a crop or a turn cannot be undone)"
        )
    return None


def fit_target(
    gt: np.ndarray, lq_hw: Tuple[int, int], policy: str, gt_name: str, lq_name: str
) -> np.ndarray:
    """The target ``gt`` (``HxWx3``) at the input's size ``lq_hw`` under ``policy``.

    Raises:
        ValueError: the sizes differ and ``policy`` does not allow it (both files named).
    """
    gt_hw = (int(gt.shape[0]), int(gt.shape[1]))
    problem = pair_size_problem(gt_hw, lq_hw, policy, gt_name, lq_name)
    if problem is not None:
        raise ValueError(problem)
    if gt_hw == lq_hw:
        return gt
    shrinking = gt_hw[0] * gt_hw[1] > lq_hw[0] * lq_hw[1]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    # cv2 saturates integer results, so bicubic overshoot stays within the dtype's range
    out = cv2.resize(np.ascontiguousarray(gt), (lq_hw[1], lq_hw[0]), interpolation=method)
    return out.reshape(lq_hw[0], lq_hw[1], *gt.shape[2:])


__all__ = [
    "ASPECT_TOLERANCE",
    "NamePattern",
    "PAIR_SIZE_POLICIES",
    "STEM",
    "fit_target",
    "match_pairs",
    "name_patterns",
    "pair_size_policy",
    "pair_size_problem",
    "refuse_same_folder",
]
