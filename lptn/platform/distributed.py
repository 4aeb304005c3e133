"""torch.distributed for training: launchers, the process group, collectives, DDP wrapping.

Launchers (``train.py --launcher``):

- ``none``: one process, no process group.
- ``pytorch``: started by ``python -m torch.distributed.run`` (torchrun), which sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
- ``slurm``: started by ``srun`` (one task per device): rank, world size and local rank come
  from ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``; the master address is the first
  host of ``SLURM_STEP_NODELIST`` / ``SLURM_JOB_NODELIST`` unless ``MASTER_ADDR`` is set; the
  port is ``MASTER_PORT``, else ``dist_params.port``, else 29500.

The backend is ``dist_params.backend`` (``nccl``, ``gloo``, ``hccl``), by default the one that
suits the device (:func:`lptn.platform.device_backend.default_dist_backend`). Each process takes
the device of its local rank.

The collectives below take the runtime's device, so NCCL/HCCL get device tensors and gloo CPU
ones; with one process they return their input.
"""

from __future__ import annotations

import datetime
import gc
import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.distributed as dist
from torch import nn

LAUNCHERS = ("none", "pytorch", "slurm")
DIST_BACKENDS = ("nccl", "gloo", "hccl")
DEFAULT_PORT = 29500


class LaunchError(RuntimeError):
    """The launcher's environment is missing or inconsistent; says what was expected."""


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in the job, as its launcher described it."""

    launcher: str
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: Optional[str] = None
    master_port: Optional[int] = None

    @property
    def distributed(self) -> bool:
        return self.launcher != "none"


def _int_var(env: Mapping[str, str], name: str, launcher: str, hint: str) -> int:
    value = env.get(name)
    if value is None or value == "":
        raise LaunchError(
            f"--launcher {launcher}: the environment variable {name} is not set; {hint}"
        )
    try:
        return int(value)
    except ValueError as err:
        raise LaunchError(f"--launcher {launcher}: {name}={value!r} is not an integer") from err


def _check_ranks(env: LaunchEnv) -> LaunchEnv:
    if env.world_size < 1 or not 0 <= env.rank < env.world_size:
        raise LaunchError(
            f"--launcher {env.launcher}: rank {env.rank} is not within world size {env.world_size}"
        )
    if env.local_rank < 0:
        raise LaunchError(f"--launcher {env.launcher}: negative local rank {env.local_rank}")
    return env


def parse_torchrun_env(env: Mapping[str, str]) -> LaunchEnv:
    """The variables torchrun (``python -m torch.distributed.run``) sets for each process."""
    hint = (
        "start the job with `python -m torch.distributed.run --nproc_per_node=N train.py "
        "-opt FILE --launcher pytorch`"
    )
    rank = _int_var(env, "RANK", "pytorch", hint)
    world = _int_var(env, "WORLD_SIZE", "pytorch", hint)
    local = int(env.get("LOCAL_RANK", rank))
    port = env.get("MASTER_PORT")
    return _check_ranks(
        LaunchEnv(
            "pytorch", rank, world, local, env.get("MASTER_ADDR"), int(port) if port else None
        )
    )


def first_slurm_host(nodelist: str) -> str:
    """The first host name of a SLURM node list in its compressed form.

    ``'gpu[03-05,09],cpu1'`` -> ``'gpu03'``; ``'node7'`` -> ``'node7'``;
    ``'rack[1-2]-n[01-04]'`` -> ``'rack1-n01'`` (the first value of every bracket).
    """
    first = ""
    depth = 0
    for char in nodelist.strip():
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            break
        first += char
    if not first or depth != 0:
        raise LaunchError(f"--launcher slurm: cannot read the node list {nodelist!r}")

    def first_of_range(match: re.Match[str]) -> str:
        return match.group(1).split(",")[0].split("-")[0]

    return re.sub(r"\[([^\]]*)\]", first_of_range, first)


def parse_slurm_env(env: Mapping[str, str], port: Optional[int] = None) -> LaunchEnv:
    """Rank, world size, local rank and master address of an ``srun`` task.

    ``port`` (``dist_params.port``) is used when ``MASTER_PORT`` is not set.
    """
    hint = "run train.py through srun (one task per device), e.g. `srun --ntasks-per-node=8 ...`"
    rank = _int_var(env, "SLURM_PROCID", "slurm", hint)
    world = _int_var(env, "SLURM_NTASKS", "slurm", hint)
    local = _int_var(env, "SLURM_LOCALID", "slurm", hint)
    addr = env.get("MASTER_ADDR")
    if not addr:
        nodelist = (
            env.get("SLURM_STEP_NODELIST")
            or env.get("SLURM_JOB_NODELIST")
            or env.get("SLURM_NODELIST")
        )
        if not nodelist:
            raise LaunchError(
                "--launcher slurm: neither MASTER_ADDR nor SLURM_STEP_NODELIST / "
                "SLURM_JOB_NODELIST is set, so the master host is unknown"
            )
        addr = first_slurm_host(nodelist)
    master_port = int(env["MASTER_PORT"]) if env.get("MASTER_PORT") else (port or DEFAULT_PORT)
    return _check_ranks(LaunchEnv("slurm", rank, world, local, addr, master_port))


def launch_environment(
    launcher: str, env: Optional[Mapping[str, str]] = None, port: Optional[int] = None
) -> LaunchEnv:
    """Read this process's place in the job for ``--launcher none|pytorch|slurm``."""
    env = os.environ if env is None else env
    if launcher == "none":
        return LaunchEnv("none")
    if launcher == "pytorch":
        return parse_torchrun_env(env)
    if launcher == "slurm":
        return parse_slurm_env(env, port)
    raise LaunchError(
        f"--launcher: unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}"
    )


def dist_settings(opt: Dict[str, Any]) -> Dict[str, Any]:
    """``dist_params`` checked, with the schema's defaults: ``backend`` (None = by device),
    ``port`` (the slurm rendezvous port), ``timeout_min`` (a float)."""
    # Imported here: the schema imports this module's tables (DIST_BACKENDS).
    from lptn.platform import option_schema

    params = option_schema.fill_defaults(
        option_schema.DIST_PARAMS, opt.get("dist_params"), "dist_params"
    )
    return {
        "backend": params["backend"],
        "port": params["port"],
        "timeout_min": float(params["timeout_min"]),
    }


def check_backend_fits(backend: str, device: torch.device) -> None:
    """NCCL needs CUDA tensors and HCCL NPU tensors (gloo takes CPU and CUDA tensors)."""
    needs = {"nccl": "cuda", "hccl": "npu"}.get(backend)
    if needs is not None and needs != device.type:
        raise ValueError(
            f"dist_params.backend: {backend} needs {needs} devices but this run "
            f"trains on {device.type}; leave dist_params.backend unset to get the "
            f"backend that suits the device"
        )


def init_process_group(launch: LaunchEnv, backend: str, timeout_min: float = 30.0) -> None:
    """Join the job's process group (``env://`` rendezvous) unless already joined."""
    if not dist.is_available():
        raise LaunchError("this PyTorch build has no torch.distributed")
    if dist.is_initialized():
        return
    if launch.master_addr:
        os.environ["MASTER_ADDR"] = launch.master_addr
    if launch.master_port:
        os.environ["MASTER_PORT"] = str(launch.master_port)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(DEFAULT_PORT))
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=launch.rank,
        world_size=launch.world_size,
        timeout=datetime.timedelta(minutes=timeout_min),
    )


def shutdown(wait_for_others: bool = False) -> None:
    """Leave the process group (a no-op when none was joined).

    ``wait_for_others`` (the normal end of a run): meet every rank at a barrier first, so that
    no rank tears its process group down while another still talks to it. Objects that keep
    the group alive (DDP's reducer and its pending work) are collected first: gloo worker
    threads still holding work when the interpreter exits abort the process (SIGABRT). Error
    paths leave without the barrier, since the other ranks may be gone.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if wait_for_others and dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# ---------------------------------------------------------------------------- collectives
def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``tensor`` over all ranks (a new tensor; the input when alone)."""
    if not active():
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / dist.get_world_size()


def max_over_ranks(value: float, device: torch.device) -> float:
    """The largest of every rank's ``value``, on every rank."""
    if not active():
        return value
    tensor = torch.tensor(
        [float(value)],
        dtype=torch.float64 if device.type == "cpu" else torch.float32,
        device=device,
    )
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def gather_to_main(obj: Any) -> Optional[List[Any]]:
    """Every rank's ``obj`` in rank order on rank 0 (None on the others)."""
    if not active():
        return [obj]
    if dist.get_backend() not in ("gloo", "nccl"):
        # Backends without gather (HCCL) fall back to gathering everywhere.
        gathered = all_gather_objects(obj)
        return gathered if dist.get_rank() == 0 else None
    out: Optional[List[Any]] = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    gathered: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait for every process of the group (nothing to wait for in a single process)."""
    if active():
        dist.barrier()


def wrap_ddp(
    module: nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> nn.Module:
    """``DistributedDataParallel`` around ``module`` (already on ``device``) when running in a
    process group of more than one process; ``module`` itself otherwise.

    Buffers are not re-broadcast at each forward: the networks' only buffers are constant
    (the pyramid's blur kernel), and skipping the broadcast lets ranks run different numbers of
    forward passes (distributed validation over an uneven split).
    """
    if not active() or not any(p.requires_grad for p in module.parameters()):
        return module
    kwargs: Dict[str, Any] = {"find_unused_parameters": find_unused_parameters}
    if device.type != "cpu":
        kwargs["device_ids"] = [device.index if device.index is not None else 0]
    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in params:
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    return nn.parallel.DistributedDataParallel(module, **kwargs)


__all__ = [
    "DEFAULT_PORT",
    "DIST_BACKENDS",
    "LAUNCHERS",
    "LaunchEnv",
    "LaunchError",
    "active",
    "all_gather_objects",
    "barrier",
    "broadcast_object",
    "check_backend_fits",
    "dist_settings",
    "first_slurm_host",
    "gather_to_main",
    "init_process_group",
    "launch_environment",
    "max_over_ranks",
    "mean_over_ranks",
    "parse_slurm_env",
    "parse_torchrun_env",
    "shutdown",
    "wrap_ddp",
]
