"""Call Control commands, named after Telnyx's Voice API actions.

Each takes the engine, the leg and the JSON body, and returns the ``data`` of the
response (``{"result": "ok"}`` for actions), or raises
:class:`~softphone.switch.callcontrol.engine.CommandError`. Every command accepts
``client_state`` (base64 by convention), which then rides on the leg's later webhooks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol import (
    conference_media,  # noqa: F401  (registers the conference media routes)
    recording,
    voice,
)
from softphone.switch.callcontrol.conference import Conference
from softphone.switch.callcontrol.engine import CommandError, gone
from softphone.switch.callcontrol.gather import Gather, end_gather
from softphone.switch.callcontrol.params import OK, alive, bad, get_num, get_str, take_state

if TYPE_CHECKING:
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

_bad = bad
_str = get_str
_num = get_num
_alive = alive
_state = take_state


# --- answer / hangup -------------------------------------------------------------------


async def answer(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    _alive(leg)
    _state(leg, body)
    if leg.direction != "incoming":
        raise CommandError(422, "90015", "Call is not incoming", "only incoming legs can be answered")
    if leg.answered_at is not None:
        return OK
    await answer_leg(cc, leg)
    return OK


async def answer_leg(cc: CallControl, leg: CCLeg) -> None:
    """Answer an incoming leg (WebRTC: ``telnyx_rtc.answer``, SDP omitted after early media)."""
    cc.unpark(leg)
    cc.stop_ringback(leg)
    if leg.wire is not None:
        ring = leg.extras.get("ring_task")
        if isinstance(ring, asyncio.Task):
            await ring
        if not await leg.wire.answer_a(with_sdp=not leg.early):
            raise gone(leg)
    cc.mark_answered(leg)


async def hangup(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    _alive(leg)
    _state(leg, body)
    await cc.hangup_leg(leg, "NORMAL_CLEARING")
    return OK


#: ``reject``'s causes (the SDK's ActionRejectParams): the Q.850 cause the caller sees and its SIP response.
REJECT_CAUSES: dict[str, tuple[str, int]] = {
    "CALL_REJECTED": ("CALL_REJECTED", 603),
    "USER_BUSY": ("USER_BUSY", 486),
    "NOT_FOUND": ("UNALLOCATED_NUMBER", 404),
    "TEMPORARILY_UNAVAILABLE": ("NO_ANSWER", 480),
}


async def reject(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    """Refuse an incoming call that has not been answered; the caller gets the cause's SIP response."""
    _alive(leg)
    cause = _str(body, "cause")
    if cause not in REJECT_CAUSES:
        raise _bad("cause", f"cause must be one of {', '.join(REJECT_CAUSES)}")
    if leg.direction != "incoming":
        raise CommandError(422, "90015", "Call is not incoming", "only incoming legs can be rejected")
    if leg.answered_at is not None:
        raise CommandError(422, "90016", "Call already answered", "an answered call is ended with hangup")
    _state(leg, body)
    q850, sip_code = REJECT_CAUSES[cause]
    cc.unpark(leg)
    cc.stop_ringback(leg)
    if leg.wire is not None:
        await leg.wire.end(None, q850, sip_code=sip_code)  # reports back through leg_ended
    else:
        cc.leg_ended(leg, q850, sip_code, False)
        await leg.endpoint.close()
    return OK


# --- bridge / transfer -------------------------------------------------------------------


async def bridge(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    _alive(leg)
    _state(leg, body)
    other_id = _str(body, "call_control_id")
    queue_name = _str(body, "queue")
    if other_id:
        other = cc.leg(other_id)
    elif queue_name:
        q = cc.queues.get(queue_name)
        if q is None or not q.legs:
            raise _bad("queue", f"queue {queue_name!r} is empty")
        other = q.legs[0]
    else:
        raise _bad("call_control_id", "bridge needs call_control_id (or queue)")
    _alive(other)
    if other is leg:
        raise _bad("call_control_id", "cannot bridge a call to itself")
    for x in (leg, other):
        if x.answered_at is None and x.direction == "outgoing":
            raise CommandError(422, "90034", "Call not answered yet", f"{x.call_control_id} is still ringing")
    for x in (leg, other):
        if x.answered_at is None:
            await answer_leg(cc, x)
    cc.bridge(leg, other, park_after_unbridge=_str(body, "park_after_unbridge") == "self")
    return OK


async def transfer(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    """Dial ``to`` and bridge ``leg`` to it once it answers (the caller hears ringback)."""
    from softphone.switch import media_legs

    _alive(leg)
    _state(leg, body)
    to = _str(body, "to")
    if not to:
        raise _bad("to", "transfer needs 'to'")
    if leg.answered_at is None and leg.direction == "incoming":
        await answer_leg(cc, leg)
    cc.leave_everything(leg, reason="transfer")
    tone = media_legs.ringback_source()
    leg.endpoint.play(tone)
    leg.extras["ringback"] = tone
    other = cc.dial(
        leg.connection_id,
        to,
        _str(body, "from") or leg.from_,
        client_state=_str(body, "target_leg_client_state") or leg.client_state,
        timeout=_num(body, "timeout_secs", cc.options.dial_timeout),
        link_to=leg,
    )

    def on_answer() -> None:
        cc.stop_ringback(leg)
        if leg.alive and other.alive:
            cc.bridge(leg, other)

    other.extras["on_answer"] = on_answer

    async def watch() -> None:
        await other.ended.wait()
        if other.answered_at is None:
            cc.stop_ringback(leg)

    cc.spawn(watch(), "transfer-watch")
    return OK


# --- queues ----------------------------------------------------------------------------------


async def enqueue(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    _alive(leg)
    _state(leg, body)
    name = _str(body, "queue_name")
    if not name:
        raise _bad("queue_name", "enqueue needs queue_name")
    if leg.answered_at is None and leg.direction == "incoming":
        await answer_leg(cc, leg)
    cc.unpark(leg)
    cc.leave_everything(leg, reason="enqueue")
    q = cc.queue(name)
    pos = q.add(leg, cc.hold_tone())
    leg.queue = name
    leg.state = "queued"
    cc.emit(leg, "call.enqueued", queue=name, current_position=pos, queue_avg_wait_time_secs=q.avg_wait_s)
    return OK


async def leave_queue(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    _alive(leg)
    _state(leg, body)
    if not leg.queue:
        raise CommandError(422, "90040", "Call is not in a queue", leg.call_control_id)
    cc.leave_everything(leg, reason="leave")
    return OK


# --- gather --------------------------------------------------------------------------------------


async def gather(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    _alive(leg)
    _state(leg, body)
    if leg.answered_at is None:
        raise CommandError(422, "90034", "Call not answered yet", "answer before gather")
    max_d = int(_num(body, "maximum_digits", 128))
    min_d = int(_num(body, "minimum_digits", 1))
    timeout_s = _num(body, "timeout_millis", 60000) / 1000.0
    inter_s = _num(body, "inter_digit_timeout_millis", 5000) / 1000.0
    term = _str(body, "terminating_digit", "#")
    valid = _str(body, "valid_digits", "0123456789#*ABCD")
    if max_d < 1 or min_d < 0 or timeout_s <= 0:
        raise _bad("maximum_digits", "digits and timeouts must be positive")
    old = leg.extras.get("gather")
    if isinstance(old, Gather):
        end_gather(cc, leg, "cancelled")
    g = Gather(max_d, min_d, term, valid, inter_digit_s=inter_s)
    leg.extras["gather"] = g
    loop = asyncio.get_running_loop()
    g.timer = loop.call_later(timeout_s, end_gather, cc, leg, "timeout")
    url = _str(body, "audio_url")
    if url:
        await voice.playback_start(cc, leg, {"audio_url": url})
    return OK


# --- conferences ----------------------------------------------------------------------------------


async def conference_create(cc: CallControl, body: dict[str, Any]) -> dict[str, Any]:
    leg = cc.leg(_str(body, "call_control_id"))
    _alive(leg)
    _state(leg, body)
    name = _str(body, "name") or f"conference-{uuid.uuid4().hex[:8]}"
    conf = Conference(name=name, connection_id=leg.connection_id)
    cc.conferences[conf.id] = conf
    cc.emit_conference(conf, "conference.created", leg)
    await conference_join(cc, conf, {"call_control_id": leg.call_control_id})
    return conf.record()


async def conference_join(cc: CallControl, conf: Conference, body: dict[str, Any]) -> dict[str, Any]:
    if conf.ended:
        raise CommandError(422, "90041", "Conference has ended", conf.id)
    leg = cc.leg(_str(body, "call_control_id"))
    _alive(leg)
    _state(leg, body)
    if leg.answered_at is None and leg.direction == "incoming":
        await answer_leg(cc, leg)
    if leg.answered_at is None:
        raise CommandError(422, "90034", "Call not answered yet", leg.call_control_id)
    cc.unpark(leg)
    cc.leave_everything(leg, reason="conference")
    conf.join(leg)
    leg.state = "conference"
    cc.emit_conference(conf, "conference.participant.joined", leg)
    return OK


async def conference_leave(cc: CallControl, conf: Conference, body: dict[str, Any]) -> dict[str, Any]:
    leg = cc.leg(_str(body, "call_control_id"))
    _state(leg, body)
    if leg.conference_id != conf.id:
        raise CommandError(422, "90042", "Call is not in this conference", leg.call_control_id)
    cc.leave_everything(leg, reason="leave")
    return OK


LegCommand = Callable[["CallControl", "CCLeg", dict[str, Any]], Awaitable[dict[str, Any]]]

ACTIONS: dict[str, LegCommand] = {
    "answer": answer,
    "hangup": hangup,
    "reject": reject,
    "bridge": bridge,
    "transfer": transfer,
    "enqueue": enqueue,
    "leave_queue": leave_queue,
    "gather": gather,
}
ACTIONS.update(voice.ACTIONS)  # playback, speak, gathers with prompts, DTMF, client_state (I12-MEDIA)
ACTIONS.update(recording.ACTIONS)  # record_start/stop/pause/resume (I12-MEDIA)

from softphone.switch.callcontrol import streaming, transcription  # noqa: E402  (I12-STREAM's actions)

ACTIONS.update(streaming.ACTIONS | transcription.ACTIONS, answer=transcription.with_media_options(ACTIONS["answer"]))
