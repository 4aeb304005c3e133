"""The one atomic write (lptn.platform.atomic_file): the rename, the umask, no temporary file
left, a real full disk, and, judged by strace, the fsyncs of the file and of its folder by
every writer of lptn that goes through it."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lptn.platform.atomic_file import (
    AtomicFile,
    atomic_write,
    write_bytes_atomic,
    write_text_atomic,
)

REPO = Path(__file__).resolve().parents[2]
VIDEO_TESTS = REPO / "tests" / "test_video"  # video_clips.make_clip


def test_an_existing_file_is_replaced_by_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_bytes(b"old report")
    old_inode = path.stat().st_ino
    with open(path, "rb") as reader:
        write_bytes_atomic(path, b"new report")
        # A reader of the old file keeps all of it: the new one is another file, renamed over.
        assert reader.read() == b"old report"
    assert path.read_bytes() == b"new report"
    assert path.stat().st_ino != old_inode
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_stream_appears_whole_at_the_end_in_new_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "net.pth"
    with atomic_write(path) as fh:
        for value in range(4):
            fh.write(bytes([value]) * 100_000)
            assert not path.exists()  # nothing under the final name before the end
    assert path.read_bytes() == b"".join(bytes([v]) * 100_000 for v in range(4))
    assert os.listdir(path.parent) == ["net.pth"]


def test_an_error_in_the_block_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="encoder failed"):
        with atomic_write(path) as fh:
            fh.write(b"half written")
            raise ValueError("encoder failed")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["log.txt"]


def test_an_atomic_file_keeps_the_extension_and_discard_removes_it(tmp_path: Path) -> None:
    target = AtomicFile(tmp_path / "clip.mp4", extension=".mp4")
    name = target.temp_path.name
    assert name.startswith(".clip.mp4.") and name.endswith(".tmp.mp4")
    assert target.temp_path.parent == tmp_path
    target.discard()
    target.discard()  # twice is harmless (an abort after a failed commit)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_new_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    # mkstemp would make every file 0600, unreadable to a group sharing the folder.
    old = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "out.png", b"\x89PNG")
        write_text_atomic(tmp_path / "metrics.csv", "name,psnr\n")
        with atomic_write(tmp_path / "net.pth") as fh:
            fh.write(b"PK")
    finally:
        os.umask(old)
    for name in ("out.png", "metrics.csv", "net.pth"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_text_is_utf8_with_its_line_ends_kept(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "r.csv", "Brügge,1\r\nGent,2\n")
    assert (tmp_path / "r.csv").read_bytes() == "Brügge,1\r\nGent,2\n".encode()


@pytest.mark.parametrize("how", ["bytes", "stream"])
def test_a_real_full_disk_names_the_file_and_cleans_up(small_tmpfs: Path, how: str) -> None:
    path = small_tmpfs / "net_g_latest.pth"
    path.write_bytes(b"previous checkpoint")
    with pytest.raises(OSError) as caught:
        if how == "bytes":
            write_bytes_atomic(path, bytes(8 << 20))  # 8 MiB on a 5 MiB device
        else:
            with atomic_write(path) as fh:
                for _ in range(8):
                    fh.write(bytes(1 << 20))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(path)
    assert path.read_bytes() == b"previous checkpoint"
    assert os.listdir(small_tmpfs) == [path.name]


# "1234 openat(AT_FDCWD, "/x/.a.png.1.ab.tmp", O_WRONLY|O_CREAT|O_EXCL, 0666) = 3"
_SYSCALL = re.compile(r"^\d+ +(\w+)\((.*)\) += (-?\d+)")

# Every writer of lptn, each to its own file in OUT (argv[1]): checkpoint, report, image,
# photo (argv[2], a FiveK source), TorchScript export and video; strace watches the syscalls.
_WRITERS = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from lptn.archs import build_network
    from lptn.data.image_io import write_image
    from lptn.engine.enhance_video import enhance_video_file
    from lptn.inference.export import export_torchscript
    from lptn.photo.photo_file import read_photo, write_photo
    from lptn.platform.atomic_file import write_text_atomic
    from lptn.platform.checkpoint_io import save_atomic
    from lptn.platform.runtime import Runtime

    out, photo = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.insert(0, sys.argv[3])
    from video_clips import make_clip

    clip = out.parent / "clip.mp4"
    make_clip(clip, [np.full((32, 32, 3), 0.5, np.float32)] * 3)
    save_atomic({"params": {"w": torch.zeros(3)}}, out / "net.pth")
    write_text_atomic(out / "metrics.json", "{}")
    write_image(out / "image.png", np.zeros((4, 4, 3), np.uint8))
    write_photo(out / "photo.jpg", read_photo(photo))
    small = {"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 2}
    export_torchscript(build_network(small), out / "net.torchscript.pt", example_size=(16, 16))
    runtime = Runtime(device=torch.device("cpu"))
    enhance_video_file(clip, out / "clip.mp4", build_network(small), runtime, show_progress=False)
    """
)


def test_every_writer_fsyncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    pytest.importorskip("av", reason="PyAV (the video writer) is not installed")
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed: it is what sees the fsync calls")
    out, log = tmp_path / "out", tmp_path / "strace.log"
    out.mkdir()
    photo = sorted((fivek_sample_dir / "source").glob("*.png"))[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    command = [
        strace,
        "-f",
        "-qq",
        "-o",
        str(log),
        "-e",
        "trace=openat,fsync,rename,renameat,renameat2",
    ]
    done = subprocess.run(
        [*command, sys.executable, "-c", _WRITERS, str(out), str(photo), str(VIDEO_TESTS)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    calls = [m.groups() for m in map(_SYSCALL.match, log.read_text().splitlines()) if m]
    written = [
        "clip.mp4",
        "image.png",
        "metrics.json",
        "net.pth",
        "net.torchscript.pt",
        "photo.jpg",
    ]
    for name in written:
        temp = [
            (i, ret)
            for i, (call, args, ret) in enumerate(calls)
            if call == "openat" and f"/.{name}." in args and ".tmp" in args and "O_EXCL" in args
        ]
        assert len(temp) == 1, f"{name}: temporary files opened: {temp}"
        opened, fd = temp[0]
        renamed = [
            i
            for i, (call, args, _) in enumerate(calls)
            if call.startswith("rename") and args.endswith(f'"{out / name}"')
        ]
        assert len(renamed) == 1 and renamed[0] > opened, f"{name}: renames {renamed}"
        synced = [args for call, args, _ in calls[opened + 1 : renamed[0]] if call == "fsync"]
        assert fd in synced, f"{name}: the file (fd {fd}) is not fsynced before the rename"
        (call, args, folder_fd), (then, synced_fd, _) = calls[renamed[0] + 1 : renamed[0] + 3]
        opens_folder = call == "openat" and args.startswith(f'AT_FDCWD, "{out}", O_RDONLY')
        assert opens_folder, f"{name}: after the rename {call}({args}), not the folder's open"
        assert (then, synced_fd) == ("fsync", folder_fd), f"{name}: the folder is not fsynced"
    assert sorted(os.listdir(out)) == written
