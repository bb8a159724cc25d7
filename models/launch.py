"""Where a training run's processes come from: one in-process run, or ``torchrun`` ranks from a clean entry point.

Lightning's ``ddp`` strategy starts its ranks by re-executing the current command line, which under ``medflow
serve`` is the serve process and under a Prefect worker the flow-run engine. Here a run that needs several
processes writes its :class:`~models.training.TrainConfig` to a launch file and runs::

    python -m torch.distributed.run --standalone --nproc-per-node N -m models.rank LAUNCH.json

as a subprocess. Every rank is ``models.rank`` (nothing else re-executes), trains with Lightning's
``DDPStrategy`` on the already-launched ``TorchElasticEnvironment``, and only rank 0 writes the run directory's
config, predictions and metrics; the caller reads the result and alone evaluates, logs and emits events.
Multi-node runs start the same entry point with ``torchrun --nnodes`` (or under SLURM); see the README.

``batch_size`` is per process (Lightning's meaning): the global batch is ``batch_size × world size``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import ConfigError, MedflowError

if TYPE_CHECKING:
    from models.train_config import TrainConfig, TrainResult

log = logging.getLogger(__name__)

LAUNCH_FILE = "launch.json"
RESULT_FILE = "result.json"
_ROOT = Path(__file__).resolve().parents[1]
_TORCHELASTIC = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID")


class TrainingFailed(MedflowError):
    """A training rank failed; the message carries that rank's redacted error, never its raw text."""

    step = "train"


@dataclass(frozen=True)
class LaunchPlan:
    """How many processes a run takes on this node, on which accelerator (``gpu`` or ``cpu``)."""

    accelerator: str
    processes: int
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES for the ranks when devices were listed by index

    @property
    def backend(self) -> str:
        return "nccl" if self.accelerator == "gpu" else "gloo"

    @property
    def gpu_slots(self) -> int:
        """Slots of the ``gpu`` concurrency limit the run occupies: one per GPU, none for a CPU run."""
        return self.processes if self.accelerator == "gpu" else 0


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # torch without a working CUDA set-up: no GPU
        return 0


def plan_launch(accelerator: str = "auto", devices: str = "auto", cuda_devices: int | None = None) -> LaunchPlan:
    """The processes ``TrainConfig(accelerator, devices)`` takes here.

    ``devices``: ``auto`` (every visible GPU; one process on a CPU), a count (``2``), or GPU indices (``0,2``).
    On a CPU a count > 1 means that many gloo processes (how CI checks the multi-process path).
    """
    if accelerator not in ("auto", "gpu", "cuda", "cpu"):
        raise ConfigError(f"accelerator must be auto, gpu or cpu; got {accelerator!r}")
    count = _cuda_count() if cuda_devices is None else cuda_devices
    gpu = accelerator in ("auto", "gpu", "cuda") and count > 0
    if accelerator in ("gpu", "cuda") and count == 0:
        raise ConfigError(f"accelerator {accelerator!r} was asked for but no CUDA device is visible")
    text = str(devices).strip()
    if text in ("auto", "-1", ""):
        return LaunchPlan("gpu", count) if gpu else LaunchPlan("cpu", 1)
    if "," in text or text.startswith("["):
        ids = [i.strip() for i in text.strip("[]").split(",") if i.strip()]
        if not gpu or not all(i.isdigit() and int(i) < count for i in ids) or not ids:
            raise ConfigError(f"devices {text!r}: GPU indices must be visible devices (0..{max(count - 1, 0)})")
        return LaunchPlan("gpu", len(ids), ",".join(ids))
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"devices must be 'auto', a count or GPU indices such as '0,1'; got {text!r}")
    n = int(text)
    if gpu and n > count:
        raise ConfigError(f"devices={n} but {count} GPU(s) are visible")
    return LaunchPlan("gpu" if gpu else "cpu", n)


def plan_for(cfg: TrainConfig) -> LaunchPlan:
    return plan_launch(cfg.accelerator, cfg.devices)


def in_launched_rank() -> bool:
    """True inside a process that torchrun (or a torchelastic-compatible launcher) started."""
    return all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"))


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def trainer_placement(cfg: TrainConfig) -> dict[str, Any]:
    """``accelerator``, ``devices``, ``num_nodes`` and ``strategy`` for ``pl.Trainer``.

    Inside a launched rank: ``DDPStrategy`` on the ``TorchElasticEnvironment`` torchrun set up (Lightning starts no
    process). Outside: one device, Lightning's default single-device strategy; a plan of several processes must go
    through :func:`launch_training` instead (a guard: Lightning's own ``ddp`` launcher is never used).
    """
    if in_launched_rank():
        from lightning_fabric.plugins.environments import TorchElasticEnvironment
        from pytorch_lightning.strategies import DDPStrategy

        local, world = int(os.environ["LOCAL_WORLD_SIZE"]), int(os.environ["WORLD_SIZE"])
        gpu = _cuda_count() > 0 and cfg.accelerator in ("auto", "gpu", "cuda")
        strategy = DDPStrategy(cluster_environment=TorchElasticEnvironment(),
                               process_group_backend="nccl" if gpu else "gloo")  # fmt: skip
        return {"accelerator": "gpu" if gpu else "cpu", "devices": local, "num_nodes": world // local,
                "strategy": strategy}  # fmt: skip
    plan = plan_for(cfg)
    if plan.processes > 1:
        raise ConfigError("a multi-process run must be started with models.launch.launch_training")
    return {"accelerator": plan.accelerator, "devices": 1, "num_nodes": 1, "strategy": "auto"}


def describe_placement(placement: dict[str, Any]) -> dict[str, Any]:
    """What config.yaml records of the processes that train the run (world size, nodes, backend)."""
    strategy = placement["strategy"]
    backend = getattr(strategy, "process_group_backend", None) if not isinstance(strategy, str) else None
    return {"world_size": placement["devices"] * placement["num_nodes"], "nodes": placement["num_nodes"],
            "backend": backend}  # fmt: skip


def torchrun_command(launch_file: Path, processes: int) -> list[str]:
    """The single-node command (a free rendezvous port on localhost, no restarts)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "--max-restarts=0", "-m", "models.rank", str(launch_file)]  # fmt: skip


def write_launch_file(cfg: TrainConfig, folder: Path) -> Path:
    """``folder/launch.json``: the run's TrainConfig, which every rank reads."""
    path = folder / LAUNCH_FILE
    path.write_text(json.dumps({"config": asdict(cfg)}, indent=2))
    return path


def read_launch_file(path: Path) -> TrainConfig:
    from models.train_config import TrainConfig

    return TrainConfig(**json.loads(Path(path).read_text())["config"])


def rank_log(run_id: str) -> Path:
    """Where the ranks' stdout and stderr go: ``STATE_DIR/logs/train-<run-id>.log`` (mode 0600), never Prefect."""
    from tasks.config import load_settings

    folder = Path(load_settings().state_dir).expanduser() / "logs"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"train-{run_id}.log"


def launch_training(cfg: TrainConfig) -> TrainResult:
    """Run ``cfg`` as ``plan_for(cfg).processes`` torchrun ranks on this node; return rank 0's result.

    The run id is fixed here so every rank writes the same run directory. A failed rank raises
    :class:`TrainingFailed` with that rank's redacted message (see ``models.rank``).
    """
    from dataclasses import replace

    from models.train_config import TrainResult, new_run_id

    plan = plan_for(cfg)
    if not cfg.resume and not cfg.run_id:
        cfg = replace(cfg, run_id=new_run_id(cfg))
    run_id = cfg.run_id or Path(cfg.resume or "").name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    for name in _TORCHELASTIC:  # a launch from inside a rank starts a fresh group
        env.pop(name, None)
    if plan.visible_devices:
        env["CUDA_VISIBLE_DEVICES"] = plan.visible_devices
        cfg = replace(cfg, devices="auto")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // plan.processes)))
    log_path = rank_log(run_id)
    log.info("run %s: %d %s processes (torchrun, %s); rank output in logs/%s of the state directory",
             run_id, plan.processes, plan.accelerator, plan.backend, log_path.name)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="medflow-launch-") as tmp:
        launch_file = write_launch_file(cfg, Path(tmp))
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            done = subprocess.run(torchrun_command(launch_file, plan.processes), env=env, cwd=_ROOT,
                                  stdout=out, stderr=subprocess.STDOUT, check=False)  # fmt: skip
        result_path = Path(tmp) / RESULT_FILE
        if done.returncode != 0 or not result_path.is_file():
            raise TrainingFailed(_failure_message(Path(tmp), run_id, done.returncode, log_path.name))
        result = json.loads(result_path.read_text())
    return TrainResult(result["run_id"], Path(result["run_dir"]), result["metrics"])


def _failure_message(folder: Path, run_id: str, returncode: int, log_name: str) -> str:
    failures = sorted(folder.glob("failure-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    where = f"rank output in logs/{log_name} of the state directory"
    if not failures:
        return f"training run {run_id}: torchrun exited with code {returncode} before a rank reported; {where}"
    first = json.loads(failures[0].read_text())
    return f"training run {run_id}: rank {first['rank']} failed: {first['message']} ({where})"
