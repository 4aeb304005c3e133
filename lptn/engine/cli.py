"""Command-line entry points (``lptn-train``, ``lptn-test``, ``lptn-speed``, ``lptn-enhance``,
``lptn-learn``, ``lptn-compare``).

Each parses arguments, builds the options and the runtime, and calls one runner; the scripts
``train.py``, ``test.py`` and ``test_speed.py`` at the repository root call these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from lptn.engine.option_check import load_options
from lptn.platform.checkpoint_io import CheckpointError
from lptn.platform.logger import drop_startup_records, keep_startup_records, setup_logger
from lptn.platform.option_schema import (
    CONV_BACKENDS,
    DEVICES,
    INFERENCE,
    OPTIONS,
    PAIR_SIZE_POLICIES,
    PRECISION_NAMES,
    VAL,
)
from lptn.platform.options import OptionError
from lptn.platform.runtime import DeviceError, build_runtime, set_random_seed


def _option_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-opt", "--opt", required=True, help="YAML option file")
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",  # a repeated --set adds to the earlier ones instead of replacing them
        default=[],
        metavar="KEY=VALUE",
        help="override options, e.g. --set val.save_img=false "
        "datasets.test.dataroot_lq=/data/x (values typed as YAML; may be repeated)",
    )
    parser.add_argument("--device", choices=DEVICES, help="overrides the device option")
    return parser


def _add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision`` with the options' choices and defaults."""
    parser.add_argument("--device", default=OPTIONS.keys["device"].default, choices=DEVICES)
    parser.add_argument(
        "--precision", default=VAL.keys["precision"].default, choices=sorted(PRECISION_NAMES)
    )


def _load(args: argparse.Namespace, *, is_train: bool) -> dict:
    overrides = list(args.set)
    if args.device:
        overrides.append(f"device={args.device}")
    return load_options(args.opt, overrides, is_train=is_train)


# Errors caused by the user's files or options: reported in one line, exit status 2.
USER_ERRORS = (OptionError, DeviceError, CheckpointError, KeyError, FileNotFoundError, ValueError)


def _fail(err: BaseException | str) -> int:
    if isinstance(err, KeyError):
        err = err.args[0]
    print(f"error: {err}", file=sys.stderr)
    return 2


def train_main(argv: Optional[List[str]] = None) -> int:
    """``python train.py -opt FILE [--auto_resume] [--launcher none|pytorch|slurm]``: train as
    the options say; ``pytorch`` under ``python -m torch.distributed.run``, ``slurm`` under
    ``srun`` (one process per device, see :mod:`lptn.platform.distributed`).

    Exit status: 0 finished; 130 / 143 stopped by SIGINT / SIGTERM after saving a resumable
    state; 1 stopped by non-finite losses; 2 bad options, data, state files or launcher
    environment, a missing package (NPU support, mixed-precision packages, wandb), another live run
    in the same experiment folder, an unreadable training image (state saved first) or no
    space left on the device (the previous checkpoint intact).
    """
    from lptn.data.image_io import ImageReadError
    from lptn.engine.train_loop import (
        DiskFullError,
        ExperimentBusyError,
        NonFiniteLossError,
        TrainingDataError,
        run_training,
    )
    from lptn.engine.training_state import TrainingStateError
    from lptn.platform import distributed
    from lptn.platform.amp_backend import AmpUnavailable
    from lptn.platform.runtime import build_training_runtime
    from lptn.platform.wandb_logger import WandbUnavailable

    parser = _option_parser("Train an LPTN model (options/train/LPTN/*.yml).")
    parser.add_argument(
        "--auto_resume",
        action="store_true",
        help="continue from the newest training state of this experiment, if any",
    )
    parser.add_argument(
        "--launcher",
        default="none",
        choices=list(distributed.LAUNCHERS),
        help="none: one process; pytorch: started by python -m "
        "torch.distributed.run; slurm: started by srun",
    )
    args = parser.parse_args(argv)
    try:
        # Log lines reach a file or a pipe (cluster job logs) as they are written.
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    # The option warnings (ignored keys...) go to the console now and into the log later.
    setup_logger()
    keep_startup_records()
    try:
        opt = _load(args, is_train=True)
        launch = distributed.launch_environment(
            args.launcher, port=distributed.dist_settings(opt)["port"]
        )
        opt["dist"], opt["rank"], opt["world_size"] = (
            launch.distributed,
            launch.rank,
            launch.world_size,
        )
        runtime = build_training_runtime(opt, launch)
        outcome = run_training(opt, runtime, auto_resume=args.auto_resume)
        distributed.shutdown(wait_for_others=True)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "error: interrupted a second time; the last saved state is in the experiment's "
            "training_states folder (resume with --auto_resume)",
            file=sys.stderr,
        )
        return 130
    except USER_ERRORS + (
        TrainingStateError,
        AmpUnavailable,
        WandbUnavailable,
        distributed.LaunchError,
        ExperimentBusyError,
        DiskFullError,
        TrainingDataError,
        ImageReadError,
    ) as err:
        return _fail(err)
    finally:
        drop_startup_records()  # a run that stopped before its log file existed
        distributed.shutdown()
    return outcome.exit_code


def evaluate_main(argv: Optional[List[str]] = None) -> int:
    """``python test.py -opt FILE``: metrics and images for every ``datasets.test*``.

    Exit status: 0 every image evaluated; 1 some images could not be (they are listed under
    ``failed`` in metrics.json, the others are measured and saved); 2 bad options or data.
    """
    from lptn.engine.evaluate import failed_images, run_test

    args = _option_parser("Evaluate a generator (PSNR/SSIM, saved images).").parse_args(argv)
    # The option warnings (ignored keys...) go to the console now and into the log later.
    setup_logger()
    keep_startup_records()
    try:
        opt = _load(args, is_train=False)
        setup_logger(Path(opt["path"]["log"]) / f"test_{opt['name']}.log")
        runtime = build_runtime(opt, opt["val"]["precision"])
        if opt["manual_seed"] is not None:
            set_random_seed(opt["manual_seed"])
        results = run_test(opt, runtime)
    except USER_ERRORS as err:
        return _fail(err)
    finally:
        drop_startup_records()  # a run that stopped before its log file existed
    failed = failed_images(results)
    if failed:
        print(
            f"error: {failed} image(s) could not be evaluated; see 'failed' in "
            f"{Path(opt['path']['results_root']) / 'metrics.json'}",
            file=sys.stderr,
        )
        return 1
    return 0


def speed_main(argv: Optional[List[str]] = None) -> int:
    """``python test_speed.py -opt FILE``: latency and memory at the requested sizes.

    Exit status: 0 done; 1 some images could not be read (listed under ``failed`` in
    speed.json, the others are timed); 2 bad options or data.
    """
    from lptn.engine.speed import run_speed_test

    parser = _option_parser("Measure a generator's inference speed.")
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISION_NAMES),
        help="overrides val.precision (default fp32)",
    )
    args = parser.parse_args(argv)
    # The option warnings (ignored keys...) go to the console now and into the log later.
    setup_logger()
    keep_startup_records()
    try:
        opt = _load(args, is_train=False)
        setup_logger(Path(opt["path"]["log"]) / f"speed_{opt['name']}.log")
        runtime = build_runtime(opt, args.precision or opt["val"]["precision"])
        report = run_speed_test(opt, runtime)
    except USER_ERRORS as err:
        return _fail(err)
    finally:
        drop_startup_records()
    if report["failed"]:
        print(
            f"error: {len(report['failed'])} image(s) could not be read; see 'failed' in "
            f"{Path(opt['path']['results_root']) / 'speed.json'}",
            file=sys.stderr,
        )
        return 1
    return 0


def enhance_parser() -> argparse.ArgumentParser:
    """``lptn-enhance``'s arguments; defaults, ranges and choices come from the schema
    (``option_schema.PHOTO``, ``INFERENCE``, ``DEVICES``, ``PRECISION_NAMES``)."""
    from lptn.engine.enhance_video import add_video_arguments
    from lptn.photo.settings import (
        OUTPUT_COLOURS,
        RAW_FORMAT_NAMES,
        add_photo_limit_arguments,
    )
    from lptn.platform.compilation import COMPILE_MODES
    from lptn.platform.option_schema import INFERENCE_PATHS, PHOTO

    parser = argparse.ArgumentParser(
        description="Enhance photos of any size with a generator of any registered "
        "architecture (built-in: the LPTN authors' FiveK model). Outputs keep the file name, "
        "format, bit depth, grey or colour, transparency, EXIF, XMP and colour profile, and are "
        "written upright; inputs are never overwritten."
    )
    parser.add_argument(
        "--weights", help="generator weights (.pth); default: the built-in FiveK model"
    )
    parser.add_argument(
        "--input", required=True, help="a photo, a folder or a glob pattern ('lib/**/*.jpg')"
    )
    parser.add_argument(
        "--param-key",
        help="entry of a weights file that holds several: params or params_ema (the moving "
        "average of train.ema_decay); default params",
    )
    parser.add_argument("--output", required=True, help="output folder")
    strength = PHOTO.keys["strength"]
    parser.add_argument(
        "--strength",
        type=float,
        default=strength.default,
        metavar="S",
        help=f"{strength.kind.describe()}: {strength.doc} (default {strength.default:g})",
    )
    parser.add_argument(
        "--output-colour",
        default=OUTPUT_COLOURS[0],
        choices=list(OUTPUT_COLOURS),
        help="photos in another RGB space (Adobe RGB...): write sRGB with an sRGB profile "
        "(default) or convert back to the input's profile",
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="leave outputs that already exist"
    )
    parser.add_argument("--report", metavar="FILE", help="append one JSON line per photo to FILE")
    parser.add_argument(
        "--export-lut",
        metavar="DIR",
        help="3D-LUT weights only: also write each photo's LUT to DIR as <output path>.cube",
    )
    add_photo_limit_arguments(parser)
    parser.add_argument(
        "--keep-mtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give each output its input's modification time (default; --no-keep-mtime: "
        "the time it was written)",
    )
    _add_device_arguments(parser)
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="let float32 convolutions use TF32 on CUDA (faster, ~1e-3 error)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--path",
        default=INFERENCE.keys["path"].default,
        choices=list(INFERENCE_PATHS),
        help="fast path (default, bounded memory), the straightforward network, "
        "or the whole-image graph path (for --compile)",
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=COMPILE_MODES,
        metavar="MODE",
        help="graph path only: torch.compile it (MODE: "
        f"{', '.join(COMPILE_MODES)}; default: default)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="process full resolution in NxN tiles (default: automatic)",
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        metavar="MB",
        help="working-memory budget; larger images are tiled automatically "
        "(default 768 on the CPU, 4096 on accelerators)",
    )
    conv_backend = INFERENCE.keys["conv_backend"]
    parser.add_argument(
        "--conv-backend",
        choices=list(CONV_BACKENDS),
        help=f"{conv_backend.doc}: openvino needs the openvino extra "
        f"(default {conv_backend.default}: oneDNN on the CPU)",
    )
    parser.add_argument(
        "--raw-format",
        default=RAW_FORMAT_NAMES[0],
        choices=list(RAW_FORMAT_NAMES),
        help="what RAW inputs (DNG, CR2, NEF...) are written as (default: 16-bit tiff)",
    )
    add_video_arguments(parser)
    return parser


def enhance_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-enhance --input X --output DIR [--weights W]``: photos and videos; exit 1 when
    any file failed, 2 for bad arguments, weights, an unusable ``--output`` or an ``--input``
    file that is not a photo or video; under ``torchrun`` each process takes its share of the
    files on its own device."""
    from lptn.engine.enhance_run import EnhanceSettings, run_enhance
    from lptn.platform.distributed import LaunchError

    args = enhance_parser().parse_args(argv)
    setup_logger()
    try:
        summary = run_enhance(EnhanceSettings.from_args(args))
    except USER_ERRORS + (LaunchError,) as err:
        return _fail(err)
    return 0 if summary.ok else 1


def export_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-export --weights W --format onnx [--param-key params|params_ema]``: ONNX with
    dynamic batch, height, width (see :func:`lptn.inference.export.export_main`)."""
    from lptn.inference.export import export_main as run_export

    return run_export(argv)


def compare_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-compare -opt FILE --weights A.pth B.pth --output DIR``: several generators and
    the identity, one table (see :func:`lptn.engine.compare.compare_main`)."""
    from lptn.engine.compare import compare_main as run_compare

    return run_compare(argv)


def learn_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-learn --before DIR --after DIR --name NAME``: pair, split, write
    ``experiments/NAME.yml``, train it as ``train.py`` does, print the held-out scores and the
    ``lptn-enhance`` command (see :mod:`lptn.engine.learn`). Exit status: that of ``train.py``
    (2 for bad folders or arguments)."""
    from lptn.engine import learn

    parser = argparse.ArgumentParser(
        description="Learn an edit from before/after photo pairs: one command to a model."
    )
    parser.add_argument("--before", required=True, type=Path, help="folder of the originals")
    parser.add_argument("--after", required=True, type=Path, help="folder of the edited photos")
    parser.add_argument("--name", required=True, help="experiment name (experiments/NAME)")
    parser.add_argument(
        "--after-name",
        help="after file names without extension, holding {stem} once ('{stem}_edited'); "
        "default: detected",
    )
    parser.add_argument(
        "--before-name", default=learn.STEM, help="before file names (default '{stem}')"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=learn.DEFAULT_VAL_FRACTION,
        help=f"share of pairs held out, in (0, 1) (default {learn.DEFAULT_VAL_FRACTION})",
    )
    parser.add_argument(
        "--seed", type=int, default=learn.DEFAULT_SEED, help="draws the split and the training"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=learn.DEFAULT_ITERATIONS,
        help=f"training iterations (default {learn.DEFAULT_ITERATIONS})",
    )
    parser.add_argument(
        "--pair-size",
        default=learn.DEFAULT_PAIR_SIZE,
        choices=PAIR_SIZE_POLICIES,
        help="after photos exported at another size: resized to the before photo's size "
        f"(default {learn.DEFAULT_PAIR_SIZE}) or refused",
    )
    parser.add_argument(
        "--auto_resume", "--auto-resume", action="store_true", help="continue a stopped run"
    )
    parser.add_argument("--device", choices=DEVICES)
    args = parser.parse_args(argv)
    settings = learn.LearnSettings(
        before=args.before,
        after=args.after,
        name=args.name,
        after_name=args.after_name,
        before_name=args.before_name,
        val_fraction=args.val_fraction,
        seed=args.seed,
        iterations=args.iterations,
        pair_size=args.pair_size,
    )
    files = learn.LearnFiles(Path.cwd(), args.name)
    try:
        settings.check()
        learn.write_learn_files(settings, files)
    except USER_ERRORS as err:
        return _fail(err)
    print(f"options: {files.options} (python train.py -opt {files.options})")
    train_args = ["-opt", str(files.options)]
    train_args += ["--auto_resume"] if args.auto_resume else []
    train_args += ["--device", args.device] if args.device else []
    code = train_main(train_args)
    if code != 0:
        if code in (130, 143):
            print("stopped; continue with the same command and --auto_resume", file=sys.stderr)
        return code
    try:
        opt = load_options(files.options, is_train=True)
        model = learn.keep_model(files)
        # No --device: the schema's default device (build_runtime fills it).
        runtime = build_runtime({"device": args.device} if args.device else {})
        identity, trained, pairs = learn.held_out_scores(opt, model, runtime.device)
    except USER_ERRORS as err:
        return _fail(err)
    print("\n".join(learn.score_lines(identity, trained, pairs)))
    print(f"model: {model}\nuse it: {learn.enhance_command(model)}")
    return 0
