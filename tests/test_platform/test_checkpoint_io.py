"""Checkpoint I/O: every accepted weights layout, clear errors, no code execution, atomic save."""

from __future__ import annotations

import collections
import errno
import os
import pickle
import re
import stat
from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import nn

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.platform.atomic_file import write_text_atomic
from lptn.platform.checkpoint_io import (
    CheckpointError,
    is_disk_full,
    read_state_dict,
    save_atomic,
    save_network,
)

SMALL = {"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 2}
OFFICIAL_HINT = "{'type': 'LPTN', 'nrb_low': 5, 'nrb_high': 3, 'num_high': 3}"


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_network(dict(SMALL))


def assert_same_weights(net: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    own = net.state_dict()
    assert list(own) == list(state)
    for key, value in state.items():
        assert torch.equal(own[key], value), key


class WritesMarkerWhenUnpickled:
    """Unpickling this calls ``open(marker, 'w')``: proof that a loader executed file code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize(
    "layout", ["plain", "params", "params_ema", "dataparallel", "dataparallel_params"]
)
def test_loader_accepts_every_weights_layout(tmp_path, layout):
    state = small_net(1).state_dict()
    prefixed = collections.OrderedDict((f"module.{k}", v) for k, v in state.items())
    payload = {
        "plain": state,
        "params": {"params": state},
        "params_ema": {"params_ema": state},
        "dataparallel": prefixed,
        "dataparallel_params": {"params": prefixed},
    }[layout]
    path = tmp_path / f"{layout}.pth"
    torch.save(payload, path)
    target = small_net(2)
    assert not torch.equal(target.trans_low.model[0].weight, state["trans_low.model.0.weight"])
    assert load_network_weights(target, path) is target
    assert_same_weights(target, state)


def test_loader_unwraps_a_dataparallel_network(tmp_path):
    source = small_net(1)
    path = tmp_path / "net.pth"
    save_network(nn.DataParallel(source), path)
    assert list(torch.load(path, weights_only=True)) == ["params"]
    wrapped = nn.DataParallel(small_net(2))
    load_network_weights(wrapped, path)
    assert_same_weights(wrapped.module, source.state_dict())


def test_param_key_selects_the_entry(tmp_path):
    params, ema = small_net(1).state_dict(), small_net(2).state_dict()
    path = tmp_path / "both.pth"
    torch.save({"params": params, "params_ema": ema}, path)

    net = load_network_weights(small_net(3), path)
    assert_same_weights(net, params)  # default: params first
    net = load_network_weights(small_net(3), path, param_key="params_ema")
    assert_same_weights(net, ema)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}.*'weights'"):
        read_state_dict(path, param_key="weights")


def test_save_network_round_trip_is_weights_only(tmp_path):
    source = small_net(1)
    path = tmp_path / "sub" / "net_g_10.pth"
    save_network(source, path)
    data = torch.load(path, map_location="cpu", weights_only=True)
    assert set(data) == {"params"}
    assert_same_weights(load_network_weights(small_net(2), path), source.state_dict())


@pytest.mark.parametrize(
    "num_high,missing,unexpected",
    [
        (4, "trans_high.trans_mask_block_3.0.weight", None),
        (2, None, "trans_high.trans_mask_block_2.0.weight"),
    ],
)
def test_mismatch_lists_keys_and_suggests_the_fitting_options(
    official_checkpoint, num_high, missing, unexpected
):
    net = build_network({"type": "LPTN", "num_high": num_high})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_network_weights(net, official_checkpoint)
    message = str(info.value)
    assert str(official_checkpoint) in message
    assert OFFICIAL_HINT in message
    if missing:
        assert re.search(r"missing keys \(4\):.*" + re.escape(missing), message)
        assert "unexpected keys" not in message
    if unexpected:
        assert re.search(r"unexpected keys \(4\):.*" + re.escape(unexpected), message)
        assert "missing keys" not in message
    assert not re.search(r"trans_mask_block\.\d", message)  # aliases were dropped first
    for key, value in net.state_dict().items():  # nothing was loaded
        assert torch.equal(value, before[key]), key


def test_shape_mismatch_is_reported(official_checkpoint):
    net = build_network({"type": "LPTNPaper"})
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatches: .*trans_high\.model\.5\.weight"
        r": file \(3, 64, 3, 3\) vs network \(1, 64, 3, 3\)",
    ):
        load_network_weights(net, official_checkpoint)


def test_non_strict_load_takes_the_keys_that_fit(official_checkpoint, lptn_log):
    net = build_network({"type": "LPTN", "num_high": 4})
    load_network_weights(net, official_checkpoint, strict=False)
    official = torch.load(official_checkpoint, weights_only=True)
    assert torch.equal(
        net.state_dict()["trans_low.model.0.weight"], official["trans_low.model.0.weight"]
    )
    assert any(
        r.levelname == "WARNING" and "non-strictly" in r.getMessage() for r in lptn_log.records
    )


def test_arbitrary_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"params": WritesMarkerWhenUnpickled(marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}.*weights_only=True"):
        load_network_weights(small_net(1), path)
    assert not marker.exists()
    # The payload is live: an unrestricted load would have run it.
    with open(path, "rb") as fh:
        torch.load(fh, weights_only=False)["params"].close()
    assert marker.exists()


def test_a_dict_of_non_tensors_is_not_a_state_dict(tmp_path):
    # A Counter passes weights_only (it is an allowed container) but holds no tensors.
    path = tmp_path / "counter.pth"
    torch.save(collections.Counter(a=1, b=2), path)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}.*'a' is not a tensor"):
        load_network_weights(small_net(1), path)
    tensor_path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_path)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(tensor_path))}.*Tensor"):
        read_state_dict(tensor_path)


def test_truncated_or_missing_file_names_the_file(tmp_path):
    path = tmp_path / "net.pth"
    save_network(small_net(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_network_weights(small_net(2), path)
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(missing))}.*not found"):
        read_state_dict(missing)


def test_failed_save_keeps_the_previous_file_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "net_g_latest.pth"
    source = small_net(1)
    save_network(source, path)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_atomic({"params": source.state_dict(), "hook": lambda: None}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert_same_weights(load_network_weights(small_net(2), path), source.state_dict())


def test_a_real_full_disk_is_an_enospc_oserror_naming_the_file(small_tmpfs):
    # On a full device torch.save raises "RuntimeError: [enforce fail at
    # inline_container.cc] unexpected pos"; save_atomic reports the ENOSPC behind it.
    path = small_tmpfs / "net_g_latest.pth"
    source = small_net(1)
    save_network(source, path)
    before = path.read_bytes()
    too_big = {"params": {"w": torch.zeros(2_000_000)}}  # 8 MB on a 5 MiB device
    with pytest.raises(OSError) as caught:
        save_atomic(too_big, path)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(path)
    assert is_disk_full(caught.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in small_tmpfs.iterdir()) == [path.name]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    # mkstemp would make every checkpoint 0600, unreadable to a shared cluster group.
    old = os.umask(umask)
    try:
        save_network(small_net(1), tmp_path / "net.pth")
        write_text_atomic(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "net.pth").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == mode
