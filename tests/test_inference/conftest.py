"""Fixtures for the fast-path tests: the official network and FiveK photos as tensors."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights


@pytest.fixture(scope="session")
def official_net(official_checkpoint: Path) -> torch.nn.Module:
    """The released LPTN (nrb 5/3, num_high 3) with the official FiveK weights, eval mode."""
    net = build_network({"type": "LPTN", "nrb_low": 5, "nrb_high": 3, "num_high": 3})
    return load_network_weights(net, official_checkpoint).eval()


@pytest.fixture(scope="session")
def photo_tensors(
    fivek_pairs: List[Tuple[str, np.ndarray, np.ndarray]],
) -> List[Tuple[str, torch.Tensor]]:
    """Every FiveK source photo as ``(name, (1, 3, H, W) float32 tensor in [0, 1])``."""
    return [
        (name, torch.from_numpy(np.ascontiguousarray(src.transpose(2, 0, 1)))[None])
        for name, src, _ in fivek_pairs
    ]


@pytest.fixture(scope="module", autouse=True)
def one_intra_op_thread():
    """Run these tests with one intra-op thread.

    The suite often shares the machine's two cores with other test processes; OpenMP regions
    with two threads then wait a scheduler time slice whenever one thread is descheduled,
    which made these tests 20x slower. Results do not depend on the thread count (tiled tests
    pass ``workers=2`` to exercise the threaded region loop).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
