"""Shared fixtures: a fixed key, contexts, and small real DICOM files from pydicom-data."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey

KEY_BYTES = bytes(range(32))


@pytest.fixture(scope="session")
def key() -> DeidKey:
    return DeidKey(KEY_BYTES)


@pytest.fixture(scope="session")
def ctx(key: DeidKey) -> DeidContext:
    return DeidContext.create(key, clean_pixels="off")


@pytest.fixture
def ct():
    return dcmread(get_testdata_file("CT_small.dcm"))
