"""Fakes for Client/Call/Phone unit tests: a media peer that speaks SDP as plain strings, and a
client on the in-memory duplex (``unit.support.duplex.FakeVertoServer``). No socket, no aiortc.

Import as ``from unit.client.callfakes import ...``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from unit.support.duplex import FakeVertoServer

from softphone.client.client import Client
from softphone.errors import MediaError
from softphone.media.hub import AudioConfig
from softphone.media.sinks import AudioSink
from softphone.media.sources import AudioSource
from softphone.media.stats import MediaStats
from softphone.protocol import Credentials

URL = "ws://127.0.0.1:1"  # never opened: connect= is the duplex
CREDS = Credentials(login="demo", password="demo-secret")
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake offer\r\n"
ANSWER = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=fake answer\r\n"


class FakePeer:
    """A media peer: offers/answers canned SDP, records what it was given, can be told to fail."""

    instances: ClassVar[list[FakePeer]] = []
    fail_accept = False
    fail_set_answer = False

    def __init__(self, source: AudioSource, sink: AudioSink, name: str, codecs: list[str]) -> None:
        self.source, self.sink, self.name, self.codecs = source, sink, name, codecs
        self.remote: list[str] = []
        self.muted = False
        self.closed = False
        self.send_tap: AudioSink | None = None
        FakePeer.instances.append(self)

    @classmethod
    def reset(cls) -> None:
        cls.instances = []
        cls.fail_accept = cls.fail_set_answer = False

    async def create_offer(self) -> str:
        return OFFER

    async def accept_offer(self, sdp: str) -> str:
        self.remote.append(sdp)
        if FakePeer.fail_accept:
            raise MediaError("no common codec (fake)")
        return ANSWER

    async def set_answer(self, sdp: str) -> None:
        self.remote.append(sdp)
        if FakePeer.fail_set_answer:
            raise MediaError("cannot apply the answer (fake)")

    async def close(self) -> None:
        self.closed = True

    async def stats(self) -> MediaStats:
        return MediaStats(codec="PCMU/8000", rtt_ms=2.0, jitter_ms=1.0)

    def mute(self) -> None:
        self.muted = True

    def unmute(self) -> None:
        self.muted = False

    def set_source(self, source: AudioSource) -> None:
        self.source = source

    def set_send_tap(self, sink: AudioSink | None) -> None:
        self.send_tap = sink

    @property
    def negotiated_codec(self) -> str | None:
        return "PCMU/8000"

    @property
    def input_level_db(self) -> float:
        return -20.0

    @property
    def output_level_db(self) -> float:
        return -30.0


def make_client(server: FakeVertoServer, **kw: Any) -> Client:
    """A client on ``server``'s duplex with fake peers and no audio devices."""
    kw.setdefault("audio", AudioConfig(backend="null"))
    return Client(URL, CREDS, connect=server.connect, peer_factory=FakePeer, random=lambda: 0.0, **kw)


def call_id_of(frame: dict[str, Any]) -> str:
    params = frame.get("params", {})
    dialog = params.get("dialogParams", {})
    return str(params.get("callID") or dialog.get("callID"))


def invite_params(call_id: str, *, caller: str = "+15550001111", name: str = "Bob") -> dict[str, Any]:
    """A server invite (an inbound call) with an SDP offer."""
    return {"callID": call_id, "sdp": OFFER, "caller_id_name": name, "caller_id_number": caller,
            "callee_id_name": "demo", "callee_id_number": "demo"}


async def until(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (on the loop) until ``pred()``; fail after ``timeout`` seconds."""
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(loop(), timeout)
