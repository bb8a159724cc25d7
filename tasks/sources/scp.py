"""The listener's DIMSE side: a C-STORE and C-ECHO SCP (pynetdicom) with access control, limits and TLS.

- Calling AE titles on the allow-list (``require_calling_aet``; refused with A-ASSOCIATE-RJ "calling AE title
  not recognised"), peer addresses on the host allow-list (the connection is closed before any PDU is read),
  at most ``max_associations`` at once (A-ASSOCIATE-RJ "local limit exceeded").
- Each instance is acknowledged only once it is durably staged; a full staging area or a failed write answers
  0xA700 (Refused: out of resources), so the sender keeps the instance and retries later.
- A refused association is logged with the peer address and the reason, never an AE title or header value;
  pynetdicom's own logging of identifiers and PDUs is switched off (:func:`quiet_pynetdicom`).
"""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path

from pynetdicom import AE, _config, evt
from pynetdicom.dsutils import encode_file_meta
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from tasks.sources.contexts import storage_contexts
from tasks.sources.header_scan import scan_placing_fields
from tasks.sources.receiver import Outcome, Receiver, read_dataset_fields, read_placing_fields
from tasks.sources.spool import Answer, Spool, Spooled, SpoolingSocket, StoreRequest
from tasks.sources.store_messages import PREAMBLE, REFUSED

logger = logging.getLogger(__name__)

MAX_PDU = 4 * 1024 * 1024
"""Largest P-DATA PDU we receive: a CT slice in one PDU, a cine in a few (pynetdicom's default is 16 kB)."""
HANDSHAKE_TIMEOUT_S = 10.0
DUL_LOOP_DELAY_S = 0.0001
"""How long an association's DUL reactor sleeps when there is nothing to read or send (pynetdicom's
``_run_loop_delay``, 1 ms by default): it waits that long before it reads each request and sends each response."""
STATUS = {
    Outcome.STORED: 0x0000,
    Outcome.NOT_ROUTED: 0x0000,  # acknowledged: the routing rule says this modality is not wanted
    Outcome.FULL: REFUSED,
    Outcome.FAILED: REFUSED,
    Outcome.NO_INSTANCE_UID: 0xC000,  # Error: cannot understand
}


def quiet_pynetdicom() -> None:
    """Stop pynetdicom logging identifiers (C-FIND/C-MOVE keys are UIDs and names) and every PDU it handles."""
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(hosts: Sequence[str]) -> Networks:
    """The allow-list as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(h, strict=False) for h in hosts)


def host_allowed(address: str, allowed: Networks) -> bool:
    """Whether ``address`` lies in one of ``allowed`` (IPv4-mapped IPv6 addresses count as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in allowed)


class GuardedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, closing connections from hosts off the allow-list before TLS or any PDU."""

    def __init__(
        self,
        *args,
        allowed: Networks,
        listener: str,
        spool_folder: Path | None = None,
        answer: Answer | None = None,
        **kwargs,
    ) -> None:
        self.allowed = allowed
        self.listener = listener
        self.spool_folder = spool_folder
        self.answer = answer
        self._spools: dict[object, Spool] = {}  # peer address -> the spool of its connection, until it opens
        self._spools_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def claim_spool(self, address: object) -> Spool | None:
        """The spool of the connection from ``address`` (None: a TLS connection, not spooled)."""
        with self._spools_lock:
            return self._spools.pop(address, None)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept; wrap connections from allowed hosts in TLS (with a handshake time limit), or else in a
        :class:`SpoolingSocket` when the server has a ``spool_folder`` and an ``answer`` (the C-MOVE destination
        has none)."""
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a response goes out at once, not with the next
        if not host_allowed(address[0], self.allowed):
            return client, address  # verify_request closes it
        if not self.ssl_context and (self.spool_folder is None or self.answer is None):
            return client, address
        if not self.ssl_context:
            spooling = SpoolingSocket(client, Spool(self.spool_folder, self.answer))
            with self._spools_lock:
                self._spools[address] = spooling.spool
            return spooling, address  # type: ignore[return-value]
        client.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            wrapped = self.ssl_context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            client.close()
            logger.warning(
                "listener %s: TLS handshake from %s failed (%s)", self.listener, address[0], type(exc).__name__
            )
            raise OSError("TLS handshake failed") from None
        wrapped.settimeout(None)
        return wrapped, address

    def verify_request(self, request, client_address) -> bool:
        if host_allowed(client_address[0], self.allowed):
            return True
        logger.warning("listener %s: connection from %s refused (host not allowed)", self.listener, client_address[0])
        return False

    def shutdown(self) -> None:
        socketserver.BaseServer.shutdown(self)  # not pynetdicom's: this server is not in the AE's own list
        self.server_close()


class StoreSCP:
    """A running C-STORE/C-ECHO SCP that hands each instance to a :class:`Receiver`."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        listener: str,
        ae_title: str,
        bind: str,
        port: int,
        allow_ae: Sequence[str] = (),
        allow_hosts: Sequence[str] = ("127.0.0.1", "::1"),
        max_associations: int = 8,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        quiet_pynetdicom()
        self.receiver = receiver
        self.listener = listener
        self._allow_ae = {a.strip() for a in allow_ae}
        self._spools: dict[object, Spool] = {}  # association -> its spool
        self._spools_lock = threading.Lock()
        self.answered = 0  # instances answered below pynetdicom (tasks.sources.spool)
        self.spooled = 0  # of those, data sets spooled to disk as they arrived
        ae = AE(ae_title=ae_title)
        ae.supported_contexts = [*storage_contexts()]
        ae.add_supported_context(Verification)
        ae.require_calling_aet = list(allow_ae)
        ae.maximum_associations = max_associations
        ae.maximum_pdu_size = MAX_PDU
        ae.acse_timeout = 30
        ae.dimse_timeout = 120
        ae.network_timeout = 300
        self.ae = ae
        self.server: GuardedServer = ae.make_server(
            (bind, port),
            ssl_context=ssl_context,
            evt_handlers=[
                (evt.EVT_CONN_OPEN, self._on_open),
                (evt.EVT_CONN_CLOSE, self._on_close),
                (evt.EVT_C_STORE, self._on_store),
                (evt.EVT_REJECTED, self._on_rejected),
            ],
            server_class=GuardedServer,
            allowed=networks(allow_hosts),
            listener=listener,
            spool_folder=receiver.inbox.root,
            answer=self._answer,
        )
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"scp-{listener}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> StoreSCP:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, abort running associations (their unacknowledged instances are resent by the peer)."""
        if not self._thread.is_alive():  # never started (or stopped): shutdown() would wait for ever
            self.server.server_close()
            return
        self.server.shutdown()
        for assoc in self.ae.active_associations:
            assoc.abort()
        self._thread.join(timeout=10)

    def _on_open(self, event) -> None:
        """Before the association's reactors start: poll the connection more often than pynetdicom's default;
        note the connection's spool; drop those of associations that ended without closing their connection."""
        event.assoc.dul._run_loop_delay = DUL_LOOP_DELAY_S
        spool = self.server.claim_spool(event.address)
        with self._spools_lock:
            ended = [assoc for assoc in self._spools if assoc.ident is not None and not assoc.is_alive()]
            spools = [self._spools.pop(assoc) for assoc in ended]
            if spool is not None:
                spool.assoc = event.assoc
                self._spools[event.assoc] = spool
        for old in spools:
            old.close()

    def _on_close(self, event) -> None:
        with self._spools_lock:
            spool = self._spools.pop(event.assoc, None)
        if spool is not None:
            spool.close()

    def _on_store(self, event) -> int:
        """Stage one instance that came through pynetdicom (TLS, or a request not answered below it) durably,
        then answer; never raises (pynetdicom would log the traceback). The data set is written as received,
        behind a file meta header, without copying it."""
        try:
            request = event.request
            dataset = request.DataSet  # the encoded dataset as the peer sent it (BytesIO)
            with dataset.getbuffer() as body:
                return self._stage(
                    body,
                    (PREAMBLE, encode_file_meta(event.file_meta)),
                    str(request.AffectedSOPInstanceUID or ""),
                    str(request.AffectedSOPClassUID or ""),
                    event.context.transfer_syntax,
                )
        except Exception as exc:  # a bug must not acknowledge an instance that is not on disk
            logger.error("listener %s: C-STORE failed (%s); refused", self.listener, type(exc).__name__)
            return STATUS[Outcome.FAILED]

    def _answer(self, request: StoreRequest, data: memoryview | Spooled) -> int:
        """Stage one instance answered below pynetdicom (:class:`tasks.sources.spool.Spool`); never raises."""
        try:
            if isinstance(data, Spooled):
                return self._stage_spooled(data, request)
            return self._stage(
                data,
                (request.part10_header(),),
                request.sop_instance_uid,
                request.sop_class_uid,
                request.transfer_syntax,
            )
        except Exception as exc:  # a bug must not acknowledge an instance that is not on disk
            if isinstance(data, Spooled):
                data.discard()
            logger.error("listener %s: C-STORE failed (%s); refused", self.listener, type(exc).__name__)
            return STATUS[Outcome.FAILED]
        finally:
            self.answered += 1

    def _stage(
        self,
        body: memoryview,
        header: tuple[bytes, ...],
        sop_instance_uid: str,
        sop_class_uid: str,
        transfer_syntax: str,
    ) -> int:
        """Place a data set held in memory by the header read up to the Study Instance UID (the request's UIDs
        win) and write it durably behind ``header`` in one gathered write."""
        fields = scan_placing_fields(body, transfer_syntax) or read_dataset_fields(io.BytesIO(body), transfer_syntax)
        placement = self.receiver.place(fields, sop_instance_uid, sop_class_uid)
        return STATUS[self.receiver.store_bytes((*header, body), placement)]

    def _stage_spooled(self, spooled: Spooled, request: StoreRequest) -> int:
        """Place, sync and move into place a data set spooled as it arrived; refuse one whose writing failed."""
        if spooled.failed:
            spooled.discard()
            return STATUS[Outcome.FAILED]
        fields = scan_placing_fields(spooled.head, request.transfer_syntax)
        if fields is None or "StudyInstanceUID" not in fields:
            fields = read_dataset_fields(io.BytesIO(spooled.head), request.transfer_syntax)
        if spooled.data_bytes > len(spooled.head) and (fields is None or "StudyInstanceUID" not in fields):
            fields = read_placing_fields(spooled.path)  # the header may run past the part kept in memory
        placement = self.receiver.place(fields, request.sop_instance_uid, request.sop_class_uid)
        self.spooled += 1
        return STATUS[self.receiver.store_file(spooled.finish(), placement)]

    def _on_rejected(self, event) -> None:
        calling = str(event.assoc.requestor.ae_title or "").strip()
        reason = "calling AE title not allowed" if self._allow_ae and calling not in self._allow_ae else "busy"
        logger.warning(
            "listener %s: association from %s refused (%s)", self.listener, event.assoc.requestor.address, reason
        )
