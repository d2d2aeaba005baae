"""Real audio through the switch: MediaPeer clients on loopback, tones checked by frequency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import RawClient, login

from softphone.media.dsp import DtmfDetector, dominant_frequency
from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink
from softphone.media.sources import AudioSource, NullSource, ToneSource
from softphone.switch import Switch, default_accounts
from softphone.switch.records import read_records


@dataclass
class Phone:
    """A raw client plus a media peer."""

    client: RawClient
    source: AudioSource
    sink: BufferSink = field(default_factory=lambda: BufferSink(5.0))
    peer: MediaPeer | None = None
    call_id: str = ""

    def new_peer(self) -> MediaPeer:
        self.peer = MediaPeer(PeerOptions.loopback(), source=self.source, sink=self.sink)
        return self.peer

    async def dial(self, dest: str) -> None:
        offer = await self.new_peer().create_offer()
        self.call_id = await self.client.invite(dest, offer)

    async def await_answer(self) -> None:
        ans = await self.client.method("telnyx_rtc.answer")
        assert self.peer is not None
        await self.peer.set_answer(ans["params"]["sdp"])
        await self.peer.wait_connected(5)

    async def accept(self, method: str = "telnyx_rtc.invite") -> None:
        inv = await self.client.method(method)
        self.call_id = inv["params"]["callID"]
        sdp = await self.new_peer().accept_offer(inv["params"]["sdp"])
        verb = "telnyx_rtc.attach" if method == "telnyx_rtc.attach" else "telnyx_rtc.answer"
        res = await self.client.request(
            verb,
            {
                "sessid": self.client.sessid,
                "sdp": sdp,
                "dialogParams": self.client.dialog(self.call_id, attach=verb == "telnyx_rtc.attach"),
            },
        )
        assert "result" in res, res

    async def hear(self, seconds: float = 0.5, settle: float = 0.6) -> float:
        await asyncio.sleep(settle)
        self.sink.clear()
        await asyncio.sleep(seconds)
        return dominant_frequency(self.sink.samples())

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        await self.client.close()


@pytest.fixture
async def sw(tmp_path: Path) -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0, records_path=tmp_path / "calls.jsonl") as s:
        yield s


async def phone(sw: Switch, user: str, tone: float | None, **kw: str) -> Phone:
    c = await login(sw, user, f"{user}-secret", **kw)
    return Phone(c, ToneSource(tone, 0.3) if tone else NullSource())


async def test_echo_returns_our_tone(sw: Switch) -> None:
    p = await phone(sw, "demo", 440.0)
    await p.dial("echo")
    await p.await_answer()
    assert abs(await p.hear() - 440.0) < 15
    await p.client.bye(p.call_id)
    await p.close()


async def test_tone_service_1004(sw: Switch) -> None:
    p = await phone(sw, "demo", None)
    await p.dial("+15550001002")
    await p.await_answer()
    assert abs(await p.hear() - 1004.0) < 15
    await p.client.bye(p.call_id)
    await p.close()


async def test_client_to_client_bridge_dtmf_hold_records(sw: Switch) -> None:
    a = await phone(sw, "alice", 600.0)
    b = await phone(sw, "demo", 900.0)
    await a.dial("demo")
    ringing = await a.client.method("telnyx_rtc.ringing")
    assert ringing["params"]["callID"] == a.call_id
    await b.accept()
    await a.await_answer()
    fa, fb = await asyncio.gather(a.hear(), b.hear())
    assert abs(fa - 900.0) < 15, fa
    assert abs(fb - 600.0) < 15, fb
    assert sw.active_calls()[0]["answered"]

    # DTMF from A reaches B as info and as in-band tones.
    detector = DtmfDetector()
    b.sink.clear()
    a.source = NullSource()
    assert a.peer is not None
    a.peer.set_source(a.source)
    await asyncio.sleep(0.3)
    res = await a.client.request(
        "telnyx_rtc.info", {"sessid": a.client.sessid, "dtmf": "159#", "dialogParams": {"callID": a.call_id}}
    )
    assert "result" in res
    info = await b.client.wait_for(lambda f: f.get("method") == "telnyx_rtc.info")
    assert info["params"]["dtmf"] == "159#" and info["params"]["callID"] == b.call_id
    await asyncio.sleep(1.2)
    for frame in [b.sink.samples()[i : i + 960] for i in range(0, len(b.sink.samples()) - 959, 960)]:
        detector.feed(frame)
    assert "".join(detector.digits) == "159#"

    # Hold from A: the bridge stops, B hears the 440 Hz hold beep; unhold resumes.
    res = await a.client.request(
        "telnyx_rtc.modify", {"sessid": a.client.sessid, "action": "hold", "dialogParams": {"callID": a.call_id}}
    )
    assert res["result"]["holdState"] == "held"
    b.sink.clear()
    await asyncio.sleep(0.5)
    assert abs(dominant_frequency(b.sink.samples(0.4)) - 440.0) < 15
    assert await a.hear(0.4, settle=0.2) == 0.0 or a.sink.samples(0.4).std() < 50  # A hears nothing of B
    res = await a.client.request(
        "telnyx_rtc.modify",
        {"sessid": a.client.sessid, "action": "toggleHold", "dialogParams": {"callID": a.call_id}},
    )
    assert res["result"]["holdState"] == "active"
    assert abs(await a.hear(0.4, settle=0.4) - 900.0) < 15

    await b.client.bye(b.call_id)
    bye = await a.client.method("telnyx_rtc.bye")
    assert bye["params"]["cause"] == "NORMAL_CLEARING" and bye["params"]["causeCode"] == 16
    await asyncio.sleep(0.1)
    recs = sw.records
    assert {r.leg for r in recs} == {"a", "b"}
    for r in recs:
        assert r.answer is not None and r.end is not None and r.codec.startswith("opus")
        assert r.duration_s > 2.0
        assert r.cost == pytest.approx(-(-r.duration_s // 1) * 0.002 / 60, abs=1e-6)
    assert sw.active_calls() == []
    stored = read_records(sw._records.path)
    assert len(stored) == 2 and json.dumps([r.to_json() for r in stored])
    await a.close()
    await b.close()


async def test_dtmf_service_echoes_digits(sw: Switch) -> None:
    p = await phone(sw, "demo", None)
    await p.dial("dtmf")
    await p.await_answer()
    await asyncio.sleep(0.3)
    p.sink.clear()
    await p.client.request(
        "telnyx_rtc.info", {"sessid": p.client.sessid, "dtmf": "42", "dialogParams": {"callID": p.call_id}}
    )
    info = await p.client.wait_for(lambda f: f.get("method") == "telnyx_rtc.info")
    assert info["params"]["dtmf"] == "42"
    await asyncio.sleep(0.8)
    det = DtmfDetector()
    s = p.sink.samples()
    for i in range(0, len(s) - 959, 960):
        det.feed(s[i : i + 960])
    assert "".join(det.digits) == "42"
    await p.client.bye(p.call_id)
    await p.close()


async def test_reconnect_with_sessid_reattaches_live_call(sw: Switch) -> None:
    a = await phone(sw, "alice", 600.0)
    b = await phone(sw, "demo", 900.0)
    await a.dial("demo")
    await b.accept()
    await a.await_answer()
    assert abs(await a.hear(0.3) - 900.0) < 15
    # B's socket drops; its call stays up on the switch.
    sessid, b_call = b.client.sessid, b.call_id
    assert b.peer is not None
    await b.peer.close()
    await b.client.close()
    await asyncio.sleep(0.2)
    assert len(sw.active_calls()) == 1
    # B reconnects with the same sessid: clientReady lists the call, then a fresh attach offer.
    c = await login(sw, "demo", "demo-secret", sessid=sessid)
    assert c.sessid == sessid
    assert c.client_ready["params"]["reattached_sessions"] == [b_call]
    b2 = Phone(c, ToneSource(700.0, 0.3))
    await b2.accept("telnyx_rtc.attach")
    assert b2.call_id == b_call
    assert b2.peer is not None
    await b2.peer.wait_connected(5)
    fa, fb = await asyncio.gather(a.hear(0.4, settle=0.8), b2.hear(0.4, settle=0.8))
    assert abs(fa - 700.0) < 15, fa
    assert abs(fb - 600.0) < 15, fb
    await a.client.bye(a.call_id)
    bye = await c.method("telnyx_rtc.bye")
    assert bye["params"]["callID"] == b_call
    await a.close()
    await b2.close()
