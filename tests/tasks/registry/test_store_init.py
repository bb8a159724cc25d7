"""The embedded MLflow store is created once when several processes open it together (``predict`` and
``drift`` start on the same dataset update)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OPEN_STORE = """
import sys
from pathlib import Path
from tasks.registry.store import client, models_of_dataset
print(models_of_dataset(client(Path(sys.argv[1])), "dataset-0123456789abcdef"))
"""


def test_processes_opening_a_new_store_together_all_succeed(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-c", OPEN_STORE, str(tmp_path / "state")]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    opened = [subprocess.Popen(command, env=env, cwd=ROOT, **pipes) for _ in range(4)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in opened]
    assert [(code, out.strip()) for code, out, _ in results] == [(0, "[]")] * 4, [err[-800:] for *_, err in results]
