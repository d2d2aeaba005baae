"""Simulated outside (PSTN) legs: no websocket, no RTP, just a 20 ms audio clock.

A :class:`PstnEndpoint` stands in for a phone on the public network. It has the same
audio surface as a WebRTC leg's :class:`~softphone.switch.media_legs.MediaLeg`
(``set_receiver``/``push``/``play``/``stop_playing``/``close``), so Call Control can
bridge, queue and conference it like any other leg:

* what it *says* comes from its ``source`` (a WAV file, a tone, silence) and is handed
  to the receiver every 20 ms;
* what it *hears* (frames pushed to it, plus overlays) is mixed every 20 ms and kept in
  a :class:`~softphone.media.sinks.BufferSink` (:meth:`heard`), and optionally written
  to a WAV file;
* :meth:`send_dtmf` plays in-band DTMF and reports the digits out of band, the way a
  carrier delivers RFC 4733 events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.switch.media_legs import LegAudio

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sinks import BufferSink, WavRecorder
    from softphone.media.sources import AudioSource

logger = logging.getLogger(__name__)

FRAME_S = 0.02


class PstnEndpoint(LegAudio):
    """A simulated outside phone (see the module docstring)."""

    def __init__(
        self,
        label: str,
        source: AudioSource | None = None,
        *,
        record_path: str | Path | None = None,
        on_dtmf: Callable[[str], Any] | None = None,
        keep_seconds: float = 30.0,
    ) -> None:
        from softphone.media.sinks import BufferSink
        from softphone.media.sources import NullSource

        super().__init__(label)
        self.source: AudioSource = source if source is not None else NullSource()
        self.buffer: BufferSink = BufferSink(seconds=keep_seconds)
        self.record_path = Path(record_path) if record_path is not None else None
        self._recorder: WavRecorder | None = None
        self.on_dtmf = on_dtmf
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.frames_out = 0
        self.frames_in = 0
        self.recording_saved = False
        """The recording (if any) is complete on disk (after :meth:`close`)."""
        self.echo = False
        """Say back what was heard (the ``echo`` service)."""

    codec = "pstn/8000"

    async def start(self) -> None:
        """Start the 20 ms clock (and the recording, if any)."""
        if self._task is not None:
            return
        if self.record_path is not None:
            from softphone.media.sinks import WavRecorder

            self._recorder = WavRecorder(self.record_path)
            await self._recorder.start()
        await self.buffer.start()
        self._task = asyncio.get_running_loop().create_task(self._clock(), name=f"pstn {self.label}")

    async def _clock(self) -> None:
        from softphone.media.frames import silence

        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while not self.closed:
            heard = self.read_heard()
            said = heard if self.echo else self.source.read_frame()
            for tap in self.taps:
                tap.said(said)
            receiver = self._receiver
            if said is not None and receiver is not None:
                self.frames_out += 1
                receiver(said)
            frame = heard if heard is not None else silence()
            if heard is not None:
                self.frames_in += 1
            self.buffer.write_frame(frame)
            if self._recorder is not None:
                self._recorder.write_frame(frame)
            next_tick += FRAME_S
            delay = next_tick - loop.time()
            if delay < -0.2:  # fell far behind (a paused loop): resynchronise
                next_tick = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    # --- the MediaLeg surface ------------------------------------------------------------

    def set_source(self, source: AudioSource) -> None:
        """Change what this phone says."""
        self.source = source

    async def send_dtmf(self, digits: str) -> None:
        """Say DTMF digits in-band (100 ms tones) and report them out of band."""
        from softphone.media.dsp import dtmf_source
        from softphone.media.sources import MixSource

        clean = "".join(ch for ch in digits.upper() if ch in "0123456789*#ABCD")
        if not clean:
            return
        self.source = MixSource([self.source, dtmf_source(clean, tone_ms=100, gap_ms=70)], auto_remove=True)
        if self.on_dtmf is not None:
            for ch in clean:
                self.on_dtmf(ch)
                await asyncio.sleep(0.17)

    def heard(self, last_seconds: float | None = None) -> Frame:
        """What this phone heard (48 kHz mono int16), the last ``last_seconds`` or all kept."""
        return self.buffer.samples(last_seconds)

    async def close(self) -> None:
        """Stop the clock and finish the recording."""
        self.closed = True
        self._receiver = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._recorder is not None:
            with contextlib.suppress(Exception):
                await self._recorder.stop()
            self._recorder = None
            self.recording_saved = True

