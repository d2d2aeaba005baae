"""A tone's level through the switch's echo: Opus within 0.5 dB of what was sent, as PCMU (issue 9 item 5).

Echo decodes on the switch's leg and encodes again, so the softphone and the switch's leg each
encode once: each lost 3 dB with Opus before (a 440 Hz tone at RMS 11585 came back at ~5800).
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from softphone.client.client import AudioConfig, Client
from softphone.media.dsp import dominant_frequency
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

AMPLITUDE = 0.5


def rms(samples: np.ndarray) -> float:
    x = samples.astype(np.float64)
    return float(np.sqrt(np.mean(x * x)))


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_tone_level_through_echo(codec: str) -> None:
    sent = rms(np.concatenate([ToneSource(440, AMPLITUDE).read_frame() for _ in range(50)]))  # type: ignore[misc]
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="null"), codecs=[codec])
        try:
            await client.connect()
            call = await client.new_call("echo")
            heard = BufferSink()
            call.set_output(heard)
            call.set_input(ToneSource(440, AMPLITUDE))
            await call.wait_state(CallState.ACTIVE)
            await asyncio.sleep(1.5)
            assert (call.codec or "").lower().startswith(codec.lower())
            tail = heard.samples(0.6)
            assert tail.shape[0] > 0 and abs(dominant_frequency(tail) - 440) < 5
            loss = 20 * math.log10(rms(tail) / sent)
            assert abs(loss) < 0.5, f"{codec}: sent RMS {sent:.0f}, heard {rms(tail):.0f} ({loss:+.1f} dB)"
            await call.hangup()
            await call.wait_ended(5)
        finally:
            await client.close()
