"""Option mistakes stop ``train.py`` / ``test.py`` before anything runs: exit status 2, one
line naming the file and the key path, no traceback, no experiment or results folder."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
from train_test_utils import make_image_folders, tiny_options, tiny_test_options, write_options

from lptn.engine.cli import evaluate_main, train_main
from lptn.engine.option_check import (
    check_block_arguments,
    check_registered_blocks,
    signature_of,
)
from lptn.platform.option_schema import SchemaViolation


@pytest.fixture
def train_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # experiments/, results/, tb_logger/ would go here
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="schema", gan=True, total_iter=2, val=True, val_freq=2)
    return write_options(opt, tmp_path / "train.yml")


@pytest.fixture
def test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_test_options("schema_test", data)
    return write_options(opt, tmp_path / "test.yml")


def _assert_refused(
    rc: int, capsys: pytest.CaptureFixture, option_file: Path, expected: str
) -> None:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"error: {option_file}: ") and expected in err, err
    for folder in ("experiments", "results", "tb_logger"):
        assert not (option_file.parent / folder).exists(), f"{folder} was created"


TRAIN_CASES: List[tuple] = [
    ("val.save_imgs=false", "val.save_imgs: unknown key (did you mean save_img?)"),
    ("num_gpu=two", "num_gpu must be an integer >= 0 or 'auto', got 'two'"),
    ("num_gpu=-3", "num_gpu must be an integer >= 0 or 'auto', got -3"),
    (
        "network_g.nrb_loww=1",
        "network_g.nrb_loww: unknown argument of LPTN (did you mean nrb_low?)",
    ),
    ("network_g.init=zeros", "network_g.init must be one of default, identity, got 'zeros'"),
    ("network_d.input_sise=256", "network_d.input_sise: unknown argument of Discriminator"),
    # Ranges of the networks' and losses' arguments (option_schema.ARGUMENT_RANGES).
    ("network_g.num_high=0", "network_g.num_high must be an integer >= 1, got 0"),
    ("network_g.num_high=-2", "network_g.num_high must be an integer >= 1, got -2"),
    ("network_g.num_high=2.5", "network_g.num_high must be an integer >= 1, got 2.5"),
    ("network_g.nrb_low=-1", "network_g.nrb_low must be an integer >= 0, got -1"),
    ("network_g.nrb_high=-1", "network_g.nrb_high must be an integer >= 0, got -1"),
    ("network_d.in_channels=1", "network_d.in_channels must be 3, got 1"),
    ("network_d.input_size=128", "network_d.input_size must be 256, got 128"),
    ("train.pixel_opt.loss_weight=-1", "train.pixel_opt.loss_weight must be a number >= 0"),
    ("train.gan_opt.loss_weight=-1", "train.gan_opt.loss_weight must be a number >= 0, got -1"),
    ("train.gan_opt.real_label_val=.nan", "train.gan_opt.real_label_val must be a number"),
    ("train.gp_opt.loss_weight=-10", "train.gp_opt.loss_weight must be a number >= 0, got -10"),
    ("train.optim_g.lrr=0.1", "train.optim_g.lrr: unknown argument of Adam (did you mean lr?)"),
    ("train.scheduler.gama=0.5", "train.scheduler.gama: unknown argument of MultiStepLR"),
    ("train.scheduler.milestones=~", "train.scheduler.milestones must be a list"),
    ("train.pixel_opt.reduction=avg", "train.pixel_opt.reduction must be one of none, mean, sum"),
    ("train.gan_opt.gan_type=wgann", "train.gan_opt.gan_type must be one of standard"),
    ("train.gp_opt.loss_weigth=1", "train.gp_opt.loss_weigth: unknown argument of Gradient"),
    ("train.pixel_opt.type=MSELos", "train.pixel_opt.type: unknown loss type 'MSELos'"),
    ("val.metrics.psnr.crop_borderr=4", "val.metrics.psnr.crop_borderr: unknown argument of"),
    ("val.metrics.psnr.crop_border=abc", "val.metrics.psnr.crop_border must be an integer, got"),
    ("datasets.train.io_backend.typ=disk", "datasets.train.io_backend.typ: unknown key"),
    ("datasets.train.dataroot_lq=[unclosed", "--set datasets.train.dataroot_lq: '[unclosed'"),
    ("train.amp.dtype=fp8", "train.amp.dtype must be one of bf16, fp16"),
    ("train.compile=fast", "train.compile must be true or false or one of default"),
    ("inference.path=quick", "inference.path must be one of fast, exact, graph"),
    ("model_type=LPTNModle", "model_type: unknown model type 'LPTNModle'"),
]


@pytest.mark.parametrize("override, expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_bad_options_before_anything_runs(
    train_file: Path, capsys: pytest.CaptureFixture, override: str, expected: str
) -> None:
    rc = train_main(["-opt", str(train_file), "--set", override])
    _assert_refused(rc, capsys, train_file, expected)


TEST_CASES: List[tuple] = [
    ("val.save_imgs=false", "val.save_imgs: unknown key (did you mean save_img?)"),
    ("network_g.num_high=0", "network_g.num_high must be an integer >= 1, got 0"),
    ("datasets.test.io_backend.typ=lmdb", "datasets.test.io_backend.typ: unknown key"),
    ("val.metrics.psnr.crop_border=abc", "val.metrics.psnr.crop_border must be an integer"),
    ("val.metrics.psnr.img=1", "val.metrics.psnr.img: set by lptn when it calls calculate_psnr"),
    ("val.metrics.ssim.type=calculate_ssmi", "unknown metric type 'calculate_ssmi'"),
    ("datasets.test.type=PairedDataset", "datasets.test.type: unknown dataset type"),
]


@pytest.mark.parametrize("override, expected", TEST_CASES, ids=[c[0] for c in TEST_CASES])
def test_evaluate_refuses_bad_options_before_anything_runs(
    test_file: Path, capsys: pytest.CaptureFixture, override: str, expected: str
) -> None:
    rc = evaluate_main(["-opt", str(test_file), "--set", override])
    _assert_refused(rc, capsys, test_file, expected)


def test_registry_check_accepts_the_shipped_blocks() -> None:
    opt = {
        "model_type": "LPTNModel",
        "network_g": {"type": "LPTNPaper", "nrb_low": 5, "nrb_high": 3, "num_high": 3},
        "train": {
            "optim_g": {"type": "AdamW", "lr": 1e-4, "betas": [0.9, 0.99], "fused": True},
            "optim_d": {"type": "NpuFusedAdam", "lr": 1e-4, "anything": 1},  # takes **kwargs
            "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [10], "eta_min": 1e-7},
            "gp_opt": {"loss_weight": 100},  # no type: GradientPenaltyLoss
        },
        "val": {"metrics": {"ssim": {"type": "calculate_ssim", "better": "higher"}}},
    }
    check_registered_blocks(opt)


def test_whole_floats_become_ints_for_int_arguments() -> None:
    from lptn.metrics import calculate_psnr

    block = {"type": "calculate_psnr", "crop_border": 4.0}
    check_block_arguments(block, calculate_psnr, "val.metrics.psnr", passed=("img", "img2"))
    assert block["crop_border"] == 4 and isinstance(block["crop_border"], int)


def test_required_argument_is_named() -> None:
    opt = {"train": {"scheduler": {"type": "MultiStepLR", "gamma": 0.5}}}
    with pytest.raises(
        SchemaViolation, match="train.scheduler.milestones: required by MultiStepLR"
    ):
        check_registered_blocks(opt)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "options").rglob("*.yml")), ids=lambda p: p.name)
def test_shipped_option_files_pass_the_engine_checks(path: Path, tmp_path: Path) -> None:
    from lptn.engine.option_check import load_options

    opt = load_options(path, is_train="train" in path.parts, root=tmp_path)
    assert opt["network_g"]["type"] in {"LPTN", "LPTNPaper", "ImageAdaptive3DLUT"}


def test_repeated_set_flags_add_up() -> None:
    from lptn.engine.cli import _option_parser

    args = _option_parser("t").parse_args(
        ["-opt", "x.yml", "--set", "name=a", "val.save_img=false", "--set", "num_gpu=0"]
    )
    assert args.set == ["name=a", "val.save_img=false", "num_gpu=0"]


def test_charbonnier_eps_must_be_positive(train_file: Path, capsys: pytest.CaptureFixture) -> None:
    rc = train_main(
        [
            "-opt",
            str(train_file),
            "--set",
            "train.pixel_opt.type=CharbonnierLoss",
            "train.pixel_opt.eps=0",
        ]
    )
    _assert_refused(rc, capsys, train_file, "train.pixel_opt.eps must be a positive number, got 0")


def test_every_numeric_argument_of_the_registered_networks_has_a_range() -> None:
    from lptn.archs import ARCH_REGISTRY
    from lptn.losses import LOSS_REGISTRY
    from lptn.platform.option_schema import ARGUMENT_RANGES

    for registry in (ARCH_REGISTRY, LOSS_REGISTRY):
        for name in registry.names():
            params, hints = signature_of(registry.get(name))
            numeric = {p.name for p in params if hints.get(p.name) in (int, float)}
            ranges = set(ARGUMENT_RANGES.get(name, {}))
            # Every range names a real argument; every int argument of a network has one.
            assert ranges <= {p.name for p in params}, name
            if registry is ARCH_REGISTRY:
                assert numeric <= ranges, f"{name}: {sorted(numeric - ranges)} have no range"


@pytest.mark.parametrize("num_high", [1, 2])
@pytest.mark.parametrize("nrb", [0, 1])
def test_the_range_edges_build_and_run(num_high: int, nrb: int) -> None:
    import torch

    from lptn.archs import build_network

    opt = {"type": "LPTN", "nrb_low": nrb, "nrb_high": nrb, "num_high": num_high}
    check_registered_blocks({"network_g": dict(opt)})
    net = build_network(opt)
    size = 2**num_high + 1
    out = net(torch.rand(1, 3, size, size))
    assert out.shape == (1, 3, size, size) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.scheduler.gamma=0"], "train.scheduler.gamma must be a positive number, got 0"),
        (["train.scheduler.milestones=[0]"], "train.scheduler.milestones must be a list of"),
        (
            [
                "train.scheduler={type: CosineAnnealingRestartLR, periods: [4], eta_min: -1}",
            ],
            "train.scheduler.eta_min must be a number >= 0, got -1",
        ),
        (["train.gan_opt.real_label_val=true"], "train.gan_opt.real_label_val must be a number"),
    ],
)
def test_schedule_and_gan_arguments_have_ranges(
    train_file: Path, capsys: pytest.CaptureFixture, overrides: list, expected: str
) -> None:
    rc = train_main(["-opt", str(train_file), "--set", *overrides])
    _assert_refused(rc, capsys, train_file, expected)
