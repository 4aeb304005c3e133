"""The photo options of ``lptn-enhance`` and ``lptn-serve``, checked once into a frozen object.

Ranges and defaults are the schema's (``option_schema.PHOTO``); the choices of the output
colour and of what RAW photos become live here and in :mod:`lptn.photo.raw_file`. A check names
the option as the interface spells it (``--strength``, the query's ``strength``...), so every
spelling of one option gets the same rule and the same message.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from lptn.photo.errors import PhotoError
from lptn.photo.raw_file import RAW_OUTPUT_FORMATS
from lptn.platform.option_schema import PHOTO, SchemaViolation, check_key

OUTPUT_COLOURS = ("srgb", "input")
#: What RAW inputs may be written as, as the command line spells them (``tiff`` first: default).
RAW_FORMAT_NAMES = tuple(f.lower() for f in RAW_OUTPUT_FORMATS)
#: The quality of JPEG and lossy WebP outputs when none is asked for (the schema's default).
DEFAULT_JPEG_QUALITY: int = PHOTO.keys["jpeg_quality"].default


def check_photo_option(name: str, value: Any, spelled: Optional[str] = None) -> Any:
    """``value`` of the photo option ``name`` (a key of ``option_schema.PHOTO``), checked and
    normalised; otherwise a :class:`PhotoError` naming it as ``spelled`` (default ``name``)."""
    try:
        return check_key(PHOTO, name, value, spelled or name)
    except SchemaViolation as err:
        raise PhotoError(str(err)) from None


def check_strength(strength: Any, spelled: str = "strength") -> float:
    """``strength`` as a float within [0, 1]; :class:`PhotoError` naming ``spelled`` otherwise."""
    return float(check_photo_option("strength", strength, spelled))


def check_output_colour(output_colour: str, spelled: str = "output colour") -> str:
    """``output_colour`` if it is one of ``OUTPUT_COLOURS``, else PhotoError naming ``spelled``."""
    if output_colour not in OUTPUT_COLOURS:
        raise PhotoError(
            f"{spelled} must be one of {', '.join(OUTPUT_COLOURS)}, got {output_colour!r}"
        )
    return output_colour


def _default(name: str) -> Any:
    return PHOTO.keys[name].default


def add_photo_limit_arguments(
    parser: argparse.ArgumentParser, megapixels_help: Optional[str] = None
) -> None:
    """Add ``--max-megapixels`` and ``--jpeg-quality`` to a command's parser (``lptn-enhance``,
    ``lptn-serve``), with the schema's defaults and descriptions.

    The values are not checked here: :meth:`PhotoSettings.checked` does it, with the flag's
    spelling in the message. ``megapixels_help`` says what happens to a larger photo in this
    command (default: the schema's description); ``(default 250)`` is appended.
    """
    megapixels = PHOTO.keys["max_megapixels"]
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=megapixels.default,
        metavar="MP",
        help=f"{megapixels_help or megapixels.doc} (default {megapixels.default:g})",
    )
    quality = PHOTO.keys["jpeg_quality"]
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=quality.default,
        help=f"{quality.doc}, {quality.kind.describe()} (default {quality.default})",
    )


@dataclass(frozen=True)
class PhotoSettings:
    """What one photo's output is: ``strength`` in [0, 1] (output = input + strength *
    (enhanced - input)), ``output_colour`` (``srgb`` or ``input``), ``jpeg_quality`` 1..100 of
    JPEG and lossy WebP outputs, ``raw_format`` (what RAW inputs become; None: 16-bit TIFF) and
    ``max_megapixels`` (larger photos fail before decoding; None: no limit). Build it with
    :meth:`checked`; consumers take it as it is."""

    strength: float = _default("strength")
    output_colour: str = OUTPUT_COLOURS[0]
    jpeg_quality: int = _default("jpeg_quality")
    raw_format: Optional[str] = None
    max_megapixels: Optional[float] = _default("max_megapixels")

    @classmethod
    def checked(cls, flags: Optional[Mapping[str, str]] = None, **values: Any) -> PhotoSettings:
        """The settings from ``values`` (keyword = field; None = default), each checked once;
        errors name the option as ``flags`` spells it (default: the field's name)."""
        spell = dict(flags or {})
        given = {name: value for name, value in values.items() if value is not None}
        for name in PHOTO.keys:
            if name in given:
                given[name] = check_photo_option(name, given[name], spell.get(name))
        if "output_colour" in given:
            check_output_colour(given["output_colour"], spell.get("output_colour", "output colour"))
        raw = given.get("raw_format")
        if raw is not None and str(raw).lower() not in RAW_FORMAT_NAMES:
            raise PhotoError(
                f"{spell.get('raw_format', 'raw_format')} must be one of "
                f"{', '.join(RAW_FORMAT_NAMES)}, got {raw!r}"
            )
        return cls(**given)

    @property
    def max_pixels(self) -> Optional[int]:
        """``max_megapixels`` in pixels, or None."""
        return int(self.max_megapixels * 1e6) if self.max_megapixels is not None else None
