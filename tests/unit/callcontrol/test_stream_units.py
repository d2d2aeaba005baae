"""Pure parts of media streaming: G.711 and L16 payload codecs, the playout queue with marks and
clear, stream_url policy and parameter checks (no sockets)."""

from __future__ import annotations

import asyncio
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from softphone.media.dsp import dominant_frequency
from softphone.switch.callcontrol import stream_audio, streaming
from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.stream_audio import Codec, Playout, stream_codec
from softphone.switch.callcontrol.streaming import check_stream_url

ALL = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)


def tone(hz: float, n: int, rate: int) -> np.ndarray:
    return (np.sin(2 * np.pi * hz * np.arange(n) / rate) * 0.3 * 32767).astype(np.int16)


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop (the reference) left the stdlib in 3.13")
def test_g711_matches_the_reference_implementation_on_every_sample() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    pcm = ALL.tobytes()
    assert stream_audio.ulaw_encode(ALL) == audioop.lin2ulaw(pcm, 2)
    assert stream_audio.alaw_encode(ALL) == audioop.lin2alaw(pcm, 2)
    every = bytes(range(256))
    assert stream_audio.ULAW_DECODE.tobytes() == audioop.ulaw2lin(every, 2)
    assert stream_audio.ALAW_DECODE.tobytes() == audioop.alaw2lin(every, 2)


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_g711_round_trip_is_within_the_segment_step(name: str) -> None:
    codec = Codec(name, 8000)
    back = codec.decode(codec.encode(ALL)).astype(np.int32)
    err = np.abs(back - ALL.astype(np.int32))
    assert err.max() <= 1024 and np.all(err <= np.abs(ALL.astype(np.int32)) // 16 + 16)
    assert codec.encode(np.zeros(160, np.int16)) == (b"\xff" if name == "PCMU" else b"\xd5") * 160


def test_l16_is_network_byte_order() -> None:
    codec = Codec("L16", 16000)
    assert codec.encode(np.array([1, -2], np.int16)) == b"\x00\x01\xff\xfe"
    assert codec.decode(b"\x00\x01\xff\xfe\x07").tolist() == [1, -2]  # an odd trailing byte is dropped


def test_stream_codec_falls_back_to_pcmu_for_codecs_it_does_not_transcode() -> None:
    assert stream_codec("PCMA") == Codec("PCMA", 8000)
    assert stream_codec("L16") == Codec("L16", 16000)
    for name in ("default", "G722", "OPUS", "AMR-WB", "PCMU"):
        assert stream_codec(name) == Codec("PCMU", 8000)


def test_a_tone_survives_pcmu() -> None:
    codec = Codec("PCMU", 8000)
    assert abs(dominant_frequency(codec.decode(codec.encode(tone(700, 8000, 8000))), 8000) - 700) < 5


def test_playout_plays_in_order_in_frames_and_reports_marks_after_their_audio() -> None:
    marks: list[str] = []
    p = Playout(marks.append)
    assert p.read_frame() is None
    p.add_mark("early")  # nothing queued: reported at once
    assert marks == ["early"]
    p.add_audio(np.full(1500, 7, np.int16))
    p.add_mark("m1")
    p.add_audio(np.full(960, 9, np.int16))
    first = p.read_frame()
    assert first is not None and first.shape == (960,) and (first == 7).all()
    assert marks == ["early"]
    second = p.read_frame()  # 540 left of the first chunk; the mark sits between them
    assert second is not None and (second[:540] == 7).all() and (second[540:] == 0).all()
    assert p.read_frame() is not None and marks == ["early", "m1"]
    assert p.read_frame() is None


def test_clear_drops_audio_and_returns_queued_marks() -> None:
    marks: list[str] = []
    p = Playout(marks.append)
    p.add_audio(np.ones(48000, np.int16))
    p.add_mark("end")
    p.clear()
    assert marks == ["end"] and p.read_frame() is None


@pytest.mark.parametrize(
    "url",
    ["ws://10.0.0.1/x", "wss://example.com/x", "http://127.0.0.1/x", "ws:///x", "", None, 5, "ws://127.0.0.1.example/"],
)
def test_stream_url_must_be_a_websocket_on_loopback(url: object) -> None:
    with pytest.raises(CommandError) as ce:
        check_stream_url(url)
    assert ce.value.status == 422


@pytest.mark.parametrize("url", ["ws://127.0.0.1:9000/m", "wss://localhost/m", "ws://[::1]:80/"])
def test_loopback_websockets_are_accepted(url: str) -> None:
    assert check_stream_url(url) == url


class StalledSocket:
    """A websocket whose peer never reads: every send waits forever."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)
        await asyncio.Event().wait()


async def test_a_server_that_stops_reading_ends_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "SEND_TIMEOUT_S", 0.05)
    leg = SimpleNamespace(connection_id="app", call_control_id="v3:x", extras={})
    stream = streaming.MediaStream(
        cc=None,  # type: ignore[arg-type]
        leg=leg,  # type: ignore[arg-type]
        url="ws://127.0.0.1:1/",
        track="inbound_track",
        codec=Codec("PCMU", 8000),
        bidirectional_mode="mp3",
        bidirectional_codec=Codec("PCMU", 8000),
        target_legs="self",
        custom_parameters={},
        auth_token="",
    )
    ws = StalledSocket()
    stream._put('{"event": "media"}')
    await asyncio.wait_for(stream._send(ws), 2.0)
    assert stream.stopped and ws.sent == ['{"event": "media"}']
