"""The commands API: Telnyx Voice API paths over HTTP/1.1 on loopback (asyncio streams).

Routes (JSON bodies; ``Authorization: Bearer <api_key>`` when the leg's connection has
an ``api_key``)::

    POST /v2/calls                                   dial (or a simulated outside call, below)
    GET  /v2/calls/{call_control_id}                 status
    POST /v2/calls/{call_control_id}/actions/{answer|hangup|bridge|transfer|enqueue|
                                              leave_queue|playback_start|playback_stop|gather}
    POST /v2/conferences                             create (with a call_control_id)
    GET  /v2/conferences                             list
    POST /v2/conferences/{id}/actions/{join|leave}
    POST /switch/pstn_calls                          the outside world calls in (no auth)
    GET  /switch/pstn_calls/{id}, POST .../{id}/hangup  follow / end that call (no auth)

``POST /v2/calls`` without ``connection_id``, to a number a connection owns, is also an
outside call. Responses: ``{"data": ...}``, or ``{"errors": [{"code", "title",
"detail"}]}`` with 401/404/422.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from softphone.switch import cccommands
from softphone.switch.callcontrol import CommandError, parse_headers

if TYPE_CHECKING:
    from softphone.switch.callcontrol import CallControl
    from softphone.switch.cclegs import CCLeg

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


class ApiServer:
    """HTTP front of a :class:`~softphone.switch.callcontrol.CallControl` engine."""

    def __init__(self, cc: CallControl, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cc = cc
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._request(reader)
        except CommandError as exc:
            status, body = exc.status, _error(exc)
        except Exception:
            logger.exception("commands API failure")
            status, body = 500, {"errors": [{"code": "10007", "title": "Unexpected error"}]}
        data = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode() + data)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        line = (await asyncio.wait_for(reader.readline(), 10.0)).decode("latin-1").split()
        if len(line) < 2:
            raise CommandError(400, "10002", "Bad request", "malformed request line")
        method, target = line[0].upper(), line[1]
        headers: dict[str, str] = {}
        while True:
            raw = await asyncio.wait_for(reader.readline(), 10.0)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            raise CommandError(413, "10002", "Body too large")
        payload: Any = {}
        if length:
            try:
                payload = json.loads(await reader.readexactly(length))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CommandError(400, "10002", "Invalid JSON", str(exc)) from exc
        if not isinstance(payload, dict):
            raise CommandError(400, "10002", "Body must be a JSON object")
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        path = target.split("?", 1)[0].rstrip("/")
        return 200, {"data": await self.route(method, path, payload, token)}

    def _authorize(self, connection_id: str, token: str) -> None:
        app = self.cc.apps.get(connection_id)
        if app is not None and app.api_key and token != app.api_key:
            raise CommandError(401, "10009", "Authentication failed", "missing or wrong API key")

    async def route(self, method: str, path: str, body: dict[str, Any], token: str) -> Any:
        """Dispatch one API request (also usable in-process, without HTTP)."""
        parts = [p for p in path.split("/") if p]
        cc = self.cc
        if parts[:2] == ["switch", "pstn_calls"]:
            # The simulated outside world: no API key (it is not the customer calling).
            if len(parts) == 2 and method == "POST":
                return (await self._outside(body)).status()
            outside = cc.leg(parts[2]) if len(parts) >= 3 else None
            if outside is not None and outside.kind == "pstn":
                if len(parts) == 3 and method == "GET":
                    return outside.status()
                if len(parts) == 4 and parts[3] == "hangup" and method == "POST":
                    await cc.hangup_leg(outside, "NORMAL_CLEARING")
                    return {"result": "ok"}
        if parts[:2] == ["v2", "calls"]:
            if len(parts) == 2 and method == "POST":
                return await self._dial(body, token)
            if len(parts) == 3 and method == "GET":
                leg = cc.leg(parts[2])
                self._authorize(leg.connection_id, token)
                return leg.status()
            if len(parts) == 5 and parts[3] == "actions" and method == "POST":
                leg = cc.leg(parts[2])
                self._authorize(leg.connection_id, token)
                action = cccommands.ACTIONS.get(parts[4])
                if action is None:
                    raise CommandError(404, "10005", "Unknown action", parts[4])
                return await action(cc, leg, body)
        if parts[:2] == ["v2", "conferences"]:
            if len(parts) == 2 and method == "POST":
                cid = body.get("call_control_id")
                leg = cc.leg(cid if isinstance(cid, str) else "")
                self._authorize(leg.connection_id, token)
                return await cccommands.conference_create(cc, body)
            if len(parts) == 2 and method == "GET":
                return [c.record() for c in cc.conferences.values()]
            if len(parts) == 5 and parts[3] == "actions" and method == "POST":
                conf = cc.conferences.get(parts[2])
                if conf is None:
                    raise CommandError(404, "10005", "Resource not found", f"no conference {parts[2]}")
                self._authorize(conf.connection_id, token)
                if parts[4] == "join":
                    return await cccommands.conference_join(cc, conf, body)
                if parts[4] == "leave":
                    return await cccommands.conference_leave(cc, conf, body)
        raise CommandError(404, "10005", "Resource not found", f"{method} {path}")

    async def _outside(self, body: dict[str, Any]) -> CCLeg:
        from_ = _req(body, "from")
        to = _req(body, "to")
        rec = body.get("record_path")
        return await self.cc.outside_call(
            from_,
            to,
            audio=_opt(body, "audio_url"),
            record_path=rec if isinstance(rec, str) and rec else None,
            dtmf=_opt(body, "dtmf"),
            dtmf_delay=float(body.get("dtmf_delay_secs", 3.0)),
            client_state=_opt(body, "client_state"),
        )

    async def _dial(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        cc = self.cc
        conn_id = _opt(body, "connection_id")
        to = _req(body, "to")
        if not conn_id and cc.switch.accounts.by_number(to) is not None:
            return (await self._outside(body)).status()
        if not conn_id:
            raise CommandError(422, "10015", "Invalid value for connection_id", "connection_id is required")
        if cc.switch.accounts.connection(conn_id) is None:
            raise CommandError(422, "10015", "Invalid value for connection_id", f"no connection {conn_id}")
        self._authorize(conn_id, token)
        timeout = body.get("timeout_secs", cc.options.dial_timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise CommandError(422, "10015", "Invalid value for timeout_secs", "must be a positive number")
        link = _opt(body, "link_to")
        leg = cc.dial(
            conn_id,
            to,
            _opt(body, "from"),
            client_state=_opt(body, "client_state"),
            timeout=float(timeout),
            custom_headers=parse_headers(body.get("custom_headers")),
            audio=_opt(body, "audio_url"),
            link_to=cc.legs.get(link) if link else None,
        )
        return leg.status()


def _req(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v:
        raise CommandError(422, "10015", f"Invalid value for {key}", f"{key} is required")
    return v


def _opt(body: dict[str, Any], key: str) -> str:
    v = body.get(key, "")
    return v if isinstance(v, str) else ""


def _error(exc: CommandError) -> dict[str, Any]:
    return {"errors": [{"code": exc.code, "title": exc.title, "detail": exc.detail}]}
