"""A listener in the sources file becomes an event-triggered ``ingest-<name>`` deployment of ``ingest-study``."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.serve import ServeOptions, build_deployments
from flows.study import LISTENER_LABEL, STUDY_RECEIVED, deployment_name, study_resource, study_token_of
from tasks.errors import ConfigError
from tasks.sources import SourceConfig, SourceKind, fetch_new

SOURCES = [
    SourceConfig(name="pacs-web", kind=SourceKind.DICOMWEB, url="http://pacs/dicom-web"),
    SourceConfig(name="push", kind=SourceKind.LISTENER, port=11112, allow_ae=["PACS"], quiet_seconds=30),
]


def test_a_listener_gets_a_study_triggered_ingest_and_no_schedule() -> None:
    options = ServeOptions(dataset="main", key_file="key-0123456789abcdef", workers=3)  # location names
    deployments = {d.name: d for d in build_deployments(options, SOURCES)}
    assert {"ingest-pacs-web", "ingest-push", "train", "evaluate", "promote", "predict", "drift"} == set(deployments)
    push = deployments["ingest-push"]
    assert f"{push.flow_name}/{push.name}" == deployment_name("push")
    assert not push.schedules and push.concurrency_limit == 1
    assert push.parameters == {
        "listener": "push",
        "dataset": "main",
        "key_file": "key-0123456789abcdef",
        "workers": 3,
        "dask_address": None,
    }
    (trigger,) = push.triggers
    assert trigger.expect == {STUDY_RECEIVED}
    assert trigger.match.model_dump() == {"prefect.resource.id": "medflow.study.*", LISTENER_LABEL: "push"}
    assert trigger.parameters == {"study": "{{ event.resource.id }}"}  # the keyed token, and nothing else


def test_the_event_resource_carries_only_the_token_and_the_listener_name() -> None:
    token = "0123456789abcdef" * 2
    assert study_resource("push", token) == {"prefect.resource.id": f"medflow.study.{token}", LISTENER_LABEL: "push"}
    assert study_token_of(f"medflow.study.{token}") == study_token_of(token) == token
    with pytest.raises(ConfigError):
        study_token_of("medflow.study.../../etc")


def test_a_listener_is_not_fetched(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="listener"):
        fetch_new(SOURCES[1], tmp_path, None)
