"""JSON-RPC 2.0 framing as Telnyx uses it (PROTOCOL.md §1.2-1.3).

One JSON object per websocket text frame. Requests carry ``id``, ``method`` and
``params``; responses carry the same ``id`` and ``result`` or ``error``. Some frames
carry extra top-level keys (``voice_sdk_id``; ``type`` on ``debug_report_*`` frames,
which have an ``id`` but no ``method``). Server ids are integers, client ids UUID strings;
a response must echo the id with its JSON type unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from softphone.errors import RemoteProtocolError

#: Frames above this size are refused before parsing (a 10 MB frame must not stall us).
MAX_FRAME_BYTES = 1_000_000
#: JSON nested deeper than this is refused (json.loads would otherwise recurse deeply).
MAX_DEPTH = 64

JsonId: TypeAlias = "str | int"
JsonObject: TypeAlias = "dict[str, Any]"


@dataclass(frozen=True)
class Request:
    """A request (or notification when ``id`` is None). ``method`` is "" for frames without one."""

    id: str | int | None
    method: str
    params: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def voice_sdk_id(self) -> str | None:
        value = self.extra.get("voice_sdk_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Response:
    """A successful response."""

    id: str | int
    result: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def voice_sdk_id(self) -> str | None:
        value = self.extra.get("voice_sdk_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ErrorResponse:
    """An error response. ``id`` may be None when the peer could not tell which request failed."""

    id: str | int | None
    code: int
    message: str
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def voice_sdk_id(self) -> str | None:
        value = self.extra.get("voice_sdk_id")
        return value if isinstance(value, str) else None


Message: TypeAlias = "Request | Response | ErrorResponse"


def _depth_ok(text: str, limit: int) -> bool:
    """Cheap nesting check that ignores brackets inside strings."""
    if text.count("{") + text.count("[") <= limit:  # cannot nest deeper (C-speed; the loop below costs ~60 us per SDP)
        return True
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def parse_message(text: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Message:
    """Parse one frame. Raises :class:`RemoteProtocolError` on anything malformed."""
    if isinstance(text, bytes | bytearray):
        if len(text) > max_bytes:
            raise RemoteProtocolError(f"frame of {len(text)} bytes exceeds the limit of {max_bytes}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("frame is not valid UTF-8") from exc
    if len(text) > max_bytes:
        raise RemoteProtocolError(f"frame of {len(text)} characters exceeds the limit of {max_bytes}")
    if not _depth_ok(text, MAX_DEPTH):
        raise RemoteProtocolError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"frame is not JSON: {exc}") from exc
    return message_from_obj(obj)


def message_from_obj(obj: Any) -> Message:
    """Classify an already-decoded JSON value as a request, response or error."""
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"frame is a JSON {type(obj).__name__}, not an object")
    known = {"jsonrpc", "id", "method", "params", "result", "error"}
    extra = {k: v for k, v in obj.items() if k not in known}
    msg_id = obj.get("id")
    if msg_id is not None and not _valid_id(msg_id):
        raise RemoteProtocolError(f"invalid id {msg_id!r}")
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            raise RemoteProtocolError(f"method is {type(method).__name__}, not a string")
        params = obj.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RemoteProtocolError(f"{method}: params is {type(params).__name__}, not an object")
        return Request(id=msg_id, method=method, params=params, extra=extra)
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict):
            raise RemoteProtocolError("error member is not an object")
        code = err.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise RemoteProtocolError(f"error code {code!r} is not an integer")
        message = err.get("message", "")
        if not isinstance(message, str):
            message = str(message)
        return ErrorResponse(id=msg_id, code=code, message=message, data=err.get("data"), extra=extra)
    if "result" in obj:
        if msg_id is None:
            raise RemoteProtocolError("response without an id")
        return Response(id=msg_id, result=obj["result"], extra=extra)
    if msg_id is not None:
        # debug_report_* frames: an id and a top-level "type", no method (PROTOCOL.md §9.1).
        return Request(id=msg_id, method="", params={}, extra=extra)
    raise RemoteProtocolError("frame is neither a request nor a response")


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def build_request(
    msg_id: str | int | None, method: str, params: dict[str, Any], **extra: Any
) -> str:
    """Serialise a request; ``extra`` adds top-level keys (e.g. ``voice_sdk_id``)."""
    obj: dict[str, Any] = {"jsonrpc": "2.0"}
    if msg_id is not None:
        obj["id"] = msg_id
    obj["method"] = method
    obj.update({k: v for k, v in extra.items() if v is not None})
    obj["params"] = params
    return _dump(obj)


def build_result(msg_id: str | int | None, result: Any, **extra: Any) -> str:
    """Serialise a successful response echoing ``msg_id`` with its JSON type."""
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "result": result}
    obj.update({k: v for k, v in extra.items() if v is not None})
    return _dump(obj)


def build_error(msg_id: str | int | None, code: int, message: str) -> str:
    """Serialise an error response."""
    return _dump({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})
