"""The deployment objects (schedules, triggers, parameters), prefect.yaml, and the server-side set-up."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from pathlib import Path

import pytest
import yaml

from deployments.serve import (
    CPU_POOL,
    DATASET_UPDATED,
    GPU_LIMIT,
    GPU_POOL,
    MODEL_TRAINED,
    ServeOptions,
    build_deployments,
    ensure_infrastructure,
)
from tasks.sources import SourceConfig, SourceKind

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    SourceConfig(name="pacs-web", kind=SourceKind.DICOMWEB, url="http://pacs/dicom-web", cron="0 2 * * *"),
    SourceConfig(name="pacs-dimse", kind=SourceKind.DIMSE, host="pacs", port=104, cron="30 3 * * 1-5"),
]


@pytest.fixture(scope="module")
def deployments() -> dict:
    options = ServeOptions(
        dataset="main",
        sources_file=Path("/etc/medflow/sources.yaml"),
        key_file="key-0123456789abcdef",
        threshold=25,
        train_options={"labels": "labels-0123456789abcdef", "task": "survival", "options": {"epochs": 2}},
        evaluate_options={"n_resamples": 100},
    )
    return {d.name: d for d in build_deployments(options, SOURCES)}


def test_one_scheduled_ingest_per_source(deployments: dict) -> None:
    assert set(deployments) == {
        "ingest-pacs-web",
        "ingest-pacs-dimse",
        "train",
        "evaluate",
        "promote",
        "predict",
        "drift",
    }
    for source in SOURCES:
        deployment = deployments[f"ingest-{source.name}"]
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == source.cron
        assert deployment.parameters == {  # location names only: no path is a deployment parameter
            "source": source.name,
            "dataset": "main",
            "key_file": "key-0123456789abcdef",
            "workers": 2,
            "dask_address": None,
        }
        assert f"source:{source.name}" in deployment.tags
        assert deployment.flow_name == "ingest-source"
        assert not deployment.triggers


def test_train_is_triggered_by_dataset_updates_with_a_threshold(deployments: dict) -> None:
    train = deployments["train"]
    assert train.flow_name == "train-on-new-data" and not train.schedules
    assert train.parameters["threshold"] == 25
    assert train.parameters["train_options"]["options"] == {"epochs": 2}
    (trigger,) = train.triggers
    assert trigger.expect == {DATASET_UPDATED}
    assert trigger.parameters == {"dataset": "{{ event.payload.dataset }}", "new_rows": "{{ event.payload.new_rows }}"}
    assert trigger.threshold == 1  # every event is considered; the gate compares new_rows with `threshold`


def test_promote_follows_every_trained_model_and_predict_every_dataset_update(deployments: dict) -> None:
    promote, predict = deployments["promote"], deployments["predict"]
    assert promote.flow_name == "promote" and predict.flow_name == "predict"
    (trigger,) = promote.triggers
    assert trigger.expect == {MODEL_TRAINED} and trigger.parameters == {"run_dir": "{{ event.payload.run_dir }}"}
    (trigger,) = predict.triggers
    assert trigger.expect == {DATASET_UPDATED} and trigger.parameters == {"dataset": "{{ event.payload.dataset }}"}
    assert predict.parameters == {"dataset": "main"}


def test_evaluate_follows_every_trained_model(deployments: dict) -> None:
    evaluate = deployments["evaluate"]
    assert evaluate.flow_name == "evaluate"
    assert evaluate.parameters == {"n_resamples": 100}
    (trigger,) = evaluate.triggers
    assert trigger.expect == {MODEL_TRAINED}
    assert trigger.parameters == {"run_dir": "{{ event.payload.run_dir }}"}


def test_events_match_what_the_flows_emit() -> None:
    from flows.ingest import EVENT
    from flows.train import TRAINED_EVENT

    assert (EVENT, TRAINED_EVENT) == (DATASET_UPDATED, MODEL_TRAINED)


def test_prefect_yaml_matches_the_python_deployments() -> None:
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert {"train", "evaluate"} <= set(by_name) and any(n.startswith("ingest-") for n in by_name)
    for deployment in spec["deployments"]:
        path, _, attr = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert hasattr(getattr(module, attr), "fn"), deployment["entrypoint"]  # a Prefect flow
        assert deployment["work_pool"]["name"] in (CPU_POOL, GPU_POOL)
    assert by_name["train"]["work_pool"]["name"] == by_name["evaluate"]["work_pool"]["name"] == GPU_POOL
    assert by_name["train"]["triggers"][0]["expect"] == [DATASET_UPDATED]
    assert by_name["evaluate"]["triggers"][0]["expect"] == [MODEL_TRAINED]
    assert "threshold" in by_name["train"]["parameters"]
    for deployment in spec["deployments"]:  # names, never paths (a Dask address is a URL of a host)
        values = {k: v for k, v in deployment.get("parameters", {}).items() if k != "dask_address"}
        assert not [v for v in values.values() if isinstance(v, str) and "/" in v], deployment["name"]


def test_python_deployments_carry_no_path(deployments: dict) -> None:
    import json

    for deployment in deployments.values():
        values = {k: v for k, v in deployment.parameters.items() if k != "dask_address"}
        assert "/" not in json.dumps(values), deployment.name


async def _read_setup() -> tuple:
    from prefect import get_client

    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        pools = {p.name: p for p in await client.read_work_pools()}
    return limit, pools


async def _remove_setup() -> None:
    """Delete the ``gpu`` limit and both pools, so the test sees them created whatever ran before on the server."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        for delete, name in (
            (client.delete_global_concurrency_limit_by_name, GPU_LIMIT),
            (client.delete_work_pool, CPU_POOL),
            (client.delete_work_pool, GPU_POOL),
        ):
            with contextlib.suppress(ObjectNotFound):
                await delete(name)


@pytest.mark.slow
def test_gpu_limit_and_work_pools_are_created_once(prefect_server: str) -> None:
    asyncio.run(_remove_setup())
    created = ensure_infrastructure(gpus=2)
    assert sorted(created) == sorted(
        [f"concurrency limit {GPU_LIMIT}=2", f"work pool {CPU_POOL}", f"work pool {GPU_POOL}"]
    )
    limit, pools = asyncio.run(_read_setup())
    assert limit.limit == 2
    assert pools[GPU_POOL].concurrency_limit == 2 and pools[CPU_POOL].concurrency_limit is None
    assert {CPU_POOL, GPU_POOL} <= set(pools) and pools[CPU_POOL].type == "process"
    assert ensure_infrastructure(gpus=4) == []  # existing objects are left as they are
    limit, pools = asyncio.run(_read_setup())
    assert limit.limit == 2 and pools[GPU_POOL].concurrency_limit == 2


async def _deployments_and_automations() -> tuple[dict, list]:
    from prefect import get_client

    async with get_client() as client:
        deployments = {d.name: d for d in await client.read_deployments()}
        automations = await client.read_automations()
    return deployments, automations


@pytest.mark.slow
def test_prefect_deploy_all_registers_pools_schedules_and_triggers(prefect_server: str) -> None:
    import os
    import subprocess
    import sys

    ensure_infrastructure(gpus=1)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all",
         "--prefect-file", "deployments/prefect.yaml"],
        cwd=ROOT, env={**os.environ, "PREFECT_API_URL": prefect_server}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    deployments, automations = asyncio.run(_deployments_and_automations())
    assert deployments["ingest-pacs"].work_pool_name == CPU_POOL
    assert deployments["ingest-pacs"].schedules[0].schedule.cron == "0 2 * * *"
    assert deployments["train"].work_pool_name == deployments["evaluate"].work_pool_name == GPU_POOL
    expected = {a.trigger.expect and next(iter(a.trigger.expect)) for a in automations}
    assert {DATASET_UPDATED, MODEL_TRAINED} <= expected
