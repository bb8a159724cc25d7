"""The flows the deployments run, around the pipeline flows of ``flows/``.

- ``ingest-source``: fetch what is new from one configured source into its staging folder, ingest it with
  the ``ingest`` flow, then record the fetched instances as seen and empty the staging folder.
- ``train-on-new-data``: the target of the ``medflow.dataset.updated`` trigger; runs the ``train`` flow when the
  event reports at least ``threshold`` new manifest rows (always when started by hand), holding one slot of
  the global concurrency limit ``gpu``.

Parameters are source names, paths and counts; keys are read from the key file or ``MEDFLOW_DEID_KEY`` inside.
(Not named ``flows.py``: Prefect imports an entrypoint file under its stem, which would shadow the ``flows`` package.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

GPU_LIMIT = "gpu"


def _settings(key_file: str | None = None, sources_file: str | None = None):
    from tasks.config import load_settings

    return load_settings(
        key_file=Path(key_file) if key_file else None, sources_file=Path(sources_file) if sources_file else None
    )


def _source(name: str, sources_file: str | None):
    from tasks.errors import ConfigError
    from tasks.sources import load_sources

    settings = _settings(sources_file=sources_file)
    if settings.sources_file is None:
        raise ConfigError("no sources file: set MEDFLOW_SOURCES_FILE or pass sources_file")
    for config in load_sources(settings.sources_file):
        if config.name == name:
            return config
    raise ConfigError(f"source {name!r} is not in {settings.sources_file}; add it or fix the deployment")


def _seen(dataset: str, source: str, key_file: str | None):
    from tasks.deid.keys import load_key
    from tasks.sources import SeenInstances

    settings = _settings(key_file=key_file)
    env_key = settings.deid_key.get_secret_value() if settings.deid_key else None
    return SeenInstances.for_source(Path(dataset), source, load_key(settings.key_file, env_key).secret)


@task(name="fetch-source", task_run_name="fetch-{source}", cache_policy=NO_CACHE, persist_result=False)
def fetch_task(source: str, dataset: str, sources_file: str | None, key_file: str | None) -> dict[str, Any]:
    """Stage the new instances of ``source``; return counts and the staged digests (keyed hashes, no PHI)."""
    from tasks.sources import fetch_new, staging_dir

    config = _source(source, sources_file)
    staging = staging_dir(_settings().state_dir, source) if config.kind.value != "folder" else Path(str(config.path))
    result = fetch_new(config, staging, _seen(dataset, source, key_file))
    staged = sorted(p.stem for p in staging.glob("*.dcm")) if config.kind.value != "folder" else []
    return {**result.summary(), "kind": config.kind.value, "staging": str(staging), "staged": staged}


@task(name="commit-source", task_run_name="commit-{source}", cache_policy=NO_CACHE, persist_result=False)
def commit_task(source: str, dataset: str, staging: str, digests: list[str], key_file: str | None) -> int:
    """Record ``digests`` as ingested and delete their staged copies; return how many were deleted."""
    from tasks.sources import clear_staged

    _seen(dataset, source, key_file).commit(digests)
    return clear_staged(Path(staging), digests)


@flow(name="ingest-source", flow_run_name="ingest-{source}", persist_result=False)
def ingest_source(
    source: str,
    dataset: str,
    sources_file: str | None = None,
    key_file: str | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    clean_pixels: str | None = None,
) -> dict[str, Any]:
    """Fetch what is new from ``source`` and ingest it into ``dataset``."""
    from flows.ingest import ingest

    logger = get_run_logger()
    fetched = fetch_task(source, dataset, sources_file, key_file)
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
    if fetched["kind"] != "folder" and not fetched["staged"]:
        logger.info("source %s: nothing new; dataset unchanged", source)
        return {"source": source, "fetch": {k: v for k, v in fetched.items() if k != "staged"}, "ingest": None}
    summary = ingest(
        source=fetched["staging"],
        dataset=dataset,
        key_file=key_file,
        workers=workers,
        dask_address=dask_address,
        clean_pixels=clean_pixels,
    )
    if fetched["kind"] != "folder":
        commit_task(source, dataset, fetched["staging"], fetched["staged"], key_file)
    return {"source": source, "fetch": {k: v for k, v in fetched.items() if k != "staged"}, "ingest": summary}


def _train_run_name() -> str:
    from prefect.runtime import flow_run

    new_rows = flow_run.parameters.get("new_rows")
    return "train-by-hand" if new_rows is None else f"train-after-{new_rows}-new-rows"


@flow(name="train-on-new-data", flow_run_name=_train_run_name, persist_result=False)
def train_on_new_data(
    dataset: str,
    new_rows: int | None = None,
    threshold: int = 1,
    train_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``train`` when ``new_rows`` (from the ingest event) reaches ``threshold``; ``None`` means by hand."""
    from prefect.concurrency.sync import concurrency

    from flows.train import train

    logger = get_run_logger()
    if new_rows is not None and new_rows < threshold:
        logger.info("%d new manifest rows, below the threshold of %d: not training", new_rows, threshold)
        return {"trained": False, "new_rows": new_rows, "threshold": threshold}
    with concurrency(GPU_LIMIT, occupy=1):
        result = train(dataset=dataset, **(train_options or {}))
    return {"trained": True, "new_rows": new_rows, "threshold": threshold, "train": result}
