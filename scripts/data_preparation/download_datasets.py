"""Fetch the FiveK 480p archive the LPTN authors published and unpack it under datasets/FiveK.

Usage (from the repository root)::

    python scripts/data_preparation/download_datasets.py [--root datasets/FiveK]

The archive is a Google Drive file (ID from the LPTN README). Without network access the script
gives up after ``--timeout`` seconds, prints where to put the files by hand and exits with
status 1. After unpacking it expects ``ROOT/FiveK_480p/{train,test}/{A,B}`` (A = input,
B = expert C) and suggests the LMDB conversion::

    python scripts/data_preparation/create_lmdb.py --fivek datasets/FiveK
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional

FIVEK_480P_DRIVE_ID = "1oAORKd-TPnPwZvhcnEEJqc1ogT7KgFtx"
DRIVE_URL = "https://drive.usercontent.google.com/download"
LAYOUT = ("train/A", "train/B", "test/A", "test/B")
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The archive could not be fetched or unpacked."""


def manual_instructions(root: Path) -> str:
    """What to do by hand when the download is impossible."""
    return (
        "Download the FiveK 480p archive of the LPTN project by hand, from\n"
        f"  https://drive.google.com/file/d/{FIVEK_480P_DRIVE_ID}/view\n"
        f"and unpack it so that these folders exist:\n"
        + "".join(f"  {root / 'FiveK_480p' / part}\n" for part in LAYOUT)
        + "(A = original input photos, B = expert C retouched targets, matching file names).\n"
        f"Then build the LMDBs:  python scripts/data_preparation/create_lmdb.py --fivek {root}"
    )


def layout_missing(root: Path) -> List[Path]:
    """The folders of the expected FiveK layout that are absent under ``root``."""
    return [
        root / "FiveK_480p" / part for part in LAYOUT if not (root / "FiveK_480p" / part).is_dir()
    ]


def _drive_request(file_id: str, extra: Optional[dict] = None) -> urllib.request.Request:
    query = {"id": file_id, "export": "download", "confirm": "t", **(extra or {})}
    return urllib.request.Request(
        f"{DRIVE_URL}?{urllib.parse.urlencode(query)}", headers={"User-Agent": "lptn-download/1.0"}
    )


def download(file_id: str, dest: Path, timeout: float) -> Path:
    """Stream the Drive file ``file_id`` to ``dest`` (via ``dest.part``); returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = _drive_request(file_id)
    try:
        for _ in range(2):
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if "text/html" in response.headers.get("Content-Type", ""):
                    # Drive's "cannot scan for viruses" page: resubmit with its uuid token.
                    page = response.read(1 << 20).decode("utf-8", "replace")
                    token = re.search(r'name="uuid"\s+value="([^"]+)"', page)
                    if token is None:
                        raise DownloadError(
                            "Google Drive answered with a web page instead of "
                            "the file (quota exceeded or the file moved)"
                        )
                    request = _drive_request(file_id, {"uuid": token.group(1)})
                    continue
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                with open(part, "wb") as handle:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        handle.write(chunk)
                        done += len(chunk)
                        shown = f"{done / 2**20:.0f} MiB" + (
                            f" / {total / 2**20:.0f} MiB" if total else ""
                        )
                        print(f"\rdownloading {dest.name}: {shown}", end="", file=sys.stderr)
                print(file=sys.stderr)
                os.replace(part, dest)
                return dest
        raise DownloadError("Google Drive kept answering with a web page instead of the file")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"cannot download from Google Drive: {reason}") from err
    finally:
        if part.exists():
            part.unlink()


def unpack(archive: Path, root: Path) -> None:
    """Extract a zip or tar archive into ``root``, refusing members that would land outside."""
    root_resolved = root.resolve()

    def _inside(name: str) -> bool:
        return (root_resolved / name).resolve().is_relative_to(root_resolved)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            bad = [n for n in zf.namelist() if not _inside(n)]
            if bad:
                raise DownloadError(f"{archive}: unsafe member paths, e.g. {bad[0]!r}")
            zf.extractall(root)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            bad = [m.name for m in tf.getmembers() if not _inside(m.name)]
            if bad:
                raise DownloadError(f"{archive}: unsafe member paths, e.g. {bad[0]!r}")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.9.17 / 3.11.4
                tf.extractall(root, filter="data")
            else:
                tf.extractall(root)
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive")


def parse_args(argv: Optional[Iterable[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", default="datasets/FiveK", help="where FiveK_480p/ goes (default datasets/FiveK)"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="network timeout in seconds (default 15)"
    )
    parser.add_argument("--file-id", default=FIVEK_480P_DRIVE_ID, help="Google Drive file ID")
    parser.add_argument(
        "--keep-archive", action="store_true", help="keep the downloaded archive after unpacking"
    )
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = parse_args(argv)
    root = Path(args.root)
    if not layout_missing(root):
        print(f"{root / 'FiveK_480p'} is already in place; nothing to download.")
        return 0
    archive = root / "FiveK_480p.download"
    try:
        download(args.file_id, archive, args.timeout)
        print(f"unpacking {archive} into {root}", file=sys.stderr)
        unpack(archive, root)
    except DownloadError as err:
        print(f"download_datasets: error: {err}\n\n{manual_instructions(root)}", file=sys.stderr)
        return 1
    finally:
        if archive.exists() and not args.keep_archive:
            archive.unlink()
    missing = layout_missing(root)
    if missing:
        print(
            "download_datasets: error: the archive did not produce the expected layout; "
            "missing: " + ", ".join(str(m) for m in missing) + f"\nLook inside {root} and "
            "move the folders into place.\n\n" + manual_instructions(root),
            file=sys.stderr,
        )
        return 1
    print(
        f"FiveK 480p is ready in {root / 'FiveK_480p'}.\nNext: python "
        f"scripts/data_preparation/create_lmdb.py --fivek {root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
