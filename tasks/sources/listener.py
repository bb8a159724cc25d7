"""A listener: the C-STORE SCP and (optionally) STOW-RS endpoint of one configured source, its inbox, and the
loop that reports each study once it has been quiet for ``quiet_seconds``.

What "report" means is the caller's: ``medflow serve`` emits the ``medflow.study.received`` event (an
automation runs the ingest), ``medflow listen`` on its own ingests the study itself. On start the inbox is
recovered: temporaries of interrupted writes are deleted, and every study with staged files (a crash, or
reports that never went out) is tracked again, so it is reported once quiet. A failed report is retried. The
inbox's journal is opened (instances a crash left only there are staged first) and drained before each report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tasks.sources.config import SourceConfig, SourceKind
from tasks.sources.inbox import Inbox, listener_inbox
from tasks.sources.receiver import Receiver, modality_code, read_placing_fields
from tasks.sources.scp import StoreSCP, networks
from tasks.sources.studies import CompletedStudy, StudyTracker
from tasks.sources.tls import server_context

logger = logging.getLogger(__name__)

REFRESH_S = 5.0
"""How often the staged bytes are re-counted (ingest runs in other processes remove what they finished)."""

OnComplete = Callable[[CompletedStudy], None]


def log_to_console(level: int = logging.INFO) -> None:
    """Send the listeners' own log lines (counts, tokens, peer addresses; never header values) to stderr."""
    source_logger = logging.getLogger("tasks.sources")
    if not any(getattr(h, "_medflow_console", False) for h in source_logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler._medflow_console = True  # type: ignore[attr-defined]
        source_logger.addHandler(handler)
        source_logger.propagate = False  # Prefect's console handler, when configured, would print them twice
    source_logger.setLevel(level)


class Listener:
    """One running listener; ``with Listener(...) as listener:`` starts and stops it."""

    def __init__(self, config: SourceConfig, key: bytes, state_dir: Path, on_complete: OnComplete) -> None:
        if config.kind is not SourceKind.LISTENER:
            raise ValueError(f"source {config.name} is not a listener")
        self.config = config
        self.on_complete = on_complete
        self.inbox: Inbox = listener_inbox(state_dir, config.name)
        self.tracker = StudyTracker(config.quiet_seconds)
        self._key = key
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._run, name=f"studies-{config.name}", daemon=True)
        self.receiver: Receiver | None = None
        self.scp: StoreSCP | None = None
        self.stow = None

    def __repr__(self) -> str:
        return f"Listener({self.config.name})"

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def dimse_port(self) -> int:
        return self.scp.port if self.scp else 0

    @property
    def stow_port(self) -> int | None:
        return self.stow.port if self.stow else None

    def start(self) -> Listener:
        """Recover the inbox, then accept associations (and STOW-RS requests)."""
        config = self.config
        removed = self.inbox.remove_temporaries()  # before the journal's stager starts writing temporaries
        journaled = self.inbox.open_journal(config.journal_mb << 20)
        try:
            recovered = self._recover()
            if removed or journaled or recovered:
                logger.info(
                    "listener %s: %d interrupted writes removed, %d journaled instances staged, %d studies with "
                    "staged instances recovered",
                    config.name,
                    removed,
                    journaled,
                    recovered,
                )
            self._serve()
        except BaseException:  # a port in use, say: give the journal (and its lock) back
            self.stop()
            raise
        return self

    def _serve(self) -> None:
        """Start the SCP (and STOW-RS server) and the loop that reports quiet studies."""
        config = self.config
        self.receiver = Receiver(
            self.inbox,
            self._key,
            self.tracker,
            modalities=frozenset(config.modalities),
            max_staged_bytes=config.max_staged_bytes,
        )
        context = server_context(config.tls) if config.tls else None
        self.scp = StoreSCP(
            self.receiver,
            listener=config.name,
            ae_title=config.ae_title,
            bind=config.bind,
            port=int(config.port or 0),
            allow_ae=config.allow_ae,
            allow_hosts=config.allow_hosts,
            max_associations=config.max_associations,
            ssl_context=context,
        ).start()
        if config.stow_port is not None:
            from tasks.sources.stow import StowServer

            self.stow = StowServer(
                self.receiver,
                listener=config.name,
                bind=config.bind,
                port=config.stow_port,
                allowed=networks(config.allow_hosts),
                max_requests=config.max_associations,
                tls=config.tls,
            ).start()
        self._loop.start()
        if not config.allow_ae:
            logger.warning("listener %s: no allow_ae list; any calling AE title from an allowed host is accepted",
                           config.name)  # fmt: skip
        logger.info(
            "listener %s: DIMSE on %s:%d%s, studies complete after %.0f s without a new instance",
            config.name,
            config.bind,
            self.dimse_port,
            f", STOW-RS on port {self.stow_port}" if self.stow else "",
            config.quiet_seconds,
        )

    def stop(self) -> None:
        """Stop accepting; what was acknowledged stays staged and is reported after the next start."""
        self._stop.set()
        if self.stow is not None:
            self.stow.stop()
        if self.scp is not None:
            self.scp.stop()
        if self._loop.is_alive():
            self._loop.join(timeout=10)
        self.inbox.close_journal()

    def report_due(self) -> int:
        """Report every study that went quiet; return how many were reported."""
        reported = 0
        due = self.tracker.due()
        if due and not self.inbox.flush():
            logger.warning("listener %s: journaled instances are not all staged yet", self.config.name)
        for study in due:
            modalities = ", ".join(f"{m} {n}" for m, n in sorted(study.modalities.items()))
            logger.info(
                "listener %s: study %s complete, %d new instances (%s)",
                self.config.name,
                study.token[:8],
                study.instances,
                modalities,
            )
            try:
                self.on_complete(study)
                reported += 1
            except Exception as exc:  # report again later: the instances stay staged meanwhile
                logger.warning(
                    "listener %s: reporting study %s failed (%s); retrying in %.0f s",
                    self.config.name,
                    study.token[:8],
                    type(exc).__name__,
                    self.config.quiet_seconds,
                )
                self.tracker.restore(study)
        return reported

    def _run(self) -> None:
        refreshed = time.monotonic()
        while not self._stop.wait(min(1.0, self.config.quiet_seconds / 4)):
            if time.monotonic() - refreshed >= REFRESH_S and self.receiver is not None:
                self.receiver.refresh_staged_bytes()
                refreshed = time.monotonic()
            self.report_due()

    def _recover(self) -> int:
        """Track every study with staged files again, aged by its newest file (modalities read from headers)."""
        pending = self.inbox.pending()
        now = time.time()
        for study in pending:
            modalities = Counter(modality_code(getattr(read_placing_fields(p), "Modality", "")) for p in study.files)
            size = study.bytes
            for modality, count in modalities.items():
                self.tracker.record(study.token, modality, size, age_s=max(0.0, now - study.newest_mtime), count=count)
                size = 0
        return len(pending)
