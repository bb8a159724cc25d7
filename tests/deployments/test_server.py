"""``medflow server``: a real Prefect server on 127.0.0.1 only, its database under the state directory."""

from __future__ import annotations

import os
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
        start_new_session=True,  # so that whatever is left can be killed as a group
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a background job (CI) inherits it
    )
    server_pid = None
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
        (server_pid,) = _children(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the server is in a session of its own: by pid below
            if server_pid:
                os.kill(server_pid, signal.SIGKILL)
            output, _ = process.communicate(timeout=30)
            raise
    assert process.returncode == 0 and f"Dashboard:    http://127.0.0.1:{port}" in output
    assert not Path(f"/proc/{server_pid}").exists() or _state(server_pid) == "Z"  # stopped with medflow


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"


def test_a_server_dies_with_the_medflow_process_that_started_it_even_by_sigkill() -> None:
    """The CI hang: a `medflow server` killed by SIGKILL left its Prefect server running, holding the pipe."""
    owner = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; from deployments.server import die_with_parent;"
         " child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent()); print(child.pid, flush=True);"
         " time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        child = int(owner.stdout.readline())
        assert Path(f"/proc/{child}").exists() and _state(child) != "Z"
        owner.kill()
        owner.wait(timeout=10)
        assert _wait_gone(child, 10)
    finally:
        owner.kill()


@pytest.mark.slow
def test_the_demo_server_outlives_the_command_that_started_it(tmp_path: Path) -> None:
    """`medflow demo` leaves its server running for the dashboard (`start`), unlike `medflow server`'s."""
    port = _free_port()
    script = (
        "import sys; from pathlib import Path; from deployments.server import local_server, start;"
        f" print(start(local_server(Path(sys.argv[1]), {port})).pid, flush=True)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "state")], capture_output=True, text=True,
                          timeout=180, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    server_pid = int(done.stdout.split()[-1])
    try:
        time.sleep(1.0)  # a parent-death signal would have arrived by now
        assert is_healthy(f"http://127.0.0.1:{port}/api") and _state(server_pid) != "Z"
    finally:
        os.kill(server_pid, signal.SIGTERM)
        _wait_gone(server_pid, 30) or os.kill(server_pid, signal.SIGKILL)
