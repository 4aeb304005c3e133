"""One option, one rule, one message (issue 21): lptn-enhance, lptn-serve (its flags and its
query), the YAML ``inference`` block and the photo API check a value through the same
declaration, so their messages differ only in how each spells the option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest
from PIL import Image
from serve_test_utils import Server, post

from lptn.engine.cli import enhance_main, enhance_parser
from lptn.inference.settings import InferenceOptionError, InferenceSettings
from lptn.photo import PhotoEnhancer, PhotoError
from lptn.photo.pipeline import enhance_photo_bytes
from lptn.platform import option_schema
from lptn.serve.command import build_parser, serve_main


@pytest.fixture(scope="module")
def photo_png(fivek_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x96 crop of a real FiveK photo, as a PNG file."""
    rgb = np.asarray(Image.open(fivek_sample_dir / "source" / "a4576.png").convert("RGB"))
    path = tmp_path_factory.mktemp("settings") / "crop.png"
    Image.fromarray(np.ascontiguousarray(rgb[:64, :96])).save(path)
    return path


def _enhance_error(args: List[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    """The one error line of an lptn-enhance run that must stop at its arguments (exit 2)."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    argv = ["--input", str(folder), "--output", str(tmp_path / "out"), *args]
    assert enhance_main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0][len("error: ") :]


def _serve_error(args: List[str], capsys: pytest.CaptureFixture) -> str:
    assert serve_main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0][len("error: ") :]


def test_a_bad_strength_gets_one_message_everywhere(
    server: Server,
    photo_png: Path,
    official_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    reason = " must be a number in [0, 1], got 1.5"
    assert _enhance_error(["--strength", "1.5"], tmp_path, capsys) == "--strength" + reason
    status, _, body = post(server.url, photo_png.read_bytes(), "image/png", "?strength=1.5")
    assert status == 400 and json.loads(body)["error"] == "strength" + reason
    enhancer = PhotoEnhancer.from_weights(official_checkpoint, device="cpu")
    with pytest.raises(PhotoError) as err:
        enhance_photo_bytes(photo_png.read_bytes(), enhancer, strength=1.5)
    assert str(err.value) == "strength" + reason
    # a word where a number belongs: the same rule quotes it
    status, _, body = post(server.url, photo_png.read_bytes(), "image/png", "?strength=max")
    assert status == 400
    assert json.loads(body)["error"] == "strength must be a number in [0, 1], got 'max'"


def test_jpeg_quality_and_pixel_limit_are_checked_alike_by_both_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    quality = "--jpeg-quality must be an integer in 1..100, got 0"
    assert _enhance_error(["--jpeg-quality", "0"], tmp_path, capsys) == quality
    assert _serve_error(["--jpeg-quality", "0"], capsys) == quality
    limit = "--max-megapixels must be a positive number, got 0.0"
    assert _enhance_error(["--max-megapixels", "0"], tmp_path, capsys) == limit
    assert _serve_error(["--max-megapixels", "0"], capsys) == limit
    # 100 is a quality both take (and photo_file encodes), as before
    assert enhance_parser().parse_args(["--input", "x", "--output", "y"]).jpeg_quality == 95


@pytest.mark.parametrize(
    "flags,block,reason",
    [
        (["--tile", "8"], {"tile_size": 8}, " must be an integer >= 16{}, got 8"),
        (
            ["--memory-budget", "0"],
            {"memory_budget_mb": 0.0},
            " must be a positive number{}, got 0.0",
        ),
    ],
)
def test_yaml_and_lptn_enhance_share_the_inference_checks(
    flags: List[str], block: dict, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The same rule; YAML may also write ~ (automatic), which a flag says by its absence."""
    (key,) = block
    with pytest.raises(InferenceOptionError) as err:
        InferenceSettings.from_options(block)
    assert str(err.value) == f"inference.{key}{reason.format(' or ~')}"
    assert _enhance_error(flags, tmp_path, capsys) == flags[0] + reason.format("")


def test_the_rules_between_inference_keys_name_each_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(InferenceOptionError) as err:
        InferenceSettings.from_options({"compile": True})
    assert "set inference.path: graph" in str(err.value)
    assert "set --path graph" in _enhance_error(["--compile"], tmp_path, capsys)
    with pytest.raises(InferenceOptionError) as err:
        InferenceSettings.from_options({"path": "graph", "memory_budget_mb": 64})
    assert "inference.memory_budget_mb applies to inference.path: fast only" in str(err.value)
    message = _enhance_error(["--path", "graph", "--memory-budget", "64"], tmp_path, capsys)
    assert "--memory-budget applies to --path fast only" in message


def test_the_commands_offer_the_schemas_choices_and_defaults() -> None:
    enhance = enhance_parser()._option_string_actions
    serve = build_parser()._option_string_actions
    for actions in (enhance, serve):
        assert list(actions["--device"].choices) == list(option_schema.DEVICES)
        assert set(actions["--precision"].choices) == set(option_schema.PRECISION_NAMES)
        assert actions["--device"].default == option_schema.OPTIONS.keys["device"].default
        for key in ("jpeg_quality", "max_megapixels"):
            flag = "--" + key.replace("_", "-")
            assert actions[flag].default == option_schema.PHOTO.keys[key].default, flag
    assert list(enhance["--path"].choices) == list(option_schema.INFERENCE_PATHS)
    assert enhance["--path"].default == InferenceSettings().path
    assert enhance["--strength"].default == option_schema.PHOTO.keys["strength"].default


def test_both_commands_get_the_photo_limit_flags_from_one_builder() -> None:
    enhance = enhance_parser()._option_string_actions
    serve = build_parser()._option_string_actions
    for flag in ("--jpeg-quality", "--max-megapixels"):
        a, b = enhance[flag], serve[flag]
        assert (a.type, a.default, a.metavar) == (b.type, b.default, b.metavar), flag
    assert (
        enhance["--jpeg-quality"].help
        == serve["--jpeg-quality"].help
        == ("quality of JPEG and lossy WebP outputs, an integer in 1..100 (default 95)")
    )
    # What a larger photo meets differs: a failed file, or a 413 answer.
    assert enhance["--max-megapixels"].help == (
        "photos whose header announces more pixels fail before they are decoded (default 250)"
    )
    assert serve["--max-megapixels"].help == (
        "largest accepted image in megapixels; larger ones get 413 (default 250)"
    )


def test_lptn_enhance_and_the_bytes_api_run_one_pipeline(
    photo_png: Path, official_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The file lptn-enhance writes is, byte for byte, what enhance_photo_bytes returns."""
    out = tmp_path / "out"
    argv = ["--weights", str(official_checkpoint), "--input", str(photo_png), "--output", str(out)]
    assert enhance_main([*argv, "--device", "cpu", "--no-progress", "--strength", "0.5"]) == 0
    capsys.readouterr()
    enhancer = PhotoEnhancer.from_weights(official_checkpoint, device="cpu")
    data, media = enhance_photo_bytes(photo_png.read_bytes(), enhancer, strength=0.5)
    assert media == "image/png"
    assert (out / photo_png.name).read_bytes() == data
