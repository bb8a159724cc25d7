"""Shared fixtures. ``prefect_server``: one real Prefect API server (a subprocess) for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# MLflow tracking costs a store per state directory; tests that exercise it switch it on (tests/tasks/registry).
os.environ.setdefault("MEDFLOW_MLFLOW", "false")


_STARTED: list[str] = []  # the session server's URL once it runs


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a real Prefect server on 127.0.0.1 with PREFECT_HOME in a temporary folder; yield its API URL.

    ``prefect_test_harness`` runs ``SubprocessASGIServer`` (uvicorn in a child process, SQLite in a temp dir)
    and points PREFECT_API_URL at it. The URL and home are also exported to the environment so worker
    processes (process pools, Dask workers started by a test) report to the same server.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_API_URL")}
    os.environ["PREFECT_HOME"] = str(home)
    try:
        with temporary_settings({PREFECT_HOME: str(home)}), prefect_test_harness(server_startup_timeout=120):
            url = PREFECT_API_URL.value()
            assert url and "127.0.0.1" in url
            os.environ["PREFECT_API_URL"] = url
            _STARTED.append(url)
            yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _registrations() -> tuple[set, set]:
    from prefect import get_client

    async with get_client() as client:
        return {d.id for d in await client.read_deployments()}, {a.id for a in await client.read_automations()}


async def _remove_all_but(deployments: set, automations: set) -> None:
    from prefect import get_client

    async with get_client() as client:
        for deployment in await client.read_deployments():
            if deployment.id not in deployments:
                await client.delete_deployment(deployment.id)
        for automation in await client.read_automations():
            if automation.id not in automations:
                await client.delete_automation(automation.id)


@pytest.fixture(scope="module", autouse=True)
def _server_left_as_found() -> Iterator[None]:
    """Deployments and automations a test module registers on the shared server go with it: a later module's
    event must not trigger a deployment whose ``medflow serve`` (or ``prefect deploy``) has gone."""
    import asyncio

    before = asyncio.run(_registrations()) if _STARTED else (set(), set())
    yield
    if _STARTED:
        asyncio.run(_remove_all_but(*before))
