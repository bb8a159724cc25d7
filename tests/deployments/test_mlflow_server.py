"""The MLflow server command: loopback only, on the registry's own store."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.mlflow_server import MlflowServer


def test_mlflow_server_binds_loopback_on_the_registry_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cmd = MlflowServer(tmp_path, 5077).command()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5077"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}"
    assert cmd[cmd.index("--artifacts-destination") + 1] == str(tmp_path.resolve() / "mlflow" / "artifacts")
