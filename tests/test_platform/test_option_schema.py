"""The declared option schema: unknown keys at any depth, types and ranges, BasicSR keys that
lptn does not implement, normalisation; all through ``parse_options`` (platform layer only)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lptn.platform import option_schema
from lptn.platform.options import OptionError, parse_options

REPO = Path(__file__).resolve().parents[2]
TRAIN_FILE = REPO / "options" / "train" / "LPTN" / "train_FiveK.yml"
TEST_FILE = REPO / "options" / "test" / "LPTN" / "test_FiveK.yml"


def _error(path: Path, overrides: list, *, is_train: bool, tmp_path: Path) -> str:
    with pytest.raises(OptionError) as info:
        parse_options(path, overrides, is_train=is_train, root=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    "status, alias_of, expected",
    [
        ("ignore", None, "one of used, runner, ignored, refused, alias; got 'ignore'"),
        ("alias", None, "Key alias_of goes with status='alias' only; got 'alias'"),
        ("used", "use_flip", "Key alias_of goes with status='alias' only; got 'used'"),
    ],
)
def test_a_key_status_outside_the_list_is_refused(status, alias_of, expected) -> None:
    with pytest.raises(ValueError) as info:
        option_schema.Key(option_schema.Anything(), "doc", status=status, alias_of=alias_of)
    assert str(info.value).endswith(expected)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("val.save_imgs=false", "val.save_imgs: unknown key (did you mean save_img?)"),
        (
            "datasets.test.io_backend.typ=disk",
            "datasets.test.io_backend.typ: unknown key (did you mean type?)",
        ),
        ("path.pretrain_netwrok_g=x.pth", "path.pretrain_netwrok_g: unknown key (did you mean"),
        ("inference.tile=64", "inference.tile: unknown key (did you mean tile_size?)"),
        ("logger.wandb.projct=x", "logger.wandb.projct: unknown key (did you mean project?)"),
        ("num_gpu=two", "num_gpu must be an integer >= 0 or 'auto', got 'two'"),
        ("num_gpu=-3", "num_gpu must be an integer >= 0 or 'auto', got -3"),
        ("num_gpu=1.5", "num_gpu must be an integer >= 0 or 'auto', got 1.5"),
        ("val.num_img=0", "val.num_img must be an integer >= 1, got 0"),
        ("val.fix_img_size=[480]", "val.fix_img_size must be a list of 2"),
        ("val.precision=fp8", "val.precision must be one of fp32, fp16, bf16"),
        ("dist_params.port=70000", "dist_params.port must be an integer in 1..65535"),
        ("datasets.test.io_backend.type=s3", "datasets.test.io_backend.type must be one of"),
        ("datasets.test.use_hflip=1", "datasets.test.use_hflip must be true or false"),
        ("datasets.test.color=y", "datasets.test.color: BasicSR's y-channel loading"),
        ("datasets.extra.type=PairedImageDataset", "datasets.extra: dataset keys must start"),
        ("inference.memory_budget_mb=0", "inference.memory_budget_mb must be a positive number"),
        ("val.metrics.psnr.better=up", "val.metrics.psnr.better must be one of higher, lower"),
        ("datasets.test.dataroot_lq=[unclosed", "--set datasets.test.dataroot_lq: '[unclosed' is"),
    ],
)
def test_test_file_errors_name_file_and_key(tmp_path: Path, override: str, expected: str) -> None:
    assert expected in _error(TEST_FILE, [override], is_train=False, tmp_path=tmp_path)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.total_itr=10", "train.total_itr: unknown key (did you mean total_iter?)"),
        ("train.amp.enable=true", "train.amp.enable: unknown key (did you mean enabled?)"),
        ("train.ema_decay=1", "train.ema_decay must be a number in [0, 1) or ~, got 1"),
        ("train.ema_decay=-0.1", "train.ema_decay must be a number in [0, 1)"),
        ("train.optim_g.lr=abc", "train.optim_g.lr must be a positive number, got 'abc'"),
        ("train.optim_g.lr=~", "train.optim_g.lr must be a positive number, got None"),
        ("train.net_d_iters=0", "train.net_d_iters must be an integer >= 1, got 0"),
        ("train.perceptual_opt.type=PerceptualLoss", "train.perceptual_opt: BasicSR's"),
        ("datasets.train.batch_size_per_gpu=-1", "batch_size_per_gpu must be an integer >= 1"),
        ("logger.save_checkpoint_freq=2.5", "must be an integer >= 1, got 2.5"),
    ],
)
def test_train_file_errors_name_file_and_key(tmp_path: Path, override: str, expected: str) -> None:
    assert expected in _error(TRAIN_FILE, [override], is_train=True, tmp_path=tmp_path)


def test_missing_lr_points_at_the_misspelling(tmp_path: Path) -> None:
    text = TRAIN_FILE.read_text().replace("lr: !!float 1e-4\n", "lrr: !!float 1e-4\n", 1)
    path = tmp_path / "opt.yml"
    path.write_text(text)
    message = _error(path, [], is_train=True, tmp_path=tmp_path)
    assert "train.optim_g.lr: required key is missing (is lrr a misspelling?)" in message


def test_accepted_keys_of_the_other_helpers(tmp_path: Path) -> None:
    opt = parse_options(
        TRAIN_FILE,
        ["train.ema_decay=0.999", "logger.wandb.project=lptn", "logger.wandb.resume_id=~"],
        is_train=True,
        root=tmp_path,
    )
    assert opt["train"]["ema_decay"] == 0.999
    # entity is absent from the file: the schema fills its default.
    assert opt["logger"]["wandb"] == {"project": "lptn", "resume_id": None, "entity": None}


def test_ignored_and_runner_keys_are_warned_about_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lptn"):
        opt = parse_options(
            TEST_FILE,
            ["scale=1", "is_train=true", "val.pbar=true", "datasets.test.phase=train"],
            is_train=False,
            root=tmp_path,
        )
    text = caplog.text
    for key in ("scale: ignored", "is_train: set by the runner", "val.pbar: ignored"):
        assert key in text
    assert "datasets.test.phase: set by the runner" in text
    assert opt["is_train"] is False and opt["datasets"]["test"]["phase"] == "test"


def test_basicsr_use_hflip_is_use_flip(tmp_path: Path) -> None:
    text = TRAIN_FILE.read_text().replace("use_flip: true", "use_hflip: false", 1)
    path = tmp_path / "hflip.yml"
    path.write_text(text)
    opt = parse_options(path, is_train=True, root=tmp_path)
    assert opt["datasets"]["train"]["use_flip"] is False
    assert "use_hflip" not in opt["datasets"]["train"]
    both = text.replace("use_hflip: false", "use_hflip: false\n    use_flip: true", 1)
    path.write_text(both)
    with pytest.raises(OptionError, match="datasets.train.use_hflip: contradicts use_flip"):
        parse_options(path, is_train=True, root=tmp_path)


def test_integer_keys_written_as_floats_become_ints(tmp_path: Path) -> None:
    opt = parse_options(
        TRAIN_FILE, ["train.total_iter=3e5", "val.val_freq=5e3"], is_train=True, root=tmp_path
    )
    assert opt["train"]["total_iter"] == 300000 and isinstance(opt["train"]["total_iter"], int)
    assert opt["val"]["val_freq"] == 5000 and isinstance(opt["val"]["val_freq"], int)


def test_nothing_is_created_by_parsing(tmp_path: Path) -> None:
    parse_options(TRAIN_FILE, is_train=True, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_schema_tables_match_the_layers_that_use_them() -> None:
    """The platform may not import lptn.data / lptn.inference: its copies of their choice
    tables must be the same values."""
    from lptn.data.data_loader import PREFETCH_MODES
    from lptn.data.file_backends import BACKENDS
    from lptn.data.transforms import SMALL_IMAGE_POLICIES
    from lptn.inference.conv_stacks import BACKENDS as CONV_BACKENDS
    from lptn.inference.settings import PATHS, InferenceSettings
    from lptn.platform.runtime import PRECISIONS

    assert set(option_schema.IO_BACKENDS) == set(BACKENDS)
    # lptn.data reads these two tables from the schema itself.
    assert SMALL_IMAGE_POLICIES is option_schema.SMALL_IMAGE_POLICIES
    assert PREFETCH_MODES is option_schema.PREFETCH_MODES
    assert set(option_schema.CONV_BACKENDS) == set(CONV_BACKENDS)
    assert set(option_schema.INFERENCE_PATHS) == set(PATHS)
    assert set(option_schema.PRECISION_NAMES) == set(PRECISIONS)
    assert set(option_schema.INFERENCE.keys) == set(InferenceSettings.__dataclass_fields__)


def test_whole_number_is_the_one_integer_check() -> None:
    assert option_schema.whole_number(5e3, "x", 1) == 5000
    for bad in (0, 2.5, True, "3", float("inf")):
        with pytest.raises(option_schema.SchemaViolation, match=r"^x must be an integer >= 1"):
            option_schema.whole_number(bad, "x", 1)


# A training file in the BasicSR style, with keys lptn implements, keys it ignores (with a
# warning) and keys the runner sets (written for this test).
BASICSR_STYLE_TRAIN = """\
name: basicsr_style
model_type: LPTNModel
scale: 1
num_gpu: auto
manual_seed: 0
is_train: true
dist: false
datasets:
  train:
    name: pairs
    type: PairedImageDataset
    dataroot_gt: a/gt
    dataroot_lq: a/lq
    filename_tmpl: '{}'
    io_backend:
      type: disk
    gt_size: 128
    use_flip: true
    use_rot: true
    use_shuffle: true
    num_worker_per_gpu: 4
    batch_size_per_gpu: 8
    dataset_enlarge_ratio: 10
    prefetch_mode: cuda
    pin_memory: true
    num_prefetch_queue: 4
network_g:
  type: LPTN
  nrb_low: 5
  nrb_high: 3
  num_high: 3
network_d:
  type: Discriminator
path:
  pretrain_network_g: ~
  strict_load_g: true
  pretrain_network_d: ~
  strict_load_d: false
  param_key_g: params_ema
  resume_state: ~
train:
  ema_decay: 0.999
  optim_g: {type: Adam, lr: !!float 2e-4, weight_decay: 0, betas: [0.9, 0.99]}
  optim_d: {type: Adam, lr: !!float 2e-4, weight_decay: 0, betas: [0.9, 0.99]}
  scheduler:
    type: CosineAnnealingRestartLR
    periods: [250000, 250000]
    restart_weights: [1, 0.5]
    eta_min: !!float 1e-7
  total_iter: 500000
  warmup_iter: -1
  pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}
  gan_opt: {type: GANLoss, gan_type: vanilla, real_label_val: 1.0, fake_label_val: 0.0,
            loss_weight: !!float 5e-3}
  net_d_iters: 1
  net_d_init_iters: 0
val:
  val_freq: !!float 5e3
  save_img: false
  pbar: true
  metrics:
    psnr: {type: calculate_psnr, crop_border: 4, test_y_channel: false, better: higher}
logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~
dist_params:
  backend: nccl
  port: 29500
"""


def test_basicsr_style_file_parses_with_warnings_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "basicsr.yml"
    path.write_text(BASICSR_STYLE_TRAIN)
    with caplog.at_level(logging.WARNING, logger="lptn"):
        opt = parse_options(path, is_train=True, root=tmp_path)
    assert opt["logger"]["save_checkpoint_freq"] == 5000
    assert opt["path"]["strict_load_d"] is False
    warned = [r.getMessage() for r in caplog.records]
    for key in ("scale", "is_train", "dist", "datasets.train.num_prefetch_queue", "val.pbar"):
        assert any(f"{path}: {key}: " in m for m in warned), key
    assert len(warned) == 5


def test_documented_defaults_are_the_code_defaults() -> None:
    """The schema's defaults are the ones applied: by the schema itself for the training
    settings, by the code that reads the other blocks. They must agree."""
    from lptn.inference.settings import InferenceSettings
    from lptn.platform.distributed import DEFAULT_PORT, dist_settings
    from lptn.platform.train_settings import LoggingSettings, TrainingSettings, ValidationSettings

    # The training settings take their defaults from the schema itself (fill_defaults).
    empty = {"train": {"optim_g": {"type": "Adam", "lr": 1e-4}}}
    assert LoggingSettings.from_options(empty).print_freq == 100
    assert LoggingSettings.from_options(empty).save_checkpoint_freq == 5000
    assert TrainingSettings.from_options(empty).max_consecutive_nonfinite == 5
    assert ValidationSettings.from_options(empty).tb_comparisons == 3
    defaults = InferenceSettings()
    for name, key in option_schema.INFERENCE.keys.items():
        assert key.default == getattr(defaults, name), name
    assert option_schema.DIST_PARAMS.keys["port"].default == DEFAULT_PORT
    assert option_schema.DIST_PARAMS.keys["timeout_min"].default == dist_settings({})["timeout_min"]


def test_parsed_options_carry_every_plain_default(tmp_path: Path) -> None:
    opt = parse_options(TRAIN_FILE, ["train.optim_g.type=AdamW"], is_train=True, root=tmp_path)
    train_set = opt["datasets"]["train"]
    # Keys the file leaves out, in nested blocks too, hold the schema's values.
    assert train_set["augment_on_device"] == "auto" and train_set["small_image"] == "error"
    assert train_set["io_backend"] == {"type": "lmdb", "source": "auto", "decode_threads": None}
    assert opt["datasets"]["val"]["use_flip"] is False
    assert opt["dist_params"] == {"backend": "nccl", "port": 29500, "timeout_min": 30}
    assert opt["val"]["num_img"] == 1 and opt["val"]["precision"] == "fp32"
    assert opt["logger"]["progress_bar"] == "auto" and opt["logger"]["wandb"] is None
    assert opt["train"]["max_consecutive_nonfinite"] == 5 and opt["device"] == "auto"
    # Computed defaults stay to the code: the pairing's lq_name, the metric's own direction,
    # AdamW's own weight decay (0.01, not the 0 of other optimisers).
    assert "lq_name" not in train_set and "better" not in opt["val"]["metrics"]["psnr"]
    assert "weight_decay" in opt["train"]["optim_g"]  # written in the file
    adamw = option_schema.fill_defaults(option_schema.OPTIMIZER, {"type": "AdamW", "lr": 1}, "o")
    assert adamw == {"type": "AdamW", "lr": 1}
    # Filling what is filled changes nothing.
    again = option_schema.check_option_tree(opt, is_train=True).options
    assert again == opt


def test_blocks_given_as_tilde_or_absent_get_their_defaults() -> None:
    section = option_schema.OPTIONS
    filled = option_schema.fill_defaults(section, {"val": None}, "", required=False)
    assert filled["val"]["save_img"] is False and filled["logger"]["print_freq"] == 100
    # A block with no default (train: test.py files have none) stays absent.
    assert "train" not in filled and filled["network_d"] is None
    with pytest.raises(option_schema.SchemaViolation, match="name: required key is missing"):
        option_schema.fill_defaults(section, {}, "")
