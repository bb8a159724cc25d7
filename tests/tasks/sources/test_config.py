"""Sources YAML: validated per kind, unique names, errors that name the file and the remedy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import ConfigError
from tasks.sources import SourceKind, load_sources


def test_sources_file_is_read_per_kind(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        """
sources:
  - {name: web, kind: dicomweb, url: "http://pacs/dicom-web", cron: "0 3 * * *", filters: {ModalitiesInStudy: US}}
  - {name: dimse, kind: dimse, host: pacs, port: 4242, called_aet: ORTHANC, retry: {attempts: 2}}
  - {name: inbox, kind: folder, path: /data/inbox}
"""
    )
    web, dimse, inbox = load_sources(path)
    assert (web.kind, web.cron, web.filters) == (SourceKind.DICOMWEB, "0 3 * * *", {"ModalitiesInStudy": "US"})
    assert (dimse.port, dimse.retry.attempts, dimse.calling_aet) == (4242, 2, "MEDFLOW")
    assert inbox.path == Path("/data/inbox")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [{name: web, kind: dicomweb}]", "needs: url"),
        ("sources: [{name: a, kind: folder, path: /x}, {name: a, kind: folder, path: /y}]", "unique"),
        ("sources: [{name: 'Bad Name', kind: folder, path: /x}]", "sources.0.name"),
        ("sources: [{name: a, kind: ftp}]", "sources.0.kind"),
        ("sources: [", "not valid YAML"),
    ],
)
def test_invalid_sources_file_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sources(path)


def test_missing_sources_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MEDFLOW_SOURCES_FILE"):
        load_sources(tmp_path / "absent.yaml")


def test_dicomweb_credentials_come_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.sources.config import SourceConfig
    from tasks.sources.dicomweb import _session

    config = SourceConfig(name="web", kind=SourceKind.DICOMWEB, url="http://pacs", credentials_env="PACS_CRED")
    monkeypatch.delenv("PACS_CRED", raising=False)
    with pytest.raises(ConfigError, match="set PACS_CRED"):
        _session(config)
    monkeypatch.setenv("PACS_CRED", "medflow:s3cret:with-colon")
    assert _session(config).auth == ("medflow", "s3cret:with-colon")
