"""Levels survive the codec: Opus keeps a tone's RMS within 0.5 dB, as PCMU does (issue 9 item 5).

aiortc's Opus encoder takes stereo; a mono frame was upmixed at -3 dB per channel, and the
decoder's two (equal) channels, averaged back to mono, kept the loss: 3 dB per encode.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from softphone.media.dsp import dominant_frequency
from softphone.media.frames import to_av_frame
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource

from .conftest import Connect

pytestmark = pytest.mark.timeout(30)

AMPLITUDE = 0.5  # peak 16383, RMS 11585


def rms(samples: np.ndarray) -> float:
    x = samples.astype(np.float64)
    return float(np.sqrt(np.mean(x * x)))


def sent_rms(freq: float) -> float:
    return rms(np.concatenate([ToneSource(freq, AMPLITUDE).read_frame() for _ in range(50)]))  # type: ignore[misc]


def db(a: float, b: float) -> float:
    return 20 * math.log10(a / b)


async def steady_level(buf: BufferSink, freq: float) -> float:
    await asyncio.sleep(1.2)  # past the codec's start-up
    tail = buf.samples(0.6)
    assert tail.shape[0] > 0 and abs(dominant_frequency(tail) - freq) < 5
    return rms(tail)


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_tone_level_through_one_encode(connect: Connect, codec: str) -> None:
    pair = await connect([codec], ToneSource(440, AMPLITUDE), ToneSource(1004, AMPLITUDE))
    assert (pair.a.negotiated_codec or "").lower().startswith(codec.lower())
    b_heard, a_heard = await asyncio.gather(steady_level(pair.b_sink, 440), steady_level(pair.a_sink, 1004))
    assert abs(db(b_heard, sent_rms(440))) < 0.5, f"{codec}: {b_heard:.0f} vs {sent_rms(440):.0f}"
    assert abs(db(a_heard, sent_rms(1004))) < 0.5, f"{codec}: {a_heard:.0f} vs {sent_rms(1004):.0f}"


def test_stereo_frame_carries_the_mono_samples_on_both_channels() -> None:
    samples = ToneSource(440, AMPLITUDE).read_frame()
    assert samples is not None
    frame = to_av_frame(samples, 960, stereo=True)
    assert frame.layout.name == "stereo" and frame.samples == 960 and frame.pts == 960
    pairs = frame.to_ndarray().reshape(-1, 2)
    assert np.array_equal(pairs[:, 0], samples) and np.array_equal(pairs[:, 1], samples)
