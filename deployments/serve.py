"""Every medflow deployment as Python objects, the server-side set-up they need, and ``serve`` for them all.

- ``ingest-<source>``: flow ``ingest-source`` on the source's cron schedule, tagged ``source:<name>``.
- ``ingest-<listener>``: flow ``ingest-study`` for each listener source, triggered by ``medflow.study.received``
  events of that listener (the study's keyed token from the event's resource id); the listeners themselves run
  in the ``serve`` process (``running_listeners``) and emit those events.
- ``train``: flow ``train-on-new-data``, triggered by ``medflow.dataset.updated`` (new manifest rows from the
  event payload, compared with the ``threshold`` parameter) and runnable by hand.
- ``evaluate``: flow ``evaluate``, triggered by ``medflow.model.trained`` with the run directory from the payload.
- ``promote``: flow ``promote`` (champion/challenger), triggered by ``medflow.model.trained`` likewise.
- ``predict``: flow ``predict``, triggered by ``medflow.dataset.updated``: every champion of the dataset scores
  its new instances.
- ``drift``: flow ``drift``, triggered by ``medflow.dataset.updated``: new rows against each champion's training
  rows; emits ``medflow.dataset.drifted``.
- The global concurrency limit ``gpu`` (slots = GPUs) and the work pools ``medflow-cpu`` / ``medflow-gpu`` are
  created when missing (``ensure_infrastructure``); ``deployments/prefect.yaml`` targets those pools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASET_UPDATED = "medflow.dataset.updated"
MODEL_TRAINED = "medflow.model.trained"
GPU_LIMIT = "gpu"
CPU_POOL = "medflow-cpu"
GPU_POOL = "medflow-gpu"
LISTENER_POLL_S = 2.0
"""How often ``serve`` asks for runs to start when listeners are configured (Prefect's default: 10 s)."""


@dataclass(frozen=True)
class ServeOptions:
    """What the deployments are parameterised with: location names and numbers only (no key, no path, no PHI).

    ``sources_file`` is read here to list the sources (one deployment each); the flow runs read it from their own
    settings (``MEDFLOW_SOURCES_FILE``).
    """

    dataset: str
    sources_file: Path | None = None
    key_file: str | None = None
    workers: int = 2
    dask_address: str | None = None
    threshold: int = 1
    train_options: dict[str, Any] = field(default_factory=dict)
    evaluate_options: dict[str, Any] = field(default_factory=dict)  # n_resamples, seed, model_checks


def gpu_count() -> int:
    """Visible CUDA devices (0 without torch or CUDA)."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # torch missing or broken CUDA set-up: no GPUs
        return 0


def build_deployments(options: ServeOptions, sources: list | None = None) -> list:
    """The RunnerDeployments for ``prefect.serve`` (sources default to the sources file's entries)."""
    from prefect.events import DeploymentEventTrigger

    from deployments.pipelines import ingest_source, train_on_new_data
    from flows.drift import drift
    from flows.evaluate import evaluate
    from flows.predict import predict
    from flows.promote import promote
    from tasks.sources import SourceKind, load_sources

    if sources is None:
        sources = load_sources(options.sources_file) if options.sources_file else []
    dataset = options.dataset
    listeners = [s for s in sources if s.kind is SourceKind.LISTENER]
    sources = [s for s in sources if s.kind is not SourceKind.LISTENER]
    deployments = [
        ingest_source.to_deployment(
            name=f"ingest-{source.name}",
            cron=source.cron,
            parameters={
                "source": source.name,
                "dataset": dataset,
                "key_file": options.key_file,
                "workers": options.workers,
                "dask_address": options.dask_address,
            },
            tags=["medflow", "ingest", f"source:{source.name}", f"protocol:{source.kind.value}"],
            description=f"Nightly ingest of source {source.name} ({source.kind.value}) into the dataset.",
            concurrency_limit=1,
        )
        for source in sources
    ]
    deployments += [_study_deployment(options, listener.name) for listener in listeners]
    deployments.append(
        train_on_new_data.to_deployment(
            name="train",
            parameters={"dataset": dataset, "threshold": options.threshold, "train_options": options.train_options},
            triggers=[
                DeploymentEventTrigger(
                    name="train-when-dataset-updated",
                    expect={DATASET_UPDATED},
                    parameters={"dataset": "{{ event.payload.dataset }}", "new_rows": "{{ event.payload.new_rows }}"},
                )
            ],
            tags=["medflow", "train", "gpu"],
            description="Retrain when an ingest added at least `threshold` manifest rows; run by hand any time.",
            concurrency_limit=1,
        )
    )
    deployments.append(
        evaluate.to_deployment(
            name="evaluate",
            parameters=dict(options.evaluate_options),
            triggers=[
                DeploymentEventTrigger(
                    name="evaluate-when-model-trained",
                    expect={MODEL_TRAINED},
                    parameters={"run_dir": "{{ event.payload.run_dir }}"},
                )
            ],
            tags=["medflow", "evaluate"],
            description="Evaluate every trained model: metrics, subgroups, report.",
        )
    )
    deployments.append(
        promote.to_deployment(
            name="promote",
            triggers=[
                DeploymentEventTrigger(
                    name="promote-when-model-trained",
                    expect={MODEL_TRAINED},
                    parameters={"run_dir": "{{ event.payload.run_dir }}"},
                )
            ],
            tags=["medflow", "promote"],
            description="Champion vs challenger on shared held-out patients; moves the alias `champion` or says why.",
            concurrency_limit=1,
        )
    )
    deployments.append(
        predict.to_deployment(
            name="predict",
            parameters={"dataset": dataset},
            triggers=[
                DeploymentEventTrigger(
                    name="predict-when-dataset-updated",
                    expect={DATASET_UPDATED},
                    parameters={"dataset": "{{ event.payload.dataset }}"},
                )
            ],
            tags=["medflow", "predict", "gpu"],
            description="Every champion of the dataset scores its new instances (abstention, refusals).",
            concurrency_limit=1,
        )
    )
    deployments.append(
        drift.to_deployment(
            name="drift",
            parameters={"dataset": dataset},
            triggers=[
                DeploymentEventTrigger(
                    name="drift-when-dataset-updated",
                    expect={DATASET_UPDATED},
                    parameters={"dataset": "{{ event.payload.dataset }}"},
                )
            ],
            tags=["medflow", "drift"],
            description="New rows vs each champion's training rows (scipy tests); emits medflow.dataset.drifted.",
        )
    )
    return deployments


def _study_deployment(options: ServeOptions, listener: str):
    """``ingest-<listener>``: flow ``ingest-study``, run for each ``medflow.study.received`` of that listener."""
    from prefect.events import DeploymentEventTrigger

    from flows.study import LISTENER_LABEL, RESOURCE_PREFIX, STUDY_RECEIVED, ingest_study

    return ingest_study.to_deployment(
        name=f"ingest-{listener}",
        parameters={
            "listener": listener,
            "dataset": options.dataset,
            "key_file": options.key_file,
            "workers": options.workers,
            "dask_address": options.dask_address,
        },
        triggers=[
            DeploymentEventTrigger(
                name=f"ingest-{listener}-when-study-received",
                expect={STUDY_RECEIVED},
                match={"prefect.resource.id": f"{RESOURCE_PREFIX}*", LISTENER_LABEL: listener},
                parameters={"study": "{{ event.resource.id }}"},
            )
        ],
        tags=["medflow", "ingest", f"source:{listener}", "protocol:listener"],
        description=f"Ingest each study listener {listener} received, once the study has gone quiet.",
        concurrency_limit=1,  # ingests into one dataset run one at a time; the others wait their turn
    )


@contextmanager
def running_listeners(options: ServeOptions, sources: list | None = None) -> Iterator[list]:
    """Start every listener of the sources file (each emits ``medflow.study.received``); stop them on exit."""
    from functools import partial

    from flows.study import emit_study_received
    from tasks.config import load_settings
    from tasks.deid.keys import load_key
    from tasks.locations import LocationKind, Locations
    from tasks.sources import SourceKind, load_sources
    from tasks.sources.listener import Listener

    if sources is None:
        sources = load_sources(options.sources_file) if options.sources_file else []
    listeners = [s for s in sources if s.kind is SourceKind.LISTENER]
    if not listeners:
        yield []
        return
    settings = load_settings()
    key_file = Locations.from_settings(settings).path(LocationKind.KEY, options.key_file) if options.key_file else None
    key = load_key(key_file, settings=settings).secret
    with ExitStack() as stack:
        yield [
            stack.enter_context(Listener(config, key, settings.state_dir, partial(emit_study_received, config.name)))
            for config in listeners
        ]


async def _ensure(gpus: int) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    created: list[str] = []
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=gpus))
            created.append(f"concurrency limit {GPU_LIMIT}={gpus}")
        for pool, limit in ((CPU_POOL, None), (GPU_POOL, gpus)):
            try:
                await client.read_work_pool(pool)
            except ObjectNotFound:
                await client.create_work_pool(
                    WorkPoolCreate(
                        name=pool,
                        type="process",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                        concurrency_limit=limit,
                    )
                )
                created.append(f"work pool {pool}")
    return created


def ensure_infrastructure(gpus: int | None = None) -> list[str]:
    """Create the ``gpu`` global concurrency limit and both work pools if missing; return what was created."""
    return asyncio.run(_ensure(max(1, gpu_count() if gpus is None else gpus)))


def serve_all(options: ServeOptions, gpus: int | None = None) -> None:
    """Set up the server side, start the listeners, then serve every deployment from this process until interrupted."""
    from prefect import serve

    ensure_infrastructure(gpus)
    deployments = build_deployments(options)
    with running_listeners(options) as listeners:
        # a study's ingest should start soon after it went quiet: poll for runs every 2 s, not Prefect's 10
        serve(*deployments, **({"query_seconds": LISTENER_POLL_S} if listeners else {}))
