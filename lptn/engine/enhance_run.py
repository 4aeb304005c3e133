"""One ``lptn-enhance`` run: its frozen settings, checked once, and the run from them.

:func:`lptn.engine.cli.enhance_main` parses the command line into :class:`EnhanceSettings`
(:meth:`EnhanceSettings.from_args`) and calls :func:`run_enhance`; the checks are those of the
YAML ``inference`` block and of lptn-serve (:mod:`lptn.inference.settings`,
:mod:`lptn.photo.settings`), so one bad value gets one message whatever spells it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from lptn.engine.enhance import (
    EnhanceSummary,
    OutputFolderError,
    check_output_folder,
    collect_inputs,
    enhance_files,
)
from lptn.engine.enhance_video import (
    VideoFileEnhancer,
    VideoOptions,
    check_video_arguments,
    video_options_from_args,
)
from lptn.engine.lut_export import check_lut_generator
from lptn.inference.generator_weights import load_generator
from lptn.inference.settings import InferenceSettings
from lptn.photo import PhotoEnhancer
from lptn.photo.settings import PhotoSettings
from lptn.platform import distributed
from lptn.platform.option_schema import OPTIONS
from lptn.platform.runtime import DEFAULT_PRECISION, build_runtime

#: How ``lptn-enhance`` spells the photo options in its messages.
PHOTO_FLAGS: Mapping[str, str] = {
    "strength": "--strength",
    "jpeg_quality": "--jpeg-quality",
    "max_megapixels": "--max-megapixels",
    "output_colour": "--output-colour",
    "raw_format": "--raw-format",
}


@dataclass(frozen=True)
class EnhanceSettings:
    """Everything one ``lptn-enhance`` run needs, checked: what to read (``input``, a file,
    folder or glob) and where to write (``output``), the weights, the device (``device``,
    ``precision``, ``tf32``), the ``photo`` and ``inference`` settings, the ``video`` options
    and the run's own switches."""

    input: str
    output: Path
    weights: Optional[str] = None
    param_key: Optional[str] = None
    photo: PhotoSettings = field(default_factory=PhotoSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    video: VideoOptions = field(default_factory=VideoOptions)
    device: str = OPTIONS.keys["device"].default
    precision: str = DEFAULT_PRECISION
    tf32: bool = OPTIONS.keys["tf32"].default
    skip_existing: bool = False
    report: Optional[Path] = None
    keep_mtime: bool = True
    show_progress: bool = True
    #: ``--export-lut``: the folder for each photo's 3D LUT (``.cube``); None: no LUTs.
    export_lut: Optional[Path] = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EnhanceSettings:
        """The settings from ``lptn-enhance``'s parsed arguments.

        Raises:
            ValueError: a bad value (an :class:`~lptn.platform.options.OptionError` or a
                :class:`~lptn.photo.PhotoError`), naming the flag.
        """
        video_error = check_video_arguments(args)
        if video_error:
            raise ValueError(video_error)
        photo = PhotoSettings.checked(
            PHOTO_FLAGS,
            strength=args.strength,
            output_colour=args.output_colour,
            jpeg_quality=args.jpeg_quality,
            raw_format=args.raw_format,
            max_megapixels=args.max_megapixels,
        )
        inference = InferenceSettings.from_flags(
            path=args.path,
            tile_size=args.tile,
            memory_budget_mb=args.memory_budget,
            compile=args.compile,
            conv_backend=args.conv_backend,
        )
        return cls(
            input=args.input,
            output=Path(args.output),
            weights=args.weights,
            param_key=args.param_key,
            photo=photo,
            inference=inference,
            video=video_options_from_args(args),
            device=args.device,
            precision=args.precision,
            tf32=args.tf32,
            skip_existing=args.skip_existing,
            report=Path(args.report) if args.report else None,
            keep_mtime=args.keep_mtime,
            show_progress=not args.no_progress,
            export_lut=Path(args.export_lut) if args.export_lut else None,
        )


def run_enhance(settings: EnhanceSettings) -> EnhanceSummary:
    """Check the output folder and the inputs, load the generator and enhance this process's
    share of the files (under ``torchrun`` each process takes every N-th file on its own
    device); prints one summary line per process.

    Raises:
        OutputFolderError, UnsupportedInput, FileNotFoundError: the output or inputs are
            unusable; CheckpointError, DeviceError, LaunchError: the weights, the device or the
            launch; before any file is processed.
    """
    # Started by torchrun: a static split of the files, no process group needed.
    launcher = "pytorch" if "WORLD_SIZE" in os.environ else "none"
    launch = distributed.launch_environment(launcher)
    output_dir, report = settings.output, settings.report
    check_output_folder(output_dir)
    if report is not None and report.is_dir():
        raise OutputFolderError(f"--report {report} is a folder; it must name a file")
    inputs = collect_inputs(settings.input, output_dir)
    # realpath, not Path.resolve: it does not raise on a symlink loop among the inputs.
    report_real = os.path.realpath(report) if report is not None else None
    if any(os.path.realpath(j.source) == report_real for j in inputs.jobs):
        raise OutputFolderError(f"--report {report} is one of the inputs")
    runtime = build_runtime(
        {"device": settings.device, "tf32": settings.tf32},
        settings.precision,
        rank=launch.rank,
        local_rank=launch.local_rank,
        world_size=launch.world_size,
    )
    net = load_generator(settings.weights, param_key=settings.param_key)
    if settings.export_lut is not None:
        check_lut_generator(net)
    enhancer = PhotoEnhancer(net, runtime, settings.inference)
    show_progress = settings.show_progress and launch.rank == 0
    video = VideoFileEnhancer(
        enhancer.net,
        runtime,
        settings.video,
        settings.inference,
        show_progress=show_progress,
    )
    summary = enhance_files(
        enhancer,
        inputs.jobs,
        output_dir,
        settings.photo,
        skip_existing=settings.skip_existing,
        report=report,
        show_progress=show_progress,
        rank=launch.rank,
        world_size=launch.world_size,
        videos=video,
        ignored=inputs.ignored,
        keep_mtime=settings.keep_mtime,
        lut_dir=settings.export_lut,
    )
    who = f"process {launch.rank} of {launch.world_size}: " if launch.world_size > 1 else ""
    print(f"{who}{summary.line()} (output folder: {output_dir})")
    return summary
