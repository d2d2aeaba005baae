"""``<Dial>``: ring numbers, SIP URIs and registered clients, take a queued caller, or join a conference.

The caller hears ringback while the dialled legs ring; the first to answer is bridged to it
(the others are hung up). The bridge is made with ``park_after_unbridge``, so when the far
side hangs up the caller stays and the document goes on (or the Dial ``action`` is requested
with ``DialCallStatus``, ``DialCallSid`` and ``DialCallDuration``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from softphone.switch.callcontrol.texml.flow import Runner, call_status

if TYPE_CHECKING:
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.callcontrol.texml.document import Verb


def _int(v: Verb, name: str, default: int) -> int:
    raw = v.attr(name)
    return int(raw) if raw.isdigit() else default


async def dial_parties(s: Runner, v: Verb, targets: list[tuple[str, str, Verb]]) -> dict[str, str]:
    """Ring every target at once; bridge the first that answers."""
    from softphone.switch import media_legs

    cc, leg = s.cc, s.leg
    timeout = max(1, _int(v, "timeout", 30))
    caller = v.attr("callerId") or leg.from_
    legs: list[CCLeg] = []
    digits: dict[str, str] = {}
    for _, text, noun in targets:
        if not text.strip():
            continue
        other = cc.dial(leg.connection_id, text.strip(), caller, timeout=float(timeout), link_to=leg)
        legs.append(other)
        digits[other.call_control_id] = "".join(
            ch for ch in noun.attr("sendDigits").upper() if ch in "0123456789*#ABCD"
        )
    if not legs:
        return {"DialCallStatus": "failed"}
    ringback = media_legs.ringback_source()
    leg.endpoint.play(ringback)
    deadline = time.monotonic() + timeout + 1.0
    winner: CCLeg | None = None
    try:
        while leg.alive and time.monotonic() < deadline:
            winner = next((o for o in legs if o.alive and o.answered_at is not None), None)
            if winner is not None or all(not o.alive for o in legs):
                break
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:  # the call was redirected while the legs rang
        for other in legs:
            if other.alive:
                cc.spawn(cc.hangup_leg(other, "ORIGINATOR_CANCEL"), "texml-dial-cancel")
        raise
    finally:
        leg.endpoint.stop_playing(ringback)
    for other in legs:
        if other is not winner and other.alive:
            cc.spawn(cc.hangup_leg(other, "ORIGINATOR_CANCEL" if other.answered_at is None else "NORMAL_CLEARING"),
                     "texml-dial-cancel")
    if winner is None:
        if not leg.alive:
            status = "canceled"
        elif all(not o.alive for o in legs):
            status = call_status(legs[0])
        else:
            status = "no-answer"
        return {"DialCallStatus": status, "DialCallSid": legs[0].call_control_id, "DialCallDuration": "0"}
    return await _bridged(s, v, winner, digits.get(winner.call_control_id, ""))


async def _bridged(s: Runner, v: Verb, other: CCLeg, send_digits: str = "") -> dict[str, str]:
    cc, leg = s.cc, s.leg
    if not leg.alive:
        await cc.hangup_leg(other, "NORMAL_CLEARING")
        return {"DialCallStatus": "canceled", "DialCallSid": other.call_control_id, "DialCallDuration": "0"}
    from softphone.switch.callcontrol.gather import Gather
    from softphone.switch.callcontrol.texml.recording import BridgeRecorder

    cc.bridge(leg, other, park_after_unbridge=True)
    started = time.monotonic()
    mode = v.attr("record", "do-not-record")
    recorder = BridgeRecorder(s, v, dual=mode.endswith("-dual")) if mode.startswith("record-from-") else None
    if recorder is not None:
        recorder.tap(leg, other)
    if send_digits:
        from softphone.switch import media_legs

        other.endpoint.play(media_legs.dtmf_source(send_digits))
    star: Gather | None = None
    if v.attr("hangupOnStar").lower() == "true":
        star = Gather(maximum_digits=1, minimum_digits=1, terminating_digit="", valid_digits="*")
        leg.extras["gather"] = star  # the engine feeds the caller's digits to it (and still to the far side)
    limit = started + max(1, _int(v, "timeLimit", 14400))
    try:
        while leg.alive and other.alive and leg.bridged_to is other:
            if time.monotonic() > limit:
                await cc.hangup_leg(other, "ALLOTTED_TIMEOUT")
                break
            if star is not None and leg.extras.get("gather") is not star:
                await cc.hangup_leg(other, "NORMAL_CLEARING")  # the caller pressed *: it stays, the far side goes
                break
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:  # redirected: the far side is let go
        if other.alive:
            cc.spawn(cc.hangup_leg(other, "NORMAL_CLEARING"), "texml-dial-redirect")
        raise
    finally:
        if star is not None and leg.extras.get("gather") is star:
            leg.extras.pop("gather", None)
    result = {
        "DialCallStatus": "completed",
        "DialCallSid": other.call_control_id,
        "DialCallDuration": str(int(time.monotonic() - started)),
    }
    if recorder is not None:
        extra = await recorder.finish()
        result.update(RecordingUrl=extra["RecordingUrl"], RecordingSid=extra["RecordingSid"],
                      RecordingDuration=extra["RecordingDuration"])
    return result


async def dial_queue(s: Runner, v: Verb, name: str) -> dict[str, str]:
    """Bridge the caller to the longest-waiting caller of queue ``name`` (waiting up to ``timeout``)."""
    cc, leg = s.cc, s.leg
    name = name.strip()
    deadline = time.monotonic() + max(1, _int(v, "timeout", 30))
    while leg.alive and time.monotonic() < deadline:
        q = cc.queues.get(name)
        waiting = [x for x in (q.legs if q is not None else []) if x is not leg and x.alive]
        if waiting:
            result = await _bridged(s, v, waiting[0])
            result["QueueSid"] = name
            return result
        await asyncio.sleep(0.05)
    return {"DialCallStatus": "no-answer" if leg.alive else "canceled", "QueueSid": name, "DialCallDuration": "0"}


async def dial_conference(s: Runner, v: Verb, noun: Verb) -> dict[str, str]:
    """Join (or start) the conference called ``noun.text``; returns when the caller leaves it."""
    from softphone.switch.callcontrol import commands
    from softphone.switch.callcontrol.engine import CommandError

    cc, leg, name = s.cc, s.leg, noun.text.strip()
    conf = next(
        (c for c in cc.conferences.values() if c.name == name and not c.ended and c.connection_id == leg.connection_id),
        None,
    )
    try:
        if conf is None:
            record = await commands.conference_create(cc, {"call_control_id": leg.call_control_id, "name": name})
            conf = cc.conferences[record["id"]]
        else:
            await commands.conference_join(cc, conf, {"call_control_id": leg.call_control_id})
    except CommandError as exc:
        return {"DialCallStatus": "failed", "ErrorMessage": exc.detail or exc.title}
    started = time.monotonic()
    while leg.alive and leg.conference_id == conf.id:
        await asyncio.sleep(0.05)
    if noun.attr("endConferenceOnExit").lower() == "true":
        for other in list(conf.participants):
            if other is not leg:
                await cc.hangup_leg(other, "NORMAL_CLEARING")
    return {
        "DialCallStatus": "completed",
        "ConferenceSid": conf.id,
        "DialCallDuration": str(int(time.monotonic() - started)),
    }
