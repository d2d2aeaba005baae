"""Warning codes through Phone (the one writer) to the snapshot, the panel, the summary and --json; the
profile's impair key. In-memory duplex, no socket, no aiortc."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from rich.console import Console
from unit.client.callfakes import ANSWER, FakePeer, until
from unit.support.duplex import FakeVertoServer

from softphone.app.events_json import load_schema, to_object
from softphone.app.phone import Phone
from softphone.app.snapshot import PhoneEvent
from softphone.client import events as ce
from softphone.client.client import Client
from softphone.client.quality import HIGH_PACKET_LOSS, HIGH_RTT, TOKEN_EXPIRING_SOON
from softphone.config import BUILTIN_PROFILES, Profile
from softphone.errors import ConfigError
from softphone.media.impair import PRESETS, ImpairSpec
from softphone.protocol import CallState
from softphone.ui.panel import render, render_summary

LOCAL = replace(BUILTIN_PROFILES["local"], audio_backend="null")


def text(renderable: object) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue()


@pytest.fixture
async def phone() -> AsyncIterator[tuple[Phone, FakeVertoServer]]:
    FakePeer.reset()
    srv = FakeVertoServer()

    def factory(profile: Profile) -> Client:
        return Client.from_profile(profile, connect=srv.connect, peer_factory=FakePeer, random=lambda: 0.0)

    p = Phone(LOCAL, client_factory=factory)
    yield p, srv
    await p.close()
    await srv.close()


async def test_call_warnings_reach_the_snapshot_panel_summary_and_json(phone: tuple[Phone, FakeVertoServer]) -> None:
    p, srv = phone
    seen: list[PhoneEvent] = []
    p.on_event(seen.append)
    await p.login()
    call_id = await p.dial("echo")
    srv.push("telnyx_rtc.answer", {"callID": call_id, "sdp": ANSWER})
    await until(lambda: (c := p.snapshot.call(call_id)) is not None and c.state == CallState.ACTIVE)
    assert p.client is not None
    p.client.emit(ce.CallWarning(call_id=call_id, code=HIGH_PACKET_LOSS, warning="HIGH_PACKET_LOSS",
                                 message="packet loss is high: 30 %", value=30.0))
    p.client.emit(ce.CallWarning(call_id=call_id, code=HIGH_RTT, warning="HIGH_RTT", message="rtt", value=500.0))
    p.client.emit(ce.ClientWarning(code=TOKEN_EXPIRING_SOON, warning="TOKEN_EXPIRING_SOON", message="soon"))
    call = p.snapshot.call(call_id)
    assert call is not None and call.warnings == (HIGH_PACKET_LOSS, HIGH_RTT)
    assert p.snapshot.warnings == (TOKEN_EXPIRING_SOON,)
    panel = text(render(p.snapshot))
    assert "warnings" in panel and "31003 HIGH_PACKET_LOSS" in panel and "31001 HIGH_RTT" in panel
    p.client.emit(ce.CallWarningCleared(call_id=call_id, code=HIGH_PACKET_LOSS, warning="HIGH_PACKET_LOSS",
                                        message="cleared", value=0.0))
    call = p.snapshot.call(call_id)
    assert call is not None and call.warnings == (HIGH_RTT,)
    assert call.warnings_seen == (HIGH_PACKET_LOSS, HIGH_RTT)
    assert "31003" not in text(render(p.snapshot))
    assert "31003 HIGH_PACKET_LOSS, 31001 HIGH_RTT" in text(render_summary(call, p.snapshot.ts))
    # --json: each line is valid against the schema's required fields for its type
    objs = [to_object(e) for e in seen if e.type in ("call.warning", "call.warning_cleared", "client.warning")]
    assert [o["code"] for o in objs] == [HIGH_PACKET_LOSS, HIGH_RTT, TOKEN_EXPIRING_SOON, HIGH_PACKET_LOSS]
    schema = load_schema()
    types = schema["properties"]["type"]["enum"]
    assert {"call.warning", "call.warning_cleared", "client.warning"} <= set(types)
    assert all(o["warning"] and "message" in o and (o["type"] == "client.warning" or o["call_id"]) for o in objs)


async def test_the_panel_header_says_the_call_is_impaired() -> None:
    p = Phone(replace(LOCAL, impair="congested"))
    assert p.snapshot.impair == "congested" and "impaired congested" in text(render(p.snapshot))
    p.set_impairment(ImpairSpec(loss_pct=5))
    assert p.snapshot.impair == "loss=5%" and p.profile.impair == "loss=5%"
    p.set_impairment(None)
    assert p.snapshot.impair == "" and "impaired" not in text(render(p.snapshot))
    await p.close()


def test_profile_impair_key_reaches_the_client() -> None:
    client = Client.from_profile(replace(LOCAL, impair="wifi"), peer_factory=FakePeer)
    assert client.impair == PRESETS["wifi"]
    assert client.jitter_buffer is None  # jitter asked on loopback: aiortc's buffer, as on a real network
    plain = Client.from_profile(LOCAL, peer_factory=FakePeer)
    assert plain.impair is None and plain.jitter_buffer == 1
    lossy = Client.from_profile(replace(LOCAL, impair="loss=5%"), peer_factory=FakePeer)
    assert lossy.impair == ImpairSpec(loss_pct=5) and lossy.jitter_buffer == 1
    with pytest.raises(ConfigError, match="unknown preset 'lan'"):
        Client.from_profile(replace(LOCAL, impair="lan"), peer_factory=FakePeer)
