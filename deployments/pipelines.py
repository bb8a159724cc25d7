"""The flows the deployments run, around the pipeline flows of ``flows/``.

- ``ingest-source``: fetch what is new from one configured source into its staging folder, ingest it with
  the ``ingest`` flow, then record the fetched instances as seen and empty the staging folder.
- ``train-on-new-data``: the target of the ``medflow.dataset.updated`` trigger; runs the ``train`` flow when the
  event reports at least ``threshold`` new manifest rows (always when started by hand), holding one slot of
  the global concurrency limit ``gpu`` per GPU the run takes (``models.launch``: ``devices``; none on a CPU).

Parameters are location names (:mod:`tasks.locations`: the configured source, the dataset's name or handle) and
counts; the sources file (``MEDFLOW_SOURCES_FILE``) and the key (``MEDFLOW_KEY_FILE`` / ``MEDFLOW_DEID_KEY``, or a
``key_file`` handle) are the worker's settings, read inside. No path is a parameter, a result or a run name.
(Not named ``flows.py``: Prefect imports an entrypoint file under its stem, which would shadow the ``flows`` package.)
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.redact import redacted_errors
from tasks.locations import LocationKind, LocationName, Locations, existing_folder

GPU_LIMIT = "gpu"


def _seen(dataset: Path, source: str, key_file: Path | None):
    from tasks.config import load_settings
    from tasks.deid.keys import load_key
    from tasks.sources import SeenInstances

    return SeenInstances.for_source(dataset, source, load_key(settings=load_settings(key_file=key_file)).secret)


def _places(dataset: str, key_file: str | None) -> tuple[Locations, Path, Path | None]:
    locations = Locations.from_settings()
    key_path = locations.path(LocationKind.KEY, key_file, must_exist=False) if key_file else None
    return locations, locations.path(LocationKind.DATASET, dataset, must_exist=False), key_path


@task(name="fetch-source", task_run_name="fetch-{source}", cache_policy=NO_CACHE, persist_result=False)
def fetch_task(source: LocationName, dataset: LocationName, key_file: LocationName | None) -> dict[str, Any]:
    """Stage the new instances of ``source``; return counts and the staged digests (keyed hashes, no PHI).

    A folder source is read in place: its folder must exist, else the run fails here with the source's name.
    """
    from tasks.sources import SourceKind, fetch_new, staging_dir

    with redacted_errors("fetch-source"):
        locations, dataset_dir, key_path = _places(dataset, key_file)
        config = locations.source(source)
        if config.kind is SourceKind.FOLDER:
            existing_folder(locations, LocationKind.SOURCE, source)
            return {"source": source, "kind": config.kind.value, "staged": []}
        staging = staging_dir(locations.state_dir, source)
        result = fetch_new(config, staging, _seen(dataset_dir, source, key_path))
        staged = sorted(p.stem for p in staging.glob("*.dcm"))
        return {**result.summary(), "kind": config.kind.value, "staged": staged}


@task(name="commit-source", task_run_name="commit-{source}", cache_policy=NO_CACHE, persist_result=False)
def commit_task(source: LocationName, dataset: LocationName, digests: list[str], key_file: LocationName | None) -> int:
    """Record ``digests`` as ingested and delete their staged copies; return how many were deleted."""
    from tasks.sources import clear_staged, staging_dir

    with redacted_errors("commit-source"):
        locations, dataset_dir, key_path = _places(dataset, key_file)
        _seen(dataset_dir, source, key_path).commit(digests)
        return clear_staged(staging_dir(locations.state_dir, source), digests)


@flow(name="ingest-source", flow_run_name="ingest-{source}", persist_result=False)
def ingest_source(
    source: LocationName,
    dataset: LocationName,
    key_file: LocationName | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    clean_pixels: str | None = None,
) -> dict[str, Any]:
    """Fetch what is new from ``source`` and ingest it into ``dataset`` (location names, resolved by the worker)."""
    with redacted_errors("ingest-source"):
        return _ingest_source(source, dataset, key_file, workers, dask_address, clean_pixels)


def _ingest_source(
    source: str, dataset: str, key_file: str | None, workers: int, dask_address: str | None, clean_pixels: str | None
) -> dict[str, Any]:
    from flows.ingest import ingest

    logger = get_run_logger()
    fetched = fetch_task(source, dataset, key_file)
    if fetched["kind"] == "folder":
        logger.info("source %s: folder read in place (the ingest skips what is stored)", source)
    else:
        logger.info(
            "source %s: %d found, %d already ingested, %d fetched, %d staged",
            source,
            fetched["found"],
            fetched["already_ingested"],
            fetched["fetched"],
            len(fetched["staged"]),
        )
    counts = {k: v for k, v in fetched.items() if k != "staged"}
    if fetched["kind"] != "folder" and not fetched["staged"]:
        logger.info("source %s: nothing new; dataset unchanged", source)
        return {"source": source, "fetch": counts, "ingest": None}
    summary = ingest(
        source=source,  # resolved by the ingest: the folder of a folder source, else the source's staging folder
        dataset=dataset,
        key_file=key_file,
        workers=workers,
        dask_address=dask_address,
        clean_pixels=clean_pixels,
    )
    if fetched["kind"] != "folder":
        commit_task(source, dataset, fetched["staged"], key_file)
    return {"source": source, "fetch": counts, "ingest": summary}


def gpu_slots(train_options: dict[str, Any] | None) -> int:
    """Slots of ``gpu`` a run of ``train_options`` takes here: one per GPU (``devices``), none on a CPU."""
    from models.launch import plan_launch

    options = (train_options or {}).get("options") or {}
    return plan_launch(str(options.get("accelerator", "auto")), str(options.get("devices", "auto"))).gpu_slots


def check_gpu_limit(slots: int) -> None:
    """Refuse, with the remedy, a run that needs more GPUs than the ``gpu`` limit has slots (it would wait forever)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from tasks.errors import ConfigError

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT).limit
        except ObjectNotFound:
            return  # no limit set up: nothing to wait for (``medflow serve --setup-only`` creates it)
    if slots > limit:
        raise ConfigError(f"the run takes {slots} GPU(s) but the `{GPU_LIMIT}` concurrency limit has {limit} slot(s): "
                          "lower `devices` or raise the limit (`medflow serve --gpus N`)")  # fmt: skip


def _train_run_name() -> str:
    from prefect.runtime import flow_run

    new_rows = flow_run.parameters.get("new_rows")
    return "train-by-hand" if new_rows is None else f"train-after-{new_rows}-new-rows"


@flow(name="train-on-new-data", flow_run_name=_train_run_name, persist_result=False)
def train_on_new_data(
    dataset: LocationName,
    new_rows: int | None = None,
    threshold: int = 1,
    train_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``train`` when ``new_rows`` (from the ingest event) reaches ``threshold``; ``None`` means by hand.

    ``train_options``: ``labels`` (a location name), ``task`` and ``options`` (TrainConfig fields) of ``train``.
    """
    from prefect.concurrency.sync import concurrency

    from flows.train import train

    logger = get_run_logger()
    if new_rows is not None and new_rows < threshold:
        logger.info("%d new manifest rows, below the threshold of %d: not training", new_rows, threshold)
        return {"trained": False, "new_rows": new_rows, "threshold": threshold}
    with redacted_errors("train-on-new-data"):
        slots = gpu_slots(train_options)
        if slots:
            check_gpu_limit(slots)
        with concurrency(GPU_LIMIT, occupy=slots) if slots else nullcontext():
            result = train(dataset=dataset, **(train_options or {}))
    return {"trained": True, "new_rows": new_rows, "threshold": threshold, "train": result}
