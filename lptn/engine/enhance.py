"""Enhance photo libraries: files, folders or glob patterns in, the same names out.

Every input is checked before any is processed: unreadable or unsupported files, photos over
the pixel limit (read from the header), outputs that would overwrite an input and two inputs
that would share an output are reported first. Files of a folder or glob that are not photos or
videos are counted as ignored. Each output is written atomically (temporary file, then rename)
in the output folder, under the input's path relative to the folder or to the fixed part of the
glob pattern, so that a recursive glob keeps the library's folder structure, and gets the
input's modification time. An output folder inside the searched tree is left out of the search,
so outputs are never taken as inputs by this run or a later one with the same ``--output``.
``skip_existing`` leaves outputs that are already there. Under ``torchrun`` each process takes
every N-th file on its own device.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from tqdm import tqdm

from lptn.engine.lut_export import LUTRecorder, lut_path, write_photo_lut
from lptn.inference.graph_lptn import GraphLPTN
from lptn.inference.tiling import default_memory_budget_mb
from lptn.photo.enhancer import PhotoEnhancer
from lptn.photo.errors import PhotoError
from lptn.photo.photo_file import (
    FORMAT_EXTENSIONS,
    PHOTO_EXTENSIONS,
    Photo,
    is_photo_file,
    output_format_for,
    probe_photo,
)
from lptn.photo.pipeline import enhance_encoded
from lptn.photo.settings import PhotoSettings
from lptn.platform.atomic_file import write_bytes_atomic
from lptn.platform.logger import get_logger
from lptn.video import VIDEO_EXTENSIONS, is_video_file

__all__ = [
    "EnhanceSummary",
    "InputSelection",
    "OutputFolderError",
    "PhotoJob",
    "UnsupportedInput",
    "check_output_folder",
    "collect_inputs",
    "enhance_files",
]


class OutputFolderError(ValueError):
    """``--output`` is not a folder that can be written; the message says why."""


class UnsupportedInput(ValueError):
    """``--input`` names a file that is neither a photo nor a video this tool reads."""


@dataclass(frozen=True)
class PhotoJob:
    """One input photo and its output path relative to the output folder."""

    source: Path
    relative: Path


@dataclass(frozen=True)
class InputSelection:
    """What ``--input`` selects: the photo and video ``jobs``, and the ``ignored`` files the
    folder or glob matched that are neither (counted in the summary, not processed)."""

    jobs: List[PhotoJob]
    ignored: List[Path] = field(default_factory=list)


@dataclass
class EnhanceSummary:
    """What one ``lptn-enhance`` run did: files written, skipped, failed (with the reason)
    and ignored."""

    written: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)
    failed: List[Tuple[Path, str]] = field(default_factory=list)
    ignored: List[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        text = (
            f"{len(self.written)} written, {len(self.skipped)} skipped, {len(self.failed)} failed"
        )
        if self.ignored:
            text += f", {len(self.ignored)} ignored as not photos or videos"
        return text


def _fixed_prefix(parts: Sequence[str]) -> int:
    """How many leading path parts hold no wildcard."""
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return i
    return len(parts)


def _match(parts: Sequence[str], pattern: Sequence[str]) -> bool:
    """Glob matching of path parts, ``**`` standing for any number of folders; like glob,
    wildcards do not match names that start with a dot."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        if _match(parts, pattern[1:]):
            return True
        return bool(parts) and not parts[0].startswith(".") and _match(parts[1:], pattern)
    if not parts:
        return False
    if parts[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _match(parts[1:], pattern[1:])


def is_input_file(name: str | Path) -> bool:
    """True if the file name has a photo or a video extension (case-insensitive)."""
    return is_photo_file(name) or is_video_file(name)


def _walk_files(
    base: Path, max_depth: Optional[int], output_real: Optional[str] = None
) -> Iterator[Tuple[str, ...]]:
    """Relative parts of every file under ``base``; symlinked folders are followed once each
    (a link back up the tree is not followed again, so loops end). The output folder
    (``output_real``, a real path) is left out when it is a subfolder."""
    seen: Set[str] = set()
    for root, dirs, files in os.walk(base, followlinks=True):
        real = os.path.realpath(root)
        rel = Path(root).relative_to(base).parts
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if rel and real == output_real:
            dirs[:] = []
            continue
        if max_depth is not None and len(rel) + 1 >= max_depth:
            dirs[:] = []
        dirs.sort()
        for name in sorted(files):
            yield rel + (name,)


def collect_inputs(spec: str, output_dir: Optional[Path] = None) -> InputSelection:
    """A photo or video file, a folder (its files, not its subfolders) or a glob pattern
    (``**`` for any depth) -> the photos and videos, sorted, each with its relative output
    path, and the matched files that are neither.

    ``output_dir`` is left out when it lies below the searched folder (the outputs of an
    earlier run are not inputs); when it is the searched folder or above it, nothing is.

    Raises:
        UnsupportedInput: ``spec`` is a file that is not a photo or video.
        FileNotFoundError: nothing to process (the message counts the ignored files).
    """
    path = Path(spec)
    known = ", ".join(sorted(PHOTO_EXTENSIONS) + list(VIDEO_EXTENSIONS))
    if path.is_file():
        if not is_input_file(path):
            kind = f"{path.suffix} files are" if path.suffix else "a file without extension is"
            raise UnsupportedInput(
                f"--input {spec}: not a photo or video this tool reads ({kind} not supported; "
                f"extensions: {known})"
            )
        return InputSelection([PhotoJob(path, Path(path.name))])
    if path.is_dir():
        base, pattern = path, ["*"]
    else:
        parts = Path(spec).parts
        fixed = _fixed_prefix(parts)
        base = Path(*parts[:fixed]) if fixed else Path(".")
        pattern = list(parts[fixed:])
    if not pattern or not base.is_dir():
        raise FileNotFoundError(f"--input {spec}: no photos found (no such file or folder)")
    # An output folder above the searched one (or the same) holds the inputs: nothing is left
    # out; one below it is (real paths, so that "out", "./out" and "../lib/out" are the same).
    out_real = os.path.realpath(output_dir) if output_dir is not None else None
    max_depth = None if "**" in pattern else len(pattern)
    jobs, ignored = [], []
    for rel in _walk_files(base, max_depth, out_real):
        if not _match(rel, pattern):
            continue
        if is_input_file(rel[-1]):
            jobs.append(PhotoJob(base.joinpath(*rel), Path(*rel)))
        else:
            ignored.append(base.joinpath(*rel))
    jobs.sort(key=lambda job: job.relative.parts)
    if not jobs:
        found = ""
        if ignored:
            names = ", ".join(str(p) for p in ignored[:3]) + (" ..." if len(ignored) > 3 else "")
            found = f"; {len(ignored)} other file(s): {names}"
        raise FileNotFoundError(
            f"--input {spec}: no photos or videos found (extensions: {known}{found})"
        )
    return InputSelection(jobs, ignored)


def check_output_folder(output_dir: Path) -> None:
    """Create ``output_dir`` if needed and check that files can be made in it.

    Raises:
        OutputFolderError: it is a file, or it cannot be created or written.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputFolderError(f"--output {output_dir} is a file; it must name a folder")
    suffix = output_dir.suffix.lower()
    if not output_dir.exists() and (suffix in PHOTO_EXTENSIONS or suffix in VIDEO_EXTENSIONS):
        raise OutputFolderError(
            f"--output {output_dir} looks like a file name; it must name a folder"
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".lptn-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputFolderError(
            f"--output {output_dir} cannot be written: {err.strerror or err}"
        ) from err


def output_relative(job: PhotoJob, raw_format: Optional[str] = None) -> Path:
    """Where ``job``'s output goes: its relative path, with ``.jpg`` for HEIC inputs and the
    suffix of ``raw_format`` (default ``.tif``) for RAW inputs (videos keep their name and
    container)."""
    if is_video_file(job.relative):
        return job.relative
    fmt = PHOTO_EXTENSIONS[job.relative.suffix.lower()]
    out = output_format_for(fmt, raw_format)
    if out != fmt:
        return job.relative.with_suffix(FORMAT_EXTENSIONS[out])
    return job.relative


def plan_outputs(
    jobs: Sequence[PhotoJob], output_dir: Path, raw_format: Optional[str] = None
) -> Tuple[List[Tuple[PhotoJob, Path]], List[Tuple[Path, str]]]:
    """(job, output path) pairs, and the refused inputs with the reason: an output that would
    overwrite an input, or a second input with the same output."""
    inputs = {os.path.realpath(j.source) for j in jobs}
    taken: Dict[str, Path] = {}
    planned, refused = [], []
    for job in jobs:
        dst = output_dir / output_relative(job, raw_format)
        real = os.path.realpath(dst)
        if real in inputs:
            refused.append(
                (job.source, f"output {dst} would overwrite an input; choose another --output")
            )
        elif real in taken:
            refused.append((job.source, f"same output {dst} as {taken[real]}; not processed"))
        else:
            taken[real] = job.source
            planned.append((job, dst))
    return planned, refused


def _report_line(handle: Optional[IO[str]], record: Dict[str, Any]) -> None:
    if handle is not None:
        # One write per line: lines from several processes appending do not interleave.
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def _early_record(src: Path, status: str, reason: str, rank: int) -> Dict[str, Any]:
    """The report line of a file that is not processed."""
    return {"input": str(src), "status": status, "error": reason, "rank": rank}


def enhance_files(
    enhancer: PhotoEnhancer,
    jobs: Sequence[PhotoJob],
    output_dir: Path,
    photo: Optional[PhotoSettings] = None,
    *,
    skip_existing: bool = False,
    report: Optional[Path] = None,
    show_progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    videos: Optional[Callable[[Path, Path], None]] = None,
    ignored: Sequence[Path] = (),
    keep_mtime: bool = True,
    lut_dir: Optional[Path] = None,
) -> EnhanceSummary:
    """Enhance this process's share of ``jobs`` (every ``world_size``-th from ``rank``) into
    ``output_dir``; inputs are never overwritten. ``photo``: strength, colour, JPEG quality,
    what RAW inputs become and the pixel limit, checked from the header before decoding
    (None: the defaults).

    ``report``: a JSON-lines file to which one line per file is appended (``input``,
    ``output``, ``status`` written / skipped / failed / ignored, ``error``, ``seconds``,
    ``rank``). ``videos``: enhances one video file ``(source, output)``
    (:class:`lptn.engine.enhance_video.VideoFileEnhancer`); without it video inputs fail.
    ``ignored``: files of the input that are not photos or videos (counted and listed).
    ``keep_mtime``: each output gets its input's modification time. ``lut_dir``: each
    photo's 3D LUT is also written there as ``<output relative path>.cube`` (the generator
    must predict one: :func:`lptn.engine.lut_export.check_lut_generator`; videos get none).
    """
    log = get_logger()
    photo = photo or PhotoSettings()
    planned, refused = plan_outputs(jobs, output_dir, photo.raw_format)
    mine = planned[rank::world_size]
    summary = EnhanceSummary(ignored=list(ignored[rank::world_size]))
    summary.failed.extend(refused[rank::world_size])
    todo: List[Tuple[PhotoJob, Path]] = []
    for job, dst in mine:
        refusal = _refusal(job, videos is not None, photo.max_megapixels)
        if refusal is None:
            todo.append((job, dst))
        else:
            summary.failed.append((job.source, refusal))
    for src in summary.ignored:
        log.info("ignored (not a photo or video): %s", src)
    for src, reason in summary.failed:
        log.error("not processed: %s", reason if str(src) in reason else f"{src}: {reason}")
    handle = open(report, "a", encoding="utf-8") if report is not None else None
    try:
        for src in summary.ignored:
            _report_line(handle, _early_record(src, "ignored", "not a photo or video", rank))
        for src, reason in summary.failed:
            _report_line(handle, _early_record(src, "failed", reason, rank))
        for job, dst in tqdm(todo, desc="enhance", unit="file", disable=not show_progress):
            record = {"input": str(job.source), "output": str(dst), "rank": rank}
            if skip_existing and dst.exists():
                summary.skipped.append(dst)
                _report_line(handle, {**record, "status": "skipped"})
                continue
            start = time.perf_counter()
            cube = lut_path(lut_dir, dst.relative_to(output_dir)) if lut_dir else None
            failure = _enhance_job(enhancer, job, dst, photo, videos, keep_mtime, cube)
            if failure is not None:
                summary.failed.append((job.source, failure))
                log.error("FAILED %s", failure)
                _report_line(handle, {**record, "status": "failed", "error": failure})
                continue
            summary.written.append(dst)
            seconds = round(time.perf_counter() - start, 3)
            _report_line(handle, {**record, "status": "written", "seconds": seconds})
    finally:
        if handle is not None:
            handle.close()
    # The caller prints the summary line (once per process).
    return summary


def _refusal(job: PhotoJob, videos: bool, max_megapixels: Optional[float]) -> Optional[str]:
    """Why ``job`` is not processed, judged from the file's header before decoding, or None.
    ``videos``: whether this call enhances video files."""
    if is_video_file(job.source):
        return None if videos else "video files are not enhanced by this call"
    try:
        height, width = probe_photo(job.source)
    except PhotoError as err:
        return str(err)
    if max_megapixels is not None and height * width > max_megapixels * 1e6:
        return (
            f"{job.source}: {width}x{height} ({height * width / 1e6:.4g} megapixels) is "
            f"over --max-megapixels {max_megapixels:g}; not decoded"
        )
    return None


def _enhance_job(
    enhancer: PhotoEnhancer,
    job: PhotoJob,
    dst: Path,
    photo: PhotoSettings,
    videos: Optional[Callable[[Path, Path], None]],
    keep_mtime: bool,
    cube: Optional[Path] = None,
) -> Optional[str]:
    """Enhance one photo or video into ``dst`` (and a photo's LUT into ``cube``); the
    one-line reason it failed (naming the file), or None when ``dst`` was written."""
    try:
        if videos is not None and is_video_file(job.source):
            videos(job.source, dst)
        else:
            _enhance_one(enhancer, job.source, dst, photo, cube)
    except (PhotoError, OSError, ValueError, RuntimeError, MemoryError, ImportError) as err:
        return str(err) if str(job.source) in str(err) else f"{job.source}: {err}"
    if keep_mtime:
        _copy_mtime(job.source, dst)
    return None


def _copy_mtime(src: Path, dst: Path) -> None:
    """Give ``dst`` the modification time of ``src`` (its access time is left as it is)."""
    try:
        os.utime(dst, ns=(os.stat(dst).st_atime_ns, os.stat(src).st_mtime_ns))
    except OSError as err:
        # The output is complete; only its time stamp could not be set (e.g. on some shares).
        get_logger().warning(
            "%s: written, but its modification time could not be set (%s)",
            dst,
            err.strerror or err,
        )


def _enhance_one(
    enhancer: PhotoEnhancer,
    src: Path,
    dst: Path,
    settings: PhotoSettings,
    cube: Optional[Path] = None,
) -> None:
    recorder = LUTRecorder(enhancer) if cube is not None else None
    data, _ = enhance_encoded(
        src,
        recorder or enhancer,
        settings,
        on_decoded=lambda photo: _log_size_plan(enhancer, src, photo),
    )
    write_bytes_atomic(dst, data)
    if recorder is not None and recorder.lut is not None and cube is not None:
        write_photo_lut(cube, recorder.lut, title=src.name)


def _log_size_plan(enhancer: PhotoEnhancer, src: Path, photo: Photo) -> None:
    """Log how the fast path tiles ``photo``, or warn when the graph path needs more memory
    for it than the device's default budget."""
    log = get_logger()
    height, width = photo.size
    note = enhancer.tiling_note(height, width)
    path = enhancer.inference_path
    if note:
        log.info("%s (%dx%d): %s", src.name, height, width, note)
    elif isinstance(path, GraphLPTN):
        need = path.working_memory_mb(height, width)
        budget = default_memory_budget_mb(enhancer.runtime.device)
        if need > budget:
            log.warning(
                "%s (%dx%d): the graph path needs about %.0f MB for the whole image "
                "(default budget %.0f MB); --path fast tiles within a budget",
                src.name,
                height,
                width,
                need,
                budget,
            )
