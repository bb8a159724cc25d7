"""Build the FLARE job (FedAvg or FedProx recipe, medflow's client script and server components) and run it in
FLARE's simulator: the server and one process per site, talking over loopback.

:func:`run_federation` starts the simulator as a child process (its logs go to ``federate.log`` in the work
folder, never to the caller's logger: FLARE's messages quote workspace paths), follows the per-round records
the server writes, and returns the global weights. ``python -m models.federated.job WORKDIR`` is that child.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.federated.plan import PLAN_FILE, Algorithm, FederationPlan
from models.federated.server import ROUNDS_FILE, TRAFFIC_FILE
from tasks.errors import MedflowError

JOB_NAME = "medflow-federate"
LOG_FILE = "federate.log"
GLOBAL_MODEL = "FL_global_model.pt"
_ALLOW = "models.federated."  # this package's server components, added to FLARE's component allow list
_PROJECT = Path(__file__).resolve().parents[2]


class FederationFailed(MedflowError):
    """The simulator ended without a global model (its log, ``federate.log``, says why)."""


@dataclass(frozen=True)
class FederationResult:
    rounds: list[dict[str, Any]]  # one record per round: round, sites, aggregated metrics
    weights: dict[str, Any]  # the final global state dict
    workspace: Path  # FLARE's simulator workspace (server/ and one folder per site)

    def traffic(self) -> list[dict[str, Any]]:
        """What the sites sent, as :class:`models.federated.server.TrafficLog` recorded it."""
        return [json.loads(line) for path in self.workspace.rglob(TRAFFIC_FILE) for line in path.open()]


def build_recipe(plan: FederationPlan, client_script: Path) -> Any:
    """The FLARE recipe: the global network on the server, ``client_script`` and ``plan.json`` at every site."""
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
    from nvflare.app_opt.pt.recipes.fedprox import FedProxRecipe

    from models.federated.server import RoundRecorder, TrafficLog
    from models.heads import objective_from_state

    objective = objective_from_state(plan.objective or {})
    model = {"path": "models.federated.network.GlobalNetwork",
             "args": {"backbone": plan.options.get("backbone", "r2plus1d_18"), "outputs": objective.out_features}}
    common = dict(name=JOB_NAME, model=model, min_clients=len(plan.sites), num_rounds=plan.rounds,
                  train_script=str(client_script), key_metric="val_loss", key_metric_mode="min")  # fmt: skip
    if plan.algorithm is Algorithm.FEDPROX:
        recipe = FedProxRecipe(**common, fedprox_mu=plan.mu)
    else:
        recipe = FedAvgRecipe(**common)
    recipe.add_server_input_filter(TrafficLog(), tasks=["train"])
    # the recipe API has no public call for a server component; FLARE's own recipe helpers use its job the same way
    recipe._job.to_server(RoundRecorder(), id="medflow_rounds")
    return recipe


def run_job(workdir: Path) -> None:
    """Child process: export ``plan.json`` and the client script into a job and run it in the simulator."""
    from nvflare.app_common.default_component_policy import DEFAULT_CLASS_ALLOW_LIST
    from nvflare.recipe.sim_env import SimEnv

    plan = FederationPlan.load(workdir / PLAN_FILE)
    recipe = build_recipe(plan, Path(__file__).with_name("client.py"))
    recipe.add_client_file(str(workdir / PLAN_FILE))
    workspace_root = workdir / "workspace"
    local = workspace_root / JOB_NAME / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "resources.json").write_text(json.dumps(
        {"format_version": 2, "class_allow_list": [*DEFAULT_CLASS_ALLOW_LIST, _ALLOW]}, indent=1))  # fmt: skip
    env = SimEnv(clients=[s.name for s in plan.sites], num_threads=len(plan.sites), workspace_root=str(workspace_root))
    recipe.run(env)


def run_federation(plan: FederationPlan, workdir: Path, on_round: Callable[[dict[str, Any]], None] | None = None,
                   timeout: float = 3600.0) -> FederationResult:  # fmt: skip
    """Run ``plan`` in the simulator under ``workdir``; call ``on_round`` with each round's record as it lands."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # a previous run's workspace would be read as this run's rounds and, were this run to fail, its global model
    shutil.rmtree(workdir / "workspace", ignore_errors=True)
    plan.save(workdir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_PROJECT), os.environ.get("PYTHONPATH")]))}
    # every site runs on this machine: share its cores instead of each site's torch taking all of them
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // len(plan.sites))))
    workspace = workdir / "workspace" / JOB_NAME
    seen: list[dict[str, Any]] = []
    with (workdir / LOG_FILE).open("ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "models.federated.job", str(workdir)], stdout=log,
                                 stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while True:
                done = child.poll() is not None
                for record in _new_rounds(workspace, len(seen)):
                    seen.append(record)
                    if on_round is not None:
                        on_round(record)
                if done:
                    break
                if time.monotonic() > deadline:
                    raise FederationFailed(f"the federation ran past its time limit ({timeout:.0f} s)")
                time.sleep(0.5)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    if child.returncode != 0 or len(seen) < plan.rounds:
        raise FederationFailed(
            f"the federation ended with exit code {child.returncode} after {len(seen)} of {plan.rounds} rounds; "
            f"see {LOG_FILE} in its work folder"
        )
    return FederationResult(seen, global_weights(workdir), workspace)


def global_weights(workdir: Path) -> dict[str, Any]:
    """The final global state dict the server saved under ``workdir`` (read with ``weights_only``)."""
    from models.checkpoints import load_checkpoint

    found = sorted((Path(workdir) / "workspace" / JOB_NAME).rglob(GLOBAL_MODEL))
    if not found:
        raise FederationFailed(f"the federation left no global model; see {LOG_FILE} in its work folder")
    saved = load_checkpoint(found[0])
    return saved.get("model", saved) if isinstance(saved, dict) else saved


def _new_rounds(workspace: Path, known: int) -> list[dict[str, Any]]:
    files = list(workspace.rglob(ROUNDS_FILE)) if workspace.exists() else []
    if not files:
        return []
    lines = files[0].read_text().splitlines()
    complete = [line for line in lines if line.endswith("}")]
    return [json.loads(line) for line in complete[known:]]


if __name__ == "__main__":
    run_job(Path(sys.argv[1]))
