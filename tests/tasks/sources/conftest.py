"""Fixtures of the source tests: a real Orthanc PACS on loopback (see orthanc.py)."""

from tests.tasks.sources.orthanc import orthanc  # noqa: F401 - session fixture
