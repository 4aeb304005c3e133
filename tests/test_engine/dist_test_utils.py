"""Helpers for the multi-process training tests: a free port, a spawned training worker, and a
record of the files a process writes (Python audit events, no patching of the code).

The worker runs in a process of its own (``torch.multiprocessing.spawn``), so it lives in an
importable module rather than in the test file.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def free_port() -> int:
    """A TCP port that was free a moment ago (for the process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_recorder(watched: Sequence[Path], writes: List[str]) -> Callable[[str, tuple], None]:
    """An audit hook appending to ``writes`` every file opened for writing, renamed or
    folder created under one of ``watched``."""
    roots = [str(Path(p).resolve()) for p in watched]

    def inside(path: Any) -> bool:
        try:
            text = os.fsdecode(path)
        except TypeError:  # a file descriptor
            return False
        full = os.path.abspath(text)
        return any(full == r or full.startswith(r + os.sep) for r in roots)

    def hook(event: str, args: tuple) -> None:
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing and inside(path):
                writes.append(f"open {os.fsdecode(path)}")
        elif event in ("os.rename", "os.replace") and inside(args[1]):
            writes.append(f"rename {os.fsdecode(args[1])}")
        elif event == "os.mkdir" and inside(args[0]):
            writes.append(f"mkdir {os.fsdecode(args[0])}")

    return hook


def train_worker(
    rank: int,
    world_size: int,
    port: int,
    opt_path: str,
    root: str,
    out_dir: str,
    overrides: Sequence[str] = (),
    sigterm_rank_1_after_s: Optional[float] = None,
) -> None:
    """One process of a ``world_size``-process gloo training run: train, validate once more
    with the final weights, and save what the test compares to ``out_dir/rank{rank}.pt``
    (outside the experiment folders, whose writes are recorded).

    ``sigterm_rank_1_after_s``: rank 1 alone sends itself SIGTERM that many seconds after
    training starts (pre-emption of one process)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    from lptn.engine.train_loop import Trainer
    from lptn.platform import distributed
    from lptn.platform.checkpoint_io import bare_module
    from lptn.platform.options import parse_options
    from lptn.platform.runtime import build_training_runtime

    writes: List[str] = []
    sys.addaudithook(write_recorder([Path(root) / "experiments", Path(root) / "tb_logger"], writes))
    opt = parse_options(opt_path, list(overrides), is_train=True, root=root)
    launch = distributed.LaunchEnv("pytorch", rank, world_size, rank, "127.0.0.1", port)
    runtime = build_training_runtime(opt, launch)
    try:
        trainer = Trainer(opt, runtime, handle_signals=sigterm_rank_1_after_s is not None)
        trainer.prepare()
        if sigterm_rank_1_after_s is not None and rank == 1:
            threading.Timer(sigterm_rank_1_after_s, os.kill, (os.getpid(), signal.SIGTERM)).start()
        outcome = trainer.run()
        final_val = trainer.validate()
        weights: Dict[str, Any] = {
            name: {k: v.detach().clone() for k, v in bare_module(net).state_dict().items()}
            for name, net in trainer.model.networks().items()
        }
        wrapped = {name: type(net).__name__ for name, net in trainer.model.networks().items()}
        record = {
            "weights": weights,
            "wrapped": wrapped,
            "writes": list(writes),
            "final_val": [(r.means, r.num_images) for r in final_val],
            "best": outcome.best,
            "iteration": outcome.iteration,
            "status": outcome.status,
            "signal": outcome.signal,
            "last_state": str(outcome.last_state),
        }
        torch.save(record, Path(out_dir) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()
