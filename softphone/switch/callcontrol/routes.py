"""The commands API's route registry: HTTP routes added by the modules that implement them.

A module adds its routes at import time::

    from softphone.switch.callcontrol.routes import RawResponse, register_route

    async def create_token(api, params, body, token):
        api.authorize(connection_id, token)        # a Telnyx 401 unless the key may touch it
        return RawResponse.text(jwt)               # or a dict/list: sent as {"data": ...}

    register_route("POST", "/v2/telephony_credentials/{id}/token", create_token)

and is imported by :mod:`softphone.switch.callcontrol.api` (or by a module it imports, e.g. through
the ACTIONS merge line of :mod:`~softphone.switch.callcontrol.commands`). This module imports
nothing of Call Control, so route modules never form an import cycle with the API server.

Handlers raise :class:`~softphone.switch.callcontrol.engine.CommandError` for a Telnyx error body
(``{"errors": [{"code", "title", "detail"}]}`` with its status).
"""

from __future__ import annotations

import contextvars
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ApiContext",
    "Handler",
    "RawResponse",
    "Request",
    "current_request",
    "find",
    "page",
    "register_route",
    "route",
]


class ApiContext(Protocol):
    """What a handler gets as ``api`` (the :class:`~softphone.switch.callcontrol.api.ApiServer`)."""

    cc: Any
    """The :class:`~softphone.switch.callcontrol.engine.CallControl` engine (typed ``Any`` so that this
    module imports nothing of Call Control: annotate it where used, ``cc: CallControl = api.cc``)."""

    @property
    def url(self) -> str: ...

    def allowed(self, connection_id: str, token: str) -> bool:
        """True when ``token`` may touch ``connection_id``'s resources."""
        ...

    def authorize(self, connection_id: str, token: str) -> None:
        """Raise a Telnyx 401 unless ``token`` may touch ``connection_id``'s resources."""
        ...


@dataclass(frozen=True)
class RawResponse:
    """A response written as is (not wrapped in ``{"data": ...}``): a token as text/plain,
    a recording as audio/wav, or a whole JSON document (see :meth:`json`)."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, document: Any, status: int = 200) -> RawResponse:
        """A JSON body sent without the ``{"data": ...}`` envelope (e.g. with ``meta`` beside ``data``)."""
        return cls(status, "application/json", json.dumps(document).encode())

    @classmethod
    def text(cls, text: str, status: int = 200) -> RawResponse:
        return cls(status, "text/plain; charset=utf-8", text.encode())


@dataclass(frozen=True)
class Request:
    """The request being served (what a route handler may need beyond its arguments)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    """The query string, decoded (``page[number]``, ``filter[connection_id]`` ... as flat keys)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Header names lower-cased."""
    raw_body: bytes = b""


Handler = Callable[[ApiContext, dict[str, str], dict[str, Any], str], Awaitable[Any]]
"""``async handler(api, params, body, token) -> data``: ``params`` holds the pattern's ``{name}``
segments, ``body`` the JSON object (or form) sent (``{}`` without a body), ``token`` the bearer token
("" without one; the handler authorizes, e.g. with ``api.authorize(connection_id, token)``).
The result is sent as ``{"data": result}`` with 200, unless it is a :class:`RawResponse`."""


@dataclass(frozen=True)
class Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler

    def match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        if method != self.method or len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.segments, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


ROUTES: list[Route] = []
"""The registered routes, in registration order."""
_current: contextvars.ContextVar[Request] = contextvars.ContextVar("softphone_api_request")


def register_route(method: str, pattern: str, handler: Handler) -> Handler:
    """Add an HTTP route to every API server (call at import time of the module that owns it).

    ``pattern`` is a path such as ``"/v2/telephony_credentials/{id}/token"``; each ``{name}``
    matches one non-empty path segment (percent-decoded) and is passed in ``params``.
    Registered routes are tried before the built-in ones, in registration order; registering
    the same method and pattern again replaces the earlier handler (module reloads in tests).
    Returns the handler (see :func:`route` for the decorator form).
    """
    segments = tuple(p for p in pattern.split("/") if p)
    method = method.upper()
    for i, existing in enumerate(ROUTES):
        if existing.method == method and existing.segments == segments:
            ROUTES[i] = Route(method, segments, handler)
            return handler
    ROUTES.append(Route(method, segments, handler))
    return handler


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Decorator form of :func:`register_route`."""

    def deco(handler: Handler) -> Handler:
        return register_route(method, pattern, handler)

    return deco


def find(method: str, parts: list[str]) -> tuple[Handler, dict[str, str]] | None:
    """The first registered route matching ``method`` and the (still percent-encoded) path ``parts``."""
    if not ROUTES:
        return None
    decoded = [urllib.parse.unquote(p) for p in parts]
    for r in ROUTES:
        params = r.match(method, decoded)
        if params is not None:
            return r.handler, params
    return None


def set_current(request: Request) -> None:
    """Called by the API server for each request (one task per connection, so no handler sees another's)."""
    _current.set(request)


def current_request() -> Request:
    """The request being served by the calling handler (query string, headers, raw body)."""
    try:
        return _current.get()
    except LookupError:  # called in-process through ApiServer.route()
        return Request("", "")


def page(items: list[Any], query: dict[str, str] | None = None) -> RawResponse:
    """A Telnyx list response: ``{"data": [...], "meta": {page_number, page_size, total_pages,
    total_results}}`` for ``page[number]``/``page[size]`` in the query (default 1 and 20, size
    at most 250), the shape the SDK's ``DefaultFlatPagination`` pages through."""
    q = query if query is not None else current_request().query
    number = _positive(q.get("page[number]"), 1)
    size = min(_positive(q.get("page[size]"), 20), 250)
    total = len(items)
    pages = max(1, -(-total // size))
    chunk = items[(number - 1) * size : number * size]
    meta = {"page_number": number, "page_size": size, "total_pages": pages, "total_results": total}
    return RawResponse.json({"data": chunk, "meta": meta})


def _positive(raw: str | None, default: int) -> int:
    if raw is None or not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        return default
    return int(raw)
