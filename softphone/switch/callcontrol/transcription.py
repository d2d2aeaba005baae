"""Call transcription (``transcription_start`` / ``transcription_stop``), offline with pocketsphinx.

Telnyx transcribes a call in real time and posts a ``call.transcription`` webhook per result, with
``payload.transcription_data`` = ``{transcript, is_final, confidence, transcription_track}``. Here
the recogniser is :class:`softphone.media.asr.Recognizer` (pocketsphinx's US English model, which
the wheel ships); it splits the audio at pauses and each utterance gives one final result
(``is_final`` true), about 0.8 s after its last word; with ``interim_results: true`` in
``transcription_engine_config`` the words so far of an utterance under way are posted too
(``is_final`` false, ``confidence`` 0) whenever they change. Whatever engine the request names
(``transcription_engine``: Google, Telnyx, Deepgram...), this switch runs pocketsphinx; a
``language`` other than English in ``transcription_engine_config`` is refused (422).

``transcription_tracks``: ``inbound`` (the default) is what the leg's own party says, ``outbound``
what it hears (the other side), ``both`` both, reported with ``transcription_track``. Each track
is decoded in a child process (:class:`softphone.media.asr.RecognizerProcess`): pocketsphinx holds
the GIL while it decodes, which in the switch's process would stall every call's media; the
children's CPU time is :attr:`Transcriber.cpu_seconds`. ``transcription_stop`` (or the hangup)
flushes the utterance under way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from softphone.switch.callcontrol.engine import CommandError, gone

if TYPE_CHECKING:
    from softphone.media.asr import RecognizerProcess, Utterance
    from softphone.media.frames import Frame
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.media_legs import LegAudio

logger = logging.getLogger(__name__)

OK: dict[str, Any] = {"result": "ok"}
CALL_RATE = 48000
FRAME = 960
DECODE_EVERY_S = 0.2
"""How often the collected audio is handed to the recogniser (the endpointer needs no more)."""
MAX_BACKLOG_FRAMES = 1500
"""30 s per track: if decoding falls that far behind, the oldest audio is dropped."""
TRACKS = {"inbound": ("inbound",), "outbound": ("outbound",), "both": ("inbound", "outbound")}
LegCommand = Callable[["CallControl", "CCLeg", dict[str, Any]], Awaitable[dict[str, Any]]]
ENGINES = (
    "Google", "Telnyx", "Deepgram", "Azure", "xAI", "AssemblyAI", "Speechmatics", "Soniox", "Parakeet",
    "Humain", "Reson8", "Cohere", "A", "B",
)  # fmt: skip


@dataclass(eq=False)
class Transcriber:
    """Transcribes one leg's audio (an AudioTap, see :class:`softphone.switch.media_legs.AudioTap`)."""

    cc: CallControl
    leg: CCLeg
    tracks: tuple[str, ...]
    interim: bool = False
    """Also post interim results (``is_final`` false): ``interim_results`` in the engine config."""
    audio_seconds: float = 0.0
    """Seconds of call audio fed (per track, summed)."""
    utterances: int = 0
    stopped: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: dict[str, list[Frame]] = field(default_factory=dict)
    _recognizers: dict[str, RecognizerProcess] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _endpoint: LegAudio | None = None
    _task: asyncio.Task[None] | None = None

    # AudioTap: called on the media path; only queue.
    def said(self, frame: Frame | None) -> None:
        if "inbound" in self.tracks:
            self._add("inbound", frame)

    def heard(self, frame: Frame | None) -> None:
        if "outbound" in self.tracks:
            self._add("outbound", frame)

    def _add(self, track: str, frame: Frame | None) -> None:
        if self.stopped:
            return
        frames = self._pending.setdefault(track, [])
        frames.append(frame if frame is not None else np.zeros(FRAME, dtype=np.int16))
        if len(frames) > MAX_BACKLOG_FRAMES:
            del frames[0]

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        from softphone.switch.media_legs import LegAudio

        endpoint = self.leg.endpoint
        if isinstance(endpoint, LegAudio):
            endpoint.taps.append(self)
            self._endpoint = endpoint
        self._task = self.cc.spawn(self._run(), f"transcribe {self.leg.call_control_id[-8:]}")

    def stop(self) -> None:
        """Stop listening; the utterance under way is still decoded and reported."""
        if self.stopped:
            return
        self.stopped = True
        if self._endpoint is not None and self in self._endpoint.taps:
            self._endpoint.taps.remove(self)
        self._wake.set()

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the recogniser processes (start-up, resampling, endpointing, decoding)."""
        return sum(r.cpu_seconds for r in self._recognizers.values())

    async def _run(self) -> None:
        from softphone.media.asr import RecognizerProcess

        try:
            for track in self.tracks:
                rec = RecognizerProcess(CALL_RATE, functools.partial(self._report, track), interim=self.interim)
                self._recognizers[track] = rec
                await rec.start()
            while not self.stopped:
                try:
                    await asyncio.wait_for(self._wake.wait(), DECODE_EVERY_S)
                except TimeoutError:
                    pass
                self._hand_over()
            self._hand_over()
            await asyncio.gather(*(r.finish() for r in self._recognizers.values()))
        except Exception:
            logger.exception("transcription of %s failed", self.leg.call_control_id)
        finally:
            self.stopped = True
            await asyncio.gather(*(r.close() for r in self._recognizers.values()), return_exceptions=True)
            if self._endpoint is not None and self in self._endpoint.taps:
                self._endpoint.taps.remove(self)
            if self.leg.extras.get("transcriber") is self:
                del self.leg.extras["transcriber"]
            self.done.set()

    def _hand_over(self) -> None:
        for track, rec in self._recognizers.items():
            frames = self._pending.get(track)
            if not frames:
                continue
            self._pending[track] = []
            block = np.concatenate(frames)
            self.audio_seconds += block.shape[0] / CALL_RATE
            rec.feed(block)

    def _report(self, track: str, utterance: Utterance) -> None:
        if not utterance.text:
            return  # noise the endpointer took for speech
        if utterance.final:
            self.utterances += 1
        self.cc.emit(
            self.leg,
            "call.transcription",
            transcription_data={
                "transcript": utterance.text,
                "is_final": utterance.final,
                "confidence": utterance.confidence,
                "transcription_track": track,
            },
        )


# --- the actions -------------------------------------------------------------------------------------


def _bad(param: str, detail: str) -> CommandError:
    return CommandError(422, "10015", f"Invalid value for {param}", detail)


def transcriber_of(leg: CCLeg) -> Transcriber | None:
    """The leg's running transcription, if any."""
    t = leg.extras.get("transcriber")
    return t if isinstance(t, Transcriber) else None


def new_transcriber(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> Transcriber:
    """A transcriber for a transcription_start body (or answer's ``transcription_config``); 422 when bad."""
    engine = body.get("transcription_engine")
    if engine is not None and engine not in ENGINES:
        raise _bad("transcription_engine", f"one of {', '.join(ENGINES)}")
    tracks = body.get("transcription_tracks") or "inbound"
    if not isinstance(tracks, str) or tracks not in TRACKS:
        raise _bad("transcription_tracks", "one of inbound, outbound, both")
    config = body.get("transcription_engine_config")
    if config is not None and not isinstance(config, dict):
        raise _bad("transcription_engine_config", "must be an object")
    language = (config or {}).get("language") or (config or {}).get("transcription_language") or "en"
    if not isinstance(language, str) or not language.lower().startswith("en"):
        raise _bad("language", "this switch transcribes English only (pocketsphinx's en-US model)")
    running = transcriber_of(leg)
    if running is not None and not running.stopped:
        raise CommandError(422, "90057", "Transcription already in progress", "stop it before starting again")
    interim = (config or {}).get("interim_results", False)
    if not isinstance(interim, bool):
        raise _bad("interim_results", "must be true or false")
    return Transcriber(cc, leg, TRACKS[tracks], interim=interim)


def run_transcriber(cc: CallControl, transcriber: Transcriber) -> None:
    """Start ``transcriber`` and stop it when its leg hangs up."""
    transcriber.leg.extras["transcriber"] = transcriber
    transcriber.start()
    cc.spawn(_stop_on_hangup(transcriber.leg, transcriber), "transcribe-hangup")


async def transcription_start(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    if not leg.alive:
        raise gone(leg)
    if isinstance(body.get("client_state"), str) and body["client_state"]:
        leg.client_state = body["client_state"]
    if leg.answered_at is None:
        raise CommandError(422, "90034", "Call not answered yet", "answer before transcription_start")
    run_transcriber(cc, new_transcriber(cc, leg, body))
    return OK


async def _stop_on_hangup(leg: CCLeg, transcriber: Transcriber) -> None:
    loop = asyncio.get_running_loop()
    waits = [loop.create_task(leg.ended.wait()), loop.create_task(transcriber.done.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    transcriber.stop()


async def transcription_stop(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    del cc
    if not leg.alive:
        raise gone(leg)
    if isinstance(body.get("client_state"), str) and body["client_state"]:
        leg.client_state = body["client_state"]
    running = transcriber_of(leg)
    if running is None or running.stopped:
        raise CommandError(422, "90058", "No transcription in progress", "start a transcription before stopping it")
    running.stop()
    return OK


ACTIONS = {"transcription_start": transcription_start, "transcription_stop": transcription_stop}


def with_media_options(answer: LegCommand) -> LegCommand:
    """``answer`` that also takes Telnyx's streaming and transcription options.

    ``stream_url`` (with the ``stream_*`` parameters of ``streaming_start``) starts a media
    stream as the call is answered, ``transcription: true`` (with ``transcription_config``, the
    body of ``transcription_start``) a transcription. Both are checked before the call is
    answered, so a bad one is a 422 and the call still rings.
    """
    from softphone.switch.callcontrol import streaming

    async def answer_with_media(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
        stream = streaming.new_stream(cc, leg, body) if body.get("stream_url") is not None else None
        transcriber = None
        if body.get("transcription") is True:
            config = body.get("transcription_config") or {}
            if not isinstance(config, dict):
                raise _bad("transcription_config", "must be an object")
            transcriber = new_transcriber(cc, leg, config)
        result = await answer(cc, leg, body)
        if stream is not None:
            streaming.run_stream(cc, stream)
        if transcriber is not None:
            run_transcriber(cc, transcriber)
        return result

    return answer_with_media
