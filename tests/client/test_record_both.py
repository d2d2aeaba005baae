"""record_mode="stereo" (the default): an echo call recorded with what we send left, the far end right."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from softphone.client.client import AudioConfig, Client
from softphone.media.dsp import dominant_frequency
from softphone.media.frames import SAMPLE_RATE
from softphone.media.sources import ToneSource
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

FIRST, SECOND = 440.0, 1000.0


def first_time_of(channel: np.ndarray, freq: float, start: int = 0) -> float:
    """Seconds into ``channel`` of the first 20 ms block (from ``start``) whose dominant tone is ``freq``."""
    block = SAMPLE_RATE // 50
    for i in range(start, channel.shape[0] - block, block):
        chunk = channel[i : i + block]
        if np.abs(chunk).max() > 1000 and abs(dominant_frequency(chunk) - freq) < 40:
            return i / SAMPLE_RATE
    raise AssertionError(f"no {freq:g} Hz in the channel")


async def test_record_both_sides_of_an_echo_call(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="tone", tone_hz=FIRST, record_file=str(path)))
        try:
            await client.connect()
            call = await client.new_call("echo")
            await call.wait_state(CallState.ACTIVE)
            await asyncio.sleep(1.5)
            call.set_input(ToneSource(SECOND, 0.3))  # a change we can find on both channels
            await asyncio.sleep(1.5)
            await call.hangup()
            await call.wait_ended(5)
        finally:
            await client.close()
    with wave.open(str(path)) as wf:
        assert (wf.getnchannels(), wf.getframerate(), wf.getsampwidth()) == (2, SAMPLE_RATE, 2)
        data = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").reshape(-1, 2)
    ours, far = data[:, 0], data[:, 1]
    assert data.shape[0] > 2.5 * SAMPLE_RATE
    # Both channels carry the first tone, then the second one.
    sent_first, heard_first = first_time_of(ours, FIRST), first_time_of(far, FIRST)
    sent_second = first_time_of(ours, SECOND)
    heard_second = first_time_of(far, SECOND, int(heard_first * SAMPLE_RATE))
    assert abs(dominant_frequency(ours[int(sent_first * SAMPLE_RATE):int(sent_second * SAMPLE_RATE)]) - FIRST) < 5
    assert abs(dominant_frequency(far[int(heard_second * SAMPLE_RATE):]) - SECOND) < 5
    # Each channel keeps its own time: the echo of a change is heard after we send it, within a round trip.
    assert sent_first <= heard_first
    assert 0.0 < heard_second - sent_second < 0.3  # the loopback round trip (~80 ms), not drift
