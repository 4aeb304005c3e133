"""Pack image folders into LMDBs in the BasicSR layout that ``io_backend: {type: lmdb}`` reads.

Each photo is read as training reads it (:func:`lptn.data.image_io.read_image`: upright after its
EXIF orientation, converted to sRGB from an embedded profile, 16-bit kept), re-encoded as PNG
(lossless) and stored under its file name without extension, so the lmdb backend decodes
exactly the array the file gives; ``meta_info.txt`` gets one ``name.png (h,w,c)
compress_level`` line per image (the upright size).

Usage (from the repository root)::

    python scripts/data_preparation/create_lmdb.py --input DIR --output X.lmdb
    python scripts/data_preparation/create_lmdb.py --fivek datasets/FiveK

``--fivek ROOT`` converts ``ROOT/FiveK_480p/{train,test}/{A,B}`` into
``ROOT/FiveK_{train,test}_{source,target}.lmdb`` (A = source, B = target), the paths the LPTN
option files use. An existing LMDB is never replaced without ``--overwrite``; the new one is
built beside it under a temporary name and only then moved into place.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

try:
    import lptn  # noqa: F401
except ImportError:  # not installed: fall back to the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lmdb
from tqdm import tqdm

from lptn.data.image_io import encode_image, is_image_file, read_image

FIVEK_SPLITS = ("train", "test")
FIVEK_ROLES = (("A", "source"), ("B", "target"))
_COMMIT_EVERY = 64  # images per write transaction


def list_images(folder: Path) -> List[Path]:
    """Image files directly in ``folder``, sorted; error on a missing folder or clashing names."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: input folder does not exist")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and is_image_file(p.name)
    )
    if not files:
        raise FileNotFoundError(f"{folder}: no image files found")
    seen = {}
    for path in files:
        if path.stem in seen:
            raise ValueError(
                f"{folder}: {seen[path.stem].name} and {path.name} would get the "
                f"same LMDB key {path.stem!r}"
            )
        seen[path.stem] = path
    return files


def _encode(path: Path, compress_level: int) -> Tuple[str, bytes, Tuple[int, int, int]]:
    img = read_image(path)
    return path.stem, encode_image(img, ".png", png_compress_level=compress_level), img.shape


def _encoded_in_order(
    files: Sequence[Path], compress_level: int, workers: int
) -> Iterator[Tuple[str, bytes, Tuple[int, int, int]]]:
    if workers <= 1:
        for path in files:
            yield _encode(path, compress_level)
        return
    # Pillow and cv2 release the GIL while decoding/encoding, so threads scale; a bounded
    # window keeps memory flat on large folders.
    window = workers * 4
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(files), window):
            chunk = files[start : start + window]
            yield from pool.map(lambda p: _encode(p, compress_level), chunk)


def _initial_map_size(files: Sequence[Path]) -> int:
    # PNG of decoded pixels can be several times the size of a JPEG input; the map grows on
    # demand anyway (MapFullError -> doubled), this only avoids most regrowths.
    on_disk = sum(p.stat().st_size for p in files)
    return max(on_disk * 8, 1 << 24) + (1 << 24)


def _check_output(output: Path, compress_level: int, overwrite: bool) -> None:
    if output.suffix != ".lmdb":
        raise ValueError(f"{output}: the output path must end with .lmdb")
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be in 0..9, got {compress_level}")
    if output.exists() and not overwrite:
        raise FileExistsError(
            f"{output} already exists; pass --overwrite (overwrite=True) to replace it"
        )


def make_lmdb_from_folder(
    input_dir: str | Path,
    output_path: str | Path,
    *,
    compress_level: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
    map_size: Optional[int] = None,
) -> Path:
    """Build ``output_path`` (a ``*.lmdb`` folder) from the images directly in ``input_dir``.

    Args:
        compress_level: PNG compression 0-9 for the stored images (recorded in meta_info).
        overwrite: replace an existing ``output_path``; otherwise that is an error.
        progress: show a tqdm bar.
        workers: threads that decode/encode images.
        map_size: initial LMDB map size in bytes (default estimated from the input files;
            it grows automatically when full).

    Returns:
        The path of the finished LMDB.
    """
    input_dir, output = Path(input_dir), Path(output_path)
    _check_output(output, compress_level, overwrite)
    files = list_images(input_dir)
    tmp = output.with_name(f"{output.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    meta_lines: List[str] = []
    env = lmdb.open(str(tmp), map_size=map_size or _initial_map_size(files), subdir=True)
    pending: List[Tuple[bytes, bytes]] = []

    def flush() -> None:
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in pending:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
        pending.clear()

    try:
        bar = tqdm(
            total=len(files),
            desc=f"{input_dir.name} -> {output.name}",
            unit="img",
            disable=not progress,
        )
        with bar:
            for key, data, (h, w, c) in _encoded_in_order(files, compress_level, workers):
                pending.append((key.encode("utf-8"), data))
                meta_lines.append(f"{key}.png ({h},{w},{c}) {compress_level}")
                if len(pending) >= _COMMIT_EVERY:
                    flush()
                bar.update(1)
        flush()
        env.sync()
    except BaseException:
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    env.close()
    (tmp / "meta_info.txt").write_text("\n".join(meta_lines) + "\n", encoding="utf-8")
    if output.exists():
        shutil.rmtree(output)
    os.replace(tmp, output)
    return output


def fivek_jobs(root: str | Path) -> List[Tuple[Path, Path]]:
    """``(input folder, output lmdb)`` for the FiveK layout under ``root``."""
    root = Path(root)
    return [
        (root / "FiveK_480p" / split / sub, root / f"FiveK_{split}_{role}.lmdb")
        for split in FIVEK_SPLITS
        for sub, role in FIVEK_ROLES
    ]


def make_fivek_lmdbs(
    root: str | Path,
    *,
    compress_level: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> List[Path]:
    """Convert ``root/FiveK_480p/{train,test}/{A,B}`` to ``root/FiveK_{split}_{role}.lmdb``.

    Every input and output is checked before any work starts.
    """
    jobs = fivek_jobs(root)
    missing = [str(src) for src, _ in jobs if not src.is_dir()]
    if missing:
        raise FileNotFoundError(
            "FiveK folders not found: " + ", ".join(missing) + ". Expected the layout "
            f"{Path(root) / 'FiveK_480p'}/{{train,test}}/{{A,B}} (A = input, B = expert C); "
            "see scripts/data_preparation/download_datasets.py"
        )
    existing = [str(dst) for _, dst in jobs if dst.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            "already exist: " + ", ".join(existing) + "; pass --overwrite to replace them"
        )
    return [
        make_lmdb_from_folder(
            src,
            dst,
            compress_level=compress_level,
            overwrite=overwrite,
            progress=progress,
            workers=workers,
        )
        for src, dst in jobs
    ]


def parse_args(argv: Optional[Iterable[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--input", help="folder of images to pack")
    mode.add_argument(
        "--fivek",
        metavar="ROOT",
        help="convert ROOT/FiveK_480p/{train,test}/{A,B} into ROOT/FiveK_*.lmdb",
    )
    parser.add_argument("--output", help="output LMDB path ending in .lmdb (with --input)")
    parser.add_argument(
        "--compress-level",
        type=int,
        default=1,
        help="PNG compression level 0-9 of the stored images (default 1)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="decoding/encoding threads (default: up to 4)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing LMDBs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.input and not args.output:
        parser.error("--output is required with --input")
    return args


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.fivek:
            outputs = make_fivek_lmdbs(
                args.fivek,
                compress_level=args.compress_level,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                workers=args.workers,
            )
        else:
            outputs = [
                make_lmdb_from_folder(
                    args.input,
                    args.output,
                    compress_level=args.compress_level,
                    overwrite=args.overwrite,
                    progress=not args.no_progress,
                    workers=args.workers,
                )
            ]
    except (OSError, ValueError) as err:
        print(f"create_lmdb: error: {err}", file=sys.stderr)
        return 1
    for path in outputs:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
