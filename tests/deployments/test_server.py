"""``medflow server``: a real Prefect server on 127.0.0.1 only, its database under the state directory."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deployments.server import is_healthy, local_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_local_server_environment_pins_loopback_and_home(tmp_path: Path) -> None:
    server = local_server(tmp_path / "state", 4321)
    env = server.environment({"PATH": "/bin"})
    assert server.home == (tmp_path / "state" / "prefect").resolve() and server.home.is_dir()
    assert env["PREFECT_HOME"] == str(server.home)
    assert env["PREFECT_SERVER_API_HOST"] == "127.0.0.1" and env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert server.command()[-4:] == ["--host", "127.0.0.1", "--port", "4321"]


@pytest.mark.slow
def test_medflow_server_serves_the_dashboard_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "state"
    medflow = Path(sys.executable).parent / "medflow"
    process = subprocess.Popen(
        [str(medflow), "server", "--port", str(port), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        api = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 120
        while not is_healthy(api) and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.5)
        assert is_healthy(api)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:  # the dashboard
            assert response.status == 200 and b"<html" in response.read(2000).lower()
        assert (state / "prefect" / "prefect.db").exists()  # SQLite under the state directory
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert f"Dashboard:    http://127.0.0.1:{port}" in output
