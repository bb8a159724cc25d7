"""Location names: handles registered for operator paths (0600 registry, stable, opaque), configured names, and the
errors that name a location but never its path; every flow refuses a path as a parameter."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from tasks.errors import ConfigError
from tasks.locations import REGISTRY, LocationKind, Locations, existing_folder, is_handle, register_location

PHI_FOLDER = "DOE_JOHN_123"


def test_handles_are_opaque_stable_and_private(tmp_path: Path) -> None:
    source = tmp_path / "export" / PHI_FOLDER
    source.mkdir(parents=True)
    state = tmp_path / "state"
    handle = register_location(state, LocationKind.SOURCE, source)
    assert is_handle(handle) and handle.startswith("source-")
    assert "doe" not in handle.lower() and "john" not in handle.lower()
    assert register_location(state, "source", source / ".." / PHI_FOLDER) == handle  # same folder, same handle
    assert register_location(state, LocationKind.DATASET, source) != handle  # a kind of its own
    assert stat.S_IMODE((state / REGISTRY).stat().st_mode) == 0o600
    assert Locations(state, {}).path(LocationKind.SOURCE, handle) == source.resolve()


def test_errors_name_the_location_never_the_path(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gone = tmp_path / PHI_FOLDER
    gone.mkdir()
    handle = register_location(state, LocationKind.SOURCE, gone)
    gone.rmdir()
    places = Locations(state, {})
    messages = []
    for call in (
        lambda: existing_folder(places, LocationKind.SOURCE, handle),  # its folder went away
        lambda: places.path(LocationKind.DATASET, handle),  # wrong kind
        lambda: places.path(LocationKind.DATASET, "dataset-0123456789abcdef"),  # never registered here
        lambda: places.path(LocationKind.DATASET, "main"),  # not configured
        lambda: places.path(LocationKind.SOURCE, str(gone)),  # a path is no name
        lambda: places.source("inbox"),  # no sources file
    ):
        with pytest.raises(ConfigError) as error:
            call()
        messages.append(str(error.value))
    assert "does not exist" in messages[0] and handle in messages[0]
    assert "not a dataset" in messages[1] and "not registered" in messages[2] and "MEDFLOW_LOCATIONS" in messages[3]
    assert "not a path" in messages[4] and "MEDFLOW_SOURCES_FILE" in messages[5]
    assert not [m for m in messages if PHI_FOLDER in m or str(tmp_path) in m]


def test_configured_names_resolve_through_settings_and_the_sources_file(tmp_path: Path, monkeypatch) -> None:
    from tasks.config import load_settings

    folder, dataset = tmp_path / PHI_FOLDER, tmp_path / "ds"
    folder.mkdir()
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {"name": "inbox", "kind": "folder", "path": str(folder)},
                    {"name": "gone", "kind": "folder", "path": str(tmp_path / "nope")},
                    {"name": "pacs", "kind": "dicomweb", "url": "http://pacs:8042/dicom-web"},
                ]
            }
        )
    )
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MEDFLOW_SOURCES_FILE", str(sources))
    monkeypatch.setenv("MEDFLOW_LOCATIONS", f'{{"main": "{dataset}"}}')
    places = Locations.from_settings(load_settings())
    assert places.path(LocationKind.DATASET, "main", must_exist=False) == dataset
    assert existing_folder(places, LocationKind.SOURCE, "inbox") == folder
    assert places.source_folder("pacs") == tmp_path / "state" / "staging" / "pacs"  # what its fetch stages into
    with pytest.raises(ConfigError, match="source gone: its folder does not exist"):
        existing_folder(places, LocationKind.SOURCE, "gone")
    with pytest.raises(ConfigError, match="'elsewhere' is not in the sources file"):
        places.source("elsewhere")


@pytest.mark.parametrize(
    ("module", "name", "parameters"),
    [
        ("flows.ingest", "ingest", {"source": "/export/DOE_JOHN_123", "dataset": "main"}),
        ("flows.ingest", "ingest", {"source": "inbox", "dataset": "/data/ds"}),
        ("flows.ingest", "ingest", {"source": "inbox", "dataset": "main", "key_file": "/k/deid.key"}),
        ("flows.ingest", "ingest", {"source": "inbox", "dataset": "main", "run_id": "../x"}),
        ("deployments.pipelines", "ingest_source", {"source": "DOE_JOHN_123.dcm", "dataset": "main"}),
        ("deployments.pipelines", "train_on_new_data", {"dataset": "C:/ds"}),
        ("flows.train", "train", {"dataset": "main", "labels": "labels.csv", "task": "survival"}),
        ("flows.evaluate", "evaluate", {"run_dir": "/data/ds/runs/r1"}),
        ("flows.demo", "demo", {"out": "demo-output/", "key_file": "key-0123456789abcdef"}),
        ("flows.study", "ingest_study", {"listener": "push", "study": "0" * 32, "dataset": "/data/ds"}),
        ("flows.study", "ingest_study", {"listener": "../push", "study": "0" * 32, "dataset": "main"}),
    ],
)
def test_every_flow_refuses_a_path_parameter(module: str, name: str, parameters: dict) -> None:
    import importlib

    from prefect.exceptions import ParameterTypeError

    flow = getattr(importlib.import_module(module), name)
    with pytest.raises(ParameterTypeError, match="should match pattern"):
        flow.validate_parameters(parameters)


def test_flows_accept_names_and_handles() -> None:
    from deployments.pipelines import ingest_source
    from flows.ingest import ingest

    assert ingest.validate_parameters({"source": "source-0123456789abcdef", "dataset": "main", "run_id": "r-1"})
    assert ingest_source.validate_parameters({"source": "pacs-web", "dataset": "dataset-0123456789abcdef"})
