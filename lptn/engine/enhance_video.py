"""Enhance video files with ``lptn-enhance``: the video options and the per-file runner.

Each video is decoded, enhanced frame by frame and encoded again into ``--output`` under the
same name and container (see :mod:`lptn.video.pipeline`). Kept from the input: resolution,
frame count and every frame's timestamp, bit depth (10-bit stays 10-bit), colour description
(matrix, range, primaries, transfer), rotation; audio and subtitle streams are copied packet
by packet. A file that fails leaves no output under its final name; the batch goes on.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from torch import nn

from lptn.inference.settings import InferenceSettings
from lptn.platform.logger import get_logger
from lptn.platform.option_schema import SchemaViolation, whole_number
from lptn.platform.options import parse_yaml_scalar
from lptn.platform.runtime import Runtime
from lptn.video import is_video_file

__all__ = [
    "VideoOptions",
    "add_video_arguments",
    "check_video_arguments",
    "enhance_video_file",
    "VideoFileEnhancer",
    "is_video_file",
    "video_options_from_args",
]


@dataclass(frozen=True)
class VideoOptions:
    """``codec``: output encoder (None = the input's family); ``crf``: constant quality (None
    = transparent default); ``preset``: encoder preset; ``tau``: temporal smoothing time
    constant in seconds (None/0 = off); ``batch``: frames per network call (None: by device,
    1 on the CPU, 4 on accelerators)."""

    codec: Optional[str] = None
    crf: Optional[int] = None
    preset: Optional[str] = None
    tau: Optional[float] = None
    batch: Optional[int] = 1


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def _integer(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer within ``minimum..maximum`` (the options' integer check,
    :func:`~lptn.platform.option_schema.whole_number`)."""

    def parse(text: str) -> int:
        try:
            value = whole_number(parse_yaml_scalar(text), "", minimum)
        except (SchemaViolation, ValueError):
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be within {minimum}..{maximum}, got {value}")
        return value

    return parse


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options for video inputs to ``lptn-enhance``'s parser."""
    group = parser.add_argument_group(
        "video files (mp4, mov, mkv, webm, avi; needs the 'video' extra: PyAV)"
    )
    group.add_argument(
        "--video-codec",
        metavar="ENCODER",
        help="encoder of the output video (e.g. libx264, libx265, libvpx-vp9, libsvtav1, "
        "h264_nvenc); default: the input's codec family, NVENC on CUDA when it opens",
    )
    group.add_argument(
        "--crf",
        type=_integer(0, 63),
        metavar="N",
        help="constant quality of the output (lower = better; default: visually "
        "transparent, 18 for libx264)",
    )
    group.add_argument(
        "--video-preset",
        metavar="NAME",
        help="encoder speed preset (e.g. libx264: ultrafast..veryslow; default: encoder's)",
    )
    group.add_argument(
        "--temporal-smoothing",
        type=_non_negative_float,
        default=0.0,
        metavar="TAU",
        help="carry the low-frequency branch's normalisation statistics across frames with "
        "this time constant in seconds, against colour pumping (e.g. 0.5; default 0: off; "
        "fast path only)",
    )
    group.add_argument(
        "--video-batch",
        type=_integer(1),
        default=None,
        metavar="N",
        help="frames per network call (default: 1 on the CPU, 4 on accelerators)",
    )


def check_video_arguments(args: argparse.Namespace) -> Optional[str]:
    """The message for video options that do not fit the others (exit 2), or None."""
    if args.temporal_smoothing and getattr(args, "path", "fast") != "fast":
        return f"--temporal-smoothing works on the fast path only (got --path {args.path})"
    return None


def video_options_from_args(args: argparse.Namespace) -> VideoOptions:
    """The :class:`VideoOptions` parsed by :func:`add_video_arguments` (checked there)."""
    return VideoOptions(
        codec=args.video_codec,
        crf=args.crf,
        preset=args.video_preset,
        tau=args.temporal_smoothing or None,
        batch=args.video_batch,
    )


def frames_per_call(options: VideoOptions, runtime: Runtime) -> int:
    """``options.batch``, or the device's default when it is None."""
    if options.batch is not None:
        return options.batch
    return 1 if runtime.device.type == "cpu" else 4


def enhance_video_file(
    src: Path,
    dst: Path,
    net_or_enhancer: Union[nn.Module, Any],
    runtime: Runtime,
    options: Optional[VideoOptions] = None,
    inference: Optional[InferenceSettings] = None,
    show_progress: bool = True,
) -> Any:
    """Enhance the video ``src`` into ``dst`` (written under a temporary name, then renamed).

    ``net_or_enhancer``: the generator, or a :class:`~lptn.video.pipeline.FrameEnhancer` to
    reuse across files. Returns the :class:`~lptn.video.pipeline.VideoResult`.

    Raises:
        VideoUnavailable: PyAV is missing (message names the extra).
        VideoError: unreadable / corrupt input (names the file and frame) or output failure.
        ValueError: options that do not fit together.
    """
    from lptn.video import require_av

    require_av()
    from lptn.video.pipeline import FrameEnhancer, enhance_video
    from lptn.video.video_reader import VideoReader
    from lptn.video.video_writer import EncoderSettings, VideoWriter

    opts = options or VideoOptions()
    if isinstance(net_or_enhancer, FrameEnhancer):
        enhancer = net_or_enhancer
    else:
        enhancer = FrameEnhancer(net_or_enhancer, runtime, inference, opts.tau)
    settings = EncoderSettings(codec=opts.codec, crf=opts.crf, preset=opts.preset)
    with VideoReader(src) as reader:
        writer = VideoWriter(Path(dst), reader, settings, runtime.device.type)
        result = enhance_video(
            reader, writer, enhancer, frames_per_call(opts, runtime), show_progress
        )
    get_logger().info(
        "%s: %d frames in %.1f s (%.2f fps), %s, %s -> %s",
        src.name,
        result.frames,
        result.seconds,
        result.fps,
        result.colour,
        result.encoder,
        dst,
    )
    return result


class VideoFileEnhancer:
    """Enhances video files one at a time with one generator, for :func:`lptn.engine.enhance.
    enhance_files`; PyAV and the frame enhancer are set up at the first video, so a run
    without videos never needs the extra.

    Raises (per call): :class:`VideoUnavailable` when PyAV is missing (an ``ImportError``
    naming the extra), :class:`VideoError` for a corrupt input or a failed output.
    """

    def __init__(
        self,
        net: nn.Module,
        runtime: Runtime,
        options: Optional[VideoOptions] = None,
        inference: Optional[InferenceSettings] = None,
        show_progress: bool = True,
    ) -> None:
        self.net = net
        self.runtime = runtime
        self.options = options or VideoOptions()
        self.inference = inference
        self.show_progress = show_progress
        self._frames: Any = None

    def __call__(self, src: Path, dst: Path) -> None:
        if self._frames is None:
            from lptn.video import require_av

            require_av()
            from lptn.video.pipeline import FrameEnhancer

            self._frames = FrameEnhancer(self.net, self.runtime, self.inference, self.options.tau)
        dst.parent.mkdir(parents=True, exist_ok=True)
        enhance_video_file(
            src, dst, self._frames, self.runtime, self.options, self.inference, self.show_progress
        )
