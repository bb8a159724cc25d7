"""The local Prefect server: bound to 127.0.0.1, its home and SQLite database under the state directory.

PostgreSQL instead of SQLite: set ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` (e.g.
``postgresql+asyncpg://prefect:PASSWORD@db:5432/prefect``) in the environment; it is passed through unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import ConfigError

HOST = "127.0.0.1"
DEFAULT_PORT = 4200


@dataclass(frozen=True)
class LocalServer:
    """Where a local server lives and how to reach it."""

    home: Path
    port: int = DEFAULT_PORT

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    @property
    def dashboard_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) plus the settings that pin the server to loopback."""
        env = dict(os.environ if base is None else base)
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_API_HOST=HOST,
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_API_URL=self.api_url,
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        )
        return env

    def command(self) -> list[str]:
        """The ``prefect server start`` command line."""
        return [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(self.port)]


def local_server(state_dir: Path, port: int = DEFAULT_PORT) -> LocalServer:
    """The server whose ``PREFECT_HOME`` is ``STATE_DIR/prefect`` (created owner-only)."""
    home = state_dir.expanduser().resolve() / "prefect"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return LocalServer(home=home, port=port)


def is_healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET /health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def wait_healthy(api_url: str, timeout_s: float = 60.0) -> bool:
    """Poll ``GET /health`` until it answers or ``timeout_s`` passes (a busy server can be slow to answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if is_healthy(api_url, timeout_s=5.0):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def start(server: LocalServer, log_path: Path | None = None, timeout_s: float = 120.0) -> subprocess.Popen:
    """Start the server in the background and wait until it is healthy; the caller stops it (terminate())."""
    log_path = log_path or server.home / "server.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(server.command(), env=server.environment(), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(
                f"the Prefect server exited with status {process.returncode}; see {log_path}"
                f" (is port {server.port} in use? choose another with --port)"
            )
        if is_healthy(server.api_url):
            return process
        time.sleep(0.5)
    process.terminate()
    raise ConfigError(f"the Prefect server did not become healthy within {timeout_s:.0f} s; see its log")
