"""The TeXML Calls API on the commands API (as the official SDK calls it, ``client.texml``).

Routes (JSON or form bodies with Telnyx's CamelCase keys; ``Authorization: Bearer <api_key>``
of the connection)::

    POST /v2/texml/calls/{connection_id}               From, To, Url?, Method?, Texml?, StatusCallback?
    POST /v2/texml/Accounts/{account_sid}/Calls        ApplicationSid (the connection id), From, To, Url?,
                                                       Texml?, StatusCallback?, StatusCallbackMethod?,
                                                       FallbackUrl?, Timeout?
    GET  /v2/texml/Accounts/{account_sid}/Calls        the calls TeXML ran (From/To/Status, Page/PageSize)
    GET  /v2/texml/Accounts/{account_sid}/Calls/{call_sid}   the call (Telnyx's call resource)
    POST /v2/texml/Accounts/{account_sid}/Calls/{call_sid}   Status=completed hangs it up; Url or Texml
                                                       replaces the running document
    GET  /v2/texml/recordings/{RecordingSid}.wav       a <Record> recording (audio/wav)

The first two place an outbound call (a client, a SIP username or a simulated outside number)
and run the document once it answers: ``Texml`` inline, else ``Url``, else the connection's
``texml_voice_url``. ``/texml/calls/{connection_id}`` answers a flat object (``call_sid``,
``from``, ``to``, ``status: queued``) without ``data``, as the SDK expects. The local switch
has one account: any ``account_sid`` is accepted and echoed as ``AccountSid``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol.apps import TexmlApp
from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.routes import RawResponse, register_route
from softphone.switch.callcontrol.texml.document import TexmlError, parse
from softphone.switch.callcontrol.texml.flow import call_status
from softphone.switch.callcontrol.texml.runner import runner_of
from softphone.switch.callcontrol.webhooks import WebhookURLError, check_url

if TYPE_CHECKING:
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.routes import ApiContext


def _bad(key: str, detail: str) -> CommandError:
    return CommandError(422, "10015", f"Invalid value for {key}", detail)


def _field(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    v = body.get(key)
    if v is None or v == "":
        if required:
            raise _bad(key, f"{key} is required")
        return ""
    if not isinstance(v, str):
        raise _bad(key, f"{key} must be a string")
    return v.strip()


def _method(body: dict[str, Any], key: str) -> str:
    m = _field(body, key).upper() or "POST"
    if m not in ("GET", "POST"):
        raise _bad(key, f"{key} must be GET or POST")
    return m


_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})


def _events(body: dict[str, Any]) -> str:
    """``StatusCallbackEvent``: space-separated (or a list, as JSON allows) of initiated/ringing/answered/completed."""
    raw = body.get("StatusCallbackEvent")
    if raw is None or raw == "":
        return ""
    items = raw if isinstance(raw, list) else raw.replace(",", " ").split() if isinstance(raw, str) else None
    if items is None or not all(isinstance(i, str) and i in _EVENTS for i in items):
        raise _bad("StatusCallbackEvent", "StatusCallbackEvent lists initiated, ringing, answered, completed")
    return " ".join(items)


def _url(cc: CallControl, body: dict[str, Any], key: str) -> str:
    url = _field(body, key)
    if url:
        try:
            check_url(url, allow_remote=cc.options.allow_remote_webhooks)
        except WebhookURLError as exc:
            raise _bad(key, str(exc).replace("webhook", "TeXML")) from exc
    return url


def camel_keys(body: dict[str, Any]) -> dict[str, Any]:
    """Telnyx's CamelCase keys; the SDK's ``accounts.calls.calls(body=...)`` sends its keys as given, so
    the TypedDict names (``application_sid``, ``from_``, ``status_callback``) are accepted too."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        camel = key if key[:1].isupper() else "".join(p.capitalize() for p in key.rstrip("_").split("_"))
        out.setdefault(camel, value)
    return out


async def _start(
    api: ApiContext, connection_id: str, body: dict[str, Any], token: str, account_sid: str,
    app: TexmlApp | None = None,
) -> Any:
    body = camel_keys(body)
    cc: CallControl = api.cc
    if cc.switch.accounts.connection(connection_id) is None:
        raise CommandError(404, "10005", "Resource not found", f"no connection {connection_id}")
    api.authorize(connection_id, token)
    to = _field(body, "To", required=True)
    from_ = _field(body, "From", required=True)
    url = _url(cc, body, "Url")
    texml = _field(body, "Texml")
    if texml:
        try:
            parse(texml)
        except TexmlError as exc:
            raise _bad("Texml", str(exc)) from exc
    runner = runner_of(cc)
    app = app or runner.app(connection_id)
    if app is None:
        if not url and not texml:
            raise _bad("Url", f"connection {connection_id} has no texml_voice_url: send Url or Texml")
        app = TexmlApp(connection_id, url)
    timeout = body.get("Timeout", cc.options.dial_timeout)
    if isinstance(timeout, str) and timeout.isdigit():
        timeout = int(timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise _bad("Timeout", "Timeout must be 1-600 seconds")
    leg = cc.dial(connection_id, to, from_, timeout=float(timeout))
    runner.begin(
        leg,
        app,
        direction="outbound-api",
        url=url,
        method=_method(body, "Method") if "Method" in body else _method(body, "UrlMethod"),
        inline=texml,
        status_callback=_url(cc, body, "StatusCallback"),
        status_callback_method=_method(body, "StatusCallbackMethod"),
        status_callback_event=_events(body),
        fallback_url=_url(cc, body, "FallbackUrl"),
        account_sid=account_sid,
    )
    return leg


async def create_call(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``POST /v2/texml/calls/{connection_id}`` (SDK: ``client.texml.calls.create``)."""
    leg = await _start(api, params["connection_id"], body, token, "")
    return RawResponse.json({"call_sid": leg.call_control_id, "from": leg.from_, "to": leg.to, "status": "queued"})


async def account_calls(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``POST /v2/texml/Accounts/{account_sid}/Calls`` (SDK: ``client.texml.accounts.calls.calls``)."""
    cc: CallControl = api.cc
    body = camel_keys(body)
    runner = runner_of(cc)
    app_id = _field(body, "ApplicationSid")
    if app_id:
        app = runner.by_sid(app_id)
        if app is None and cc.switch.accounts.connection(app_id) is None:
            raise _bad("ApplicationSid", f"no TeXML application {app_id}")
        connection_id = app.connection_id if app is not None else app_id
    else:
        mine = [a for a in runner.all_apps() if api.allowed(a.connection_id, token)]
        if len(mine) != 1:
            raise _bad("ApplicationSid", "ApplicationSid (a TeXML application: its connection id) is required")
        app, connection_id = mine[0], mine[0].connection_id
    leg = await _start(api, connection_id, body, token, params["account_sid"], app)
    return RawResponse.json(
        {"from": leg.from_, "to": leg.to, "status": "queued", "sid": leg.call_control_id,
         "call_sid": leg.call_control_id, "account_sid": params["account_sid"]}
    )


def _session_leg(api: ApiContext, params: dict[str, str], token: str) -> Any:
    cc: CallControl = api.cc
    session = runner_of(cc).sessions.get(params["call_sid"])
    if session is None or not api.allowed(session.leg.connection_id, token):
        raise CommandError(404, "10005", "Resource not found", f"no TeXML call {params['call_sid']}")
    return session


def _resource(session: Any, account_sid: str) -> dict[str, Any]:
    from email.utils import formatdate

    leg = session.leg
    end = leg.ended_at
    duration = int((end or 0) - leg.answered_at) if leg.answered_at is not None and end else 0
    return {
        "account_sid": account_sid,
        "caller_name": leg.from_,
        "date_created": formatdate(leg.created, usegmt=True),
        "date_updated": formatdate(end or leg.answered_at or leg.created, usegmt=True),
        "direction": "inbound" if session.direction == "inbound" else "outbound",
        "duration": str(duration),
        "end_time": formatdate(end, usegmt=True) if end else None,
        "from": leg.from_,
        "sid": leg.call_control_id,
        "start_time": formatdate(leg.answered_at or leg.created, usegmt=True),
        "status": call_status(leg),
        "to": leg.to,
        "uri": f"/v2/texml/Accounts/{account_sid}/Calls/{leg.call_control_id}.json",
    }


async def get_call(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    session = _session_leg(api, params, token)
    return RawResponse.json(_resource(session, params["account_sid"]))


async def list_calls(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``GET /v2/texml/Accounts/{account_sid}/Calls`` (SDK: ``accounts.calls.retrieve_calls``): newest first,
    filtered by ``From``, ``To``, ``Status``; ``Page`` (from 0) and ``PageSize`` (default 50, at most 1000)."""
    from softphone.switch.callcontrol.routes import current_request

    q = current_request().query
    page = _whole(q.get("Page"), 0)
    size = min(max(1, _whole(q.get("PageSize"), 50)), 1000)
    account = params["account_sid"]
    sessions = [x for x in runner_of(api.cc).sessions.values() if api.allowed(x.leg.connection_id, token)]
    rows = [_resource(x, account) for x in sorted(sessions, key=lambda x: x.leg.created, reverse=True)]
    for key, field in (("From", "from"), ("To", "to"), ("Status", "status")):
        if q.get(key):
            rows = [r for r in rows if r[field] == q[key]]
    chunk = rows[page * size : (page + 1) * size]
    base = f"/v2/texml/Accounts/{account}/Calls.json"
    more = (page + 1) * size < len(rows)
    return RawResponse.json({
        "calls": chunk,
        "page": page,
        "page_size": size,
        "start": page * size,
        "end": page * size + max(0, len(chunk) - 1),
        "uri": f"{base}?Page={page}&PageSize={size}",
        "first_page_uri": f"{base}?Page=0&PageSize={size}",
        "next_page_uri": f"{base}?Page={page + 1}&PageSize={size}" if more else None,
    })


def _whole(raw: str | None, default: int) -> int:
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() else default


async def update_call(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    session = _session_leg(api, params, token)
    body = camel_keys(body)
    status = _field(body, "Status")
    if status and status not in ("completed", "canceled"):
        raise _bad("Status", "Status can be completed or canceled (hang up)")
    url = _url(api.cc, body, "Url")
    texml = _field(body, "Texml")
    if texml:
        try:
            parse(texml)
        except TexmlError as exc:
            raise _bad("Texml", str(exc)) from exc
    if status and session.leg.alive:
        await api.cc.hangup_leg(session.leg, "NORMAL_CLEARING" if session.leg.answered_at else "ORIGINATOR_CANCEL")
    elif (url or texml) and session.leg.alive:
        session.redirect(url=url, method=_method(body, "Method"), texml=texml)
    return RawResponse.json(_resource(session, params["account_sid"]))


_RECORDING = re.compile(r"^RE[0-9a-f]{32}\.wav$")


async def get_recording(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    from softphone.switch.callcontrol.texml.recording import recordings_dir

    name = params["name"]
    path = recordings_dir(api.cc.options.data_dir) / name
    if not _RECORDING.match(name) or not path.is_file():
        raise CommandError(404, "10005", "Resource not found", f"no recording {name}"[:200])
    return RawResponse(200, "audio/wav", path.read_bytes())


register_route("POST", "/v2/texml/calls/{connection_id}", create_call)
register_route("POST", "/v2/texml/Accounts/{account_sid}/Calls", account_calls)
register_route("GET", "/v2/texml/Accounts/{account_sid}/Calls", list_calls)
register_route("GET", "/v2/texml/Accounts/{account_sid}/Calls/{call_sid}", get_call)
register_route("POST", "/v2/texml/Accounts/{account_sid}/Calls/{call_sid}", update_call)
register_route("GET", "/v2/texml/recordings/{name}", get_recording)
