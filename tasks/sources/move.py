"""C-MOVE retrieval for a DIMSE source (``retrieve: move``): medflow is its own move destination.

Many enterprise PACS refuse C-GET; with C-MOVE they open a *new* association to the destination AE title they
have configured (here our ``calling_aet``, at ``bind:move_port``) and C-STORE the instances there. So:

- :class:`MoveDestination` is a storage SCP, running for the whole fetch, that accepts associations from the
  peer's addresses only, stages each instance it was asked for (keyed names, as C-GET does) and acknowledges
  instances nobody asked for without keeping them;
- :func:`move_series` sends one C-MOVE per series at IMAGE level and matches what arrives to what was asked
  for. Archives may answer the C-MOVE before they have sent everything (asynchronous archives, queues), so it
  waits while instances keep arriving (up to ``move_wait_s`` without one), unless the archive's own counts
  say nothing more is on its way. Instances still missing (failed sub-operations, lost associations) are
  asked for again, with backoff, up to ``retry.attempts`` C-MOVEs.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from tasks.sources.config import SourceConfig
from tasks.sources.contexts import storage_contexts
from tasks.sources.errors import SourceError
from tasks.sources.retry import TransientError, with_retries
from tasks.sources.scp import MAX_PDU, GuardedServer, networks, quiet_pynetdicom
from tasks.sources.seen import SeenInstances
from tasks.sources.staging import stage_bytes

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (ConnectionError, TimeoutError)
_DESTINATION_UNKNOWN = 0xA801
_FINAL_OK = (0x0000, 0xB000)  # success; warning: some sub-operations failed or warned
_TRANSIENT = (0xA701, 0xA702, 0xFE00)  # out of resources; cancelled


@dataclass(frozen=True)
class MoveOutcome:
    """The archive's final answer to one C-MOVE: its status and sub-operation counts (None when absent)."""

    status: int
    completed: int | None
    failed: int | None
    warning: int | None

    @property
    def reported_sent(self) -> int | None:
        """Instances the archive says it delivered (completed or with a warning)."""
        if self.completed is None:
            return None
        return self.completed + (self.warning or 0)


class MoveDestination:
    """Our storage SCP for the C-MOVEs of one fetch; ``with`` starts and stops it."""

    def __init__(self, config: SourceConfig, staging: Path, seen: SeenInstances) -> None:
        quiet_pynetdicom()
        self.config = config
        self.staging = staging
        self.seen = seen
        self.unexpected = 0
        self._wanted: set[str] = set()
        self._arrived: set[str] = set()
        self._cond = threading.Condition()
        self._last = time.monotonic()
        ae = AE(ae_title=config.calling_aet)
        ae.supported_contexts = storage_contexts()
        ae.maximum_pdu_size = MAX_PDU
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.retry.timeout_s
        self._ae = ae
        self._server = ae.make_server(
            (config.bind, int(config.move_port or 0)),
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            server_class=GuardedServer,
            allowed=networks(peer_addresses(str(config.host))),
            listener=f"{config.name} (C-MOVE destination)",
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="move-destination", daemon=True
        )

    def __enter__(self) -> MoveDestination:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        for assoc in self._ae.active_associations:
            assoc.abort()
        self._thread.join(timeout=10)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def arrived(self, digests: set[str]) -> set[str]:
        with self._cond:
            return digests & self._arrived

    def expect(self, digests: set[str]) -> None:
        """Accept and stage these instances when they arrive."""
        with self._cond:
            self._wanted |= digests

    def wait(self, digests: set[str], quiet_s: float, settled=lambda arrived: False) -> set[str]:
        """Wait until every one of ``digests`` arrived, ``settled(arrived)`` holds, or none arrived for ``quiet_s``."""
        with self._cond:
            start = time.monotonic()
            while True:
                arrived = digests & self._arrived
                if arrived == digests or settled(arrived):
                    return arrived
                idle = time.monotonic() - max(self._last, start)
                if idle >= quiet_s:
                    return arrived
                self._cond.wait(timeout=quiet_s - idle)

    def _on_store(self, event) -> int:
        try:
            digest = self.seen.digest(str(event.request.AffectedSOPInstanceUID or ""))
            with self._cond:
                wanted = digest in self._wanted
            if not wanted:  # not asked for (an archive sending a whole series): acknowledged, not kept
                with self._cond:
                    self.unexpected += 1
                return 0x0000
            stage_bytes(self.staging, digest, event.encoded_dataset(include_meta=True))
        except Exception as exc:  # disk full, a bug: refuse, the sub-operation fails and is asked for again
            logger.error("source %s: staging a moved instance failed (%s)", self.config.name, type(exc).__name__)
            return 0xA700
        with self._cond:
            self._arrived.add(digest)
            self._last = time.monotonic()
            self._cond.notify_all()
        return 0x0000


def peer_addresses(host: str) -> list[str]:
    """The addresses of the peer (its C-STORE associations come from there), loopback when it is local."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise SourceError("the DIMSE peer's host name does not resolve; check `host` in the sources file") from None
    return sorted({info[4][0] for info in infos})


def move_series(
    config: SourceConfig, study_uid: str, series_uid: str, sop_uids: list[str], destination: MoveDestination
) -> set[str]:
    """C-MOVE the instances of one series to ``destination``, retrying what does not arrive; return the digests
    staged."""
    wanted = {destination.seen.digest(uid): uid for uid in sop_uids}
    destination.expect(set(wanted))
    wait_s = config.retry.initial_wait_s
    for attempt in range(1, config.retry.attempts + 1):
        missing = {d: u for d, u in wanted.items() if d not in destination.arrived(set(wanted))}
        if not missing:
            break
        if attempt > 1:
            logger.warning(
                "source %s: C-MOVE attempt %d: %d of %d instances of a series missing; asking again in %.1f s",
                config.name,
                attempt,
                len(missing),
                len(wanted),
                wait_s,
            )
            time.sleep(wait_s)
            wait_s = min(2 * wait_s, config.retry.max_wait_s)
        before = destination.arrived(set(missing))
        outcome = with_retries(
            lambda m=missing: _c_move(config, study_uid, series_uid, sorted(m.values())),
            config.retry,
            source=config.name,
            what="C-MOVE",
            transient=_NETWORK_ERRORS,
        )

        def settled(arrived: set[str], outcome: MoveOutcome = outcome, before: set[str] = before) -> bool:
            sent = outcome.reported_sent  # everything the archive says it sent has arrived: nothing in flight
            return bool(outcome.failed) and sent is not None and len(arrived - before) >= sent

        destination.wait(set(missing), config.move_wait_s, settled)
    return destination.arrived(set(wanted))


def _c_move(config: SourceConfig, study_uid: str, series_uid: str, sop_uids: list[str]) -> MoveOutcome:
    """One C-MOVE at IMAGE level on its own association; the archive's final status and counts."""
    ae = AE(ae_title=config.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.retry.timeout_s
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate(str(config.host), int(config.port or 0), ae_title=config.called_aet)
    if not assoc.is_established:
        raise TransientError("association not established")
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    query.SOPInstanceUID = sop_uids
    final: Dataset | None = None
    try:
        for status, _identifier in assoc.send_c_move(
            query, config.calling_aet, StudyRootQueryRetrieveInformationModelMove
        ):
            if not status:  # no status: the association was aborted or timed out
                raise TransientError("C-MOVE interrupted")
            if status.Status in (0xFF00, 0xFF01):
                continue
            final = status
    finally:
        assoc.release()
    code = int(final.Status) if final is not None else 0xFFFF
    if code == _DESTINATION_UNKNOWN:
        raise SourceError(
            f"the PACS does not know the move destination {config.calling_aet}: register medflow there as a "
            f"DICOM node (AE title {config.calling_aet}, this host, port {config.move_port})"
        )
    if code in _TRANSIENT or final is None:
        raise TransientError(f"C-MOVE status 0x{code:04X}")
    if code not in _FINAL_OK and not (0xC000 <= code <= 0xCFFF):
        raise SourceError(f"C-MOVE failed with status 0x{code:04X}; check the peer's AE settings")

    def count(keyword: str) -> int | None:
        value = final.get(keyword)
        return int(value) if value is not None else None

    return MoveOutcome(
        code,
        count("NumberOfCompletedSuboperations"),
        count("NumberOfFailedSuboperations"),
        count("NumberOfWarningSuboperations"),
    )
