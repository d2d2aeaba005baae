# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""Media streaming through the official SDK: ``streaming_start``/``streaming_stop`` against a real switch,
a real softphone leg (aiortc) and a loopback websocket server written here, as a voice-AI backend would.

The server decodes the media frames and finds the phone's tone in them; it sends another tone back
(bidirectional) and the phone hears it. Latency from a tone change at the phone to the first frame
with the new tone at the server is measured and bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import telnyx
from phones import Phone, PhoneCall, heard_hz, wait_hz
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk, validate_webhook  # noqa: F401
from websockets.asyncio.server import ServerConnection, serve

from softphone.media.dsp import dominant_frequency
from softphone.media.frames import level_dbfs
from softphone.media.sources import FileSource, ToneSource
from softphone.switch.callcontrol.recording import encode_mp3
from softphone.switch.callcontrol.stream_audio import Codec, ulaw_encode

PHONE_HZ = 600.0
BACK_HZ = 1000.0


def tone(hz: float, seconds: float, rate: int, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * level * 32767).astype(np.int16)


@dataclass
class StreamServer:
    """A loopback websocket server receiving Telnyx media-stream frames."""

    url: str = ""
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    reply: list[dict[str, Any]] = field(default_factory=list)
    """Frames sent back once ``start`` arrives."""
    got: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    conn: ServerConnection | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.conn = ws
        self.headers = dict(ws.request.headers) if ws.request is not None else {}
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.frames.append((time.monotonic(), msg))
                self.got.set()
                if msg["event"] == "start":
                    for out in self.reply:
                        await ws.send(json.dumps(out))
        finally:
            self.closed.set()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for _, m in self.frames if m["event"] == name]

    def audio(self, track: str, codec: Codec, *, since: float = 0.0) -> np.ndarray:
        chunks = [
            codec.decode(base64.b64decode(m["media"]["payload"]))
            for t, m in self.frames
            if m["event"] == "media" and m["media"]["track"] == track and t >= since
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    async def wait(self, pred: Any, timeout: float = 10.0) -> None:
        async def scan() -> None:
            while not pred():
                self.got.clear()
                await self.got.wait()

        await asyncio.wait_for(scan(), timeout)


@contextlib.asynccontextmanager
async def stream_server(reply: list[dict[str, Any]] | None = None) -> AsyncIterator[StreamServer]:
    srv = StreamServer(reply=reply or [])
    async with serve(srv.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        srv.url = f"ws://127.0.0.1:{port}/media"
        yield srv


async def answered_leg(sdk: SdkEnv, phone: Phone) -> tuple[str, PhoneCall]:
    res = await sdk.run(sdk.client.calls.dial, connection_id="app", to=phone.user, from_=APP_NUMBER)
    assert res.data is not None
    inc = await phone.next_incoming()
    await phone.answer(inc)
    ccid = res.data.call_control_id
    await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == ccid)
    return ccid, inc


def check_webhooks(sdk: SdkEnv, *event_types: str) -> None:
    """Every webhook of these types arrived signed (the SDK's unwrap verifies it) and validates
    strictly against the SDK's model of its event type; each type was seen."""
    for event_type in event_types:
        raws = sdk.hooks.raw_for(event_type)
        assert raws, f"no {event_type} webhook"
        for raw in raws:
            event = sdk.client.webhooks.unwrap(raw.body, headers=raw.headers, key=sdk.public_key)
            assert getattr(event, "data", None) is not None
            typed = validate_webhook(raw.body)
            assert typed.data.event_type == event_type  # type: ignore[attr-defined]


def pcmu_back(hz: float, seconds: float) -> list[dict[str, Any]]:
    """``seconds`` of a tone as 20 ms PCMU media frames, the way a voice-AI backend streams."""
    pcm = tone(hz, seconds, 8000)
    return [
        {"event": "media", "media": {"payload": base64.b64encode(ulaw_encode(pcm[i : i + 160])).decode()}}
        for i in range(0, pcm.shape[0], 160)
    ]


def quiet_windows(samples: np.ndarray, rate: int = 48000) -> int:
    """How many 2.5 ms windows of ``samples`` are below -40 dBFS (a gap between chunks shows)."""
    win = rate // 400
    n = samples.shape[0] // win
    return sum(1 for i in range(n) if level_dbfs(samples[i * win : (i + 1) * win]) < -40.0)


async def test_both_tracks_pcmu_with_bidirectional_rtp_and_marks(sdk: SdkEnv) -> None:
    pcmu = Codec("PCMU", 8000)
    reply = [*pcmu_back(BACK_HZ, 3.0), {"event": "mark", "mark": {"name": "after-tone"}}]
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"], PHONE_HZ) as phone, stream_server(reply) as srv:
        ccid, call = await answered_leg(sdk, phone)
        res = await sdk.run(
            sdk.client.calls.actions.start_streaming,
            ccid,
            stream_url=srv.url,
            stream_track="both_tracks",
            stream_bidirectional_mode="rtp",
            stream_bidirectional_codec="PCMU",
            custom_parameters=[{"name": "customer_id", "value": "c-42"}],
            client_state="c3RyZWFt",
        )
        assert res.data is not None and res.data.result == "ok"
        started = await sdk.hooks.wait("streaming.started", lambda p: p["call_control_id"] == ccid)
        assert started["payload"]["stream_url"] == srv.url and started["payload"]["client_state"] == "c3RyZWFt"

        # The phone hears the tone the server sent back, then the mark comes back when it has played.
        await wait_hz(call, BACK_HZ)
        await asyncio.sleep(1.5)
        mid = call.sink.samples(1.0)  # within the 3 s the 150 chunks last
        assert mid.shape[0] >= 40000 and abs(dominant_frequency(mid) - BACK_HZ) < 15
        assert quiet_windows(mid) == 0  # the chunks joined without gaps
        await srv.wait(lambda: srv.events("mark"), timeout=8.0)
        assert srv.events("mark")[0]["mark"]["name"] == "after-tone"

        await srv.wait(lambda: len(srv.events("media")) > 100)
        connected, start = srv.frames[0][1], srv.frames[1][1]
        assert connected == {"event": "connected", "version": "1.0.0"}
        assert start["event"] == "start" and start["stream_id"]
        assert start["start"]["call_control_id"] == ccid
        assert start["start"]["media_format"] == {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}
        assert start["start"]["custom_parameters"] == {"customer_id": "c-42"}
        assert start["start"]["client_state"] == "c3RyZWFt"
        media = srv.events("media")
        assert {m["media"]["track"] for m in media} == {"inbound", "outbound"}
        inbound = [m for m in media if m["media"]["track"] == "inbound"]
        assert [int(m["media"]["chunk"]) for m in inbound[:5]] == [1, 2, 3, 4, 5]
        assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)  # 20 ms of PCMU
        seqs = [int(m["sequence_number"]) for _, m in srv.frames if "sequence_number" in m]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        # Inbound is what the phone says (its tone); outbound is what it hears (the tone sent back).
        said = srv.audio("inbound", pcmu)
        assert abs(dominant_frequency(said[-4000:], 8000) - PHONE_HZ) < 15
        heard = srv.audio("outbound", pcmu)
        assert abs(dominant_frequency(heard[8000:16000], 8000) - BACK_HZ) < 15

        # Latency: the phone changes its tone; the first inbound frame carrying it at the server.
        t0 = time.monotonic()
        call.peer.set_source(ToneSource(800.0, 0.3))

        def new_tone_arrived() -> bool:
            return any(
                t >= t0
                and m["event"] == "media"
                and m["media"]["track"] == "inbound"
                and abs(dominant_frequency(pcmu.decode(base64.b64decode(m["media"]["payload"])), 8000) - 800) < 30
                for t, m in srv.frames
            )

        await srv.wait(new_tone_arrived, timeout=5.0)
        first = min(
            t
            for t, m in srv.frames
            if t >= t0
            and m["event"] == "media"
            and m["media"]["track"] == "inbound"
            and abs(dominant_frequency(pcmu.decode(base64.b64decode(m["media"]["payload"])), 8000) - 800) < 30
        )
        latency_ms = (first - t0) * 1000
        print(f"stream latency (tone onset at the phone -> first media frame with it): {latency_ms:.0f} ms")
        assert latency_ms < 300, latency_ms

        # Stopped through the async client: a stop frame, the socket closed, streaming.stopped.
        res2 = await sdk.aclient.calls.actions.stop_streaming(ccid, client_state="c3RvcA==")
        assert res2.data is not None and res2.data.result == "ok"
        await asyncio.wait_for(srv.closed.wait(), 5.0)
        assert srv.frames[-1][1]["event"] == "stop"
        assert srv.frames[-1][1]["stop"]["call_control_id"] == ccid
        stopped = await sdk.hooks.wait("streaming.stopped", lambda p: p["call_control_id"] == ccid)
        assert stopped["payload"]["client_state"] == "c3RvcA=="
        check_webhooks(sdk, "streaming.started", "streaming.stopped")
        # No stream left to stop: Telnyx's error shape.
        with pytest.raises(telnyx.UnprocessableEntityError) as ue:
            await sdk.aclient.calls.actions.stop_streaming(ccid)
        assert ue.value.response.json()["errors"][0]["code"]


async def test_inbound_track_l16_and_hangup_stops_the_stream(sdk: SdkEnv) -> None:
    l16 = Codec("L16", 16000)
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"], PHONE_HZ) as phone, stream_server() as srv:
        ccid, call = await answered_leg(sdk, phone)
        await sdk.run(
            sdk.client.calls.actions.start_streaming,
            ccid,
            stream_url=srv.url,
            stream_codec="L16",
            stream_auth_token="tok-123",
        )
        await srv.wait(lambda: len(srv.events("media")) > 60)
        start = srv.events("start")[0]
        assert start["start"]["media_format"] == {"encoding": "L16", "sample_rate": 16000, "channels": 1}
        assert srv.headers.get("x-telnyx-streaming-auth-token") == "tok-123"
        assert srv.events("connected")[0]["x-telnyx-streaming-auth-token"] == "tok-123"
        assert {m["media"]["track"] for m in srv.events("media")} == {"inbound"}  # the default track
        assert all(len(base64.b64decode(m["media"]["payload"])) == 640 for m in srv.events("media"))
        said = srv.audio("inbound", l16)
        assert abs(dominant_frequency(said[-8000:], 16000) - PHONE_HZ) < 15

        # DTMF the caller sends goes down the socket as dtmf frames (and still as webhooks).
        await phone.dtmf(call, "12#")
        await srv.wait(lambda: len(srv.events("dtmf")) == 3)
        frames = srv.events("dtmf")
        assert [f["dtmf"]["digit"] for f in frames] == ["1", "2", "#"]
        assert all(f["stream_id"] == start["stream_id"] and f["occurred_at"].endswith("Z") for f in frames)
        await sdk.hooks.wait("call.dtmf.received", lambda p: p["digit"] == "#")

        await sdk.run(sdk.client.calls.actions.hangup, ccid)
        await asyncio.wait_for(srv.closed.wait(), 5.0)
        assert srv.frames[-1][1]["event"] == "stop"
        await sdk.hooks.wait("streaming.stopped", lambda p: p["call_control_id"] == ccid)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


async def test_file_mode_payload_is_played_and_clear_stops_it(sdk: SdkEnv, tmp_path: Path) -> None:
    # Default bidirectional mode (Telnyx: mp3): each payload is a whole MP3 file, decoded by PyAV.
    wav, mp3 = tmp_path / "t.wav", tmp_path / "t.mp3"
    wav.write_bytes(wav_bytes(tone(BACK_HZ, 12.0, 16000), 16000))
    encode_mp3(wav, mp3)
    assert mp3.read_bytes()[:3] == b"ID3" or mp3.read_bytes()[0] == 0xFF
    payload = base64.b64encode(mp3.read_bytes()).decode()
    reply = [{"event": "media", "media": {"payload": payload}}]
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"], PHONE_HZ) as phone, stream_server(reply) as srv:
        ccid, call = await answered_leg(sdk, phone)
        await sdk.run(sdk.client.calls.actions.start_streaming, ccid, stream_url=srv.url)
        await wait_hz(call, BACK_HZ)
        assert srv.conn is not None
        await srv.conn.send(json.dumps({"event": "clear"}))
        await srv.conn.send(json.dumps({"event": "bogus"}))
        await srv.wait(lambda: srv.events("error"))
        assert srv.events("error")[0]["payload"]["title"] == "unknown_event"
        await asyncio.sleep(1.0)
        assert abs(heard_hz(call, 0.5) - BACK_HZ) > 50  # cleared: the 12 s tone is gone
        # The server closing the socket ends the stream.
        await srv.conn.close()
        await sdk.hooks.wait("streaming.stopped", lambda p: p["call_control_id"] == ccid)


async def test_bad_stream_urls_and_params_are_422_and_an_unreachable_one_fails(sdk: SdkEnv) -> None:
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"], PHONE_HZ) as phone:
        ccid, _ = await answered_leg(sdk, phone)
        for kwargs in (
            {"stream_url": "ws://203.0.113.5/media"},
            {"stream_url": "http://127.0.0.1:1/media"},
            {},
            {"stream_url": "ws://127.0.0.1:1/m", "stream_track": "sideways"},
            {
                "stream_url": "ws://127.0.0.1:1/m",
                "stream_bidirectional_mode": "rtp",
                "stream_bidirectional_codec": "OPUS",
            },
        ):
            with pytest.raises(telnyx.UnprocessableEntityError) as ue:
                await sdk.aclient.calls.actions.start_streaming(ccid, **kwargs)  # type: ignore[arg-type]
            err = ue.value.response.json()["errors"][0]
            assert err["code"] == "10015" and err["title"] and err["detail"]

        # Loopback, but nobody listening: accepted, then streaming.failed with a reason.
        await sdk.run(sdk.client.calls.actions.start_streaming, ccid, stream_url="ws://127.0.0.1:9/nothing")
        failed = await sdk.hooks.wait("streaming.failed", lambda p: p["call_control_id"] == ccid)
        assert "127.0.0.1:9" in failed["payload"]["failure_reason"]
        assert failed["payload"]["stream_params"] == {
            "stream_url": "ws://127.0.0.1:9/nothing",
            "track": "inbound_track",
        }
        assert not sdk.hooks.events("streaming.started")
        check_webhooks(sdk, "streaming.failed")


async def test_answer_with_stream_url_and_transcription(sdk: SdkEnv, tmp_path: Path) -> None:
    """Telnyx's answer takes stream_* and transcription options: the parked caller is answered
    and streamed at once (the voice-AI pattern), and transcribed."""
    wav = tmp_path / "hello.wav"
    subprocess.run(
        ["flite", "-voice", "slt", "-t", "Press one for sales, press two for support.", "-o", str(wav)],
        check=True,
        capture_output=True,
    )
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"], PHONE_HZ) as phone, stream_server() as srv:
        call = await phone.dial("+18005550199")  # an outside number from an app connection's client: parked
        init = await sdk.hooks.wait("call.initiated")
        ccid = init["payload"]["call_control_id"]
        # Bad streaming options are refused before the call is answered.
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.aclient.calls.actions.answer(ccid, stream_url="ws://192.0.2.1/x")
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.aclient.calls.actions.answer(
                ccid, transcription=True, transcription_config={"transcription_tracks": "sideways"}
            )
        assert not sdk.hooks.events("call.answered")

        await sdk.aclient.calls.actions.answer(
            ccid,
            stream_url=srv.url,
            stream_track="inbound_track",
            stream_codec="PCMA",
            transcription=True,
            transcription_config={"transcription_tracks": "inbound"},
        )
        await phone.wait_state(call, "active")
        await sdk.hooks.wait("streaming.started", lambda p: p["call_control_id"] == ccid)
        await srv.wait(lambda: len(srv.events("media")) > 50)
        assert srv.events("start")[0]["start"]["media_format"]["encoding"] == "PCMA"
        said = srv.audio("inbound", Codec("PCMA", 8000))
        assert abs(dominant_frequency(said[-4000:], 8000) - PHONE_HZ) < 15

        call.peer.set_source(FileSource(wav))
        got = await sdk.hooks.wait("call.transcription", lambda p: p["call_control_id"] == ccid, timeout=20.0)
        # pocketsphinx through Opus is fragile on some phrases ("your call is important to us" came
        # back as "yeah collison portentous" after the switch to 32 kbit/s mono Opus, run after run;
        # a menu phrase fares better ("press line for sales pressed to force a part" here, old path
        # and new): its two key words heard make the transcript this phrase's (a tone or silence
        # gives neither)
        words = set(got["payload"]["transcription_data"]["transcript"].split())
        assert {"press", "sales"} <= words, words


async def test_two_streams_one_playing_to_the_opposite_leg_stopped_by_stream_id(sdk: SdkEnv) -> None:
    url = sdk.switch.url
    async with (
        Phone(url, "agent1", AGENTS["agent1"], PHONE_HZ) as p1,
        Phone(url, "agent2", AGENTS["agent2"], 900.0) as p2,
        stream_server(pcmu_back(BACK_HZ, 20.0)) as player,
        stream_server() as listener,
    ):
        ccid1, call1 = await answered_leg(sdk, p1)
        ccid2, call2 = await answered_leg(sdk, p2)
        await sdk.run(sdk.client.calls.actions.bridge, ccid1, call_control_id_to_bridge_with=ccid2)
        await wait_hz(call1, 900.0)
        await sdk.run(
            sdk.client.calls.actions.start_streaming,
            ccid1,
            stream_url=player.url,
            stream_bidirectional_mode="rtp",
            stream_bidirectional_target_legs="opposite",
        )
        await sdk.aclient.calls.actions.start_streaming(ccid1, stream_url=listener.url, stream_track="outbound_track")
        # The tone sent back goes to the other party only; agent1 still hears agent2's 900 Hz.
        await wait_hz(call2, BACK_HZ)
        assert abs(heard_hz(call1, 0.5) - 900.0) < 15
        # agent1's outbound track (what it hears) carries agent2's tone, not agent1's own.
        await listener.wait(lambda: len(listener.events("media")) > 50)
        heard = listener.audio("outbound", Codec("PCMU", 8000))
        assert abs(dominant_frequency(heard[-4000:], 8000) - 900.0) < 15

        # Stop the player by its stream_id: the tone stops, the listener keeps streaming.
        player_id = player.events("start")[0]["stream_id"]
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.aclient.calls.actions.stop_streaming(ccid1, stream_id="no-such-stream")
        await sdk.aclient.calls.actions.stop_streaming(ccid1, stream_id=player_id)
        await asyncio.wait_for(player.closed.wait(), 5.0)
        await wait_hz(call2, PHONE_HZ)  # agent2 hears agent1 again, the tone is gone
        n = len(listener.events("media"))
        await listener.wait(lambda: len(listener.events("media")) > n + 25)
        assert not listener.closed.is_set()
        stopped = await sdk.hooks.wait("streaming.stopped", lambda p: p["call_control_id"] == ccid1)
        assert stopped["payload"]["stream_url"] == player.url
