"""``mlflow server`` on 127.0.0.1 beside the Prefect server, on the registry's own store (``tasks.registry``).

Optional: the embedded SQLite store needs no server. Started by ``medflow server --mlflow``; flows on other
hosts then use ``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>`` (through a tunnel, never a public bind).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deployments.server import HOST, die_with_parent
from tasks.registry.store import tracking_uri

DEFAULT_MLFLOW_PORT = 5000


@dataclass(frozen=True)
class MlflowServer:
    state_dir: Path
    port: int = DEFAULT_MLFLOW_PORT

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        """The server on the registry's store, serving artifacts from ``STATE_DIR/mlflow/artifacts``."""
        artifacts = Path(self.state_dir).expanduser().resolve() / "mlflow" / "artifacts"
        return [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(self.port),
                "--backend-store-uri", tracking_uri(self.state_dir), "--artifacts-destination", str(artifacts),
                "--workers", "1"]  # fmt: skip


def start_mlflow(server: MlflowServer, log_path: Path) -> subprocess.Popen:
    """Start it in the background (log to ``log_path``); the caller terminates it."""
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    try:
        return subprocess.Popen(server.command(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent())
    finally:
        log.close()
