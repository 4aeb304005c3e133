"""Frames per second of video enhancement (``lptn-enhance`` on a video file) at 1080p and 4K,
fp32 and bf16, and the flicker of the output with and without temporal smoothing.

Usage (from the repository root)::

    python benchmarks/bench_video.py [--sizes 1080p 4k] [--precisions fp32 bf16]
        [--frames 1080p=12 4k=6] [--threads 2] [--preset medium] [--flicker]
        [--workdir /tmp/lptn-bench-video] [--json results/benchmarks/video_cpu.json]

The clips are short (default 12 frames at 1080p, 6 at 4K, 24 fps) H.264 (CRF 18, yuv420p,
BT.709 limited range) with AAC audio, panning 4 px a frame across a real FiveK photo upscaled
(bicubic). Each (size, precision) runs in a fresh child process, which reports:

- ``pipeline_fps``: the whole pipeline (decode + colour conversion + fast-path enhancement +
  encoding with libx264 + audio copy), frames / wall time, the three stages overlapping;
- ``network_fps``: the enhancement alone on the same decoded frames (fast path);
- ``decode_fps`` / ``encode_fps``: decoding + conversion to RGB alone, and conversion + libx264
  alone (same preset, CRF 18);
- ``peak_rss_mb``: the child's peak resident memory (whole process).

``--flicker`` measures, on 640x360 clips made from a FiveK photo: (a) a still background with a
bright square crossing the top (the background's mean frame-to-frame change, static rows far
from the square: pumping of the colours), (b) a slow pan (2 px a frame) encoded with x264 CRF 23:
the mean frame-to-frame change of output / input, unaligned (as the issue defines it) and
aligned by the pan (what remains is temporal instability).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WEIGHTS = REPO.parent / "shared" / "models" / "net_g_FiveK_numhigh3.pth"
PHOTO = REPO.parent / "shared" / "data" / "fivek_sample" / "source" / "a1305.png"
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840), "8k": (4320, 7680)}


def _photo() -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def pan(photo: np.ndarray, count: int, height: int, width: int, step: int) -> List[np.ndarray]:
    """``count`` uint8 crops of ``photo`` upscaled, panning right ``step`` px a frame."""
    import cv2

    big_w = width + step * count + 8
    scale = max(big_w / photo.shape[1], (height + 8) / photo.shape[0])
    big = cv2.resize(
        photo,
        (int(photo.shape[1] * scale) + 1, int(photo.shape[0] * scale) + 1),
        interpolation=cv2.INTER_CUBIC,
    )
    return [big[4 : 4 + height, 4 + i * step : 4 + i * step + width] for i in range(count)]


def make_clip(path: Path, frames: List[np.ndarray], crf: int = 18) -> None:
    """H.264 + AAC clip at 24 fps from uint8 RGB frames (BT.709, limited range)."""
    import av

    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=24)
    vs.height, vs.width = frames[0].shape[:2]
    vs.pix_fmt = "yuv420p"
    vs.options = {"crf": str(crf), "preset": "veryfast"}
    for key in ("colorspace", "color_primaries", "color_trc", "color_range"):
        setattr(vs.codec_context, key, 1)
    aus = out.add_stream("aac", rate=48000)
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(
            format="yuv420p",
            src_colorspace="ITU709",
            dst_colorspace="ITU709",
            src_color_range="JPEG",
            dst_color_range="MPEG",
        )
        f.colorspace, f.color_range = 1, 1
        f.pts = i
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode(None):
        out.mux(p)
    samples = int(len(frames) / 24 * 48000)
    tone = (0.1 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
    for start in range(0, samples - 1023, 1024):
        a = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], "fltp", "mono")
        a.sample_rate, a.pts = 48000, start
        for p in aus.encode(a):
            out.mux(p)
    for p in aus.encode(None):
        out.mux(p)
    out.close()


def clip_path(workdir: Path, size: str, frames: int) -> Path:
    """The test clip for ``size``, made on first use (in the parent process, so that making
    it does not count in a child's peak memory)."""
    clip = workdir / f"clip_{size}_{frames}.mp4"
    if not clip.exists():
        h, w = SIZES[size]
        make_clip(clip, pan(_photo(), frames, h, w, 4))
    return clip


def child(
    size: str,
    precision: str,
    frames: int,
    preset: str,
    workdir: Path,
    device: str,
    pipeline_only: bool = False,
) -> Dict:
    """One (size, precision) measurement in this process."""
    import torch

    from lptn.engine.enhance_video import VideoOptions, enhance_video_file
    from lptn.inference.fast_lptn import FastLPTN
    from lptn.inference.generator_weights import load_generator
    from lptn.platform.runtime import Runtime
    from lptn.video.colour_conversion import rgb_to_frame
    from lptn.video.video_reader import DecodedFrame, VideoReader

    h, w = SIZES[size]
    clip = clip_path(workdir, size, frames)
    net = load_generator(WEIGHTS).eval()
    runtime = Runtime(device=torch.device(device), precision=precision)
    net = net.to(runtime.device)
    out = workdir / "out" / clip.name
    # on accelerators: batches of 4 frames and NVENC when it opens (the CLI's defaults)
    opts = VideoOptions(preset=preset, batch=1 if device == "cpu" else 4)
    result = enhance_video_file(clip, out, net, runtime, opts, show_progress=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "size": f"{h}x{w}",
        "device": device,
        "precision": precision,
        "frames": result.frames,
        "encoder": f"{result.encoder} ({preset})",
        "pipeline_fps": round(result.fps, 3),
        "peak_rss_mb": round(rss),
        "torch_threads": torch.get_num_threads(),
    }
    if pipeline_only:
        return summary

    t0 = time.perf_counter()
    with VideoReader(clip) as reader:
        decoded = [f for f in reader.items() if isinstance(f, DecodedFrame)]
    decode_s = time.perf_counter() - t0
    fast = FastLPTN(net, precision=precision)
    t0 = time.perf_counter()
    for f in decoded:
        fast.enhance_array(f.rgb, runtime.device)
    network_s = time.perf_counter() - t0

    import av

    enc = av.open(str(workdir / "encode_only.mp4"), "w")
    vs = enc.add_stream("libx264", rate=24)
    vs.height, vs.width, vs.pix_fmt = h, w, "yuv420p"
    vs.options = {"crf": "18", "preset": preset}
    t0 = time.perf_counter()
    for f in decoded:
        frame = rgb_to_frame(f.rgb, f.colour, "yuv420p")
        frame.pts = f.index
        for p in vs.encode(frame):
            enc.mux(p)
    for p in vs.encode(None):
        enc.mux(p)
    enc.close()
    encode_s = time.perf_counter() - t0
    n = len(decoded)
    summary["network_fps"] = round(n / network_s, 3)
    summary["decode_fps"] = round(n / decode_s, 2)
    summary["encode_fps"] = round(n / encode_s, 2)
    return summary


def flicker(workdir: Path, taus: List[float]) -> Dict:
    """Flicker figures on 640x360 clips (see the module docstring)."""
    from lptn.inference.fast_lptn import FastLPTN
    from lptn.inference.generator_weights import load_generator
    from lptn.metrics.temporal_flicker import mean_frame_change
    from lptn.video.temporal_smoothing import SmoothedFastLPTN
    from lptn.video.video_reader import DecodedFrame, VideoReader

    net = load_generator(WEIGHTS).eval()
    photo = _photo()
    h, w = 360, 640
    import cv2

    bg = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    still = []
    for t in range(24):
        f = bg.copy()
        f[0:120, 200 + 8 * t : 260 + 8 * t] = (250, 250, 245)
        still.append(f)
    mask = np.zeros((h, w), bool)
    mask[260:] = True  # > 130 px from the square: beyond the network's receptive field
    clip = workdir / "pan_360p.mp4"
    make_clip(clip, pan(photo, 24, h, w, 2), crf=23)
    with VideoReader(clip) as reader:
        panned = [f.rgb for f in reader.items() if isinstance(f, DecodedFrame)]

    def run(tau: float, frames: List[np.ndarray]) -> List[np.ndarray]:
        path = SmoothedFastLPTN(net, tau=tau) if tau else FastLPTN(net)
        outs = []
        for i, f in enumerate(frames):
            if tau:
                path.set_frame_times([i / 24])
            outs.append(path.enhance_array(f))
        return outs

    report: Dict = {
        "still_background_input_change": mean_frame_change(still, mask=mask),
        "pan_input_change": mean_frame_change(panned),
        "pan_input_change_aligned": mean_frame_change(panned, shift=(0, -2)),
        "runs": [],
    }
    for tau in [0.0, *taus]:
        still_out, pan_out = run(tau, still), run(tau, panned)
        report["runs"].append(
            {
                "tau_s": tau,
                "still_background_output_change": mean_frame_change(still_out, mask=mask),
                "pan_ratio": mean_frame_change(pan_out) / report["pan_input_change"],
                "pan_ratio_aligned": mean_frame_change(pan_out, shift=(0, -2))
                / report["pan_input_change_aligned"],
            }
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1080p", "4k"], choices=list(SIZES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--frames", nargs="+", default=["1080p=12", "4k=6"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (NVENC untested here)")
    parser.add_argument("--preset", default="medium", help="libx264 preset")
    parser.add_argument("--flicker", action="store_true")
    parser.add_argument(
        "--pipeline-only",
        action="store_true",
        help="only the whole pipeline and its peak memory (no per-stage timings)",
    )
    parser.add_argument("--taus", nargs="+", type=float, default=[0.5, 2.0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lptn-bench-video"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "PRECISION", "FRAMES"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        size, precision, frames = args.child
        run = child(
            size,
            precision,
            int(frames),
            args.preset,
            args.workdir,
            args.device,
            args.pipeline_only,
        )
        print(json.dumps(run))
        return
    counts = dict(item.split("=") for item in args.frames)
    results: Dict = {"runs": []}
    for size in args.sizes:
        clip_path(args.workdir, size, int(counts.get(size, "6")))
        for precision in args.precisions:
            cmd = [sys.executable, __file__, "--child", size, precision, counts.get(size, "6")]
            cmd += ["--preset", args.preset, "--workdir", str(args.workdir)]
            cmd += ["--device", args.device] + (["--pipeline-only"] if args.pipeline_only else [])
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            load = Path("/proc/loadavg").read_text().split()[0]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            run["load_average_before"] = float(load)
            print(json.dumps(run), flush=True)
            results["runs"].append(run)
    if args.flicker:
        results["flicker"] = flicker(args.workdir, args.taus)
        print(json.dumps(results["flicker"], indent=1), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
