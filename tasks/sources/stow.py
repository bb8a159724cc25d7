"""The listener's DICOMweb side: STOW-RS (``POST /studies`` and ``POST /studies/{study}``), Starlette + uvicorn.

The body (``multipart/related; type="application/dicom"``) is parsed as it streams in (python-multipart): each
part goes straight to a temporary file in the inbox, is fsynced, then placed and staged like a C-STORE instance;
the response (PS3.18 store instances response, ``application/dicom+json``) is sent once every part is durable:
200 all stored, 202 some failed, 409 none stored. Hosts off the allow-list get 403; more concurrent requests than
the listener allows get 503 (uvicorn's ``limit_concurrency``). Logs carry counts, never UIDs or header values.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from pathlib import Path

import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tasks.atomic import TEMP_PREFIX
from tasks.sources.config import TlsConfig
from tasks.sources.receiver import Outcome, Placement, Receiver, read_placing_fields
from tasks.sources.scp import Networks, host_allowed

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
FAILURE_REASON = {  # PS3.4 storage status codes, as STOW-RS FailureReason (0008,1197)
    Outcome.FULL: 0xA700,
    Outcome.FAILED: 0xA700,
    Outcome.NO_INSTANCE_UID: 0xC000,
    "not-dicom": 0xC000,
    "wrong-study": 0xA900,
    "wrong-type": 0xC000,
}


class TooLarge(Exception):
    """The request body is larger than the staging area may hold."""


class _Parts:
    """Streams the parts of one request into temporary files; collects (temp path or None, part content type)."""

    def __init__(self, boundary: bytes, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.received = 0
        self.parts: list[tuple[Path | None, str]] = []
        self._fh = None
        self._path: Path | None = None
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_part_data": self._data,
                "on_part_end": self._end,
                "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                "on_header_end": self._header_end,
            },
        )

    def _begin(self) -> None:
        self._headers = {}
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.folder)
        self._fh = os.fdopen(fd, "wb")
        self._path = Path(name)

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._fh.write(data[start:end])

    def _end(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        media = parse_options_header(self._headers.get("content-type", "application/dicom"))[0].decode().lower()
        self.parts.append((self._path, media))
        self._path = None

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise TooLarge
        self.parser.write(chunk)

    def discard(self) -> None:
        """Remove every temporary of this request (after a failure or once staged)."""
        if self._fh is not None:
            self._fh.close()
        for path in [p for p, _ in self.parts] + [self._path]:
            if path is not None:
                path.unlink(missing_ok=True)


def stow_app(receiver: Receiver, *, listener: str, allowed: Networks) -> Starlette:
    """The STOW-RS application of one listener."""

    async def store(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if not host_allowed(client, allowed):
            logger.warning("listener %s: STOW-RS request from %s refused (host not allowed)", listener, client)
            return Response(status_code=403)
        media, params = parse_options_header(request.headers.get("content-type", ""))
        part_type = params.get(b"type", b"application/dicom").decode("latin-1").strip('"').lower()
        boundary = params.get(b"boundary")
        if media.decode().lower() != "multipart/related" or part_type != "application/dicom" or not boundary:
            return Response(
                'STOW-RS takes multipart/related; type="application/dicom" with a boundary',
                status_code=415,
            )
        parts = _Parts(boundary, receiver.inbox.root, receiver.max_staged_bytes)
        try:
            async for chunk in request.stream():
                await run_in_threadpool(parts.feed, chunk)
            if not parts.parts:
                return Response("no parts in the multipart body", status_code=400)
            expected = request.path_params.get("study")
            results = await run_in_threadpool(_stage_all, receiver, parts.parts, expected)
        except TooLarge:
            logger.warning("listener %s: STOW-RS request larger than the staging limit; refused", listener)
            return Response("request larger than the listener's staging limit", status_code=413)
        except Exception as exc:  # a malformed body or a broken connection: nothing acknowledged
            logger.warning("listener %s: STOW-RS request failed (%s)", listener, type(exc).__name__)
            return Response("malformed multipart body", status_code=400)
        finally:
            parts.discard()
        return _response(results)

    return Starlette(
        routes=[Route("/studies", store, methods=["POST"]), Route("/studies/{study}", store, methods=["POST"])]
    )


def _stage_all(
    receiver: Receiver, parts: list[tuple[Path | None, str]], expected_study: str | None
) -> list[tuple[Placement | None, Outcome | str]]:
    """Place and stage every received part; (placement, outcome or refusal reason) per part."""
    results: list[tuple[Placement | None, Outcome | str]] = []
    expected = receiver.token_of(expected_study) if expected_study else None
    for path, media in parts:
        if path is None:
            continue
        if media != "application/dicom":
            results.append((None, "wrong-type"))
            continue
        ds = read_placing_fields(path)
        if ds is None:  # not even a DICOM header: refused, so the sender knows (nothing is acknowledged)
            results.append((None, "not-dicom"))
            continue
        placement = receiver.place(ds)
        if placement is not None and expected is not None and placement.token != expected:
            results.append((placement, "wrong-study"))
            continue
        results.append((placement, receiver.store_file(path, placement)))
    logger.info(
        "STOW-RS request: %d parts, %d stored",
        len(results),
        sum(1 for _, outcome in results if outcome in (Outcome.STORED, Outcome.NOT_ROUTED)),
    )
    return results


def _response(results: list[tuple[Placement | None, Outcome | str]]) -> Response:
    """PS3.18 store response: ReferencedSOPSequence (0008,1199) and FailedSOPSequence (0008,1198)."""
    stored, failed = [], []
    for placement, outcome in results:
        item = {}
        if placement is not None:
            item = {
                "00081150": {"vr": "UI", "Value": [placement.sop_class_uid]}
                if placement.sop_class_uid
                else {"vr": "UI"},
                "00081155": {"vr": "UI", "Value": [placement.sop_instance_uid]},
            }
        if outcome in (Outcome.STORED, Outcome.NOT_ROUTED):
            stored.append(item)
        else:
            failed.append({**item, "00081197": {"vr": "US", "Value": [FAILURE_REASON[outcome]]}})
    body: dict[str, object] = {}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if stored else 409
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON)


class StowServer:
    """uvicorn serving :func:`stow_app` in a background thread."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        listener: str,
        bind: str,
        port: int,
        allowed: Networks,
        max_requests: int,
        tls: TlsConfig | None = None,
    ) -> None:
        config = uvicorn.Config(
            stow_app(receiver, listener=listener, allowed=allowed),
            host=bind,
            port=port,
            log_level="warning",
            access_log=False,  # request lines carry UIDs
            limit_concurrency=max_requests,
            lifespan="off",
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
            ssl_ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.ca_file else ssl.CERT_NONE,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name=f"stow-{listener}", daemon=True)

    @property
    def port(self) -> int:
        sockets = [s for server in self.server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1])

    def start(self, timeout_s: float = 15.0) -> StowServer:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout_s / 0.05)):
            if self.server.started or not self._thread.is_alive():
                break
            deadline.wait(0.05)
        if not self.server.started:
            raise OSError("the STOW-RS server did not start (is the port in use?)")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
