"""Option files: the original LPTN files parse, overrides are typed, errors name key and file."""

from pathlib import Path

import pytest

from lptn.platform.options import OptionError, apply_overrides, parse_options, parse_yaml_scalar

REPO = Path(__file__).resolve().parents[2]
OPTION_FILES = sorted((REPO / "options").rglob("*.yml"))


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: p.name)
def test_shipped_option_files_parse(path: Path, tmp_path: Path) -> None:
    is_train = "train" in path.parts
    opt = parse_options(path, is_train=is_train, root=tmp_path)
    assert opt["network_g"]["type"] in {"LPTN", "LPTNPaper", "ImageAdaptive3DLUT"}
    for ds in opt["datasets"].values():
        assert ds["phase"] in {"train", "val", "test"}
    if is_train:
        assert isinstance(opt["val"].get("val_freq", 1), int)
        assert isinstance(opt["logger"]["save_checkpoint_freq"], int)
        assert opt["path"]["models"] == str(tmp_path / "experiments" / opt["name"] / "models")
    else:
        assert opt["path"]["results_root"] == str(tmp_path / "results" / opt["name"])


ORIGINAL_TEST_FILE = """\
# general settings
name: LPTN_FiveK_480p
model_type: LPTNTestModel
num_gpu: 1  # set num_gpu: 0 for cpu mode
manual_seed: 10
datasets:
  test:
    name: FiveK_val
    type: PairedImageDataset
    dataroot_gt: datasets/FiveK/FiveK_test_target.lmdb
    dataroot_lq: datasets/FiveK/FiveK_test_source.lmdb
    io_backend:
      type: lmdb
network_g:
  type: LPTN
  nrb_low: 5
  nrb_high: 3
  num_high: 3
path:
  pretrain_network_g: experiments/pretrained_models/net_g_FiveK_numhigh3.pth
  strict_load_g: false
val:
  save_img: true
  suffix: ~
  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 0
      test_y_channel: false
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opt.yml"
    path.write_text(text)
    return path


def test_original_test_file_unchanged(tmp_path: Path) -> None:
    opt = parse_options(_write(tmp_path, ORIGINAL_TEST_FILE), is_train=False, root=tmp_path)
    assert opt["model_type"] == "LPTNTestModel"
    assert opt["path"]["strict_load_g"] is False
    assert opt["datasets"]["test"]["phase"] == "test"
    assert opt["val"]["metrics"]["psnr"]["crop_border"] == 0


def test_float_tags_and_plain_scientific_notation(tmp_path: Path) -> None:
    text = ORIGINAL_TEST_FILE + (
        "train:\n  optim_g:\n    type: Adam\n    lr: !!float 1e-4\n    eps: 1e-4\n"
        "  total_iter: 5e3\n"
    )
    opt = parse_options(_write(tmp_path, text), is_train=False, root=tmp_path)
    optim = opt["train"]["optim_g"]
    assert optim["lr"] == pytest.approx(1e-4)
    assert optim["eps"] == pytest.approx(1e-4) and isinstance(optim["eps"], float)
    # an integer key written 5e3 is an int after parsing
    assert opt["train"]["total_iter"] == 5000 and isinstance(opt["train"]["total_iter"], int)


def test_overrides_are_typed_by_yaml_rules(tmp_path: Path) -> None:
    opt = parse_options(
        _write(tmp_path, ORIGINAL_TEST_FILE),
        [
            "datasets.test.dataroot_lq=/x/y",
            "val.save_img=false",
            "network_g.num_high=4",
            "val.metrics.psnr.crop_border=4",
            "path.pretrain_network_g=~",
            "val.fix_img_size=[480, 720]",
        ],
        is_train=False,
        root=tmp_path,
    )
    assert opt["datasets"]["test"]["dataroot_lq"] == "/x/y"
    assert opt["val"]["save_img"] is False
    assert opt["network_g"]["num_high"] == 4
    assert opt["val"]["metrics"]["psnr"]["crop_border"] == 4
    assert opt["path"]["pretrain_network_g"] is None
    assert opt["val"]["fix_img_size"] == [480, 720]


def test_override_never_evaluates_code() -> None:
    value = parse_yaml_scalar("__import__('os').system('false')")
    assert isinstance(value, str)


def test_override_without_equals_is_an_error() -> None:
    with pytest.raises(OptionError, match="key.path=value"):
        apply_overrides({}, ["val.save_img"], "x.yml")


def test_override_through_a_scalar_names_the_key() -> None:
    with pytest.raises(OptionError, match="name is a str"):
        apply_overrides({"name": "a"}, ["name.sub=1"], "x.yml")


@pytest.mark.parametrize(
    "override, message",
    [
        ("val.save_img=3", "val.save_img must be true or false"),
        ("manual_seed=abc", "manual_seed must be an integer"),
        ("network_g=5", "network_g must be a mapping"),
        ("device=tpu", "device must be one of"),
        ("val.num_img=1.5", "val.num_img must be an integer"),
    ],
)
def test_wrong_type_names_key_and_file(tmp_path: Path, override: str, message: str) -> None:
    path = _write(tmp_path, ORIGINAL_TEST_FILE)
    with pytest.raises(OptionError, match=message) as info:
        parse_options(path, [override], is_train=False, root=tmp_path)
    assert str(path) in str(info.value)


def test_unknown_top_level_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = _write(tmp_path, ORIGINAL_TEST_FILE + "netwrok_d:\n  type: Discriminator\n")
    with pytest.raises(OptionError, match="netwrok_d: unknown key \\(did you mean network_d\\?\\)"):
        parse_options(path, is_train=False, root=tmp_path)


def test_missing_required_key(tmp_path: Path) -> None:
    text = ORIGINAL_TEST_FILE.replace("model_type: LPTNTestModel\n", "")
    with pytest.raises(OptionError, match="model_type: required key is missing"):
        parse_options(_write(tmp_path, text), is_train=False, root=tmp_path)


def test_training_needs_train_dataset(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="train: required for training"):
        parse_options(_write(tmp_path, ORIGINAL_TEST_FILE), is_train=True, root=tmp_path)


def test_fractional_frequency_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="logger.print_freq must be an integer >= 1, got 2.5"):
        parse_options(
            _write(tmp_path, ORIGINAL_TEST_FILE),
            ["logger.print_freq=2.5"],
            is_train=False,
            root=tmp_path,
        )


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="nope.yml: cannot read"):
        parse_options(tmp_path / "nope.yml", is_train=False)


def test_invalid_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="not valid YAML"):
        parse_options(_write(tmp_path, "name: [unclosed\n"), is_train=False)


def test_experiments_root_moves_every_training_output(tmp_path: Path) -> None:
    source = REPO / "options" / "train" / "LPTN" / "train_FiveK.yml"
    root = tmp_path / "scratch" / "run"
    opt = parse_options(
        source, [f"path.experiments_root={root}"], is_train=True, root=tmp_path / "cwd"
    )
    paths = opt["path"]
    assert paths["experiments_root"] == str(root)
    assert paths["models"] == str(root / "models")
    assert paths["training_states"] == str(root / "training_states")
    assert paths["log"] == str(root)
    assert paths["visualization"] == str(root / "visualization")
    assert paths["tb_logger"] == str(root / "tb_logger")
    # A folder given for one output still wins.
    opt = parse_options(
        source,
        [f"path.experiments_root={root}", f"path.models={tmp_path / 'weights'}"],
        is_train=True,
        root=tmp_path / "cwd",
    )
    assert opt["path"]["models"] == str(tmp_path / "weights")
    assert opt["path"]["training_states"] == str(root / "training_states")
    # Without it, the original layout under the working directory.
    opt = parse_options(source, is_train=True, root=tmp_path / "cwd")
    assert opt["path"]["models"] == str(tmp_path / "cwd" / "experiments" / opt["name"] / "models")
    assert opt["path"].get("tb_logger") is None
