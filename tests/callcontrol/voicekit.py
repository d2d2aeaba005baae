"""Helpers of the test_voice_* modules: an answered client call under Call Control, audio analysis.

``answered_call(sdk, phone)`` dials from a scripted :class:`phones.Phone` to an unroutable number
(the switch parks it and posts ``call.initiated``), answers it through the official SDK and
returns ``(call, call_control_id)``. ``TimedSink`` keeps each received frame with its arrival time
(for "command -> first audio" latency). ``band_db`` measures how loud one frequency is.
``recognize`` is pocketsphinx's default English model decoding a whole clip at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from phones import Phone, PhoneCall
from sdkfixtures import SdkEnv

from softphone.media.frames import level_dbfs
from softphone.media.sinks import BufferSink

_dialled = 0


async def answered_call(sdk: SdkEnv, phone: Phone, dest: str = "") -> tuple[PhoneCall, str]:
    """A parked client call, answered through the async SDK: ``(call, call_control_id)``."""
    global _dialled
    _dialled += 1
    dest = dest or f"+1800555{_dialled:04d}"
    call = await phone.dial(dest)
    init = await sdk.hooks.wait("call.initiated", lambda p: p["to"] == dest)
    ccid: str = init["payload"]["call_control_id"]
    await sdk.aclient.calls.actions.answer(ccid)
    await phone.wait_state(call, "active")
    return call, ccid


class TimedSink(BufferSink):
    """A BufferSink that also records ``(time.monotonic(), level dBFS)`` per frame."""

    def __init__(self, seconds: float = 30.0) -> None:
        super().__init__(seconds)
        self.times: list[tuple[float, float]] = []

    def write_frame(self, frame: Any) -> None:
        self.times.append((time.monotonic(), level_dbfs(frame)))
        super().write_frame(frame)

    def first_loud_after(self, t0: float, dbfs: float = -40.0) -> float | None:
        for t, db in self.times:
            if t >= t0 and db > dbfs:
                return t
        return None


def timed(call: PhoneCall) -> TimedSink:
    """Swap the call's sink for a :class:`TimedSink` (from the next frame on)."""
    sink = TimedSink()
    call.peer.set_sink(sink)
    call.sink = sink
    return sink


def band_db(samples: np.ndarray, hz: float, width: float = 25.0) -> float:
    """Level (dB, relative to full scale of a sine) of the ``hz`` band in ``samples`` (48 kHz)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < 480:
        return -120.0
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0]))) / (x.shape[0] / 4) / 32768.0
    freqs = np.fft.rfftfreq(x.shape[0], 1 / 48000)
    band = spec[(freqs > hz - width) & (freqs < hz + width)]
    return float(20 * np.log10(max(float(band.max()) if band.size else 0.0, 1e-6)))


def voiced_seconds(samples: np.ndarray, dbfs: float = -40.0, rate: int = 48000) -> float:
    """Seconds of 20 ms windows louder than ``dbfs``."""
    win = rate // 50
    n = samples.shape[0] // win
    return sum(1 for i in range(n) if level_dbfs(samples[i * win : (i + 1) * win]) > dbfs) / 50.0


async def wait_until(pred: Any, timeout: float = 10.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


async def wait_band(
    samples: Any, hz: float, *, above: float = -20.0, seconds: float = 0.4, timeout: float = 8.0
) -> None:
    """Wait until ``samples(seconds)`` (e.g. ``call.sink.samples``) carries ``hz`` louder than ``above`` dB."""
    deadline = time.monotonic() + timeout
    level = -120.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        level = band_db(samples(seconds), hz)
        if level > above:
            return
    raise AssertionError(f"{hz:.0f} Hz only at {level:.0f} dB (wanted > {above:.0f})")


def recognize(samples: np.ndarray, rate: int = 48000) -> str:
    """Lower-case words pocketsphinx's default English model hears in a whole clip (one utterance).

    A fresh decoder fed the clip in one piece (``full_utt``): the result does not depend on what
    the process decoded before. ``softphone.media.asr.recognize`` decodes live, in 0.1 s pieces,
    with live cepstral-mean normalisation, so its first clip in a process comes out worse
    (measured on the same flite prompt: "welcome to the guest line pencil and four sales ..." the
    first time, "welcome to the chest line press one for sales ..." after): fine for live
    transcripts, too jumpy for judging the audio of one prompt.
    """
    import pocketsphinx  # type: ignore[import-untyped]

    from softphone.media.frames import StreamResampler

    pcm = np.asarray(samples, dtype=np.int16).reshape(-1)
    pcm16 = StreamResampler(rate, 16000).process(pcm) if rate != 16000 else pcm
    decoder = pocketsphinx.Decoder(samprate=16000, loglevel="ERROR")
    decoder.start_utt()
    decoder.process_raw(pcm16.tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    words = [] if hyp is None else hyp.hypstr.split()
    return " ".join(w.split("(")[0].lower() for w in words if not w.startswith(("<", "[", "+")))
