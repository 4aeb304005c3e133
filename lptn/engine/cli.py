"""Command-line entry points (``lptn-train``, ``lptn-test``, ``lptn-speed``, ``lptn-enhance``,
``lptn-learn``).

Each parses arguments, builds the options and the runtime, and calls one runner; the scripts
``train.py``, ``test.py`` and ``test_speed.py`` at the repository root call these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from lptn.engine.option_check import ENGINE_CHECKS
from lptn.platform.checkpoint_io import CheckpointError
from lptn.platform.logger import drop_startup_records, keep_startup_records, setup_logger
from lptn.platform.options import OptionError, parse_options
from lptn.platform.runtime import PRECISIONS, DeviceError, Runtime, build_runtime, set_random_seed


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
    parser.add_argument(
        "--device",
        choices=["auto", "cuda", "npu", "mps", "cpu"],
        help="overrides the device option",
    )
    return parser


def _load(args: argparse.Namespace, *, is_train: bool) -> dict:
    overrides = list(args.set)
    if args.device:
        overrides.append(f"device={args.device}")
    return parse_options(args.opt, overrides, is_train=is_train, checks=ENGINE_CHECKS)


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

    args = _option_parser("Evaluate an LPTN generator (PSNR/SSIM, saved images).").parse_args(argv)
    # The option warnings (ignored keys...) go to the console now and into the log later.
    setup_logger()
    keep_startup_records()
    try:
        opt = _load(args, is_train=False)
        setup_logger(Path(opt["path"]["log"]) / f"test_{opt['name']}.log")
        runtime = build_runtime(opt, (opt.get("val") or {}).get("precision"))
        if opt.get("manual_seed") is not None:
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

    parser = _option_parser("Measure LPTN inference speed.")
    parser.add_argument(
        "--precision", choices=sorted(PRECISIONS), help="overrides val.precision (default fp32)"
    )
    args = parser.parse_args(argv)
    # The option warnings (ignored keys...) go to the console now and into the log later.
    setup_logger()
    keep_startup_records()
    try:
        opt = _load(args, is_train=False)
        setup_logger(Path(opt["path"]["log"]) / f"speed_{opt['name']}.log")
        precision = args.precision or (opt.get("val") or {}).get("precision") or "fp32"
        runtime = build_runtime(opt, precision)
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


def enhance_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-enhance --input X --output DIR [--weights W]``: photos and videos; exit 1 when
    any file failed, 2 for bad arguments, weights, an unusable ``--output`` or an ``--input``
    file that is not a photo or video; under ``torchrun`` each process takes its share of the
    files on its own device."""
    import os

    from lptn.engine.enhance import (
        OutputFolderError,
        check_output_folder,
        collect_inputs,
        enhance_files,
    )
    from lptn.engine.enhance_video import (
        VideoFileEnhancer,
        add_video_arguments,
        check_video_arguments,
        video_options_from_args,
    )
    from lptn.inference.generator_weights import load_generator
    from lptn.inference.settings import MAX_MEGAPIXELS
    from lptn.photo import PhotoEnhancer
    from lptn.photo.pipeline import OUTPUT_COLOURS
    from lptn.photo.raw_file import RAW_OUTPUT_FORMATS
    from lptn.platform import distributed
    from lptn.platform.compilation import COMPILE_MODES

    parser = argparse.ArgumentParser(
        description="Enhance photos of any size with an LPTN generator (built-in: the LPTN "
        "authors' FiveK model). Outputs keep the file name, format, bit depth, grey or colour, "
        "transparency, EXIF, XMP and colour profile, and are written upright; inputs are never "
        "overwritten."
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
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        metavar="S",
        help="0..1: output = input + S * (enhanced - input) (default 1)",
    )
    parser.add_argument(
        "--output-colour",
        default="srgb",
        choices=list(OUTPUT_COLOURS),
        help="photos in another RGB space (Adobe RGB...): write sRGB with an sRGB profile "
        "(default) or convert back to the input's profile",
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="leave outputs that already exist"
    )
    parser.add_argument("--report", metavar="FILE", help="append one JSON line per photo to FILE")
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=MAX_MEGAPIXELS,
        metavar="MP",
        help="photos whose header announces more pixels fail before they are decoded "
        f"(default {MAX_MEGAPIXELS:g})",
    )
    parser.add_argument(
        "--keep-mtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give each output its input's modification time (default; --no-keep-mtime: "
        "the time it was written)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "npu", "mps", "cpu"])
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="let float32 convolutions use TF32 on CUDA (faster, ~1e-3 error)",
    )
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=95,
        help="quality of JPEG and lossy WebP outputs, 1-100 (default 95)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--path",
        default="fast",
        choices=["fast", "exact", "graph"],
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
    parser.add_argument(
        "--raw-format",
        default=RAW_OUTPUT_FORMATS[0].lower(),
        choices=[f.lower() for f in RAW_OUTPUT_FORMATS],
        help="what RAW inputs (DNG, CR2, NEF...) are written as (default: 16-bit tiff)",
    )
    add_video_arguments(parser)
    args = parser.parse_args(argv)
    video_error = check_video_arguments(args)
    if video_error:
        return _fail(video_error)
    if not 1 <= args.jpeg_quality <= 100:
        return _fail(f"--jpeg-quality must be within 1..100, got {args.jpeg_quality}")
    if not 0.0 <= args.strength <= 1.0:
        return _fail(f"--strength must be within 0..1, got {args.strength}")
    if args.tile is not None and args.tile < 16:
        return _fail(f"--tile must be at least 16 pixels, got {args.tile}")
    if args.memory_budget is not None and args.memory_budget <= 0:
        return _fail(f"--memory-budget must be a positive number of MB, got {args.memory_budget}")
    if not args.max_megapixels > 0:
        return _fail(f"--max-megapixels must be a positive number, got {args.max_megapixels}")
    if args.compile is not None and args.path != "graph":
        return _fail(f"--compile applies to --path graph only (got --path {args.path})")
    if args.path == "graph" and (args.tile is not None or args.memory_budget is not None):
        return _fail(
            "--tile and --memory-budget apply to --path fast; the graph path runs whole images"
        )
    from lptn.inference.settings import InferenceSettings

    inference = InferenceSettings(
        path=args.path,
        tile_size=args.tile,
        memory_budget_mb=args.memory_budget,
        compile=args.compile if args.compile is not None else False,
    )
    setup_logger()
    output_dir = Path(args.output)
    report = Path(args.report) if args.report else None
    try:
        # Started by torchrun: a static split of the files, no process group needed.
        launcher = "pytorch" if "WORLD_SIZE" in os.environ else "none"
        launch = distributed.launch_environment(launcher)
        check_output_folder(output_dir)
        if report is not None and report.is_dir():
            raise OutputFolderError(f"--report {report} is a folder; it must name a file")
        inputs = collect_inputs(args.input, output_dir)
        # realpath, not Path.resolve: it does not raise on a symlink loop among the inputs.
        report_real = os.path.realpath(report) if report is not None else None
        if any(os.path.realpath(j.source) == report_real for j in inputs.jobs):
            raise OutputFolderError(f"--report {report} is one of the inputs")
        runtime: Runtime = build_runtime(
            {"device": args.device, "tf32": args.tf32},
            args.precision,
            rank=launch.rank,
            local_rank=launch.local_rank,
            world_size=launch.world_size,
        )
        enhancer = PhotoEnhancer(
            load_generator(args.weights, param_key=args.param_key), runtime, inference
        )
    except USER_ERRORS + (distributed.LaunchError,) as err:
        return _fail(err)
    summary = enhance_files(
        enhancer,
        inputs.jobs,
        output_dir,
        strength=args.strength,
        output_colour=args.output_colour,
        jpeg_quality=args.jpeg_quality,
        skip_existing=args.skip_existing,
        report=report,
        show_progress=not args.no_progress and launch.rank == 0,
        rank=launch.rank,
        world_size=launch.world_size,
        raw_format=args.raw_format,
        videos=VideoFileEnhancer(
            enhancer.net,
            runtime,
            video_options_from_args(args, runtime),
            inference,
            show_progress=not args.no_progress and launch.rank == 0,
        ),
        ignored=inputs.ignored,
        max_megapixels=args.max_megapixels,
        keep_mtime=args.keep_mtime,
    )
    who = f"process {launch.rank} of {launch.world_size}: " if launch.world_size > 1 else ""
    print(f"{who}{summary.line()} (output folder: {args.output})")
    return 0 if summary.ok else 1


def export_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-export --weights W --format onnx [--param-key params|params_ema]``: ONNX with
    dynamic batch, height, width (see :func:`lptn.inference.export.export_main`)."""
    from lptn.inference.export import export_main as run_export

    return run_export(argv)


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
        choices=["error", "resize_gt"],
        help="after photos exported at another size: resized to the before photo's size "
        f"(default {learn.DEFAULT_PAIR_SIZE}) or refused",
    )
    parser.add_argument(
        "--auto_resume", "--auto-resume", action="store_true", help="continue a stopped run"
    )
    parser.add_argument("--device", choices=["auto", "cuda", "npu", "mps", "cpu"])
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
        opt = parse_options(files.options, is_train=True, checks=ENGINE_CHECKS)
        model = learn.keep_model(files)
        runtime = build_runtime({"device": args.device or "auto"})
        identity, trained, pairs = learn.held_out_scores(opt, model, runtime.device)
    except USER_ERRORS as err:
        return _fail(err)
    print("\n".join(learn.score_lines(identity, trained, pairs)))
    print(f"model: {model}\nuse it: {learn.enhance_command(model)}")
    return 0
