"""What a failing step tells Prefect: medflow's own messages with paths replaced, third-party text withheld (kept in
a 0600 error file under the state directory), and no chained exception whose text a traceback would print."""

from __future__ import annotations

import stat
import traceback
from pathlib import Path

import pytest

from flows.redact import RunFailed, redacted_errors, scrub
from tasks.errors import ConfigError, QuarantineReason

PHI_PATH = "/export/DOE_JOHN_123/Smith^Jane.dcm"


def test_scrub_replaces_absolute_paths_and_file_uris_only() -> None:
    text = f"see {PHI_PATH}, or file:///data/ds/qc/index.html; ratio 1/2, runs/r-1/report.html (relative)"
    assert scrub(text) == "see <path>, or <path>; ratio 1/2, runs/r-1/report.html (relative)"


def test_third_party_text_is_withheld_and_kept_on_the_worker(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(RunFailed) as failed, redacted_errors("evaluate-run"):
        try:
            open(PHI_PATH)  # noqa: SIM115 - the OSError quotes the path, as many libraries' errors do
        except OSError as error:
            raise ValueError(f"could not read {PHI_PATH}") from error
    message = str(failed.value)
    assert "DOE" not in message and "ValueError at tests/flows/test_redact.py:" in message and "evaluate-run" in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    printed = "".join(traceback.format_exception(failed.value))  # what Prefect logs
    assert "DOE_JOHN_123" not in printed
    (saved,) = (tmp_path / "state" / "errors").iterdir()
    assert saved.stem in message and stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert PHI_PATH in saved.read_text() and "FileNotFoundError" in saved.read_text()  # nothing lost


def test_medflow_errors_keep_their_message_reason_and_type_without_paths() -> None:
    with pytest.raises(ConfigError) as failed, redacted_errors("ingest"):
        try:
            raise KeyError("Smith^Jane")
        except KeyError:
            raise ConfigError(f"sources file {PHI_PATH} is invalid", reason=QuarantineReason.UNREADABLE) from None
    assert str(failed.value) == "sources file <path> is invalid"
    assert failed.value.reason is QuarantineReason.UNREADABLE and failed.value.__context__ is not None
    assert failed.value.__suppress_context__ and "Smith" not in "".join(traceback.format_exception(failed.value))
