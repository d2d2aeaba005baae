"""The ``ivr`` service: a small spoken menu to test call flows against, with no backend.

It answers, speaks :data:`MENU`, gathers one digit and speaks the choice (:data:`CHOICES`;
any other digit, or none within :data:`GATHER_TIMEOUT_S` of the menu's end, gets
"Goodbye."), then hangs up (NORMAL_CLEARING). A digit pressed while the menu plays
stops it (barge-in). Digits arrive the way the ``dtmf`` service receives them,
``telnyx_rtc.info`` (:meth:`IvrService.digit`, called from
:meth:`softphone.switch.calls.Call.dtmf`), and also as in-band tones in the caller's audio
(a :class:`~softphone.media.dsp.DtmfDetector` tapping the A leg); the first of either
counts.

Speech comes from :func:`softphone.media.tts.speech_source` (flite, or espeak-ng); a
missing engine ends the call with NORMAL_TEMPORARY_FAILURE and a logged error naming it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from softphone.errors import MediaError

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import ArraySource
    from softphone.switch.media_legs import LegAudio

__all__ = ["CHOICES", "GATHER_TIMEOUT_S", "GOODBYE", "MENU", "IvrCall", "IvrService"]

logger = logging.getLogger(__name__)

MENU = "Welcome to the test line. Press one for sales, press two for support."
CHOICES = {"1": "You chose sales.", "2": "You chose support."}
GOODBYE = "Goodbye."
GATHER_TIMEOUT_S = 8.0
"""How long the menu waits for a digit after it finished speaking."""
_LEAD_S = 0.3
"""Silence between the answer and the menu (the caller's media is flowing by then)."""
_PAUSE_S = 0.7
"""Silence between the digit and the choice: longer than a recogniser's 0.5 s end-of-utterance pause,
so the choice is heard as an utterance of its own even when the digit cut the menu short."""
_TAIL_S = 1.0
"""Silence after the last prompt before the bye: the caller hears it whole, and a recogniser
that ends an utterance at a 0.5 s pause has ended it while the call is still up."""


class _Leg(Protocol):
    @property
    def media(self) -> LegAudio: ...


class IvrCall(Protocol):
    """What the service needs of its call (:class:`softphone.switch.calls.Call` is one)."""

    @property
    def a(self) -> _Leg: ...

    @property
    def ended(self) -> bool: ...

    async def answer_a(self, *, with_sdp: bool = True) -> bool: ...

    async def end(self, by: Any, cause: str, *, sip_code: int | None = None) -> None: ...


class _InbandTap:
    """An :class:`~softphone.switch.media_legs.AudioTap` that hears DTMF in what the caller says."""

    def __init__(self, on_digit: Any) -> None:
        from softphone.media.dsp import DtmfDetector

        self.detector = DtmfDetector(on_digit=on_digit)

    def said(self, frame: Frame | None) -> None:
        if frame is not None:
            self.detector.feed(frame)

    def heard(self, frame: Frame | None) -> None:
        """What the caller hears is ours: nothing to detect."""


class IvrService:
    """One IVR session on a call's A leg (see the module docstring)."""

    def __init__(self, call: IvrCall) -> None:
        self.call = call
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.choice: str | None = None
        self._tap = _InbandTap(self.digit)

    def digit(self, digits: str) -> None:
        """Digits from either path (info or in-band); only the first one matters."""
        for d in digits:
            self.digits.put_nowait(d)

    async def _speak(self, text: str) -> ArraySource:
        from softphone.media.tts import speech_source

        source = await asyncio.to_thread(speech_source, text)  # blocking synthesis, off the loop
        self.call.a.media.play(source)
        return source

    async def _until_done(self, source: ArraySource, *, digit_stops: bool) -> str | None:
        """Wait until ``source`` finished (or the call ended); with ``digit_stops`` a digit stops it first."""
        while not source.finished and not self.call.ended:
            if digit_stops and not self.digits.empty():
                self.call.a.media.stop_playing(source)
                return self.digits.get_nowait()
            await asyncio.sleep(0.02)
        self.call.a.media.stop_playing(source)
        return None

    async def run(self) -> None:
        """Answer, speak the menu, gather one digit, speak the choice, hang up."""
        from softphone.media.tts import speech_source

        call = self.call
        try:
            await asyncio.to_thread(speech_source, MENU)  # synthesise (and cache) before answering
        except MediaError as exc:
            logger.error("ivr: cannot speak: %s", exc)
            await call.end(None, "NORMAL_TEMPORARY_FAILURE")
            return
        if not await call.answer_a():
            return
        call.a.media.taps.append(self._tap)
        try:
            await asyncio.sleep(_LEAD_S)
            menu = await self._speak(MENU)
            digit = await self._until_done(menu, digit_stops=True)
            if digit is None and not call.ended:
                try:
                    digit = await asyncio.wait_for(self.digits.get(), GATHER_TIMEOUT_S)
                except TimeoutError:
                    digit = None
            if call.ended:
                return
            self.choice = digit
            await asyncio.sleep(_PAUSE_S)
            await self._until_done(await self._speak(CHOICES.get(digit or "", GOODBYE)), digit_stops=False)
            if not call.ended:
                await asyncio.sleep(_TAIL_S)
                await call.end(None, "NORMAL_CLEARING")
        except MediaError as exc:
            logger.error("ivr: cannot speak: %s", exc)
            await call.end(None, "NORMAL_TEMPORARY_FAILURE")
        finally:
            if self._tap in call.a.media.taps:
                call.a.media.taps.remove(self._tap)
