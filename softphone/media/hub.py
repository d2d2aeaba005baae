"""Audio for calls: :class:`AudioConfig`, backends and the shared PortAudio devices.

The media engine (:mod:`softphone.media`) moves 20 ms frames of 48 kHz mono int16
between sources, peers and sinks. This module decides *which* sources and sinks a
call gets from an :class:`AudioConfig`:

* ``pyaudio``: one PortAudio input and one output stream per client, shared by
  every call (:class:`DeviceHub`). PortAudio runs in callback mode on its own
  thread; frames cross to the loop with ``call_soon_threadsafe`` (DESIGN.md §3).
  Each call subscribes its own source (a copy of every microphone frame) and
  its own sink (mixed into the speaker), so devices can be switched for every
  live call at once without touching the peers.
* ``tone``/``file``/``null``: a fresh source per call, a null sink (or a WAV
  recorder when ``record_file`` is set).
* ``auto``: ``pyaudio`` when PortAudio lists an input and an output device,
  otherwise ``tone`` + null with a one-line explanation (:attr:`AudioManager.note`).

Device trouble before a call raises :class:`DeviceNotFound`/:class:`DeviceBusy`;
during a call the hub falls back (silence in, nothing out) and reports through
``on_warning``, never raising into the media path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from softphone.errors import DeviceBusy, MediaError
from softphone.media.devices import AudioDevice, devices_of, match_device
from softphone.media.devices import quiet_stderr as _quiet_stderr
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame
from softphone.media.sinks import RECORD_MODES, AudioSink, BaseSink, NullSink, TeeSink, WavRecorder
from softphone.media.sources import AudioSource, BaseSource, FileSource, NullSource, ToneSource

logger = logging.getLogger("softphone.media.hub")

BACKENDS = ("auto", "pyaudio", "file", "tone", "null")

#: ``pyaudio.paContinue``, kept here so the audio callbacks (PortAudio's thread, 50 times a second)
#: do no import work.
PA_CONTINUE = 0

#: A running stream whose callback has not run for this long is treated as lost: PortAudio keeps
#: such a stream "active" (e.g. its PulseAudio sink/source was suspended), so is_active() misses it.
STALL_S = 2.0


@dataclass(frozen=True)
class AudioConfig:
    """Where a call's audio comes from and goes to.

    ``input_device``/``output_device`` are a PortAudio index or a case-insensitive
    name substring (``None``: the system default). ``record_file`` records each
    call as ``record_mode`` says: ``stereo`` (local side left, remote right, on one
    clock), ``mixed`` (both in mono) or ``remote`` (what is heard). ``tone_hz`` is the
    tone sent by the ``tone`` backend. ``ringback``/``ringtone`` enable the local
    tones for outbound calls ringing without early media and inbound calls.
    """

    backend: str = "auto"
    input_device: str | int | None = None
    output_device: str | int | None = None
    input_file: str | None = None
    record_file: str | None = None
    record_mode: str = "stereo"
    tone_hz: float = 440.0
    ringback: bool = True
    ringtone: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise MediaError(f"unknown audio backend {self.backend!r} (choose from {', '.join(BACKENDS)})")
        if self.backend == "file" and not self.input_file:
            raise MediaError("the file backend needs input_file")
        if self.record_mode not in RECORD_MODES:
            raise MediaError(f"unknown record mode {self.record_mode!r} (choose from {', '.join(RECORD_MODES)})")


# --- PortAudio ----------------------------------------------------------------------------


_pa_lock = threading.Lock()
_pa_instance: Any = None


def _pyaudio() -> Any:
    """The process-wide ``pyaudio.PyAudio`` (created quietly once)."""
    global _pa_instance
    with _pa_lock:
        if _pa_instance is None:
            try:
                import pyaudio
            except ImportError as exc:  # pragma: no cover - installed with the project
                raise MediaError("PyAudio is not installed") from exc
            with _quiet_stderr():
                _pa_instance = pyaudio.PyAudio()
        return _pa_instance


def find_device(spec: str | int | None, *, output: bool) -> AudioDevice:
    """Resolve ``spec`` (index, name or substring; ``None``: the default) against the devices
    PortAudio lists now, by the one rule (:func:`~softphone.media.devices.match_device`).

    Uses the process-wide PortAudio instance the streams are opened on. Blocks: call it
    through ``asyncio.to_thread`` from the event loop. Raises :class:`DeviceNotFound`.
    """
    pa = _pyaudio()
    with _quiet_stderr():
        devices = devices_of(pa)
    return match_device(spec, devices, output=output)


def probe_pyaudio() -> str | None:
    """None when PortAudio has an input and an output device, else why not (one line)."""
    try:
        find_device(None, output=False)
        find_device(None, output=True)
    except MediaError as exc:
        return str(exc)
    return None


class _HubSource(BaseSource):
    """One call's copy of the microphone."""

    def __init__(self, hub: DeviceHub) -> None:
        self.hub = hub
        self.queue: collections.deque[Frame] = collections.deque(maxlen=5)

    def read_frame(self) -> Frame | None:
        return self.queue.popleft() if self.queue else None

    async def stop(self) -> None:
        self.hub.sources.discard(self)


class _HubSink(BaseSink):
    """One call's stream into the speaker mix."""

    def __init__(self, hub: DeviceHub) -> None:
        self.hub = hub
        self.queue: collections.deque[Frame] = collections.deque(maxlen=10)
        self.frames_consumed = 0
        """Frames the output callback took from this sink (flat while the device does not pull: selftest)."""

    def write_frame(self, frame: Frame) -> None:
        with self.hub.lock:
            self.queue.append(frame.copy())

    async def stop(self) -> None:
        with self.hub.lock:
            self.hub.sinks.discard(self)


class DeviceHub:
    """A PortAudio input and output stream shared by every call of a client."""

    def __init__(self, on_warning: Callable[[str], object]) -> None:
        self.on_warning = on_warning
        self.lock = threading.Lock()
        self.sources: set[_HubSource] = set()
        self.sinks: set[_HubSink] = set()
        self.input: AudioDevice | None = None
        self.output: AudioDevice | None = None
        self._in_stream: Any = None
        self._out_stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None
        self._in_seen = self._out_seen = 0.0  # time.monotonic() of the last callback

    # PortAudio thread -> loop
    def _in_callback(self, data: bytes, frames: int, info: Any, status: int) -> tuple[None, int]:
        self._in_seen = time.monotonic()
        frame = np.frombuffer(data, dtype=np.int16).copy()
        loop = self._loop
        if loop is not None and frame.size == FRAME_SAMPLES:
            with contextlib.suppress(RuntimeError):  # loop closed while the device still runs
                loop.call_soon_threadsafe(self._deliver, frame)
        return None, PA_CONTINUE

    def _deliver(self, frame: Frame) -> None:
        for src in self.sources:
            src.queue.append(frame)

    def _out_callback(self, data: Any, frames: int, info: Any, status: int) -> tuple[bytes, int]:
        self._out_seen = time.monotonic()
        mix = np.zeros(frames, dtype=np.int32)
        with self.lock:
            for sink in self.sinks:
                if sink.queue:
                    chunk = sink.queue.popleft()
                    sink.frames_consumed += 1
                    n = min(frames, chunk.size)
                    mix[:n] += chunk[:n]
        return np.clip(mix, -32768, 32767).astype(np.int16).tobytes(), PA_CONTINUE

    def _open(self, dev: AudioDevice, *, output: bool) -> Any:
        import pyaudio

        pa = _pyaudio()
        kwargs: dict[str, Any] = {
            "format": pyaudio.paInt16, "channels": 1, "rate": SAMPLE_RATE,
            "frames_per_buffer": FRAME_SAMPLES, "start": True,
        }
        if output:
            kwargs.update(output=True, output_device_index=dev.index, stream_callback=self._out_callback)
        else:
            kwargs.update(input=True, input_device_index=dev.index, stream_callback=self._in_callback)
        try:
            with _quiet_stderr():
                return pa.open(**kwargs)
        except (OSError, ValueError) as exc:
            raise DeviceBusy(f"cannot open audio {'output' if output else 'input'} {dev.name!r}: {exc}") from exc

    @staticmethod
    def _close(stream: Any) -> None:
        if stream is None:
            return
        # No stop_stream() first: on a stalled device (e.g. a suspended PulseAudio sink) it waits
        # ~40 s for a drain that never comes. Pa_CloseStream aborts a running stream at once.
        with contextlib.suppress(Exception):
            stream.close()

    async def set_input(self, spec: str | int | None) -> AudioDevice:
        """Open ``spec`` as the microphone (closing the previous one); raises on failure."""
        self._loop = asyncio.get_running_loop()
        dev = await asyncio.to_thread(find_device, spec, output=False)
        stream = await asyncio.to_thread(self._open, dev, output=False)
        self._in_seen = time.monotonic()
        old, self._in_stream, self.input = self._in_stream, stream, dev
        await asyncio.to_thread(self._close, old)
        self._ensure_watch()
        return dev

    async def set_output(self, spec: str | int | None) -> AudioDevice:
        """Open ``spec`` as the speaker (closing the previous one); raises on failure."""
        self._loop = asyncio.get_running_loop()
        dev = await asyncio.to_thread(find_device, spec, output=True)
        stream = await asyncio.to_thread(self._open, dev, output=True)
        self._out_seen = time.monotonic()
        old, self._out_stream, self.output = self._out_stream, stream, dev
        await asyncio.to_thread(self._close, old)
        self._ensure_watch()
        return dev

    def _ensure_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watchdog(), name="audio-watchdog")

    async def _watchdog(self) -> None:
        """A stream that stopped (device gone) or stalled is dropped with a warning: silence / no output."""
        while self._in_stream is not None or self._out_stream is not None:
            await asyncio.sleep(1.0)
            for attr, kind in (("_in_stream", "input"), ("_out_stream", "output")):
                stream = getattr(self, attr)
                if stream is None:
                    continue
                try:
                    active = bool(stream.is_active())
                except Exception:
                    active = False
                seen = self._in_seen if kind == "input" else self._out_seen
                stalled = active and time.monotonic() - seen > STALL_S
                if active and not stalled:
                    continue
                setattr(self, attr, None)
                dev = self.input if kind == "input" else self.output
                why = f"stalled (no audio for {STALL_S:g} s)" if stalled else "stopped"
                self.on_warning(f"audio {kind} {dev.name if dev else ''!r} {why}; "
                                f"{'sending silence' if kind == 'input' else 'audio is not played'}")
                await asyncio.to_thread(self._close, stream)

    def source(self) -> AudioSource:
        """A new per-call microphone source."""
        src = _HubSource(self)
        self.sources.add(src)
        return src

    def sink(self) -> AudioSink:
        """A new per-call speaker sink."""
        sink = _HubSink(self)
        with self.lock:
            self.sinks.add(sink)
        return sink

    async def close(self) -> None:
        """Close both streams."""
        ins, outs = self._in_stream, self._out_stream
        self._in_stream = self._out_stream = None
        if self._watch is not None:
            self._watch.cancel()
        await asyncio.to_thread(self._close, ins)
        await asyncio.to_thread(self._close, outs)


# --- the per-client manager ------------------------------------------------------------------


class _RecordingTee(TeeSink):
    """The call's output plus its recorder; ``send_tap`` feeds the recorder's local side."""

    send_tap: AudioSink | None = None

    async def stop(self) -> None:
        """Stop (and so finish) the outputs: the recorder's file is only complete once closed.

        The recorder (added last) goes first: it finishes without suspending, so even a
        cancelled stop has written the file before a device's close is awaited.
        """
        for sink in reversed(self.sinks):
            try:
                await sink.stop()
            except Exception:
                logger.exception("stopping audio sink %r failed", sink)


class AudioManager:
    """Builds each call's source and sink from an :class:`AudioConfig`."""

    def __init__(self, config: AudioConfig, on_warning: Callable[[str], object] = lambda msg: None) -> None:
        self.config = config
        self.on_warning = on_warning
        self.backend = config.backend
        self.note = ""
        """Why ``auto`` did not pick PortAudio (one line), else empty."""
        self.hub: DeviceHub | None = None
        self._input_spec: str | int | None = config.input_device
        self._output_spec: str | int | None = config.output_device

    def resolve(self) -> str:
        """Decide the backend for ``auto`` (probing PortAudio once) and return it."""
        if self.config.backend == "auto" and self.backend == "auto":
            why = probe_pyaudio()
            if why is None:
                self.backend = "pyaudio"
            else:
                self.backend = "tone"
                self.note = (f"no usable audio device ({why}); sending a {self.config.tone_hz:g} Hz test tone "
                             "and discarding received audio")
        return self.backend

    async def ensure_devices(self) -> None:
        """Open the PortAudio streams if needed; raises DeviceNotFound/DeviceBusy (before a call)."""
        if self.resolve() != "pyaudio":
            return
        if self.hub is None:
            self.hub = DeviceHub(self.on_warning)
        if self.hub.input is None:
            await self.hub.set_input(self._input_spec)
        if self.hub.output is None:
            await self.hub.set_output(self._output_spec)

    async def call_media(self) -> tuple[AudioSource, AudioSink]:
        """A fresh (source, sink) pair for one call.

        When recording both sides the sink has a ``send_tap`` attribute: the sink for
        what the call sends (the recording's local side), for ``MediaPeer.set_send_tap``.
        """
        await self.ensure_devices()
        backend = self.backend
        source: AudioSource
        sink: AudioSink
        if backend == "pyaudio" and self.hub is not None:
            source, sink = self.hub.source(), self.hub.sink()
        elif backend == "file":
            source, sink = FileSource(str(self.config.input_file)), NullSink()
        elif backend == "tone":
            source, sink = ToneSource(self.config.tone_hz), NullSink()
        else:
            source, sink = NullSource(), NullSink()
        if self.config.record_file:
            recorder = WavRecorder(self.config.record_file, mode=self.config.record_mode)
            await recorder.start()
            sink = _RecordingTee([sink, recorder])
            if self.config.record_mode != "remote":
                sink.send_tap = recorder.local_sink
        await source.start()
        await sink.start()
        return source, sink

    async def set_input(self, spec: str | int) -> None:
        """Switch the microphone of every call (PortAudio backend)."""
        self._input_spec = spec
        if self.resolve() != "pyaudio":
            raise MediaError(f"the {self.backend} backend has no input devices")
        if self.hub is None:
            self.hub = DeviceHub(self.on_warning)
        await self.hub.set_input(spec)

    async def set_output(self, spec: str | int) -> None:
        """Switch the speaker of every call (PortAudio backend)."""
        self._output_spec = spec
        if self.resolve() != "pyaudio":
            raise MediaError(f"the {self.backend} backend has no output devices")
        if self.hub is None:
            self.hub = DeviceHub(self.on_warning)
        await self.hub.set_output(spec)

    async def close(self) -> None:
        """Release the devices."""
        if self.hub is not None:
            await self.hub.close()
            self.hub = None
