"""The harness's media helpers work on a real call: a throwaway aiortc far end (test-only, on
loopback) answers the SDK's invite and sends a 600 Hz tone; the browser must hear it
(``dominant_frequency``), count RTP (``rtp_stats``), send DTMF as ``telnyx_rtc.info``, and hang up.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import BrowserClient, write_tone_wav
from websockets.asyncio.server import ServerConnection, serve

pytestmark = pytest.mark.conformance

TONE_HZ = 600


class ToneTrack:
    """An aiortc audio track producing a sine, paced in real time (20 ms frames at 48 kHz)."""

    def __new__(cls, freq: float) -> Any:
        import av
        from aiortc import MediaStreamTrack

        class _Tone(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self._pts = 0
                self._start: float | None = None

            async def recv(self) -> av.AudioFrame:
                n = 960
                if self._start is None:
                    self._start = time.monotonic()
                wait = self._start + self._pts / 48000 - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                t = (np.arange(n) + self._pts) / 48000
                pcm = (0.4 * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2")
                frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = 48000
                frame.pts = self._pts
                frame.time_base = fractions.Fraction(1, 48000)
                self._pts += n
                return frame

        return _Tone()


def loopback_only(sdp: str) -> str:
    """Drop candidates that are not on 127.0.0.1 (other interfaces, mDNS names)."""
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not line.startswith("a=candidate:") or " 127.0.0.1 " in line
    )


class FarEnd:
    """Login as in the smoke test, then answer one invite with aiortc sending a tone."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.pcs: list[Any] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def handler(self, ws: ServerConnection) -> None:
        sessid = str(uuid.uuid4())

        async def send(obj: dict[str, Any]) -> None:
            await ws.send(json.dumps({"jsonrpc": "2.0", **obj}))

        async for text in ws:
            msg = json.loads(text)
            self.received.append(msg)
            method, rid, params = msg.get("method"), msg.get("id"), msg.get("params", {})
            if method == "login":
                await send({"id": rid, "result": {"message": "logged in", "sessid": sessid}})
                await send({"id": 1, "method": "telnyx_rtc.clientReady", "params": {"reattached_sessions": []}})
            elif method == "telnyx_rtc.gatewayState":
                await send({"id": rid, "result": {"params": {"state": "REGED"}, "sessid": sessid}})
            elif method == "telnyx_rtc.invite":
                call_id = params["dialogParams"]["callID"]
                await send({"id": rid, "result": {"message": "CALL CREATED", "callID": call_id, "sessid": sessid}})
                task = asyncio.create_task(self._answer(send, call_id, params["sdp"]))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif method == "telnyx_rtc.modify":
                action = params.get("action")
                state = "held" if action == "hold" else "active"
                await send({"id": rid, "result": {"callID": params.get("dialogParams", {}).get("callID"),
                                                  "action": action, "holdState": state, "sessid": sessid}})
            elif rid is not None:
                await send({"id": rid, "result": {"method": method} if method else {}})

    async def _answer(self, send: Any, call_id: str, offer: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        pc.addTrack(ToneTrack(TONE_HZ))
        await pc.setRemoteDescription(RTCSessionDescription(loopback_only(offer), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 ", sdp), sdp
        await send({"id": 2, "method": "telnyx_rtc.answer", "params": {"callID": call_id, "sdp": sdp}})

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        for pc in self.pcs:
            await pc.close()


@pytest.fixture
async def far_end(unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FarEnd, str]]:
    # Test-only: aioice never offers loopback host candidates by itself (shared/CONFORMANCE.md).
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    fe = FarEnd()
    async with serve(fe.handler, "127.0.0.1", unused_tcp_port):
        yield fe, f"ws://127.0.0.1:{unused_tcp_port}/ws"
    await fe.close()


async def test_call_media_dtmf_hold_hangup(far_end: tuple[FarEnd, str], tmp_path: Path) -> None:
    fe, url = far_end
    async with BrowserClient(fake_audio_wav=write_tone_wav(tmp_path / "mic.wav", 1000)) as b:
        await b.connect(url, login="u", password="p")
        await b.wait_event("telnyx.ready", timeout=5)
        call_id = await b.new_call("+15550100", callerName="Harness", callerNumber="+15550199")
        await b.wait_call_state(call_id, "trying", timeout=10)
        await b.wait_call_state(call_id, "active", timeout=10)
        assert (await b.call_state(call_id))["direction"] == "outbound"

        tone = await b.dominant_frequency(call_id, seconds=1.0)
        assert abs(tone.freq - TONE_HZ) < 10, tone
        assert tone.rms_dbfs > -30, tone
        stats = await b.rtp_stats(call_id)
        assert stats["connectionState"] == "connected", stats
        assert stats["inbound"]["packetsReceived"] > 20, stats
        assert stats["outbound"]["packetsSent"] > 20, stats

        await b.dtmf(call_id, "12#")
        info = await b.wait_event("ws.send", timeout=5, match=lambda f: f.get("method") == "telnyx_rtc.info")
        assert info.data["params"]["dtmf"] == "12#"

        await b.hold(call_id)
        await b.wait_call_state(call_id, "held", timeout=5)
        await b.unhold(call_id)
        await b.wait_call_state(call_id, "active", timeout=5)

        await b.hangup(call_id)
        await b.wait_call_state(call_id, "destroy", timeout=5)
        bye = [m for m in fe.received if m.get("method") == "telnyx_rtc.bye"]
        assert bye and bye[0]["params"]["causeCode"] == 16
