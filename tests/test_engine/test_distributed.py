"""Launcher environments (torchrun, SLURM), dist_params, and the launcher errors of train.py.

The parsers take the environment as a mapping, so each test passes the dict a launcher would
set; nothing is patched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_test_utils import make_image_folders, tiny_options, write_options

from lptn.engine.cli import train_main
from lptn.platform.distributed import (
    DEFAULT_PORT,
    LaunchEnv,
    LaunchError,
    check_backend_fits,
    dist_settings,
    first_slurm_host,
    launch_environment,
    parse_slurm_env,
    parse_torchrun_env,
)
from lptn.platform.runtime import Runtime


def test_torchrun_variables() -> None:
    env = {
        "RANK": "3",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "10.0.0.7",
        "MASTER_PORT": "29511",
    }
    assert parse_torchrun_env(env) == LaunchEnv("pytorch", 3, 8, 1, "10.0.0.7", 29511)
    # LOCAL_RANK defaults to RANK (one node).
    assert parse_torchrun_env({"RANK": "1", "WORLD_SIZE": "2"}).local_rank == 1
    with pytest.raises(LaunchError, match="RANK is not set.*torch.distributed.run"):
        parse_torchrun_env({"WORLD_SIZE": "2"})
    with pytest.raises(LaunchError, match="rank 4 is not within world size 4"):
        parse_torchrun_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(LaunchError, match="WORLD_SIZE='two'"):
        parse_torchrun_env({"RANK": "0", "WORLD_SIZE": "two"})
    assert launch_environment("none", {}) == LaunchEnv("none")
    assert not LaunchEnv("none").distributed


@pytest.mark.parametrize(
    "nodelist,first",
    [
        ("gpu07", "gpu07"),
        ("gpu[03-05,09]", "gpu03"),
        ("gpu[12,3-4],cpu1", "gpu12"),
        ("node-a,node-b", "node-a"),
        ("rack[2-3]-n[08-11]", "rack2-n08"),
    ],
)
def test_first_host_of_a_slurm_node_list(nodelist: str, first: str) -> None:
    assert first_slurm_host(nodelist) == first


def test_slurm_variables() -> None:
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_STEP_NODELIST": "dgx[04-05]",
        "SLURM_JOB_NODELIST": "dgx[01-09]",
    }
    launch = parse_slurm_env(env)
    assert launch == LaunchEnv("slurm", 5, 8, 1, "dgx04", DEFAULT_PORT)
    # dist_params.port when MASTER_PORT is unset; MASTER_ADDR / MASTER_PORT win when set.
    assert parse_slurm_env(env, port=29123).master_port == 29123
    env.update(MASTER_ADDR="head", MASTER_PORT="30000")
    assert parse_slurm_env(env, port=29123) == LaunchEnv("slurm", 5, 8, 1, "head", 30000)
    # The job's node list when the step's is absent.
    job_only = {
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "2",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": "a100-[7-8]",
    }
    assert parse_slurm_env(job_only).master_addr == "a100-7"
    with pytest.raises(LaunchError, match="SLURM_LOCALID is not set.*srun"):
        parse_slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    with pytest.raises(LaunchError, match="master host is unknown"):
        parse_slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0"})
    with pytest.raises(LaunchError, match="cannot read the node list"):
        first_slurm_host("gpu[01-02")


def test_dist_params_are_checked() -> None:
    # The schema's defaults (lptn.platform.option_schema.DIST_PARAMS).
    assert dist_settings({}) == {"backend": None, "port": 29500, "timeout_min": 30.0}
    assert dist_settings({"dist_params": {"backend": "hccl", "port": 29500}})["backend"] == "hccl"
    with pytest.raises(ValueError, match="dist_params.backend.*nccl, gloo, hccl"):
        dist_settings({"dist_params": {"backend": "mpi"}})
    with pytest.raises(ValueError, match="dist_params.port"):
        dist_settings({"dist_params": {"port": "29500"}})
    with pytest.raises(ValueError, match="dist_params.backend: nccl needs cuda"):
        check_backend_fits("nccl", torch.device("cpu"))
    with pytest.raises(ValueError, match="hccl needs npu"):
        check_backend_fits("hccl", torch.device("cpu"))
    check_backend_fits("gloo", torch.device("cpu"))


def test_single_process_runtime_collectives_are_identities() -> None:
    runtime = Runtime(device=torch.device("cpu"))
    values = torch.tensor([1.0, 2.0])
    assert runtime.mean_over_ranks(values) is values
    assert runtime.all_gather({"a": 1}) == [{"a": 1}]
    assert runtime.gather_to_main(3) == [3] and runtime.broadcast(4) == 4
    assert runtime.max_over_ranks(15) == 15
    net = torch.nn.Linear(2, 2)
    assert runtime.distribute(net) is net


def test_train_py_launcher_errors_name_the_missing_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "SLURM_PROCID",
        "SLURM_NTASKS",
        "SLURM_LOCALID",
    ):
        monkeypatch.delenv(name, raising=False)
    data = make_image_folders(tmp_path / "data", count=2)
    option_file = write_options(tiny_options(data, name="launch", gan=False), tmp_path / "o.yml")
    assert train_main(["-opt", str(option_file), "--launcher", "pytorch"]) == 2
    assert "--launcher pytorch: the environment variable RANK is not set" in capsys.readouterr().err
    assert train_main(["-opt", str(option_file), "--launcher", "slurm"]) == 2
    assert "--launcher slurm: the environment variable SLURM_PROCID" in capsys.readouterr().err
    assert not (tmp_path / "experiments").exists()  # nothing was started
