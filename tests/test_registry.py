"""Registries resolve every kind by ``type`` and explain unknown names."""

import pytest

from lptn.archs import ARCH_REGISTRY, build_network
from lptn.models import MODEL_REGISTRY, build_model


def test_archs_registered() -> None:
    assert {"LPTN", "LPTNPaper", "Discriminator"} <= set(ARCH_REGISTRY.names())
    assert "LPTNTestModel" in MODEL_REGISTRY


def test_unknown_arch_names_key_and_lists_closest_first() -> None:
    with pytest.raises(KeyError) as info:
        build_network({"type": "LPTNpaper"}, "network_g")
    message = info.value.args[0]
    assert message.startswith("network_g.type: unknown arch type 'LPTNpaper'")
    listed = message.split("closest first: ")[1].split(", ")
    assert listed[0] == "LPTNPaper"
    assert set(listed) == set(ARCH_REGISTRY.names())


def test_unknown_model_type_names_model_type() -> None:
    with pytest.raises(KeyError, match="model_type: unknown model type 'LPTNTestModle'"):
        build_model({"model_type": "LPTNTestModle"}, runtime=None)


def test_bad_arch_argument_names_the_block() -> None:
    with pytest.raises(TypeError, match=r"network_g \(LPTN\).*nrb_lo"):
        build_network({"type": "LPTN", "nrb_lo": 3}, "network_g")


def test_missing_type() -> None:
    with pytest.raises(KeyError, match="network_d: needs a 'type' key"):
        build_network({"nrb_low": 3}, "network_d")
