"""Prefect side of the listener: the ``medflow.study.received`` event and the ``ingest-study`` flow it triggers.

Only the listener's configured name and the study's keyed token cross Prefect: the event's resource id is
``medflow.study.<token>`` (label ``medflow.listener``: the name), its payload counts, sizes and modality codes.
The flow resolves the staged folder inside the worker (``STATE_DIR/staging/<listener>/<token>``), claims the
study's files (:meth:`tasks.sources.inbox.Inbox.claim`), runs ``ingest`` on exactly those, and removes them when
it succeeded; instances that arrive meanwhile stay staged and start the next, small run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from tasks.locations import LocationName

STUDY_RECEIVED = "medflow.study.received"
RESOURCE_PREFIX = "medflow.study."
LISTENER_LABEL = "medflow.listener"
LOCK_WAIT_S = 900.0
"""How long a study's ingest waits for another ingest into the same dataset to finish."""


def study_resource(listener: str, token: str) -> dict[str, str]:
    """The event resource of a study: its keyed token and the listener's name, nothing else."""
    return {"prefect.resource.id": RESOURCE_PREFIX + token, LISTENER_LABEL: listener}


def emit_study_received(listener: str, study: Any) -> None:
    """Emit ``medflow.study.received`` for a :class:`tasks.sources.studies.CompletedStudy`."""
    from prefect.events import emit_event

    if (
        emit_event(
            event=STUDY_RECEIVED, resource=study_resource(listener, study.token), payload=study.payload(listener)
        )
        is None
    ):
        raise RuntimeError("events are not enabled: set PREFECT_API_URL to the server that runs the automation")


def deployment_name(listener: str) -> str:
    """The deployment ``medflow serve`` creates for a listener: ``ingest-study/ingest-<listener>``."""
    return f"ingest-study/ingest-{listener}"


def served_elsewhere(listener: str, within_s: float = 30.0) -> bool:
    """Whether a running ``medflow serve`` serves this listener's ingest: its deployment is READY and its runner
    polled within ``within_s`` (a stopped runner's deployment stays READY for a minute or so)."""
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import DeploymentStatus
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(deployment_name(listener))
    except ObjectNotFound:
        return False
    polled = deployment.last_polled
    fresh = polled is not None and (datetime.now(UTC) - polled).total_seconds() <= within_s
    return deployment.status == DeploymentStatus.READY and fresh


def study_token_of(study: str) -> str:
    """The token from a flow parameter: the bare token or the event's resource id ``medflow.study.<token>``."""
    from tasks.sources.inbox import check_token

    return check_token(study.removeprefix(RESOURCE_PREFIX))


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"ingest-{params.get('listener', 'listener')}-study-{str(params.get('study', ''))[-32:][:8]}"


def _wait_for_dataset(dataset: Path, timeout_s: float) -> None:
    """Wait until no other ingest holds the dataset (a scheduled ingest of another source, say)."""
    from tasks.errors import ConfigError
    from tasks.ingest.lock import dataset_lock

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with dataset_lock(dataset):
                return
        except ConfigError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(5.0)


@flow(name="ingest-study", flow_run_name=_run_name, persist_result=False, validate_parameters=True)
def ingest_study(
    listener: LocationName,
    study: str,
    dataset: LocationName,
    key_file: LocationName | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    clean_pixels: str | None = None,
) -> dict[str, Any]:
    """Ingest the staged instances of one study received by ``listener`` (a name; ``study``: its keyed token).

    ``dataset`` and ``key_file`` are location names; the claimed folder reaches ``ingest`` as a handle registered
    for this run only, so no path is a parameter of either flow."""
    from flows.ingest import ingest
    from flows.redact import redacted_errors
    from tasks.ingest.folder import new_run_id
    from tasks.locations import LocationKind, Locations
    from tasks.sources.inbox import listener_inbox

    logger = get_run_logger()
    with redacted_errors("ingest-study"):
        token = study_token_of(study)
        locations = Locations.from_settings()
        inbox = listener_inbox(locations.state_dir, listener)  # checks the name: no path can hide in it
        run_id = new_run_id()
        _wait_for_dataset(locations.path(LocationKind.DATASET, dataset, must_exist=False), LOCK_WAIT_S)
        with inbox.claim(token, run_id) as claimed:
            if claimed is None:
                logger.info("listener %s: study %s has nothing staged (already ingested)", listener, token[:8])
                return {"listener": listener, "study": token, "instances": 0, "ingest": None}
            instances = sum(1 for _ in claimed.glob("*.dcm"))
            logger.info("listener %s: study %s: ingesting %d staged instances", listener, token[:8], instances)
            source = locations.register(LocationKind.SOURCE, claimed)
            try:
                summary = ingest(
                    source=source,
                    dataset=dataset,
                    key_file=key_file,
                    workers=workers,
                    dask_address=dask_address,
                    clean_pixels=clean_pixels,
                    run_id=run_id,
                )
            finally:
                locations.forget(source)
    return {"listener": listener, "study": token, "instances": instances, "ingest": summary}
