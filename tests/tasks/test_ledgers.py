"""The per-input ledgers are named for what they are (``inputs.jsonl``, ``deid-inputs.jsonl``): "audit" is the PHI
audit only. An output folder written before the rename still skips what its old ledger records as done."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.deid.folder import INPUTS_FILE, LEGACY_INPUTS_FILE, finished_sources
from tasks.ingest.ledger import LEDGER_FILE, Status, record_input


def test_ingest_ledger_records_each_input(tmp_path: Path) -> None:
    record_input(tmp_path, source_id="abc", status=Status.QUARANTINED, run_id="r1", zarr_key=None, reason="truncated")
    (row,) = [json.loads(line) for line in (tmp_path / LEDGER_FILE).read_text().splitlines()]
    assert LEDGER_FILE == "inputs.jsonl" and row["status"] == "quarantined" and row["reason"] == "truncated"


def test_deid_reruns_read_the_old_and_the_new_ledger(tmp_path: Path) -> None:
    for name, source_id in ((LEGACY_INPUTS_FILE, "old"), (INPUTS_FILE, "new")):
        out = tmp_path / f"{source_id}.dcm"
        out.write_bytes(b"\0" * 200)
        row = {"source_id": source_id, "output": out.name, "status": "written"}
        (tmp_path / name).write_text(json.dumps(row) + "\n")
    assert finished_sources(tmp_path) == {"old", "new"}
    assert "audit" not in INPUTS_FILE and "audit" not in LEDGER_FILE
