"""media_legs.LegAudio taps: an AudioTap sees what a leg's party hears (the mix, read through
read_heard, which is also what the leg's peer pulls) and, on a simulated outside leg, what it says."""

from __future__ import annotations

import asyncio

import numpy as np

from softphone.media.dsp import dominant_frequency
from softphone.media.sources import ToneSource
from softphone.switch.callcontrol.pstn import PstnEndpoint
from softphone.switch.media_legs import LegAudio


class Tap:
    def __init__(self) -> None:
        self.said_frames: list[np.ndarray | None] = []
        self.heard_frames: list[np.ndarray | None] = []

    def said(self, frame: np.ndarray | None) -> None:
        self.said_frames.append(frame)

    def heard(self, frame: np.ndarray | None) -> None:
        self.heard_frames.append(frame)


def test_a_tap_sees_the_mix_as_the_peer_reads_it() -> None:
    leg = LegAudio("t")
    tap = Tap()
    leg.taps.append(tap)
    leg.play(ToneSource(500.0, 0.3))
    leg.push(np.full(960, 100, np.int16))
    frames = [leg.read_frame() for _ in range(20)]  # the AudioSource surface the peer pulls
    assert len(tap.heard_frames) == 20
    assert all(a is b for a, b in zip(frames, tap.heard_frames, strict=True))
    got = np.concatenate([f for f in tap.heard_frames if f is not None])
    assert abs(dominant_frequency(got) - 500) < 10
    leg.taps.remove(tap)
    leg.read_heard()
    assert len(tap.heard_frames) == 20


async def test_an_outside_leg_shows_its_taps_what_it_says_and_hears() -> None:
    leg = PstnEndpoint("pstn:test", ToneSource(700.0, 0.3))
    tap = Tap()
    leg.taps.append(tap)
    leg.play(ToneSource(300.0, 0.3))
    await leg.start()
    try:
        await asyncio.sleep(0.5)
    finally:
        await leg.close()
    said = np.concatenate([f for f in tap.said_frames if f is not None])
    heard = np.concatenate([f for f in tap.heard_frames if f is not None])
    assert len(tap.said_frames) >= 10 and len(tap.heard_frames) == len(tap.said_frames)
    assert abs(dominant_frequency(said) - 700) < 10 and abs(dominant_frequency(heard) - 300) < 10
