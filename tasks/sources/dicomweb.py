"""DICOMweb source: QIDO-RS finds studies and their instances, WADO-RS retrieves the ones not yet ingested."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset

from tasks.errors import ConfigError
from tasks.sources.config import SourceConfig
from tasks.sources.errors import SourceError
from tasks.sources.retry import TransientError, with_retries
from tasks.sources.seen import SeenInstances
from tasks.sources.staging import FetchResult, stage_bytes

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout)
_STUDY_UID = "0020000D"
_SERIES_UID = "0020000E"
_SOP_UID = "00080018"
_ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)
_PAGE = 500  # QIDO-RS results per request


def fetch_dicomweb(config: SourceConfig, staging: Path, seen: SeenInstances) -> FetchResult:
    """Stage every instance of the matching studies whose digest is not in ``seen``."""
    client = DICOMwebClient(url=str(config.url).rstrip("/"), session=_session(config), timeout=config.retry.timeout_s)
    client.set_http_retry_params(retry=False)  # one retry policy (ours): its own logs tracebacks that quote URLs
    result = FetchResult(source=config.name, staging=staging)

    def call(what: str, fn):
        return with_retries(
            lambda: _raise_transient(fn), config.retry, source=config.name, what=what, transient=_NETWORK_ERRORS
        )

    studies = _paged(
        lambda offset: call(
            "QIDO-RS study query",
            lambda: client.search_for_studies(search_filters=config.filters, offset=offset, limit=_PAGE),
        ),
        _STUDY_UID,
    )
    for study in studies:
        study_uid = _value(study, _STUDY_UID)
        instances = _paged(
            lambda offset, s=study_uid: call(
                "QIDO-RS instance query",
                lambda: client.search_for_instances(
                    study_instance_uid=s, fields=[_SERIES_UID, _SOP_UID], offset=offset, limit=_PAGE
                ),
            ),
            _SOP_UID,
        )
        for instance in instances:
            result.found += 1
            series_uid, sop_uid = _value(instance, _SERIES_UID), _value(instance, _SOP_UID)
            if not seen.is_new(sop_uid):
                result.skipped += 1
                continue
            ds = call(
                "WADO-RS retrieve",
                lambda a=study_uid, b=series_uid, c=sop_uid: client.retrieve_instance(
                    a, b, c, media_types=_ANY_TRANSFER_SYNTAX
                ),
            )
            digest = seen.digest(sop_uid)
            stage_bytes(staging, digest, _part10(ds))
            result.fetched += 1
            result.digests.append(digest)
    logger.info(
        "source %s: %d instances found, %d already ingested, %d fetched",
        config.name,
        result.found,
        result.skipped,
        result.fetched,
    )
    return result


def _paged(search, key_tag: str) -> list[dict]:
    """All results of a QIDO-RS query, page by page (``limit``/``offset``).

    Stops at a short or empty page, and at a page with nothing new: some servers (Orthanc with
    ModalitiesInStudy) ignore ``offset`` and would otherwise be asked for the same page forever.
    """
    results: list[dict] = []
    keys: set[str] = set()
    offset = 0
    while True:
        page = search(offset)
        fresh = [item for item in page if _value(item, key_tag) not in keys]
        results.extend(fresh)
        keys.update(_value(item, key_tag) for item in fresh)
        if len(page) < _PAGE or not fresh:
            return results
        offset += len(page)


def _session(config: SourceConfig) -> requests.Session:
    """A session with HTTP basic credentials from the environment variable the config names, if any."""
    session = requests.Session()
    if config.credentials_env:
        value = os.environ.get(config.credentials_env, "")
        if ":" not in value:
            raise ConfigError(
                f"source {config.name}: set {config.credentials_env} to 'user:password' for the DICOMweb service"
            )
        user, password = value.split(":", 1)
        session.auth = (user, password)
    return session


def _raise_transient(fn):
    """Turn HTTP 5xx/429 into a retryable error; other HTTP errors are permanent."""
    try:
        return fn()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status >= 500 or status == 429:
            raise TransientError(f"HTTP {status}") from None
        raise SourceError(f"DICOMweb request refused with HTTP {status}; check the URL and credentials") from None


def _value(item: dict, tag: str) -> str:
    """First value of a DICOM JSON attribute; a SourceError names the tag (never a value) when absent."""
    try:
        return str(item[tag]["Value"][0])
    except (KeyError, IndexError, TypeError):
        raise SourceError(
            f"DICOMweb response lacks ({tag[:4]},{tag[4:]}); the service is not QIDO-RS compliant"
        ) from None


def _part10(ds: Dataset) -> bytes:
    """Encode a retrieved instance as a Part-10 file, keeping its transfer syntax."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
