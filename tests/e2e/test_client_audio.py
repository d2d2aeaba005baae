"""The PortAudio backend end to end on the virtual PulseAudio devices (tools/virtual-audio.sh).

Runs under tools/run-tests.sh, which exports the PulseAudio environment; without it the
``virtual_audio`` fixture FAILS with a clear message (never skips).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from softphone.client.client import AudioConfig, Client, ClientEvent
from softphone.errors import DeviceNotFound
from softphone.media.dsp import dominant_frequency
from softphone.media.hub import _pyaudio, _quiet_stderr, find_device
from softphone.media.sinks import BufferSink
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.audio, pytest.mark.timeout(60)]


@pytest.fixture
async def switch(virtual_audio: dict[str, str]) -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@contextlib.contextmanager
def play_tone(device: str, hz: float) -> Iterator[None]:
    """Play a steady tone into a PortAudio output device (a second, independent stream)."""
    import pyaudio

    pa = _pyaudio()
    dev = find_device(device, output=True)
    phase = [0]

    def callback(data: Any, frames: int, info: Any, status: int) -> tuple[bytes, int]:
        n = np.arange(phase[0], phase[0] + frames)
        phase[0] += frames
        return (np.sin(2 * math.pi * hz * n / 48000) * 8000).astype(np.int16).tobytes(), pyaudio.paContinue

    with _quiet_stderr():
        stream = pa.open(format=pyaudio.paInt16, channels=1, rate=48000, output=True,
                         output_device_index=dev.index, frames_per_buffer=960, stream_callback=callback)
    try:
        yield
    finally:
        stream.stop_stream()
        stream.close()


def record_device(device: str, seconds: float = 0.6) -> np.ndarray[Any, Any]:
    """Record from a PortAudio input device (blocking; run in a thread)."""
    import pyaudio

    pa = _pyaudio()
    dev = find_device(device, output=False)
    with _quiet_stderr():
        stream = pa.open(format=pyaudio.paInt16, channels=1, rate=48000, input=True,
                         input_device_index=dev.index, frames_per_buffer=960)
    try:
        stream.read(4800, exception_on_overflow=False)  # let the stream settle
        data = stream.read(int(48000 * seconds), exception_on_overflow=False)
    finally:
        stream.close()
    return np.frombuffer(data, dtype=np.int16)


def record_pulse_monitor(source: str, seconds: float = 0.6) -> np.ndarray[Any, Any]:
    """Record a PulseAudio source with parec (for a sink the test added at run time)."""
    n = int(48000 * seconds) * 2
    proc = subprocess.Popen(["parec", f"--device={source}", "--raw", "--format=s16le", "--rate=48000",
                             "--channels=1", "--latency-msec=20"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        data = read_for(proc.stdout, 9600 + n, timeout=seconds + 5.0)[9600:]
    finally:
        proc.kill()
        proc.wait()
    return np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)


def read_for(stream: Any, n: int, timeout: float) -> bytes:
    """Up to ``n`` bytes from a pipe, or what came within ``timeout`` s: a source that sends nothing
    fails the test's audio check instead of blocking its thread, and with it the event loop's
    shutdown, forever (a stuck parec hung a whole xdist worker)."""
    fd = stream.fileno()
    chunks: list[bytes] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def rms(x: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0


async def until(pred: Any, timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_missing_device_is_a_clear_error_before_the_call(switch: Switch) -> None:
    client = Client(switch.url, Credentials(login="demo", password="demo-secret"),
                    audio=AudioConfig(backend="pyaudio", input_device="no-such-mic"))
    await client.connect()
    try:
        with pytest.raises(DeviceNotFound, match="no-such-mic"):
            await client.new_call("echo")
        assert not client.calls
    finally:
        await client.close()


async def test_portaudio_call_and_output_switch(switch: Switch) -> None:
    demo = Client(switch.url, Credentials(login="demo", password="demo-secret"),
                  audio=AudioConfig(backend="pyaudio", input_device="vmic", output_device="vspeaker"))
    alice = Client(switch.url, Credentials(login="alice", password="alice-secret"),
                   audio=AudioConfig(backend="tone", tone_hz=880.0))
    module = ""
    warnings: list[ClientEvent] = []
    demo.on("call.device_warning", warnings.append)
    try:
        await demo.connect()
        await alice.connect()
        assert demo.audio_backend == "pyaudio"
        with play_tone("vmicfeed", 660.0):
            call = await demo.new_call("alice")
            await until(lambda: any(c.state == CallState.RINGING for c in alice.calls.values()))
            inbound = next(iter(alice.calls.values()))
            heard = BufferSink()
            inbound.set_output(heard)
            await inbound.answer()
            await call.wait_state(CallState.ACTIVE)
            # the tone played into the virtual microphone reaches the far end
            await until(lambda: heard.duration_s > 0.6 and abs(dominant_frequency(heard.samples(0.5)) - 660) < 15)
            # the far end's tone is played on the virtual speaker
            speaker = await asyncio.to_thread(record_device, "vspeaker_monitor")
            assert abs(dominant_frequency(speaker) - 880) < 15 and rms(speaker) > 300
            # move the output to a second sink mid-call
            out = subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=spk2", "rate=48000",
                                  "channels=1", "norewinds=1"], capture_output=True, text=True, check=True)
            module = out.stdout.strip()
            os.environ["PULSE_SINK"] = "spk2"  # read by libpulse when the 'pulse' ALSA PCM opens
            demo.set_audio_output("pulse")
            await until(lambda: demo.audio.hub is not None and demo.audio.hub.output is not None
                        and demo.audio.hub.output.name == "pulse")
            await asyncio.sleep(0.3)
            moved = await asyncio.to_thread(record_pulse_monitor, "spk2.monitor")
            assert abs(dominant_frequency(moved) - 880) < 15 and rms(moved) > 300
            old = await asyncio.to_thread(record_device, "vspeaker_monitor")
            assert rms(old) < 50
            assert call.state == CallState.ACTIVE and not warnings
            await call.hangup()
            await call.wait_ended(5)
    finally:
        os.environ.pop("PULSE_SINK", None)
        await demo.close()
        await alice.close()
        if module:
            subprocess.run(["pactl", "unload-module", module], check=False)
