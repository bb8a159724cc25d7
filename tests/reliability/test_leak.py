"""End-to-end leak test: planted PHI goes in, and none of it comes out anywhere.

A corpus of real pydicom-data files with planted, unique values (header attributes, a nested sequence, a
private block, burned-in text in an ultrasound frame, folder and file names) goes through ``medflow ingest``
in a subprocess against a real Prefect server; then the dataset, the console output, log files, the Prefect
home and the server's database file are searched for every planted value and for the key (hex and raw
bytes). The dataset is also audited against the originals with ``tasks.audit`` (OCR included). Zero hits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.audit import audit_dataset
from tests.reliability.corpus import (
    add_key_patterns,
    build_corpus,
    planted_patterns,
    raw_search,
    text_search,
    write_key,
)

MEDFLOW = str(Path(sys.executable).with_name("medflow"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MEDFLOW_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        MEDFLOW_STATE_DIR=str(tmp_path / "state"),
        PREFECT_LOGGING_LEVEL="DEBUG",
        PYTHONWARNINGS="ignore",
    )
    return env


def _prefect_database() -> Path:
    """The SQLite file of the running test server (the harness keeps it in a temporary folder of its own)."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    assert url and url.startswith("sqlite"), "the leak test searches a SQLite database file"
    return Path(url.split(":///", 1)[1])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ingest_leaks_nothing(tmp_path: Path, prefect_server: str) -> None:
    """The same corpus through ``medflow ingest`` against a real Prefect server; its database is searched too."""
    source = tmp_path / "source"
    planted = build_corpus(source)
    key_file = write_key(tmp_path / "deid.key")
    dataset = tmp_path / "dataset"
    env = _env(tmp_path)
    env.update(PREFECT_API_URL=prefect_server, PREFECT_HOME=os.environ["PREFECT_HOME"])

    run = subprocess.run(
        [MEDFLOW, "ingest", str(source), "--dataset", str(dataset), "--key-file", str(key_file), "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    rows = [json.loads(line) for line in (dataset / "audit.jsonl").read_text().splitlines()]
    assert len(rows) == len(planted)  # every input accounted for
    assert sum(r["status"] == "stored" for r in rows) >= len(planted) - 1

    patterns = add_key_patterns(planted_patterns(planted))
    assert not text_search(run.stdout + run.stderr, patterns)
    home = Path(os.environ["PREFECT_HOME"])
    database = _prefect_database()
    assert database.is_file(), "the Prefect database file must exist to be searched"
    assert not raw_search([dataset, home, database.parent, tmp_path / "state"], patterns)

    report = audit_dataset(dataset, source, ocr=True)
    assert report.ok, [f"{f.path} {f.where} {f.attributes}" for f in report.findings]
    assert report.arrays_ocr >= 3
