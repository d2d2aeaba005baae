"""Read-only REST views of the engine's state, as Telnyx's (the SDK's ``queues`` and
``connections.list_active_calls``)::

    GET /v2/queues                                   the queues (paginated)
    GET /v2/queues/{queue_name}                      one queue: current_size, average_wait_time_secs
    GET /v2/queues/{queue_name}/calls                the calls waiting in it, in order (paginated)
    GET /v2/queues/{queue_name}/calls/{call_control_id}   one of them: queue_position, wait_time_secs
    GET /v2/connections/{connection_id}/active_calls the connection's live calls (paginated)
    GET /v2/conferences/{id}/participants            a conference's participants (paginated)
    GET /v2/conferences/{id}/participants/{participant_id}   one (by participant id or call_control_id)

A key sees the calls of its own connection (and of connections without a key); a queue's
``current_size`` counts the calls it sees. Queues are made by ``enqueue`` (there is no queue
create route, as on Telnyx); their ``max_size`` is Telnyx's default, 100, and ``created_at`` is
when the API first saw the queue. A participant's ``created_at`` is when it joined (its
``conference.participant.joined`` webhook); nobody is muted, on hold or whispered to here.
"""

from __future__ import annotations

import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.routes import ApiContext, page, register_route
from softphone.switch.callcontrol.webhooks import iso_now

if TYPE_CHECKING:
    from softphone.switch.callcontrol.conference import Conference, Queue
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

QUEUE_MAX_SIZE = 100
_QUEUE_NS = uuid.UUID("0d7f6c2e-9a51-4e0b-8d6f-2b1f8e4a9c33")
_first_seen: weakref.WeakKeyDictionary[Queue, float] = weakref.WeakKeyDictionary()


def _cc(api: ApiContext) -> CallControl:
    cc: CallControl = api.cc
    return cc


def _check_key(api: ApiContext, token: str) -> None:
    """A list route: a token that is no connection's key is a 401 (when keys exist at all)."""
    keys = [a.api_key for a in _cc(api).apps.values() if a.api_key]
    if token and keys and token not in keys:
        raise CommandError(401, "10009", "Authentication failed", "wrong API key")


def _visible(api: ApiContext, q: Queue, token: str) -> list[CCLeg]:
    return [leg for leg in q.legs if api.allowed(leg.connection_id, token)]


def _queue(api: ApiContext, name: str) -> Queue:
    q = _cc(api).queues.get(name)
    if q is None:
        raise CommandError(404, "10005", "Resource not found", f"no queue {name}"[:200])
    return q


def queue_object(api: ApiContext, q: Queue, token: str) -> dict[str, Any]:
    """The SDK's ``Queue``."""
    seen = _first_seen.setdefault(q, time.time())
    return {
        "record_type": "queue",
        "id": str(uuid.uuid5(_QUEUE_NS, q.name)),
        "name": q.name,
        "current_size": len(_visible(api, q, token)),
        "max_size": QUEUE_MAX_SIZE,
        "average_wait_time_secs": q.avg_wait_s,
        "created_at": iso_now(seen),
        "updated_at": iso_now(seen),
    }


def queue_call_object(q: Queue, leg: CCLeg) -> dict[str, Any]:
    """The SDK's ``QueueCall``."""
    started = leg.extras.get("enqueued_at")
    waited = max(0.0, time.monotonic() - started) if isinstance(started, float) else 0.0
    return {
        "record_type": "queue_call",
        "call_control_id": leg.call_control_id,
        "call_leg_id": leg.call_leg_id,
        "call_session_id": leg.call_session_id,
        "connection_id": leg.connection_id,
        "from": leg.from_,
        "to": leg.to,
        "queue_id": str(uuid.uuid5(_QUEUE_NS, q.name)),
        "queue_position": q.position(leg),
        "enqueued_at": iso_now(time.time() - waited),
        "wait_time_secs": int(waited),
        "is_alive": leg.alive,
    }


async def list_queues(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    _check_key(api, token)
    return page([queue_object(api, q, token) for q in _cc(api).queues.values()])


async def get_queue(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    _check_key(api, token)
    return queue_object(api, _queue(api, params["queue_name"]), token)


async def list_queue_calls(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    _check_key(api, token)
    q = _queue(api, params["queue_name"])
    return page([queue_call_object(q, leg) for leg in _visible(api, q, token)])


async def get_queue_call(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    _check_key(api, token)
    q = _queue(api, params["queue_name"])
    for leg in _visible(api, q, token):
        if leg.call_control_id == params["call_control_id"]:
            return queue_call_object(q, leg)
    raise CommandError(404, "10005", "Resource not found", f"no call {params['call_control_id']} in {q.name}"[:200])


async def active_calls(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cc = _cc(api)
    conn_id = params["connection_id"]
    if cc.switch.accounts.connection(conn_id) is None:
        raise CommandError(404, "10005", "Resource not found", f"no connection {conn_id}"[:200])
    api.authorize(conn_id, token)
    now = time.time()
    calls = [
        {
            "record_type": "call",
            "call_control_id": leg.call_control_id,
            "call_leg_id": leg.call_leg_id,
            "call_session_id": leg.call_session_id,
            "call_duration": int(now - leg.answered_at) if leg.answered_at is not None else 0,
            "client_state": leg.client_state or "",
        }
        for leg in list(cc.legs.values())
        if leg.alive and leg.connection_id == conn_id
    ]
    return page(calls)


def _conference(api: ApiContext, conference_id: str, token: str) -> Conference:
    conf = _cc(api).conferences.get(conference_id)
    if conf is None or not api.allowed(conf.connection_id, token):
        raise CommandError(404, "10005", "Resource not found", f"no conference {conference_id}"[:200])
    return conf


def participant_object(cc: CallControl, conf: Conference, leg: CCLeg) -> dict[str, Any]:
    """The SDK's participant (``conference`` as the list has it, ``conference_id`` as retrieve has it)."""
    joined = [
        e["occurred_at"]
        for e in cc.events("conference.participant.joined", leg.call_control_id)
        if e["payload"].get("conference_id") == conf.id
    ]
    created = joined[-1] if joined else iso_now(conf.created_at)
    return {
        "record_type": "participant",
        "id": str(uuid.uuid5(_QUEUE_NS, f"{conf.id}/{leg.call_control_id}")),
        "call_control_id": leg.call_control_id,
        "call_leg_id": leg.call_leg_id,
        "conference": {"id": conf.id, "name": conf.name},
        "conference_id": conf.id,
        "status": "joined",
        "muted": False,
        "on_hold": False,
        "end_conference_on_exit": False,
        "soft_end_conference_on_exit": False,
        "whisper_call_control_ids": [],
        "created_at": created,
        "updated_at": created,
    }


async def list_participants(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    conf = _conference(api, params["conference_id"], token)
    return page([participant_object(_cc(api), conf, leg) for leg in conf.participants])


async def get_participant(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    conf = _conference(api, params["conference_id"], token)
    for leg in conf.participants:
        obj = participant_object(_cc(api), conf, leg)
        if params["participant_id"] in (obj["id"], leg.call_control_id):
            return obj
    raise CommandError(404, "10005", "Resource not found", f"no participant {params['participant_id']}"[:200])


register_route("GET", "/v2/queues", list_queues)
register_route("GET", "/v2/queues/{queue_name}", get_queue)
register_route("GET", "/v2/queues/{queue_name}/calls", list_queue_calls)
register_route("GET", "/v2/queues/{queue_name}/calls/{call_control_id}", get_queue_call)
register_route("GET", "/v2/connections/{connection_id}/active_calls", active_calls)
register_route("GET", "/v2/conferences/{conference_id}/participants", list_participants)
register_route("GET", "/v2/conferences/{conference_id}/participants/{participant_id}", get_participant)
