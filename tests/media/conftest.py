"""Fixtures for media tests: two MediaPeers connected on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink
from softphone.media.sources import AudioSource, NullSource


@dataclass
class Pair:
    a: MediaPeer
    b: MediaPeer
    a_sink: BufferSink
    b_sink: BufferSink
    offer: str
    answer: str


Connect = Callable[..., Awaitable[Pair]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    peers: list[MediaPeer] = []

    async def _connect(
        codecs: list[str] | None = None,
        source_a: AudioSource | None = None,
        source_b: AudioSource | None = None,
        *,
        mangle_offer: Callable[[str], str] | None = None,
        **options: object,
    ) -> Pair:
        opts = {"codecs": codecs or ["opus", "PCMU", "PCMA"], **options}
        a_sink, b_sink = BufferSink(5), BufferSink(5)
        a = MediaPeer(PeerOptions.loopback(**opts), source=source_a or NullSource(), sink=a_sink, name="a")
        b = MediaPeer(PeerOptions.loopback(**opts), source=source_b or NullSource(), sink=b_sink, name="b")
        peers.extend((a, b))
        offer = await a.create_offer()
        if mangle_offer is not None:
            offer = mangle_offer(offer)
        answer = await b.accept_offer(offer)
        await a.set_answer(answer)
        await asyncio.gather(a.wait_connected(5), b.wait_connected(5))
        return Pair(a, b, a_sink, b_sink, offer, answer)

    yield _connect
    for p in peers:
        await p.close()
