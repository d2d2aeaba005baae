"""The TeXML verbs, each run on a :class:`~softphone.switch.callcontrol.texml.session.Runner`.

Every verb is ``async verb(session, element) -> Next | Hangup | None``: ``None`` goes on with
the next verb, :class:`~softphone.switch.callcontrol.texml.session.Next` fetches a new document
(an ``action`` URL, a Redirect), :class:`~softphone.switch.callcontrol.texml.session.Hangup`
stops (the call ended). Parameters sent to ``action`` URLs follow Telnyx's (and Twilio's) names:
``Digits``, ``SpeechResult``/``Confidence``, ``DialCallStatus``/``DialCallSid``/``DialCallDuration``,
``QueueResult``/``QueueTime``, ``RecordingUrl``/``RecordingDuration``/``RecordingSid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol.texml.flow import Hangup, Next, Outcome, Runner, Timed, call_status

if TYPE_CHECKING:
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.callcontrol.texml.document import Verb

logger = logging.getLogger("softphone.switch.callcontrol.texml")

VerbRunner = Callable[["Runner", "Verb"], Awaitable[Outcome]]

_VOICES = {"man": "male", "woman": "female", "alice": "female"}
MAX_LOOPS = 1000
"""``loop="0"`` (forever) on Say/Play stops after this many rounds."""


def _int(v: Verb, name: str, default: int) -> int:
    raw = v.attr(name)
    return int(raw) if raw.isdigit() else default


def _loops(v: Verb) -> int:
    n = _int(v, "loop", 1)
    return MAX_LOOPS if n == 0 else n


def _true(v: Verb, name: str, default: bool = False) -> bool:
    raw = v.attr(name).lower()
    return default if not raw else raw in ("true", "1", "yes")


# --- Say / Play / Pause -------------------------------------------------------------------


async def say(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    if not v.text:
        return None
    from softphone.errors import MediaError
    from softphone.media import tts

    voice = v.attr("voice", "female")
    voice = _VOICES.get(voice.lower(), voice)
    try:
        for _ in range(_loops(v)):
            src = await asyncio.to_thread(tts.speech_source, v.text, voice=voice, language=v.attr("language", "en-US"))
            if not await s.play(Timed(src, s.first_say_audio)):
                break
    except (MediaError, ValueError) as exc:
        logger.warning("TeXML %s line %d: <Say> failed: %s", s.document_url, v.line, exc)
    return None


async def play(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    from softphone.switch.callcontrol.engine import CommandError

    digits = v.attr("digits")
    if digits:
        from softphone.switch import media_legs

        clean = "".join(ch for ch in digits.upper() if ch in "0123456789*#ABCD")
        if clean and not await s.play(media_legs.dtmf_source(clean), interruptible=False):
            return None
    if not v.text:
        return None
    ref = v.text
    if "://" not in ref and not ref.startswith(("tone:", "silence")) and s.document_url.startswith("http"):
        from urllib.parse import urljoin

        ref = urljoin(s.document_url, ref)
    for _ in range(_loops(v)):
        try:
            src = await s.cc.media(ref)
        except CommandError as exc:
            logger.warning("TeXML %s line %d: <Play> %s refused: %s", s.document_url, v.line, ref, exc.detail)
            return None
        if not await s.play(src):
            break
    return None


async def pause(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    await s.sleep(_int(v, "length", 1))
    return None if s.leg.alive else Hangup()


# --- Gather ------------------------------------------------------------------------------------


async def gather(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    from softphone.switch.callcontrol.gather import Gather, end_gather

    cc, leg = s.cc, s.leg
    kinds = v.attr("input", "dtmf").split()
    timeout = max(1, _int(v, "timeout", 5))
    finish = v.attrs.get("finishOnKey", "#")
    num = _int(v, "numDigits", _int(v, "maxDigits", 128))
    g: Any = None
    if "dtmf" in kinds:
        if isinstance(leg.extras.get("gather"), Gather):
            end_gather(cc, leg, "cancelled")
        g = Gather(
            maximum_digits=max(1, num),
            minimum_digits=max(1, _int(v, "minDigits", 1)),
            terminating_digit=finish[:1],
            valid_digits=v.attr("validDigits", "0123456789*#ABCD"),
            inter_digit_s=float(timeout),
        )
        leg.extras["gather"] = g
    listener = _Listener(leg) if "speech" in kinds else None
    speech_timeout = v.attr("speechTimeout", "auto")
    try:
        if listener is not None:
            listener.start()

        def typed() -> bool:
            return g is not None and (bool(g.digits) or leg.extras.get("gather") is not g)

        previous, s.interrupt = s.interrupt, typed
        try:
            for child in v.children:
                if typed() or not leg.alive:
                    break
                await VERBS[child.name](s, child)
        finally:
            s.interrupt = previous
        if isinstance(g, Gather) and _current(leg, g) and not g.digits and g.timer is None:
            g.timer = asyncio.get_running_loop().call_later(float(timeout), end_gather, cc, leg, "timeout")
        speech = ""
        confidence = 0.0
        deadline = time.monotonic() + timeout
        while leg.alive:
            if g is not None and leg.extras.get("gather") is not g:
                break  # digits complete, the finish key or the digit timeout
            if listener is not None:
                if listener.result is not None:
                    speech, confidence = listener.result
                    break
                if listener.in_speech:
                    deadline = max(deadline, time.monotonic() + (1.0 if speech_timeout == "auto" else
                                                                 float(speech_timeout or 1)))
            if (g is None or not g.digits) and time.monotonic() > deadline + (0.0 if g is None else 0.5):
                if listener is not None:
                    speech, confidence = await listener.finish()
                break
            await asyncio.sleep(0.05)
    finally:
        if listener is not None:
            listener.stop()
        if isinstance(g, Gather) and _current(leg, g):
            leg.extras.pop("gather", None)
            if g.timer is not None:
                g.timer.cancel()
    if not leg.alive:
        return Hangup()
    digits = g.digits if g is not None else ""
    if not digits and not speech and not _true(v, "actionOnEmptyResult"):
        return None
    extra = {"Digits": digits} if digits else {}
    if speech:
        extra.update(SpeechResult=speech, Confidence=f"{confidence:.2f}")
    action = v.attr("action") or (s.document_url if s.document_url != "inline" else "")
    if not action:
        return None
    return Next(action, v.attr("method", s.method).upper(), extra)


def _current(leg: CCLeg, g: object) -> bool:
    """``g`` is still the leg's gather in progress."""
    return leg.extras.get("gather") is g


class _Listener:
    """Speech recognition on what the caller says (pocketsphinx, in a worker thread)."""

    def __init__(self, leg: CCLeg) -> None:
        self.leg = leg
        self.frames: list[Any] = []
        self.result: tuple[str, float] | None = None
        self.in_speech = False
        self._task: asyncio.Task[None] | None = None
        self._recognizer: Any = None

    def start(self) -> None:
        from softphone.media.asr import Recognizer

        self._recognizer = Recognizer(48000)
        self.leg.endpoint.set_receiver(self._heard)
        self._task = asyncio.get_running_loop().create_task(self._work(), name="texml-speech")

    def _heard(self, frame: Any) -> None:
        self.frames.append(frame)

    async def _work(self) -> None:
        import numpy as np

        while self.result is None:
            await asyncio.sleep(0.2)
            # No frame means silence (a leg that stops sending, e.g. after its prompt): the endpointer
            # must still hear the pause that ends the utterance.
            block = np.concatenate(self.frames) if self.frames else np.zeros(9600, dtype=np.int16)
            self.frames = []
            done = await asyncio.to_thread(self._recognizer.feed_utterances, block)
            self.in_speech = bool(self._recognizer.in_speech)
            for u in done:
                if u.text:
                    self.result = (u.text, float(getattr(u, "confidence", 0.0)))
                    return

    async def finish(self) -> tuple[str, float]:
        if self.result is not None:
            return self.result
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        u = await asyncio.to_thread(self._recognizer.finish_utterance)
        return (u.text, float(getattr(u, "confidence", 0.0))) if u is not None and u.text else ("", 0.0)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.leg.bridged_to is None and not self.leg.conference_id:
            self.leg.endpoint.set_receiver(None)


# --- Dial --------------------------------------------------------------------------------------


async def dial(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    from softphone.switch.callcontrol.texml import dialing

    if v.children:
        nouns = [(n.name, n.text, n) for n in v.children]
    else:
        nouns = [("Number", v.text, v)]
    kinds = {n[0] for n in nouns}
    if "Queue" in kinds:
        result = await dialing.dial_queue(s, v, nouns[0][1])
    elif "Conference" in kinds:
        result = await dialing.dial_conference(s, v, nouns[0][2])
    else:
        result = await dialing.dial_parties(s, v, nouns)
    if not s.leg.alive and not v.attr("action"):
        return Hangup()
    action = v.attr("action")
    if action:
        return Next(action, v.attr("method", "POST").upper(), result)
    return None if s.leg.alive else Hangup()


# --- queues ------------------------------------------------------------------------------------


async def enqueue(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    from softphone.switch.callcontrol import commands
    from softphone.switch.callcontrol.engine import CommandError

    cc, leg, name = s.cc, s.leg, v.text
    try:
        await commands.enqueue(cc, leg, {"queue_name": name})
    except CommandError as exc:
        if v.attr("action"):
            return _queue_next(s, v, "error", 0.0)
        _log_failure(s, v, exc.detail)
        return None
    joined = time.monotonic()

    def left() -> bool:
        return leg.queue != name or not leg.alive

    wait_url = v.attr("waitUrl")
    if wait_url:
        q = cc.queues.get(name)
        tone = q.tones.pop(leg.call_control_id, None) if q is not None else None
        if tone is not None:
            leg.endpoint.stop_playing(tone)
        await _wait_documents(s, wait_url, v.attr("waitUrlMethod", "POST").upper(), name, joined, left)
    while not left():
        await asyncio.sleep(0.05)
    if leg.bridged_to is not None:
        result = "bridged"
        while leg.alive and leg.bridged_to is not None:
            await asyncio.sleep(0.05)
    elif not leg.alive:
        result = "hangup"
    else:
        result = "leave"
    if v.attr("action") and leg.alive:
        return _queue_next(s, v, result, time.monotonic() - joined)
    return None if leg.alive else Hangup()


def _queue_next(s: Runner, v: Verb, result: str, waited: float) -> Next:
    return Next(v.attr("action"), v.attr("method", "POST").upper(),
                {"QueueResult": result, "QueueTime": str(int(waited)), "QueueSid": v.text})


def _log_failure(s: Runner, v: Verb, detail: str) -> None:
    logger.warning("TeXML %s line %d: <%s> failed: %s", s.document_url, v.line, v.name, detail)


async def _wait_documents(
    s: Runner, url: str, method: str, name: str, joined: float, left: Callable[[], bool]
) -> None:
    """Run the waitUrl document over and over while the caller waits (its prompts stop when it leaves)."""
    from softphone.switch.callcontrol.texml.document import TexmlError, parse
    from softphone.switch.callcontrol.texml.fetch import FetchError, fetch

    previous, s.interrupt = s.interrupt, left
    try:
        while not left():
            q = s.cc.queues.get(name)
            extra = {
                "QueueSid": name,
                "QueuePosition": str(q.position(s.leg) if q is not None else 0),
                "QueueTime": str(int(time.monotonic() - joined)),
                "CurrentQueueSize": str(len(q.legs) if q is not None else 0),
            }
            target = url
            try:
                target = s.target(url)
                got = await fetch(target, method, s.params(**extra), allow_remote=s.cc.options.allow_remote_webhooks)
                verbs = parse(got.text)
            except (FetchError, TexmlError) as exc:
                logger.warning("TeXML waitUrl %s: %s; the caller hears the hold tone", target, exc)
                if q is not None and s.leg.queue == name:
                    tone = s.cc.hold_tone()
                    q.tones[s.leg.call_control_id] = tone
                    s.leg.endpoint.play(tone)
                return
            started = time.monotonic()
            outcome = await s.run_verbs(verbs)
            if isinstance(outcome, Hangup) or not s.leg.alive:
                return
            if time.monotonic() - started < 0.5:
                await s.sleep(0.5)  # an empty wait document must not spin
    finally:
        s.interrupt = previous


async def leave(s: Runner, v: Verb) -> Outcome:
    from softphone.switch.callcontrol import commands
    from softphone.switch.callcontrol.engine import CommandError

    if s.leg.queue:
        with contextlib.suppress(CommandError):
            await commands.leave_queue(s.cc, s.leg, {})
    return None


# --- Record ------------------------------------------------------------------------------------


async def record(s: Runner, v: Verb) -> Outcome:
    if not await s.ensure_answered():
        return Hangup()
    from softphone.switch.callcontrol.texml import recording

    extra = await recording.record(s, v)
    if extra is None:
        return Hangup()
    action = v.attr("action")
    if action:
        return Next(action, v.attr("method", "POST").upper(), extra)
    return None


# --- Redirect / Reject / Hangup ---------------------------------------------------------------


async def redirect(s: Runner, v: Verb) -> Outcome:
    return Next(v.text, v.attr("method", "POST").upper())


async def reject(s: Runner, v: Verb) -> Outcome:
    leg = s.leg
    if leg.answered_at is None:
        await s.cc.hangup_leg(leg, "USER_BUSY" if v.attr("reason") == "busy" else "CALL_REJECTED")
    else:
        await s.cc.hangup_leg(leg, "NORMAL_CLEARING")
    return Hangup()


async def hangup(s: Runner, v: Verb) -> Outcome:
    await s.cc.hangup_leg(s.leg, "NORMAL_CLEARING")
    return Hangup()


VERBS: dict[str, VerbRunner] = {
    "Say": say,
    "Play": play,
    "Pause": pause,
    "Gather": gather,
    "Dial": dial,
    "Enqueue": enqueue,
    "Leave": leave,
    "Record": record,
    "Redirect": redirect,
    "Reject": reject,
    "Hangup": hangup,
}
"""Every verb of :data:`~softphone.switch.callcontrol.texml.document.VERBS`, by name."""

__all__ = ["VERBS", "call_status"]
