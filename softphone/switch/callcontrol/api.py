"""The commands API: Telnyx Voice API paths over HTTP/1.1 on loopback (asyncio streams).

Routes (JSON bodies; ``Authorization: Bearer <api_key>`` when the leg's connection has
an ``api_key``)::

    POST /v2/calls                                   dial (or a simulated outside call, below)
    GET  /v2/calls/{call_control_id}                 status
    POST /v2/calls/{call_control_id}/actions/{name}  every action of commands.ACTIONS (answer, hangup,
                                                     bridge, transfer, enqueue, leave_queue, gather, and
                                                     the voice, recording, streaming and transcription ones)
    POST /v2/conferences                             create (with a call_control_id)
    GET  /v2/conferences                             list
    POST /v2/conferences/{id}/actions/{join|leave}
    GET  /v2/conferences/{id}                        one conference
    POST /switch/pstn_calls                          the outside world calls in (no auth; ``record_path``
                                                     is a file name under <data dir>/recordings/,
                                                     ``audio_url`` follows softphone.switch.callcontrol.mediafiles)
    GET  /switch/pstn_calls/{id}, POST .../{id}/hangup  follow / end that call (no auth)

Other modules add routes with :func:`softphone.switch.callcontrol.routes.register_route` (import it
from ``routes``, not from here, so that no import cycle forms; ``{name}`` path segments, an
``async handler(api, params, body, token)``; return a :class:`RawResponse` for a body that is
not ``{"data": ...}``, e.g. a token as text/plain or a recording as audio); they are tried
before the built-in routes above: the telephony credentials and their tokens
(:mod:`~softphone.switch.callcontrol.credentials`), queues and a connection's active calls
(:mod:`~softphone.switch.callcontrol.views`), recordings, the TeXML Calls API. Bodies are
JSON, or forms (``application/x-www-form-urlencoded``). Connections are kept alive between
HTTP/1.1 requests (as the SDK's httpx pool expects) unless the client sends ``Connection: close``.

``POST /v2/calls`` without ``connection_id``, to a number a connection owns, is also an
outside call. Responses: ``{"data": ...}``, or ``{"errors": [{"code", "title",
"detail"}]}`` with 400/401/404/408/411/413/422/431. A key sees only its own
connection's calls, conferences and credentials (and those of connections without a key).
Every route is tested through the official ``telnyx`` SDK (tests/callcontrol/test_sdk_*.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol import commands as cccommands
from softphone.switch.callcontrol import (
    credentials,  # registers /v2/telephony_credentials
    routes,
    views,  # noqa: F401 - registers /v2/queues and /v2/connections/{id}/active_calls
)
from softphone.switch.callcontrol.engine import CommandError, parse_headers
from softphone.switch.callcontrol.mediafiles import MediaRefused, recording_path
from softphone.switch.callcontrol.routes import RawResponse, Request, current_request, register_route, route
from softphone.switch.callcontrol.webhooks import iso_now

if TYPE_CHECKING:
    from softphone.switch.callcontrol.conference import Conference
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

__all__ = ["ApiServer", "RawResponse", "Request", "current_request", "register_route", "route"]

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20
MAX_HEADERS = 100
READ_TIMEOUT_S = 10.0
_REQUEST_LINE = re.compile(rb"^[A-Z]+ /[!-~]* HTTP/1\.[01]\r?\n$")
MAX_COMMAND_IDS = 10_000
"""``command_id``s remembered (the oldest are forgotten first)."""
KEEPALIVE_IDLE_S = 15.0
"""An idle kept-alive connection is closed after this long (httpx, under the SDK, drops its own after 5 s)."""
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class _Exchange:
    """One request/response on a connection: whether the connection then serves another request."""

    __slots__ = ("keep",)

    def __init__(self) -> None:
        self.keep = False


class ApiServer:
    """HTTP front of a :class:`~softphone.switch.callcontrol.engine.CallControl` engine."""

    def __init__(self, cc: CallControl, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cc = cc
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._commands: collections.OrderedDict[tuple[str, str], asyncio.Future[Any]] = collections.OrderedDict()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        restored = credentials.restore(self)
        if restored:
            logger.info("%d telephony credential(s) restored from %s", restored, credentials.store_path(self))
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in list(self._writers):  # idle keep-alive connections end with the server
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: HTTP/1.1 requests in turn while the client keeps it alive (the SDK's
        connection pool does), else one request; idle for :data:`KEEPALIVE_IDLE_S`, it is closed."""
        self._writers.add(writer)
        try:
            first: bytes | None = None
            while True:
                conn = _Exchange()
                status, body = await self._serve_one(reader, conn, first)
                await self._respond(writer, status, body, keep=conn.keep)
                if not conn.keep:
                    return
                first = await self._next_request_line(reader)
                if first is None:
                    return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    @staticmethod
    async def _next_request_line(reader: asyncio.StreamReader) -> bytes | None:
        """The request line of the next request on a kept-alive connection, or None to close it
        quietly: EOF, idle for :data:`KEEPALIVE_IDLE_S`, or bytes that are no request line (leftovers
        of a body sent without a right Content-Length are not answered as a request of their own)."""
        for _ in range(4):  # a client may send stray CRLFs between requests (RFC 9112 2.2)
            try:
                line = await asyncio.wait_for(reader.readline(), KEEPALIVE_IDLE_S)
            except (TimeoutError, ValueError, asyncio.LimitOverrunError, ConnectionError):
                return None
            if not line:
                return None
            if line.strip():
                return line if _REQUEST_LINE.match(line) else None
        return None

    async def _serve_one(
        self, reader: asyncio.StreamReader, conn: _Exchange, first: bytes | None
    ) -> tuple[int, dict[str, Any] | RawResponse]:
        try:
            return await self._request(reader, conn, first)
        except CommandError as exc:
            return exc.status, _error(exc)
        except TimeoutError:
            conn.keep = False
            return 408, _error(CommandError(408, "10002", "Request timeout", "request not received in time"))
        except Exception:
            conn.keep = False
            logger.exception("commands API failure")
            return 500, {"errors": [{"code": "10007", "title": "Unexpected error", "detail": ""}]}

    async def _respond(
        self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any] | RawResponse, *, keep: bool
    ) -> None:
        extra = ""
        if isinstance(body, RawResponse):
            status, content_type, data = body.status, body.content_type, body.body
            extra = "".join(f"{k}: {v}\r\n" for k, v in body.headers)
        else:
            content_type, data = "application/json", json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
            f"{extra}Content-Length: {len(data)}\r\nConnection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode() + data)
            await writer.drain()

    async def _request(
        self, reader: asyncio.StreamReader, conn: _Exchange, first: bytes | None = None
    ) -> tuple[int, dict[str, Any] | RawResponse]:
        line = (first if first is not None else await _read_line(reader)).decode("latin-1").split()
        if len(line) not in (2, 3) or not line[0].isalpha() or not line[1].startswith("/"):
            raise CommandError(400, "10002", "Bad request", "malformed request line")
        method, target = line[0].upper(), line[1]
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            raw = await _read_line(reader)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("latin-1").partition(":")
            if not colon or not name.strip():
                raise CommandError(400, "10002", "Bad request", "malformed header line")
            headers[name.strip().lower()] = value.strip()
        else:
            raise CommandError(431, "10002", "Too many headers", f"more than {MAX_HEADERS} header lines")
        if "transfer-encoding" in headers:
            raise CommandError(411, "10002", "Length required", "chunked bodies are not supported: send Content-Length")
        raw_length = headers.get("content-length", "0") or "0"
        if not raw_length.isascii() or not raw_length.isdigit():
            raise CommandError(400, "10002", "Bad request", "Content-Length must be a non-negative integer")
        length = int(raw_length)
        if length > MAX_BODY:
            raise CommandError(413, "10002", "Body too large", f"at most {MAX_BODY} bytes")
        payload: Any = {}
        data = b""
        if length:
            try:
                data = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S)
            except asyncio.IncompleteReadError as exc:
                raise CommandError(400, "10002", "Bad request", "body shorter than Content-Length") from exc
            try:
                payload = _parse_body(data, headers.get("content-type", ""))
            except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise CommandError(400, "10002", "Invalid JSON", "the body is not valid JSON") from exc
        if not isinstance(payload, dict):
            raise CommandError(400, "10002", "Body must be a JSON object")
        # The whole request has been read: the connection may serve another one.
        conn.keep = len(line) == 3 and line[2] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        path, _, query = target.partition("?")
        path = path.rstrip("/")
        routes.set_current(Request(method, path, dict(urllib.parse.parse_qsl(query)), headers, data))
        result = await self.route(method, path, payload, token)
        if isinstance(result, RawResponse):
            return result.status, result
        return 200, {"data": result}

    async def _once(self, call_control_id: str, body: dict[str, Any], run: Callable[[], Awaitable[Any]]) -> Any:
        """Run a leg action once per ``command_id`` (Telnyx: a command repeating the ``command_id`` of
        an earlier one on the same call is ignored): a repeat gets the first one's answer, waiting
        for it while it runs. A command that failed may be sent again with the same id."""
        command_id = body.get("command_id")
        if not isinstance(command_id, str) or not command_id:
            return await run()
        key = (call_control_id, command_id)
        earlier = self._commands.get(key)
        if earlier is not None:
            return await asyncio.shield(earlier)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._commands[key] = fut
        while len(self._commands) > MAX_COMMAND_IDS:
            self._commands.popitem(last=False)
        try:
            result = await run()
        except Exception as exc:
            self._commands.pop(key, None)
            fut.set_exception(exc)
            fut.exception()  # retrieved: repeats waiting on it get it, nobody else needs to
            raise
        except BaseException:
            self._commands.pop(key, None)
            fut.cancel()
            raise
        fut.set_result(result)
        return result

    def allowed(self, connection_id: str, token: str) -> bool:
        """True when ``token`` may touch ``connection_id``'s resources (a connection without an api_key is open)."""
        return self._allowed(connection_id, token)

    def authorize(self, connection_id: str, token: str) -> None:
        """Raise a Telnyx 401 unless ``token`` may touch ``connection_id``'s resources."""
        self._authorize(connection_id, token)

    def _allowed(self, connection_id: str, token: str) -> bool:
        app = self.cc.apps.get(connection_id)
        return app is None or not app.api_key or token == app.api_key

    def _authorize(self, connection_id: str, token: str) -> None:
        if not self._allowed(connection_id, token):
            raise CommandError(401, "10009", "Authentication failed", "missing or wrong API key")

    def _authorize_refs(self, body: dict[str, Any], token: str) -> None:
        """A command naming another call (bridge, conferences) must be allowed to touch that call too."""
        other = body.get("call_control_id")
        if isinstance(other, str) and other in self.cc.legs:
            self._authorize(self.cc.legs[other].connection_id, token)

    async def route(self, method: str, path: str, body: dict[str, Any], token: str) -> Any:
        """Dispatch one API request (also usable in-process, without HTTP)."""
        parts = [p for p in path.split("/") if p]
        found = routes.find(method, parts)
        if found is not None:
            handler, params = found
            return await handler(self, params, body, token)
        cc = self.cc
        if parts[:2] == ["switch", "pstn_calls"]:
            # The simulated outside world: no API key (it is not the customer calling).
            if len(parts) == 2 and method == "POST":
                return self._outside_status(await self._outside(body, from_pstn_route=True))
            outside = cc.legs.get(parts[2]) if len(parts) >= 3 else None
            if outside is not None and outside.kind == "pstn" and outside.direction == "incoming":
                if len(parts) == 3 and method == "GET":
                    return self._outside_status(outside)
                if len(parts) == 4 and parts[3] == "hangup" and method == "POST":
                    await cc.hangup_leg(outside, "NORMAL_CLEARING")
                    return {"result": "ok"}
        if parts[:2] == ["v2", "calls"]:
            if len(parts) == 2 and method == "POST":
                return await self._dial(body, token)
            if len(parts) == 3 and method == "GET":
                leg = cc.leg(parts[2])
                self._authorize(leg.connection_id, token)
                return call_status(leg)
            if len(parts) == 5 and parts[3] == "actions" and method == "POST":
                leg = cc.leg(parts[2])
                self._authorize(leg.connection_id, token)
                action = cccommands.ACTIONS.get(parts[4])
                if action is None:
                    raise CommandError(404, "10005", "Unknown action", parts[4])
                self._authorize_refs(body, token)
                return await self._once(leg.call_control_id, body, lambda: action(cc, leg, body))
        if parts[:2] == ["v2", "conferences"]:
            if len(parts) == 2 and method == "POST":
                cid = body.get("call_control_id")
                leg = cc.leg(cid if isinstance(cid, str) else "")
                self._authorize(leg.connection_id, token)
                created = await cccommands.conference_create(cc, body)
                conf = cc.conferences.get(created.get("id", ""))
                return conference_object(conf) if conf is not None else created
            if len(parts) == 2 and method == "GET":
                if token and not any(a.api_key == token for a in cc.apps.values()) and all(
                    a.api_key for a in cc.apps.values()
                ):
                    raise CommandError(401, "10009", "Authentication failed", "wrong API key")
                mine = [conference_object(c) for c in cc.conferences.values() if self._allowed(c.connection_id, token)]
                return routes.page(mine)
            if len(parts) >= 3:
                conf = cc.conferences.get(parts[2])
                if conf is None or not self._allowed(conf.connection_id, token):
                    # Another connection's conference does not exist for this key (no probing by id).
                    raise CommandError(404, "10005", "Resource not found", f"no conference {parts[2]}")
                if len(parts) == 3 and method == "GET":
                    return conference_object(conf)
                if len(parts) == 5 and parts[3] == "actions" and method == "POST":
                    self._authorize_refs(body, token)
                    if parts[4] == "join":
                        return await cccommands.conference_join(cc, conf, body)
                    if parts[4] == "leave":
                        return await cccommands.conference_leave(cc, conf, body)
        raise CommandError(404, "10005", "Resource not found", f"{method} {path}"[:200])

    def _outside_status(self, leg: CCLeg) -> dict[str, Any]:
        out = leg.status()
        rec = getattr(leg.endpoint, "record_path", None)
        if rec is not None:
            out["recording"] = {"path": str(rec), "saved": bool(getattr(leg.endpoint, "recording_saved", False))}
        return out

    async def _outside(self, body: dict[str, Any], *, from_pstn_route: bool = False) -> CCLeg:
        from_ = _req(body, "from")
        to = _req(body, "to")
        if self.cc.switch.accounts.by_number(to) is None:
            raise CommandError(422, "10015", "Invalid value for to", f"no connection owns {to}"[:200])
        rec = body.get("record_path") if from_pstn_route else None
        if rec is not None and not isinstance(rec, str):
            raise CommandError(422, "10015", "Invalid value for record_path", "record_path must be a file name")
        record = None
        if rec:
            try:
                record = recording_path(self.cc.options.data_dir, rec)
            except MediaRefused as exc:
                raise CommandError(422, "10015", "Invalid value for record_path", str(exc)) from exc
        delay = body.get("dtmf_delay_secs", 3.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise CommandError(422, "10015", "Invalid value for dtmf_delay_secs", "must be a number of seconds 0-3600")
        audio = _str(body, "audio_url")
        return await self.cc.outside_call(
            from_,
            to,
            audio=audio,
            record_path=record,
            dtmf=_str(body, "dtmf"),
            dtmf_delay=float(delay),
            client_state=_str(body, "client_state"),
        )

    async def _dial(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        cc = self.cc
        conn_id = _opt(body, "connection_id")
        to = _req(body, "to")
        if not conn_id and cc.switch.accounts.by_number(to) is not None:
            return call_status(await self._outside(body))
        if not conn_id:
            raise CommandError(422, "10015", "Invalid value for connection_id", "connection_id is required")
        if cc.switch.accounts.connection(conn_id) is None:
            raise CommandError(422, "10015", "Invalid value for connection_id", f"no connection {conn_id}")
        self._authorize(conn_id, token)
        timeout = body.get("timeout_secs", cc.options.dial_timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise CommandError(422, "10015", "Invalid value for timeout_secs", "must be a positive number")
        link = _opt(body, "link_to")
        link_leg = cc.legs.get(link) if link else None
        if link_leg is not None:
            self._authorize(link_leg.connection_id, token)
        audio_url = _str(body, "audio_url")
        audio = await cc.media(audio_url, loop=True) if audio_url else None
        leg = cc.dial(
            conn_id,
            to,
            _opt(body, "from"),
            client_state=_opt(body, "client_state"),
            timeout=float(timeout),
            custom_headers=parse_headers(body.get("custom_headers")),
            audio=audio,
            link_to=link_leg,
        )
        return call_status(leg)


CONFERENCE_LIFETIME_S = 4 * 3600
"""A conference's ``expires_at`` is this long after it was created (Telnyx's default duration is 4 h)."""


def call_status(leg: CCLeg) -> dict[str, Any]:
    """The call object of dial and GET /v2/calls/{id}, as the SDK's ``CallDialResponse`` /
    ``CallRetrieveStatusResponse`` declare it: the leg's status plus ``start_time``/``end_time``."""
    out = leg.status()
    out["start_time"] = iso_now(leg.created)
    out["end_time"] = iso_now(leg.ended_at) if leg.ended_at is not None else None
    return out


def conference_object(conf: Conference) -> dict[str, Any]:
    """The conference object as the SDK's ``Conference`` declares it (``created_at``, ``expires_at``,
    ``updated_at``, ``end_reason`` beside the engine's record)."""
    out = conf.record()
    out["created_at"] = iso_now(conf.created_at)
    out["updated_at"] = iso_now(conf.created_at)
    out["expires_at"] = iso_now(conf.created_at + CONFERENCE_LIFETIME_S)
    out["region"] = "US"
    if conf.ended:
        out["end_reason"] = "all_left"
    return out


def _req(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v:
        raise CommandError(422, "10015", f"Invalid value for {key}", f"{key} is required")
    return v


def _str(body: dict[str, Any], key: str) -> str:
    """An optional string field (absent or null: ""); any other type is a 422."""
    v = body.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise CommandError(422, "10015", f"Invalid value for {key}", f"{key} must be a string")
    return v


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)
    except (ValueError, asyncio.LimitOverrunError) as exc:  # a line over the stream limit (64 KiB)
        raise CommandError(431, "10002", "Header line too long", "request or header line over 64 KiB") from exc


def _opt(body: dict[str, Any], key: str) -> str:
    v = body.get(key, "")
    return v if isinstance(v, str) else ""


def _parse_body(data: bytes, content_type: str) -> Any:
    """JSON (the default), or a form (application/x-www-form-urlencoded) as a dict of strings."""
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        return dict(urllib.parse.parse_qsl(data.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    return json.loads(data)


def _error(exc: CommandError) -> dict[str, Any]:
    return {"errors": [{"code": exc.code, "title": exc.title, "detail": exc.detail}]}
