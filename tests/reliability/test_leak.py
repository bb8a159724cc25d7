"""The auditor's test: planted PHI goes in, and none of it reaches Prefect, its logs or the console.

A PHI-like export (folder ``export/DOE_JOHN_123``: real pydicom-data files with planted unique values in headers,
a nested sequence, a private block and burned-in text, and a synthetic echo cohort with names and MRNs; every
folder and file named after its patient) goes through, against a Prefect server of this test's own (temporary
home, SQLite database, server log):

- ``medflow ingest SOURCE`` (console captured), ``medflow deid-table`` (console captured);
- in one process, as deployments run them: ``ingest-source`` on a configured folder source, and on a configured
  source whose folder is gone (the run must fail, naming the source only), ``train-on-new-data`` by hand (subflow
  ``train``), ``evaluate`` on its run, and a ``train`` whose labels path makes pandas raise with the path in its
  message (the run must fail with that text withheld).

Then the database file, its WAL, the server log, the clients' Prefect home, the embedded MLflow store of the tracked
training run (its SQLite database and artifacts) and every console output are searched
for each planted value, every original file and folder name, the source path and (in what Prefect stored) every
path medflow was given, in every encoding the database could hold them in: plain, JSON-escaped, URL-encoded and
base64 (Prefect's result files), UTF-8 and UTF-16, case-insensitive. Zero hits. Small on purpose (4 synthetic
patients, a tiny 3D CNN, 1 epoch), so that it runs in CI.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pydicom
import pytest
import yaml

from deployments.server import local_server, start
from tasks.audit import audit_dataset
from tasks.errors import MedflowError
from tasks.synth.cohort import make_cohort
from tests.reliability.corpus import TEST_KEY, build_corpus, write_key

ROOT = Path(__file__).resolve().parents[2]
MEDFLOW = str(Path(sys.executable).with_name("medflow"))
EXPORT = "DOE_JOHN_123"  # research exports are named after their patient
NAME_PART = "name part"
TRAINING = {
    "id_col": "mrn",
    "start_col": "study_date",
    "end_col": "followup_date",
    "event_col": "event",
    "backbone": "cnn3d",
    "epochs": 1,
    "frames": 4,
    "size": 16,
    "batch_size": 2,
    "num_workers": 0,
    "test_clips": 1,
    "accelerator": "cpu",
}
COHORT_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "PatientBirthDate",
    "InstitutionName",
    "ReferringPhysicianName",
    "OperatorsName",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _export(root: Path) -> tuple[Path, Path, dict[str, str]]:
    """The PHI-like export under ``root/export/DOE_JOHN_123`` and the cohort's outcomes CSV; planted label -> value."""
    source = root / "export" / EXPORT
    planted: dict[str, str] = {"export folder": EXPORT}
    for relpath, values in build_corpus(source / "ref").items():
        for key, value in values.items():
            planted[f"{relpath} {key}"] = value
    cohort = root / "cohort"
    make_cohort(cohort, patients=4, seed=1, volume_every=4)
    for path in sorted((cohort / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in COHORT_ATTRIBUTES:
            value = str(ds.get(keyword, "") or "")
            if value:
                planted[f"cohort {keyword} {value}"] = value
        name = str(ds.PatientName)
        for part in name.split("^"):
            if len(part) > 3:
                planted[f"cohort {NAME_PART} {part}"] = part
        folder = source / "cohort" / f"{name.replace('^', '_')}_{ds.PatientID}"  # patient-named folders and files
        target = folder / f"{ds.PatientID}_{path.parent.name}_{path.stem}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        planted[f"file name {target.name}"] = target.stem
        planted[f"folder name {folder.name}"] = folder.name
    return source, cohort / "outcomes.csv", planted


def encodings(value: str) -> set[bytes]:
    """How ``value`` could be stored: plain, JSON-escaped, URL-encoded; UTF-8 and UTF-16-LE; any ASCII case."""
    forms = {value, json.dumps(value)[1:-1], value.replace("/", "\\/"), quote(value), quote(value, safe=""),
             quote_plus(value)}  # fmt: skip
    return {f.encode(codec).lower() for f in forms for codec in ("utf-8", "utf-16-le")}


def contents(path: Path) -> bytes:
    """The bytes of ``path``, and their base64 decoding where they are base64 (Prefect's result files are)."""
    data = path.read_bytes()
    try:
        return data + b"\0" + base64.b64decode(data, validate=False)
    except ValueError:
        return data


def search(files: list[Path], needles: dict[str, str]) -> list[tuple[str, str]]:
    """(file, label) for every needle found in a file; a name part (label ``... name part ...``: a given name such as
    "Mark" is also a word of "markdown") only as a whole word."""
    patterns = {}
    for label, value in needles.items():
        forms = sorted(encodings(value))
        if NAME_PART in label:
            forms = [re.compile(rb"(?<![a-z0-9])" + re.escape(f) + rb"(?![a-z0-9])") for f in forms]
        patterns[label] = forms
    hits = []
    for path in files:
        data = contents(path).lower()
        for label, forms in patterns.items():
            if any((f in data) if isinstance(f, bytes) else f.search(data) for f in forms):
                hits.append((path.name, label))
    return hits


def _files(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return found


def _run(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _deid_table_args(outcomes: Path, labels: Path, key: Path, env: dict[str, str]) -> list[str]:
    args = [MEDFLOW, "deid-table", str(outcomes), str(labels), "--id-col", "mrn",
            "--date-cols", "study_date,followup_date", "--key-file", str(key)]  # fmt: skip
    if "--keep" in _run([MEDFLOW, "deid-table", "--help"], env, 60).stdout:  # an allow-list of kept columns
        args += ["--keep", "event,ef,sex,group"]
    return args


@dataclass
class AuditedRuns:
    """What the runs left behind: places, consoles, the planted values, the driver's outcome."""

    root: Path
    source: Path
    planted: dict[str, str]
    places: dict[str, str]
    server_home: Path
    server_log: Path
    consoles: dict[str, str]
    outcome: dict

    @property
    def database(self) -> Path:
        return self.server_home / "prefect.db"

    @property
    def client_home(self) -> Path:
        return self.root / "client-home"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> AuditedRuns:
    """Every run of the module docstring, against a Prefect server of this module's own (stopped at the end)."""
    root = tmp_path_factory.mktemp("leak")
    source, outcomes, planted = _export(root)
    key = write_key(root / "deid.key")
    dataset, labels, state = root / "dataset", root / "labels.csv", root / "state"
    sources, gone, broken = root / "sources.yaml", root / "export" / f"{EXPORT}_2", root / f"{EXPORT}_labels.csv"
    server = local_server(root / "server", port=_free_port())
    server_log = root / "server.log"
    process = start(server, log_path=server_log, extra_env={"PREFECT_SERVER_LOGGING_LEVEL": "DEBUG"})
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MEDFLOW_"))}
        env = {**base, "PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(root / "client-home"),
               "PREFECT_LOGGING_LEVEL": "DEBUG", "MEDFLOW_STATE_DIR": str(state), "PYTHONPATH": str(ROOT),
               "PYTHONWARNINGS": "ignore"}  # fmt: skip
        ingest = _run([MEDFLOW, "ingest", str(source), "--dataset", str(dataset), "--key-file", str(key),
                       "--workers", "1"], env, 600)  # fmt: skip
        assert ingest.returncode == 0, ingest.stderr[-3000:]
        table = _run(_deid_table_args(outcomes, labels, key, env), env, 120)
        assert table.returncode == 0, table.stderr[-3000:]

        configured = [{"name": "inbox", "kind": "folder", "path": str(source)},
                      {"name": "gone", "kind": "folder", "path": str(gone)}]  # fmt: skip
        sources.write_text(yaml.safe_dump({"sources": configured}))
        broken.mkdir()  # a folder where a CSV should be: the record check's message names it
        spec = root / "spec.json"
        spec.write_text(json.dumps({"dataset": str(dataset), "labels": str(labels), "broken_labels": str(broken),
                                    "training": TRAINING}))  # fmt: skip
        env_deploy = {**env, "MEDFLOW_SOURCES_FILE": str(sources), "MEDFLOW_KEY_FILE": str(key)}
        driver = _run([sys.executable, "-m", "tests.reliability.leak_driver", str(spec)], env_deploy, 600)
        assert driver.returncode == 0, driver.stderr[-4000:]
        time.sleep(3)  # the server records task runs and logs from events, a moment after they are sent
    finally:
        process.terminate()
        process.wait(timeout=60)
    places = {"source": source, "export folder": source.parent, "dataset": dataset, "labels": labels,
              "broken labels": broken, "outcomes": outcomes, "key": key, "state": state, "sources file": sources,
              "missing source": gone}  # fmt: skip
    return AuditedRuns(
        root=root,
        source=source,
        planted=planted,
        places={f"{name} path": str(path) for name, path in places.items()},
        server_home=server.home,
        server_log=server_log,
        consoles={
            "ingest": ingest.stdout + ingest.stderr,
            "deid-table": table.stdout + table.stderr,
            "deployments": driver.stdout + driver.stderr,
        },
        outcome=json.loads(driver.stdout.strip().splitlines()[-1]),
    )


@pytest.mark.slow
def test_the_runs_did_their_work_and_the_failures_fail_by_name(audited: AuditedRuns) -> None:
    outcome = audited.outcome
    assert outcome["ingest"]["discovered"] == outcome["ingest"]["skipped"] + outcome["ingest"]["quarantined"]
    assert outcome["trained"] and outcome["run"].startswith("run-") and "harrell_c" in outcome["metrics"]
    assert "source gone" in outcome["missing_source"] and "does not exist" in outcome["missing_source"]
    assert "ValueError" in outcome["withheld"] and "withheld" in outcome["withheld"]  # its text names the file
    errors = list((audited.root / "state" / "errors").iterdir())
    assert any(EXPORT in p.read_text() for p in errors)  # the full text is kept, on the worker, for the operator
    with sqlite3.connect(audited.database) as db:
        runs = "select f.name, count(*) from flow_run r join flow f on r.flow_id = f.id"
        flows = dict(db.execute(f"{runs} group by 1"))
        failed = dict(db.execute(f"{runs} where r.state_type = 'FAILED' group by 1"))
        parameters = [json.loads(p) for (p,) in db.execute("select parameters from flow_run")]
        count = {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("log", "artifact", "events")}
    assert flows == {"ingest": 2, "ingest-source": 2, "train-on-new-data": 1, "train": 2, "evaluate": 1}
    assert failed == {"ingest-source": 1, "train": 1}  # the two runs meant to fail, failed
    assert count["log"] > 20 and count["artifact"] >= 5 and count["events"] > 20  # Prefect did record the runs
    assert any(p.get("source", "").startswith("source-") for p in parameters)  # medflow ingest passed a handle
    assert {"source": "inbox"}.items() <= next(p for p in parameters if p.get("source") == "inbox").items()


@pytest.mark.slow
def test_prefect_keeps_no_planted_value_original_name_or_path(audited: AuditedRuns) -> None:
    # No result is persisted, except that Prefect always writes the exception of a failed flow run to its own result
    # storage (PREFECT_HOME/storage) and records a result artifact (no type) with that storage key: only the redacted
    # errors.
    client_storage = audited.client_home / "storage"
    with sqlite3.connect(audited.database) as db:
        kinds = {k for (k,) in db.execute("select type from artifact")}
        keys = [json.loads(d)["storage_key"] for (d,) in db.execute("select data from artifact where type is null")]
    assert kinds <= {"markdown", "table", "progress", None} and all(k.startswith(str(client_storage)) for k in keys)
    for stored in _files(client_storage):
        error = pickle.loads(base64.b64decode(stored.read_bytes()))  # a file this test's own runs wrote
        assert isinstance(error, MedflowError) and str(audited.root) not in str(error), str(error)
    # nothing planted, no original name, no path medflow was given: database, WAL, server log, clients' home
    prefect_files = _files(audited.server_home, audited.server_log, audited.client_home)
    assert audited.database in prefect_files and audited.server_log in prefect_files
    assert not search(prefect_files, {**audited.planted, **audited.places, "key": TEST_KEY})


@pytest.mark.slow
def test_the_mlflow_store_keeps_no_planted_value_original_name_or_path(audited: AuditedRuns) -> None:
    """The embedded MLflow store of the tracked training run (SQLite database, artifacts: config, metrics,
    checkpoint, evaluation report). It lives in the state directory and records its own location there, so the
    state path is the one place it may name."""
    store = audited.root / "state" / "mlflow"
    files = _files(store)
    assert store / "mlflow.db" in files and any(p.name.endswith(".ckpt") for p in files)  # the run was tracked
    assert any(p.name == "report.html" for p in files)  # and so was its evaluation
    places = {label: path for label, path in audited.places.items() if label != "state path"}
    assert not search(files, {**audited.planted, **places, "key": TEST_KEY})


@pytest.mark.slow
def test_no_console_shows_a_planted_value_or_the_source(audited: AuditedRuns) -> None:
    """The operator's own dataset and output paths may be printed on a console; the source's path never."""
    consoles = audited.root / "consoles"
    consoles.mkdir(exist_ok=True)
    for name, text in audited.consoles.items():
        (consoles / name).write_text(text)
    needles = {**audited.planted, "source path": str(audited.source), "key": TEST_KEY}
    assert not search(_files(consoles), needles)
    assert "stored" in audited.consoles["ingest"]  # the consoles were captured


@pytest.mark.slow
def test_the_dataset_holds_no_identifying_value_of_the_originals(audited: AuditedRuns) -> None:
    report = audit_dataset(audited.root / "dataset", audited.source, ocr=False)
    assert report.ok, [f"{f.path} {f.where} {f.attributes}" for f in report.findings]
    assert report.files_scanned > 10


def test_the_search_finds_every_encoding(tmp_path: Path) -> None:
    value = f"/tmp/export/{EXPORT}/Zyqvarn^Ø é.dcm"
    swapped = "".join(c.swapcase() if c.isascii() else c for c in value)  # the case of ASCII letters is ignored
    for i, form in enumerate((value, json.dumps(value), quote(value, safe=""), quote_plus(value), swapped)):
        (tmp_path / f"{i}.txt").write_bytes(b"x" + form.encode() + b"y")
    (tmp_path / "wide.txt").write_bytes(value.encode("utf-16-le"))
    (tmp_path / "clean.txt").write_text("nothing here")
    hits = search(_files(tmp_path), {"path": value})
    assert sorted(name for name, _ in hits) == [f"{i}.txt" for i in range(5)] + ["wide.txt"]
    (tmp_path / "words.txt").write_text('{"type": "markdown"} seen by "Mark", Mark_Smith')
    assert search([tmp_path / "words.txt"], {f"{NAME_PART} Mark": "Mark"}) == [("words.txt", f"{NAME_PART} Mark")]
    assert not search([tmp_path / "clean.txt", tmp_path / "0.txt"], {f"{NAME_PART} Mark": "Mark"})
    (tmp_path / "markdown.txt").write_text('{"type": "markdown"}')
    assert not search([tmp_path / "markdown.txt"], {f"{NAME_PART} Mark": "Mark"})
