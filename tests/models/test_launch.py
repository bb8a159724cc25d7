"""The launch plan (processes, GPU slots), the torchrun command, and a failing rank's redacted report."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from models.launch import _failure_message, plan_launch, read_launch_file, torchrun_command, write_launch_file
from models.training import TrainConfig
from tasks.errors import ConfigError


def test_plan_counts_gpus_and_cpu_processes() -> None:
    assert plan_launch("auto", "auto", cuda_devices=4) == plan_launch("gpu", "4", cuda_devices=4)
    assert plan_launch("auto", "auto", cuda_devices=4).gpu_slots == 4
    assert plan_launch("auto", "0,2", cuda_devices=4).visible_devices == "0,2"
    assert plan_launch("auto", "[1, 3]", cuda_devices=4).gpu_slots == 2
    one = plan_launch("auto", "auto", cuda_devices=0)
    assert (one.accelerator, one.processes, one.gpu_slots) == ("cpu", 1, 0)
    cpu = plan_launch("cpu", "2", cuda_devices=4)  # CPU processes take no GPU slot, even beside GPUs
    assert (cpu.accelerator, cpu.processes, cpu.backend, cpu.gpu_slots) == ("cpu", 2, "gloo", 0)
    assert plan_launch("auto", "1", cuda_devices=2).backend == "nccl"


@pytest.mark.parametrize(("accelerator", "devices", "gpus", "message"), [
    ("gpu", "auto", 0, "no CUDA device"), ("auto", "3", 2, "2 GPU"), ("auto", "0,5", 2, "visible devices"),
    ("auto", "two", 2, "a count"), ("cpu", "0", 0, "a count"), ("mps", "auto", 0, "auto, gpu or cpu"),
])  # fmt: skip
def test_plan_refuses_what_cannot_run(accelerator: str, devices: str, gpus: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_launch(accelerator, devices, cuda_devices=gpus)


def test_launch_file_round_trip_and_command(tmp_path: Path) -> None:
    cfg = TrainConfig("/data/ds", "/data/labels.csv", "regression", target_col="ef", tabular=["age"], devices="2")
    path = write_launch_file(cfg, tmp_path)
    assert read_launch_file(path) == cfg
    command = torchrun_command(path, 2)
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in command
    assert command[-3:] == ["-m", "models.rank", str(path)]  # the ranks' entry point, never the caller


def test_a_failing_rank_reports_in_redacted_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rank whose error quotes a path (here a patient-named folder) reports the error type and an error id."""
    from models.rank import main

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    patient_dir = tmp_path / "DOE_JOHN_1234"
    cfg = TrainConfig(str(patient_dir), str(patient_dir / "labels.csv"), "regression", target_col="ef")
    launch = tmp_path / "launch"
    launch.mkdir()
    assert main([str(write_launch_file(cfg, launch))]) == 1
    report = json.loads((launch / "failure-0.json").read_text())
    assert report["rank"] == 0 and "Error" in report["message"] and "DOE_JOHN" not in report["message"]
    (saved,) = (state / "errors").iterdir()  # the full traceback stays on the machine, mode 0600
    assert saved.stat().st_mode & 0o777 == 0o600
    message = _failure_message(launch, "run-x", 1, "train-run-x.log")
    assert message.startswith("training run run-x: rank 0 failed:") and str(tmp_path) not in message
    assert asdict(read_launch_file(launch / "launch.json")) == asdict(cfg)


def test_a_rank_that_dies_without_a_report_is_named_by_exit_code(tmp_path: Path) -> None:
    message = _failure_message(tmp_path, "run-y", -9, "train-run-y.log")
    assert "exited with code -9" in message and "logs/train-run-y.log" in message


def test_train_deployment_slots_follow_the_devices(prefect_server: str) -> None:
    """``gpu`` slots = GPUs a run takes; a run needing more than the limit holds is refused, not left waiting."""
    import asyncio

    from prefect import get_client

    from deployments.pipelines import check_gpu_limit, gpu_slots
    from deployments.serve import GPU_LIMIT, ensure_infrastructure

    assert gpu_slots({"options": {"accelerator": "cpu", "devices": "2"}}) == 0
    ensure_infrastructure(gpus=1)

    async def slots() -> int:
        async with get_client() as client:
            return (await client.read_global_concurrency_limit_by_name(GPU_LIMIT)).limit

    limit = asyncio.run(slots())
    check_gpu_limit(limit)
    with pytest.raises(ConfigError, match=f"takes {limit + 1} GPU"):
        check_gpu_limit(limit + 1)
