"""Decode, enhance and encode one video with the three stages overlapping.

Three threads: the reader demuxes, decodes and converts frames to RGB; the caller's thread
enhances frames in batches on the runtime device; the writer converts back to YUV, encodes and
muxes (copied audio/subtitle packets travel through the same queues, so they keep their order
relative to the video). A semaphore bounds the frames alive at once (decoded, in a batch or
waiting to be encoded), so memory does not grow with the video's length or queue imbalance;
with 8K frames the bound is a handful of frames.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lptn.data.image_io import image_to_tensor, tensor_to_image, to_float
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.settings import InferenceSettings, build_inference_path
from lptn.platform.runtime import PRECISIONS, Runtime
from lptn.video import VideoError
from lptn.video.frame_batch import FrameBatchSink, FrameBatchSource
from lptn.video.temporal_smoothing import SmoothedFastLPTN
from lptn.video.video_reader import DecodedFrame, VideoReader
from lptn.video.video_writer import VideoWriter

# Frames alive at once: at most 4 batches + 8, fewer when they would exceed this many bytes of
# RGB (inputs and outputs), never fewer than batch + 2.
IN_FLIGHT_BYTES = 512 << 20


def max_frames_in_flight(
    width: int, height: int, bit_depth: int, batch_size: int, budget_bytes: int = IN_FLIGHT_BYTES
) -> int:
    """How many decoded frames may be alive at once (decoded, in a batch, being encoded).

    Each frame exists as RGB input and, after enhancement, as output: both count. Reading
    further ahead than a few batches gains nothing, so the bound is also 4 batches + 8.
    """
    frame_bytes = max(1, width * height * (3 if bit_depth <= 8 else 6))
    return max(batch_size + 2, min(4 * batch_size + 8, budget_bytes // (2 * frame_bytes)))


class FrameEnhancer:
    """Applies the network to batches of RGB frames.

    The fast path (default) runs each batch region by region within its memory budget and is
    the one that offers temporal smoothing (``tau`` seconds, see
    :mod:`lptn.video.temporal_smoothing`); the exact and graph paths run whole frames.
    """

    def __init__(
        self,
        net: nn.Module,
        runtime: Runtime,
        inference: Optional[InferenceSettings] = None,
        tau: Optional[float] = None,
    ) -> None:
        settings = inference or InferenceSettings()
        self.runtime = runtime
        self.net = net.to(runtime.device).eval()
        self.path: Any = None
        self.smoothed: Optional[SmoothedFastLPTN] = None
        if settings.path == "fast":
            precision = runtime.precision if runtime.precision in PRECISIONS else "fp32"
            options = dict(
                precision=precision,
                channels_last=settings.channels_last,
                tile_size=settings.tile_size,
                memory_budget_mb=settings.memory_budget_mb,
                conv_backend=settings.conv_backend,
            )
            if tau:
                self.smoothed = SmoothedFastLPTN(self.net, tau=tau, **options)
                self.path = self.smoothed
            else:
                self.path = FastLPTN(self.net, **options)  # type: ignore[arg-type]
        else:
            if tau:
                raise ValueError(
                    f"--temporal-smoothing works on the fast path; got --path {settings.path}"
                )
            self.path = build_inference_path(self.net, settings, runtime.precision)

    def reset(self) -> None:
        """Forget the smoothing state (call between videos)."""
        if self.smoothed is not None:
            self.smoothed.reset()

    @property
    def scene_cuts(self) -> int:
        return self.smoothed.smoother.cuts if self.smoothed is not None else 0

    @torch.inference_mode()
    def enhance(self, frames: Sequence[np.ndarray], times: Sequence[float]) -> List[np.ndarray]:
        """N ``H x W x 3`` uint8/uint16 frames (time order, ``times`` in seconds) -> enhanced
        frames of the same dtype."""
        device = self.runtime.device
        if isinstance(self.path, FastLPTN):
            if self.smoothed is not None:
                self.smoothed.set_frame_times(times)
            h, w = frames[0].shape[:2]
            sink = FrameBatchSink(len(frames), h, w, frames[0].dtype)
            self.path.run(FrameBatchSource(frames, device), sink)
            return sink.outs
        x = torch.stack([image_to_tensor(to_float(f)) for f in frames]).to(device)
        if self.path is None:
            with self.runtime.autocast():
                out = self.net(x)
        else:
            out = self.path(x)
        out = out.float().cpu()
        return [tensor_to_image(o, dtype=frames[0].dtype.type) for o in out]


@dataclass
class VideoResult:
    """What one run wrote: frame count, wall time (s), encoder and pixel format."""

    frames: int
    seconds: float
    encoder: str
    pix_fmt: str
    colour: str
    scene_cuts: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """Another stage failed; this one stops quietly."""


_END = object()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    q.put(item)
    if stop.is_set():
        raise _Stopped


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise _Stopped from None


def _acquire(slots: threading.Semaphore, stop: threading.Event) -> None:
    while not slots.acquire(timeout=0.1):
        if stop.is_set():
            raise _Stopped


def enhance_video(
    reader: VideoReader,
    writer: VideoWriter,
    enhancer: FrameEnhancer,
    batch_size: int = 1,
    show_progress: bool = True,
    in_flight_bytes: int = IN_FLIGHT_BYTES,
) -> VideoResult:
    """Run the three stages over the whole video and finish (or abort) ``writer``.

    Raises the first stage's error (:class:`VideoError` naming the file and frame for bad
    input); the temporary output is deleted then.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    slots = threading.Semaphore(
        max_frames_in_flight(
            reader.width, reader.height, reader.bit_depth, batch_size, in_flight_bytes
        )
    )
    stop = threading.Event()
    to_enhance: queue.Queue = queue.Queue()
    to_write: queue.Queue = queue.Queue()
    errors: List[BaseException] = []
    bar = tqdm(
        total=reader.frame_count or None,
        desc=reader.path.name,
        unit="frame",
        disable=not show_progress,
    )
    enhancer.reset()

    def read_stage() -> None:
        try:
            for item in reader.items():
                if isinstance(item, DecodedFrame):
                    _acquire(slots, stop)
                _put(to_enhance, item, stop)
            _put(to_enhance, _END, stop)
        except _Stopped:
            pass
        except BaseException as err:  # handed to the caller's thread
            errors.append(err)
            stop.set()

    def write_stage() -> None:
        pending: List[Any] = []
        try:
            while True:
                item = _get(to_write, stop)
                if item is _END:
                    return
                if isinstance(item, tuple):
                    frame, rgb = item
                    if not writer.is_open:
                        writer.open(frame, rgb.shape[1], rgb.shape[0])
                        for packet in pending:
                            writer.write_packet(packet)
                        pending = []
                    writer.write_frame(frame, rgb)
                    slots.release()
                    bar.update(1)
                    # tqdm shows s/frame below 1 frame/s; the postfix always says fps
                    rate = bar.format_dict.get("rate") or 0.0
                    bar.set_postfix_str(f"{rate:.2f} fps", refresh=False)
                elif writer.is_open:
                    writer.write_packet(item)
                else:
                    pending.append(item)  # packets before the first video frame
        except _Stopped:
            pass
        except BaseException as err:
            errors.append(err)
            stop.set()

    start = time.perf_counter()
    reader_thread = threading.Thread(target=read_stage, name="video-read", daemon=True)
    writer_thread = threading.Thread(target=write_stage, name="video-write", daemon=True)
    reader_thread.start()
    writer_thread.start()
    frames_read = 0
    try:
        batch: List[DecodedFrame] = []

        def flush() -> None:
            outs = enhancer.enhance([f.rgb for f in batch], [f.seconds for f in batch])
            for frame, out in zip(batch, outs):
                frame.rgb = np.empty(0, np.uint8)  # the input's memory is free before encoding
                _put(to_write, (frame, out), stop)
            batch.clear()

        while True:
            item = _get(to_enhance, stop)
            if item is _END:
                if batch:
                    flush()
                break
            if isinstance(item, DecodedFrame):
                if batch and item.rgb.shape != batch[0].rgb.shape:
                    raise VideoError(
                        f"{reader.path}: frame {item.index}: the resolution changes mid-stream "
                        f"({batch[0].rgb.shape[1]}x{batch[0].rgb.shape[0]} -> "
                        f"{item.rgb.shape[1]}x{item.rgb.shape[0]}), which is not supported"
                    )
                frames_read += 1
                batch.append(item)
                if len(batch) >= batch_size:
                    flush()
            else:
                _put(to_write, item, stop)
        _put(to_write, _END, stop)
        writer_thread.join()
        if errors:
            raise errors[0]
        if not writer.is_open:
            raise VideoError(f"{reader.path}: no video frame could be decoded")
        writer.finish()
    except BaseException as err:
        stop.set()
        writer_thread.join()
        reader_thread.join(timeout=5)
        writer.abort()
        if isinstance(err, _Stopped) and errors:
            raise errors[0] from None
        raise
    finally:
        bar.close()
    reader_thread.join(timeout=5)
    seconds = time.perf_counter() - start
    assert writer.colour is not None
    return VideoResult(
        frames=writer.frames_written,
        seconds=seconds,
        encoder=writer.encoder,
        pix_fmt=writer.pix_fmt,
        colour=writer.colour.describe(),
        scene_cuts=enhancer.scene_cuts,
    )
