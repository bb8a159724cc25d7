"""DIMSE source: C-FIND (Study Root) lists instances; C-GET (default) or C-MOVE retrieves the ones not yet
ingested, per series.

C-GET needs no storage SCP on our side: the peer sends the instances back on the same association, for the
SOP classes we propose with the SCP role. Each SOP class is proposed once per common transfer syntax, so
the peer can send what it stores without transcoding. With ``retrieve: move`` the peer sends them to our own
storage SCP instead (:mod:`tasks.sources.move`), the way most enterprise PACS are set up.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from tasks.sources.config import RetrieveMode, SourceConfig
from tasks.sources.contexts import TRANSFER_SYNTAXES
from tasks.sources.errors import SourceError
from tasks.sources.move import MoveDestination, move_series
from tasks.sources.retry import TransientError, with_retries
from tasks.sources.scp import quiet_pynetdicom
from tasks.sources.seen import SeenInstances
from tasks.sources.staging import FetchResult, stage_bytes

logger = logging.getLogger(__name__)

_MAX_CONTEXTS = 128
_PENDING = (0xFF00, 0xFF01)
_NETWORK_ERRORS = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class _Instance:
    study: str
    series: str
    sop: str
    sop_class: str


def fetch_dimse(config: SourceConfig, staging: Path, seen: SeenInstances) -> FetchResult:
    """Stage every instance of the matching studies whose digest is not in ``seen``."""
    quiet_pynetdicom()  # pynetdicom logs C-FIND identifiers (UIDs, names) at INFO otherwise
    result = FetchResult(source=config.name, staging=staging)
    instances = with_retries(
        lambda: _find_instances(config), config.retry, source=config.name, what="C-FIND", transient=_NETWORK_ERRORS
    )
    result.found = len(instances)
    new = [i for i in instances if seen.is_new(i.sop)]
    result.skipped = result.found - len(new)
    by_series: dict[tuple[str, str], list[_Instance]] = {}
    for instance in new:
        by_series.setdefault((instance.study, instance.series), []).append(instance)
    with ExitStack() as stack:
        if config.retrieve is RetrieveMode.MOVE:
            destination = stack.enter_context(MoveDestination(config, staging, seen))
        for batch in by_series.values():
            wanted = {seen.digest(i.sop) for i in batch}
            if config.retrieve is RetrieveMode.MOVE:
                staged = move_series(config, batch[0].study, batch[0].series, [i.sop for i in batch], destination)
            else:
                staged = with_retries(
                    lambda b=batch: _get_series(config, b, staging, seen),
                    config.retry,
                    source=config.name,
                    what="C-GET",
                    transient=_NETWORK_ERRORS,
                )
            delivered = sorted(staged & wanted)
            if len(delivered) < len(wanted):
                logger.warning(
                    "source %s: C-%s delivered %d of %d instances of a series",
                    config.name,
                    config.retrieve.value.upper(),
                    len(delivered),
                    len(wanted),
                )
            result.fetched += len(delivered)
            result.digests.extend(delivered)
    logger.info(
        "source %s: %d instances found, %d already ingested, %d fetched",
        config.name,
        result.found,
        result.skipped,
        result.fetched,
    )
    return result


def _associate(ae: AE, config: SourceConfig, **kwargs):
    assoc = ae.associate(str(config.host), int(config.port or 0), ae_title=config.called_aet, **kwargs)
    if not assoc.is_established:
        raise TransientError("association not established")
    return assoc


def _find_instances(config: SourceConfig) -> list[_Instance]:
    """Study → series → image C-FIND on one association."""
    ae = AE(ae_title=config.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.retry.timeout_s
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = _associate(ae, config)
    try:
        found: list[_Instance] = []
        for study in _find(assoc, "STUDY", {"StudyInstanceUID": "", **config.filters}):
            study_uid = study.StudyInstanceUID
            for series in _find(assoc, "SERIES", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": ""}):
                query = {
                    "StudyInstanceUID": study_uid,
                    "SeriesInstanceUID": series.SeriesInstanceUID,
                    "SOPInstanceUID": "",
                    "SOPClassUID": "",
                }
                found.extend(
                    _Instance(study_uid, series.SeriesInstanceUID, image.SOPInstanceUID, image.SOPClassUID)
                    for image in _find(assoc, "IMAGE", query)
                )
        return found
    finally:
        assoc.release()


def _find(assoc, level: str, keys: dict[str, str]) -> list[Dataset]:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    matches: list[Dataset] = []
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if not status:  # no status: the association was aborted or timed out
            raise TransientError("C-FIND interrupted")
        if status.Status in _PENDING and identifier is not None:
            matches.append(identifier)
        elif status.Status != 0x0000:
            raise SourceError(f"C-FIND at {level} level failed with status 0x{status.Status:04X}; check the filters")
    return matches


def _get_series(config: SourceConfig, batch: list[_Instance], staging: Path, seen: SeenInstances) -> set[str]:
    """C-GET the instances of one series at IMAGE level; return the digests staged."""
    sop_classes = sorted({i.sop_class for i in batch})
    per_class = max(1, min(len(TRANSFER_SYNTAXES), (_MAX_CONTEXTS - 1) // len(sop_classes)))
    ae = AE(ae_title=config.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.retry.timeout_s
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in sop_classes[: _MAX_CONTEXTS - 1]:
        for syntax in TRANSFER_SYNTAXES[:per_class]:
            ae.add_requested_context(sop_class, syntax)
    staged: set[str] = set()

    def on_store(event) -> int:
        digest = seen.digest(str(event.request.AffectedSOPInstanceUID))
        stage_bytes(staging, digest, event.encoded_dataset(include_meta=True))
        staged.add(digest)
        return 0x0000

    roles = [build_role(sop_class, scp_role=True) for sop_class in sop_classes]
    assoc = _associate(ae, config, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = batch[0].study
        query.SeriesInstanceUID = batch[0].series
        query.SOPInstanceUID = [i.sop for i in batch]
        for status, _identifier in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            if not status:
                raise TransientError("C-GET interrupted")
            if status.Status not in (0x0000, 0xFF00, 0xB000):
                raise SourceError(f"C-GET failed with status 0x{status.Status:04X}; check the peer's AE settings")
    finally:
        assoc.release()
    return staged
