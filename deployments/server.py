"""Every Prefect server medflow starts, bound to 127.0.0.1: the one module that launches them.

- :func:`run_foreground` / :func:`start`: the local server of ``medflow server`` and ``medflow demo`` (``prefect
  server start``), its home and SQLite database under ``STATE_DIR/prefect``;
- :func:`temporary_api`: when PREFECT_API_URL is not set, one short-lived server for the duration of a command
  (``medflow ingest``), Prefect's own ``SubprocessASGIServer`` on a free port of 127.0.0.1.

PostgreSQL instead of SQLite: set ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` (e.g.
``postgresql+asyncpg://prefect:PASSWORD@db:5432/prefect``) in the environment; it is passed through unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def start(
    server: LocalServer, log_path: Path | None = None, timeout_s: float = 120.0, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start the server in the background (``extra_env``: more settings, e.g. its log level) and wait until it is
    healthy; the caller stops it (terminate()), or leaves it running: it outlives the caller."""
    log_path = log_path or server.home / "server.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    env = server.environment({**os.environ, **(extra_env or {})})
    # no parent-death signal here: ``medflow demo`` leaves this server running for its dashboard
    process = subprocess.Popen(server.command(), env=env, stdout=log, stderr=subprocess.STDOUT)
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


#: how long a server asked to stop gets to finish its shutdown before it is killed
STOP_GRACE_S = 30.0


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a server: Linux sends it SIGTERM when the process that started it dies, even by
    SIGKILL, so no server outlives the medflow command that owns it (elsewhere: None). ``prctl`` is looked up here,
    in the parent: the child between fork and exec only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_foreground(server: LocalServer) -> int:
    """Run the server until it exits, Ctrl-C or SIGTERM; return its exit status (130 when stopped).

    The server runs in its own session, so a stop reaches it once, from here: SIGINT (a graceful shutdown), then
    SIGKILL after :data:`STOP_GRACE_S`; it never outlives this process (see :func:`die_with_parent`)."""
    process = subprocess.Popen(
        server.command(), env=server.environment(), start_new_session=True, preexec_fn=die_with_parent()
    )
    # SIGINT too: a launcher that runs us in the background (``nohup … &``, CI) leaves it ignored, and Python then
    # never raises KeyboardInterrupt
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def temporary_api() -> Iterator[None]:
    """Use PREFECT_API_URL when set; else start ONE temporary server (here, in this process) that a flow and its
    tasks share, and stop it at the end.

    Local batch tasks run on threads of this process (their work goes to a process pool that never talks to
    Prefect), so they report to this server through the settings context. The URL is also set in
    ``os.environ`` and ephemeral mode switched off for the block, so any Prefect process started from
    here fails loudly instead of starting a second server. Dask workers are not our children: they get the
    URL from the serialised settings context Prefect sends with each task.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=180)
    saved = {k: os.environ.get(k) for k in _SERVER_ENV}
    os.environ.update(PREFECT_API_URL=server.api_url, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false")
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}):
            yield
    finally:
        try:
            drain_prefect_workers()  # send buffered logs and events before the server goes away
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            server.stop()


_SERVER_ENV = ("PREFECT_API_URL", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE")


def drain_prefect_workers() -> None:
    """Send the logs and events this process has buffered to the API (before a server stops or a process ends)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:
            pass  # the log worker never started
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())
