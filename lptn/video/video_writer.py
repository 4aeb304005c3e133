"""Encode enhanced RGB frames and copy the other streams' packets into a new video file.

The file is written under a temporary name beside the destination and renamed at the end
(:class:`~lptn.platform.atomic_file.AtomicFile`), so a failed run never leaves a partial file
under the final name.

Encoder choice (:func:`choose_encoder`): the input's codec family when this PyAV build has an
encoder for it (H.264 -> libx264, HEVC -> libx265, VP9 -> libvpx-vp9, AV1 -> libsvtav1, ...),
NVENC for H.264/HEVC when the runtime device is CUDA and the encoder opens, and another
encoder when the family's one cannot keep the bit depth (8-bit-only VP9 builds, 10-bit H.264
on NVENC).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from lptn.platform.atomic_file import AtomicFile
from lptn.platform.logger import get_logger
from lptn.video import VideoError, require_av
from lptn.video.colour_conversion import ColourInfo, rgb_to_frame
from lptn.video.ffmpeg_errors import error_words
from lptn.video.stream_metadata import copy_stream_labels
from lptn.video.video_reader import DecodedFrame, VideoReader

# Input codec (decoder name) -> software encoder of the same family.
FAMILY_ENCODERS = {
    "h264": "libx264",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
    "vp8": "libvpx",
    "mpeg4": "mpeg4",
    "ffv1": "ffv1",
}
NVENC_ENCODERS = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}
# Tried in turn when the family's encoder is missing or cannot keep the bit depth.
FALLBACK_ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "mpeg4")
# Default constant-quality setting per encoder: visually transparent (x264 CRF 18 and its
# usual equivalents on the other encoders' scales).
DEFAULT_CRF = {
    "libx264": 18,
    "libx265": 20,
    "libvpx-vp9": 20,
    "libsvtav1": 22,
    "h264_nvenc": 19,
    "hevc_nvenc": 21,
}
# AVColorTransferCharacteristic codes of HDR video.
HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}
_DROPPED_CONTAINER_TAGS = ("major_brand", "minor_version", "compatible_brands", "encoder")


@dataclass(frozen=True)
class EncoderSettings:
    """``codec``: an encoder name or None (same family as the input); ``crf``: constant
    quality or None (the encoder's transparent default, or the input's bit rate for encoders
    without a CRF mode); ``preset``: passed to the encoder as its ``preset`` option."""

    codec: Optional[str] = None
    crf: Optional[int] = None
    preset: Optional[str] = None


def _encoder_formats(av: Any, name: str) -> List[str]:
    try:
        return [f.name for f in av.codec.Codec(name, "w").video_formats or []]
    except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
        return []


def _pick_pix_fmt(formats: Sequence[str], colour: ColourInfo) -> Optional[str]:
    """The input's pixel format if the encoder takes it, else one with the same bit depth
    (4:2:0 first), else None."""
    if colour.pix_fmt in formats:
        return colour.pix_fmt
    av = require_av()
    # planar YUV, or the semi-planar layouts hardware encoders take (nv12, p010le)
    same_depth = [
        f
        for f in formats
        if f.startswith(("yuv", "nv", "p0"))
        and not f.startswith("yuva")
        and max(c.bits for c in av.VideoFormat(f).components) == colour.bit_depth
    ]
    same_depth.sort(key=lambda f: (not ("420" in f or f in ("nv12", "p010le")), len(f)))
    return same_depth[0] if same_depth else None


def _nvenc_opens(av: Any, name: str, width: int, height: int, pix_fmt: str) -> bool:
    """Whether ``name`` opens here (NVENC needs an NVIDIA GPU and driver, not just the
    library)."""
    try:
        ctx = av.codec.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.open()
        return True
    except Exception:  # any failure to open means: not usable here
        return False


def choose_encoder(
    input_codec: str,
    colour: ColourInfo,
    width: int,
    height: int,
    settings: EncoderSettings,
    device_type: str = "cpu",
    container_codecs: Optional[Set[str]] = None,
) -> tuple[str, str]:
    """(encoder name, pixel format) for the output video stream; ``container_codecs``: the
    codec and encoder names the output container can hold (None: no restriction).

    Raises :class:`VideoError` when an explicit ``settings.codec`` is unknown, does not fit
    the container or cannot keep the input's bit depth, or when no encoder fits.
    """
    av = require_av()

    def fits(name: str) -> bool:
        return container_codecs is None or name in container_codecs

    if settings.codec is not None:
        formats = _encoder_formats(av, settings.codec)
        if not formats:
            raise VideoError(f"--video-codec {settings.codec}: no such video encoder in PyAV")
        if not fits(settings.codec):
            raise VideoError(
                f"--video-codec {settings.codec}: the output's container cannot hold it"
            )
        pix = _pick_pix_fmt(formats, colour)
        if pix is None:
            raise VideoError(
                f"--video-codec {settings.codec}: cannot encode {colour.bit_depth}-bit video"
            )
        return settings.codec, pix
    candidates: List[str] = []
    if device_type == "cuda" and input_codec in NVENC_ENCODERS:
        candidates.append(NVENC_ENCODERS[input_codec])
    if input_codec in FAMILY_ENCODERS:
        candidates.append(FAMILY_ENCODERS[input_codec])
    candidates += [c for c in FALLBACK_ENCODERS if c not in candidates]
    for name in candidates:
        if not fits(name):
            continue
        pix = _pick_pix_fmt(_encoder_formats(av, name), colour)
        if pix is None:
            continue
        if name.endswith("_nvenc") and not _nvenc_opens(av, name, width, height, pix):
            continue
        return name, pix
    raise VideoError(
        f"no encoder in this PyAV build can write {colour.describe()} video into this container"
    )


# x264 / x265 keep up to rc-lookahead frames (40 at the medium preset) in their look-ahead,
# each several times the frame's size (sub-pixel planes): about 5 GB at 8K. Above 1440p the
# look-ahead is shortened in proportion to the frame size (20 frames at 4K, 5 at 8K).
_LOOKAHEAD_PIXELS = 20 * 3840 * 2160


def encoder_lookahead(width: int, height: int) -> Optional[int]:
    """The rc-lookahead for x264/x265 at this frame size: None (the preset's own) up to
    1440p, fewer frames above (20 at 4K, 5 at 8K)."""
    frames = _LOOKAHEAD_PIXELS // max(1, width * height)
    return None if frames >= 40 else max(5, frames)


class VideoWriter:
    """Writes one output file: the enhanced video stream plus copies of ``copied_streams``.

    Call :meth:`open` with the first decoded frame (its colour description and display
    matrix configure the stream), then :meth:`write_frame` / :meth:`write_packet`, then
    :meth:`finish` (flush, close, fsync, rename) or :meth:`abort` (close, delete).
    """

    def __init__(
        self,
        dst: Path,
        reader: VideoReader,
        settings: EncoderSettings,
        device_type: str = "cpu",
    ) -> None:
        self.av = require_av()
        self.dst = Path(dst)
        self.output: Optional[AtomicFile] = None
        self.reader = reader
        self.settings = settings
        self.device_type = device_type
        self.container: Any = None
        self.stream: Any = None
        self.colour: Optional[ColourInfo] = None
        self.pix_fmt = ""
        self.encoder = ""
        self.frames_written = 0
        self._stream_map: Dict[int, Any] = {}

    @property
    def is_open(self) -> bool:
        return self.container is not None

    def open(self, first: DecodedFrame, width: int, height: int) -> None:
        """Choose the encoder, create the temporary file and its streams (video from
        ``first``'s colour and display matrix, ``width`` x ``height``; copies of the
        reader's audio/subtitle streams)."""
        av, reader = self.av, self.reader
        self.colour = first.colour
        try:
            # The temporary name keeps the extension: the muxer chooses the container by it.
            self.output = AtomicFile(self.dst, extension=self.dst.suffix)
            self.container = av.open(str(self.output.temp_path), "w")
            self.encoder, self.pix_fmt = choose_encoder(
                reader.codec_name,
                first.colour,
                width,
                height,
                self.settings,
                self.device_type,
                set(self.container.supported_codecs),
            )
            meta = {
                k: v
                for k, v in reader.container.metadata.items()
                if k not in _DROPPED_CONTAINER_TAGS
            }
            self.container.metadata.update(meta)
            chapters = reader.container.chapters()
            if chapters:
                self.container.set_chapters(chapters)
            self._add_video_stream(first, width, height)
            for src in reader.copied_streams:
                try:
                    out = self.container.add_stream_from_template(src)
                except (av.error.FFmpegError, ValueError) as err:
                    get_logger().warning(
                        "%s: stream %d (%s) not copied: %s",
                        reader.path,
                        src.index,
                        src.type,
                        error_words(err),
                    )
                    continue
                copy_stream_labels(src, out)
                self._stream_map[src.index] = out
            for s in reader.skipped_streams:
                get_logger().warning(
                    "%s: stream %d (%s) is not copied to the output", reader.path, s.index, s.type
                )
        except VideoError:
            self.abort()
            raise
        except (av.error.FFmpegError, ValueError, OSError) as err:
            self.abort()
            raise VideoError(f"{self.dst}: cannot create the output: {error_words(err)}") from err

    def _add_video_stream(self, first: DecodedFrame, width: int, height: int) -> None:
        reader, colour = self.reader, first.colour
        stream = self.container.add_stream(self.encoder, rate=reader.frame_rate)
        cc = stream.codec_context
        stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
        # The encoder keeps the input's clock, so every frame's timestamp is copied exactly
        # (variable frame rate included).
        stream.time_base = first.time_base
        cc.time_base = first.time_base
        cc.colorspace = colour.matrix
        cc.color_range = colour.colour_range
        cc.color_primaries = colour.primaries
        cc.color_trc = colour.transfer
        src_video = reader.video
        if src_video.sample_aspect_ratio:
            stream.sample_aspect_ratio = src_video.sample_aspect_ratio
        options: Dict[str, str] = {}
        crf = self.settings.crf if self.settings.crf is not None else DEFAULT_CRF.get(self.encoder)
        if self.encoder.endswith("_nvenc"):
            options.update({"rc": "vbr", "cq": str(crf), "b": "0"})
        elif self.encoder in DEFAULT_CRF:
            options["crf"] = str(crf)
            if self.encoder == "libvpx-vp9":
                options["b"] = "0"  # constant quality, no bit-rate cap
            lookahead = encoder_lookahead(width, height)
            if self.encoder == "libx264" and lookahead is not None:
                options["rc-lookahead"] = str(lookahead)
            if self.encoder == "libx265":
                options["x265-params"] = "log-level=error" + (
                    f":rc-lookahead={lookahead}" if lookahead is not None else ""
                )
        elif reader.bit_rate:
            cc.bit_rate = int(reader.bit_rate)  # encoders without CRF: the input's bit rate
        if self.settings.preset:
            options["preset"] = self.settings.preset
        if self.encoder == "libsvtav1":
            # SVT-AV1 prints its whole configuration at info level; keep warnings and errors
            os.environ.setdefault("SVT_LOG", "2")
        stream.options = options
        # The rotation travels as the display matrix, not as a "rotate" tag.
        copy_stream_labels(src_video, stream)
        if first.display_matrix is not None:
            stream.set_display_matrix(first.display_matrix)
        if colour.transfer in HDR_TRANSFERS:
            get_logger().warning(
                "%s: HDR video (%s transfer): the network was trained on SDR photos and sees "
                "the encoded values as they are; the output keeps the HDR tags",
                reader.path,
                HDR_TRANSFERS[colour.transfer],
            )
        self.stream = stream

    def write_frame(self, frame: DecodedFrame, rgb: Any) -> None:
        """Encode the enhanced ``rgb`` (``H x W x 3``, the input's dtype) at ``frame``'s
        timestamp."""
        assert self.colour is not None
        av = self.av
        out = rgb_to_frame(rgb, self.colour, self.pix_fmt)
        out.pts = frame.pts
        out.time_base = frame.time_base
        try:
            for packet in self.stream.encode(out):
                self.container.mux(packet)
        except av.error.FFmpegError as err:
            raise VideoError(
                f"{self.dst}: frame {frame.index} at {frame.seconds:.3f} s: cannot encode: "
                f"{error_words(err)}"
            ) from err
        self.frames_written += 1

    def write_packet(self, packet: Any) -> None:
        """Copy a packet of a copied stream (ignored when its stream could not be added)."""
        out = self._stream_map.get(packet.stream.index)
        if out is None:
            return
        at = f" at {float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else ""
        packet.stream = out
        try:
            self.container.mux(packet)
        except self.av.error.FFmpegError as err:
            raise VideoError(
                f"{self.dst}: cannot copy a {out.type} packet{at}: {error_words(err)}"
            ) from err

    def finish(self) -> None:
        """Flush the encoder, close the file, fsync it and rename it to its final name."""
        av = self.av
        assert self.output is not None
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            self.container = None
            # The muxer wrote through its own descriptor; fsync of ours syncs the same file.
            self.output.commit()
        except (av.error.FFmpegError, OSError) as err:
            self.abort()
            raise VideoError(f"{self.dst}: cannot finish the output: {error_words(err)}") from err
        self.output = None

    def abort(self) -> None:
        """Close and delete the temporary file; the final name is never touched."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # closing a broken muxer may fail again; the file goes anyway
                pass
            self.container = None
        if self.output is not None:
            self.output.discard()
            self.output = None
