"""Decode, enhance and encode one video with the three stages overlapping.

Three stages, each a function taking its queues: :func:`decode_stage` (a thread) demuxes,
decodes and converts frames to RGB; :func:`enhance_stage` (the caller's thread) enhances
frames in batches on the runtime device; :func:`encode_stage` (a thread) converts back to
YUV, encodes and muxes (copied audio/subtitle packets travel through the same queues, so they
keep their order relative to the video). :class:`StageControl` stops all three on the first
error, and its semaphore bounds the frames alive at once (decoded, in a batch or waiting to
be encoded), so memory does not grow with the video's length or queue imbalance; with 8K
frames the bound is a handful of frames.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lptn.archs.lptn_arch import LPTN
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
        # FastLPTN is LPTN's pyramid maths; other generators take build_inference_path's path.
        if settings.path == "fast" and isinstance(self.net, LPTN):
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
            if tau and settings.path != "fast":
                raise ValueError(
                    f"--temporal-smoothing works on the fast path; got --path {settings.path}"
                )
            if tau:
                raise ValueError(
                    f"--temporal-smoothing smooths LPTN's pyramid; {type(self.net).__name__} "
                    "has none"
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


_END = object()  # the last item of a queue


class StageControl:
    """What the three stages share: the stop flag, the errors (the first one is raised in the
    caller's thread) and the semaphore of frames alive at once (``slots``)."""

    def __init__(self, slots: int) -> None:
        self.stop = threading.Event()
        self.slots = threading.Semaphore(slots)
        self.errors: List[BaseException] = []

    def fail(self, err: BaseException) -> None:
        self.errors.append(err)
        self.stop.set()

    def put(self, q: queue.Queue, item: Any) -> None:
        """Queue ``item`` (queues are unbounded: the slots bound the frames)."""
        q.put(item)
        if self.stop.is_set():
            raise _Stopped

    def get(self, q: queue.Queue) -> Any:
        """The next item of ``q``, waiting until there is one or another stage failed."""
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None

    def take_slot(self) -> None:
        """Wait for room for one more decoded frame."""
        while not self.slots.acquire(timeout=0.1):
            if self.stop.is_set():
                raise _Stopped

    def free_slot(self) -> None:
        self.slots.release()

    def run(self, stage: Callable[..., None], *args: Any) -> None:
        """``stage(*args)`` as a thread's target: its error stops the other stages and is kept
        for the caller's thread."""
        try:
            stage(*args)
        except _Stopped:
            pass
        except BaseException as err:  # handed to the caller's thread
            self.fail(err)


def decode_stage(reader: VideoReader, to_enhance: queue.Queue, control: StageControl) -> None:
    """Queue the reader's decoded frames (each taking a slot) and its packets of copied
    streams, in file order, then the end."""
    for item in reader.items():
        if isinstance(item, DecodedFrame):
            control.take_slot()
        control.put(to_enhance, item)
    control.put(to_enhance, _END)


def enhance_stage(
    reader: VideoReader,
    to_enhance: queue.Queue,
    to_write: queue.Queue,
    enhancer: FrameEnhancer,
    batch_size: int,
    control: StageControl,
) -> None:
    """Enhance the queued frames ``batch_size`` at a time and queue ``(frame, rgb)`` pairs
    for encoding; packets pass through in their place; the end is passed on.

    Raises:
        VideoError: the resolution changes mid-stream (naming the file and frame).
    """
    batch: List[DecodedFrame] = []
    while True:
        item = control.get(to_enhance)
        if item is _END:
            break
        if not isinstance(item, DecodedFrame):
            control.put(to_write, item)
            continue
        if batch and item.rgb.shape != batch[0].rgb.shape:
            raise VideoError(
                f"{reader.path}: frame {item.index}: the resolution changes mid-stream "
                f"({batch[0].rgb.shape[1]}x{batch[0].rgb.shape[0]} -> "
                f"{item.rgb.shape[1]}x{item.rgb.shape[0]}), which is not supported"
            )
        batch.append(item)
        if len(batch) >= batch_size:
            _enhance_batch(batch, enhancer, to_write, control)
    if batch:
        _enhance_batch(batch, enhancer, to_write, control)
    control.put(to_write, _END)


def _enhance_batch(
    batch: List[DecodedFrame], enhancer: FrameEnhancer, to_write: queue.Queue, control: StageControl
) -> None:
    """Enhance ``batch``, queue its ``(frame, rgb)`` pairs in order and empty it."""
    outs = enhancer.enhance([f.rgb for f in batch], [f.seconds for f in batch])
    for frame, out in zip(batch, outs):
        frame.rgb = np.empty(0, np.uint8)  # the input's memory is free before encoding
        control.put(to_write, (frame, out))
    batch.clear()


def encode_stage(
    to_write: queue.Queue, writer: VideoWriter, control: StageControl, bar: tqdm
) -> None:
    """Encode the enhanced frames (freeing their slots) and mux the packets until the end.
    The writer opens on the first frame; packets queued before it wait for it."""
    pending: List[Any] = []
    while True:
        item = control.get(to_write)
        if item is _END:
            return
        if not isinstance(item, tuple):
            if writer.is_open:
                writer.write_packet(item)
            else:
                pending.append(item)  # packets before the first video frame
            continue
        frame, rgb = item
        if not writer.is_open:
            writer.open(frame, rgb.shape[1], rgb.shape[0])
            for packet in pending:
                writer.write_packet(packet)
            pending = []
        writer.write_frame(frame, rgb)
        control.free_slot()
        bar.update(1)
        # tqdm shows s/frame below 1 frame/s; the postfix always says fps
        bar.set_postfix_str(f"{bar.format_dict.get('rate') or 0.0:.2f} fps", refresh=False)


def _start_thread(
    name: str, control: StageControl, stage: Callable[..., None], *args: Any
) -> threading.Thread:
    thread = threading.Thread(target=control.run, args=(stage, *args), name=name, daemon=True)
    thread.start()
    return thread


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
    control = StageControl(
        max_frames_in_flight(
            reader.width, reader.height, reader.bit_depth, batch_size, in_flight_bytes
        )
    )
    to_enhance: queue.Queue = queue.Queue()
    to_write: queue.Queue = queue.Queue()
    bar = tqdm(
        total=reader.frame_count or None,
        desc=reader.path.name,
        unit="frame",
        disable=not show_progress,
    )
    enhancer.reset()
    start = time.perf_counter()
    decoding = _start_thread("video-read", control, decode_stage, reader, to_enhance, control)
    encoding = _start_thread("video-write", control, encode_stage, to_write, writer, control, bar)
    try:
        enhance_stage(reader, to_enhance, to_write, enhancer, batch_size, control)
        encoding.join()
        if control.errors:
            raise control.errors[0]
        if not writer.is_open:
            raise VideoError(f"{reader.path}: no video frame could be decoded")
        writer.finish()
    except BaseException as err:
        control.stop.set()
        encoding.join()
        decoding.join(timeout=5)
        writer.abort()
        if isinstance(err, _Stopped) and control.errors:
            raise control.errors[0] from None
        raise
    finally:
        bar.close()
    decoding.join(timeout=5)
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
