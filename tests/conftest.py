"""Shared fixtures. ``prefect_server``: one real Prefect API server (a subprocess) for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# MLflow tracking costs a store per state directory; tests that exercise it switch it on (tests/tasks/registry).
os.environ.setdefault("MEDFLOW_MLFLOW", "false")


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
            yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
