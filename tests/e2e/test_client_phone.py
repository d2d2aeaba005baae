"""Phone's policies end to end (real switch, real websockets, real media): the second-call hold
(issue 9 item 14, profile ``auto_hold``) and DTMF received on two paths reported once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from softphone.app.phone import Phone
from softphone.app.snapshot import PhoneEvent, Snapshot
from softphone.config import BUILTIN_PROFILES, Profile
from softphone.protocol import CallState
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


def profile(switch: Switch, user: str = "demo", **kw: object) -> Profile:
    base = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null", ringback=False,
                   ringtone=False)
    return replace(base, username=user, password=f"{user}-secret", **kw)  # type: ignore[arg-type]


async def until(phone: Phone, pred: object, timeout: float = 10.0) -> None:
    ok = await phone.wait_until(lambda s: True if pred(s) else None, timeout)  # type: ignore[operator]
    assert ok, phone.snapshot


def state(snap: Snapshot, call_id: str) -> CallState | None:
    c = snap.call(call_id)
    return c.state if c else None


def switch_held(switch: Switch, call_id: str) -> bool:
    """The switch's view: is the call whose a- or b-leg is ``call_id`` held?"""
    for c in switch.active_calls():
        if call_id in (c["call_id"], c["b_call_id"]):
            return bool(c["held"])
    raise AssertionError(f"the switch has no call {call_id}: {switch.active_calls()}")


@pytest.mark.parametrize("auto_hold", [True, False])
async def test_dialling_a_second_call_holds_the_first(switch: Switch, auto_hold: bool) -> None:
    async with Phone(profile(switch, auto_hold=auto_hold)) as phone:
        await phone.login()
        first = await phone.dial("echo")
        await until(phone, lambda s: state(s, first) == CallState.ACTIVE)
        second = await phone.dial("echo")
        await until(phone, lambda s: state(s, second) == CallState.ACTIVE)
        first_snap = phone.snapshot.call(first)
        assert first_snap is not None
        if auto_hold:
            assert first_snap.held and first_snap.state == CallState.HELD
            assert switch_held(switch, first) and not switch_held(switch, second)
        else:
            assert not first_snap.held and first_snap.state == CallState.ACTIVE
            assert not switch_held(switch, first) and not switch_held(switch, second)
        assert phone.snapshot.current == second


@pytest.mark.parametrize("auto_hold", [True, False])
async def test_answering_a_second_call_holds_the_first(switch: Switch, auto_hold: bool) -> None:
    async with Phone(profile(switch, "alice", auto_hold=auto_hold)) as alice, Phone(profile(switch)) as demo:
        await alice.login()
        await demo.login()
        first = await alice.dial("echo")
        await until(alice, lambda s: state(s, first) == CallState.ACTIVE)
        await demo.dial("alice")
        await until(alice, lambda s: s.ringing_inbound is not None)
        ringing = alice.snapshot.ringing_inbound
        assert ringing is not None
        await alice.answer()
        await until(alice, lambda s: state(s, ringing.id) == CallState.ACTIVE)
        first_snap = alice.snapshot.call(first)
        assert first_snap is not None
        assert first_snap.held is auto_hold
        assert first_snap.state == (CallState.HELD if auto_hold else CallState.ACTIVE)
        assert switch_held(switch, first) is auto_hold
        assert not switch_held(switch, ringing.id)


async def test_dtmf_from_info_and_inband_reported_once(switch: Switch) -> None:
    """The dtmf service sends every digit as telnyx_rtc.info and as in-band tones: one report per press."""
    async with Phone(profile(switch)) as phone:
        events: list[PhoneEvent] = []
        phone.on_event(lambda e: events.append(e) if e.type == "call.dtmf" else None)
        await phone.login()
        call_id = await phone.dial("dtmf")
        await until(phone, lambda s: state(s, call_id) == CallState.ACTIVE)
        await phone.dtmf("15d#")  # lower-case a-d is accepted and sent as A-D
        await until(phone, lambda s: len((s.call(call_id) or s.calls[0]).dtmf_received) >= 4, 5)
        await phone.wait_until(lambda s: None, 1.2)  # the later path's copies arrive and must be dropped
        snap = phone.snapshot.call(call_id)
        assert snap is not None and snap.dtmf_received == "15D#"
        assert [e.data["digits"] for e in events] == list("15D#")
        assert {e.data["source"] for e in events} <= {"info", "inband"}
