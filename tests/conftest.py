"""Shared pytest fixtures: device/dtype parametrisation and the real data under ``../shared``.

Device and dtype (kornia style). A test that takes a ``device`` and/or ``dtype`` argument runs
once per selected value (per supported pair when it takes both). Select on the command line:

    pytest --device cpu,cuda --dtype float32,float64
    pytest --device all --dtype all

Default (``auto``): every available device (cpu; cuda / mps when present) and the dtypes that
make sense there: float32, float64, bfloat16 on CPU; float32, float16, bfloat16 on accelerators.
A pair the device cannot run (float64 on mps) is skipped with the reason.

Real data: ``shared_dir`` is the ``shared`` folder beside the repository root (CI has it); the
FiveK sample and the official checkpoint are found there, and tests that need them are skipped
with a clear reason when it is absent.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Iterator, List, Tuple

import cv2
import numpy as np
import pytest
import torch

# LPTN_SHARED_DIR points elsewhere (a git worktree has no ``shared`` folder beside it).
SHARED_DIR = Path(
    os.environ.get("LPTN_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_AUTO_DTYPES = {
    "cpu": ["float32", "float64", "bfloat16"],
    "accelerator": ["float32", "float16", "bfloat16"],
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lptn", "device / dtype selection for the lptn test suite")
    group.addoption(
        "--device",
        default="auto",
        help="comma-separated devices for device-parametrised tests "
        "(cpu, cuda, cuda:1, mps), 'all' or 'auto' (default: every available)",
    )
    group.addoption(
        "--dtype",
        default="auto",
        help="comma-separated dtypes (float32, float64, float16, bfloat16), 'all' "
        "or 'auto' (default: the ones that make sense on each device)",
    )


def _available_devices() -> List[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def _split(value: str) -> List[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _selected_devices(config: pytest.Config) -> List[str]:
    value = config.getoption("--device")
    available = _available_devices()
    if value in ("auto", "all"):
        return available
    devices = _split(value)
    for name in devices:
        try:
            torch.device(name)
        except RuntimeError as err:
            raise pytest.UsageError(f"--device: {name!r} is not a torch device ({err})") from err
        if torch.device(name).type not in available:
            raise pytest.UsageError(
                f"--device: {name!r} is not available on this machine "
                f"(available: {', '.join(available)})"
            )
    return devices


def _selected_dtypes(config: pytest.Config, device: str) -> List[str]:
    value = config.getoption("--dtype")
    if value == "all":
        return list(_DTYPES)
    if value == "auto":
        return _AUTO_DTYPES["cpu" if torch.device(device).type == "cpu" else "accelerator"]
    names = _split(value)
    unknown = [n for n in names if n not in _DTYPES]
    if unknown:
        raise pytest.UsageError(
            f"--dtype: unknown dtype(s) {', '.join(unknown)}; choose from {', '.join(_DTYPES)}"
        )
    return names


def _unsupported(device: str, dtype: str) -> str | None:
    if torch.device(device).type == "mps" and dtype == "float64":
        return "mps has no float64"
    return None


def pytest_configure(config: pytest.Config) -> None:
    # Validate --device / --dtype up front so a typo is a usage error, not a collection error.
    for device in _selected_devices(config):
        _selected_dtypes(config, device)
    # float32 means IEEE float32 in the fidelity tests, as in lptn's runtime (``tf32: false``):
    # PyTorch would otherwise let cuDNN run float32 convolutions in TF32 (~1e-3 error).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``device`` / ``dtype`` arguments from ``--device`` / ``--dtype``.

    A test that parametrises one of these names itself keeps its own values for that name.
    """
    explicit = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if isinstance(names, str):
            names = names.split(",")
        explicit.update(n.strip() for n in names)
    wants_device = "device" in metafunc.fixturenames and "device" not in explicit
    wants_dtype = "dtype" in metafunc.fixturenames and "dtype" not in explicit
    if not (wants_device or wants_dtype):
        return
    config = metafunc.config
    devices = _selected_devices(config) if wants_device else ["cpu"]
    params = []
    seen = set()
    for device in devices:
        for dtype in _selected_dtypes(config, device) if wants_dtype else [None]:
            key = (device if wants_device else None, dtype)
            if key in seen:
                continue
            seen.add(key)
            values = []
            if wants_device:
                values.append(torch.device(device))
            if wants_dtype:
                values.append(_DTYPES[dtype])
            reason = _unsupported(device, dtype) if dtype else None
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            test_id = "-".join(str(k) for k in key if k is not None)
            params.append(pytest.param(*values, id=test_id, marks=marks))
    names = [n for n, wanted in (("device", wants_device), ("dtype", wants_dtype)) if wanted]
    metafunc.parametrize(names, params)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared`` folder beside the repository root (FiveK sample, official checkpoint)."""
    if not SHARED_DIR.is_dir():
        # CI always has ../shared beside its clone: there a missing folder is a failure, not a
        # reason to pass with the real-data tests skipped.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"shared data folder {SHARED_DIR} is absent: it holds the FiveK sample and "
            f"the official LPTN checkpoint that this test needs"
        )
    return SHARED_DIR


@pytest.fixture(scope="session")
def fivek_sample_dir(shared_dir: Path) -> Path:
    """``shared/data/fivek_sample`` with ``source/`` (input) and ``target/`` (expert C) PNGs."""
    path = shared_dir / "data" / "fivek_sample"
    if not (path / "source").is_dir() or not (path / "target").is_dir():
        pytest.skip(f"FiveK sample not found: expected {path}/source and {path}/target")
    return path


@pytest.fixture(scope="session")
def official_checkpoint(shared_dir: Path) -> Path:
    """Path of the official LPTN FiveK checkpoint (plain state_dict, nrb 5/3, num_high 3)."""
    path = shared_dir / "models" / "net_g_FiveK_numhigh3.pth"
    if not path.is_file():
        pytest.skip(f"official LPTN checkpoint not found at {path}")
    return path


def read_rgb(path: Path) -> np.ndarray:
    """Read an 8-bit image as an (H, W, 3) float32 RGB array in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"{path}: cannot be read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def fivek_pairs(fivek_sample_dir: Path) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Every FiveK sample pair as ``(name, source, target)``, sorted by name.

    ``name`` is the file name without extension (``'a0212'``); ``source`` and ``target`` are
    (H, W, 3) float32 RGB arrays in [0, 1] of the same size. Treat them as read-only.
    """
    pairs = []
    for source_path in sorted((fivek_sample_dir / "source").glob("*.png")):
        target_path = fivek_sample_dir / "target" / source_path.name
        source, target = read_rgb(source_path), read_rgb(target_path)
        assert source.shape == target.shape, f"{source_path.name}: pair sizes differ"
        source.flags.writeable = False
        target.flags.writeable = False
        pairs.append((source_path.stem, source, target))
    if not pairs:
        pytest.skip(f"no PNG files in {fivek_sample_dir / 'source'}")
    return pairs


@pytest.fixture
def lptn_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` that also sees the ``lptn`` logger at INFO when it does not propagate.

    ``lptn.platform.logger.setup_logger`` turns propagation off, so plain ``caplog`` would miss
    the package's records once any test has configured it.
    """
    log = logging.getLogger("lptn")
    old_level, old_propagate = log.level, log.propagate
    # Records reach caplog through this handler only (not again through the root logger).
    log.addHandler(caplog.handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield caplog
    finally:
        log.removeHandler(caplog.handler)
        log.setLevel(old_level)
        log.propagate = old_propagate


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 5 MiB tmpfs (a device that fills up), unmounted afterwards. Tests run as root;
    where mounting is not permitted the test is skipped with the reason. A test may grow it
    (``mount -o remount,size=64m DIR``) to stand for space freed."""
    folder = tmp_path / "tmpfs_5m"
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as err:
        pytest.skip(f"cannot mount a tmpfs for a real full disk ({' '.join(command)}): {err}")
    if done.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs for a real full disk (needs root or CAP_SYS_ADMIN): "
            f"{' '.join(command)}: {done.stderr.strip()}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
