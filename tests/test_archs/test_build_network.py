"""``build_network``: the one factory from an option block (and a weights file) to a network,
which the models and ``load_generator`` build through (issue 21)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import torch

from lptn.archs import build_network
from lptn.inference.generator_weights import load_generator
from lptn.models import build_model, weights_options
from lptn.platform.checkpoint_io import CheckpointError
from lptn.platform.option_schema import OPTIONS, fill_defaults
from lptn.platform.runtime import build_runtime

OFFICIAL_OPTIONS = {"type": "LPTN", "nrb_low": 5, "nrb_high": 3, "num_high": 3}
# Keys the original code registered at run time (duplicates of the last mask block).
ALIAS_PREFIX = "trans_high.trans_mask_block."


@pytest.fixture(scope="module")
def official_tensors(official_checkpoint: Path) -> Dict[str, torch.Tensor]:
    """The official file's tensors, read with a bare ``torch.load``, alias keys left out."""
    state = torch.load(official_checkpoint, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith(ALIAS_PREFIX)}


def _assert_holds(net: torch.nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    own = net.state_dict()
    assert set(own) == set(tensors)
    for key, value in tensors.items():
        assert torch.equal(own[key], value), key


def test_weights_are_loaded_into_the_built_network(
    official_checkpoint: Path, official_tensors: Dict[str, torch.Tensor]
) -> None:
    net = build_network(OFFICIAL_OPTIONS, weights=official_checkpoint)
    _assert_holds(net, official_tensors)
    # Without weights: the class's own initialisation, which is not the file's.
    fresh = build_network(OFFICIAL_OPTIONS)
    first = "trans_low.model.0.weight"
    assert not torch.equal(fresh.state_dict()[first], official_tensors[first])


def test_a_file_that_does_not_fit_is_refused_unless_not_strict(
    official_checkpoint: Path, official_tensors: Dict[str, torch.Tensor]
) -> None:
    four_bands = {**OFFICIAL_OPTIONS, "num_high": 4}
    with pytest.raises(CheckpointError, match=r"trans_mask_block_3.*\n.*fits network_g"):
        build_network(four_bands, weights=official_checkpoint)
    net = build_network(four_bands, weights=official_checkpoint, strict=False)
    # Every tensor of the file that fits is loaded; the fourth band keeps its initialisation.
    for key, value in net.state_dict().items():
        if key in official_tensors:
            assert torch.equal(value, official_tensors[key]), key
        else:
            assert key.startswith("trans_high.trans_mask_block_3."), key


def test_the_test_model_and_load_generator_build_the_same_network(
    official_checkpoint: Path, official_tensors: Dict[str, torch.Tensor]
) -> None:
    opt = {
        "model_type": "LPTNTestModel",
        "network_g": dict(OFFICIAL_OPTIONS),
        "path": {"pretrain_network_g": str(official_checkpoint), "strict_load_g": True},
    }
    model = build_model(opt, build_runtime({"device": "cpu"}))
    _assert_holds(model.net_g, official_tensors)
    # The file names no architecture: load_generator reads it from the tensors.
    _assert_holds(load_generator(official_checkpoint), official_tensors)


def test_weights_options_read_the_path_block() -> None:
    def filled(opt):  # as build_model hands options to a model
        return fill_defaults(OPTIONS, opt, "", required=False)

    opt = {"path": {"pretrain_network_d": "d.pth", "strict_load_d": False, "param_key_d": "p"}}
    assert weights_options(filled(opt), "d") == {
        "weights": "d.pth",
        "strict": False,
        "param_key": "p",
    }
    # An empty or missing entry means no file; strictness defaults to true (the schema's).
    assert weights_options(filled({"path": {"pretrain_network_g": ""}}), "g") == {
        "weights": None,
        "strict": True,
        "param_key": None,
    }
    assert weights_options(filled({}), "g")["weights"] is None
