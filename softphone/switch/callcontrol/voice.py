"""Voice API actions that make or take audio on a leg: playback, speak, gathers with prompts, DTMF.

Playback follows Telnyx's model (see :mod:`~softphone.switch.callcontrol.player`): one main
queue per leg whose items replace the call audio while they play (``stop: current|all``), and
``overlay: true`` mixed on top at once; ``loop`` repeats an item 1-100 times or ``"infinity"``.

Media comes from :meth:`~softphone.switch.callcontrol.engine.CallControl.media` (the media
policy: a media-directory file, a loopback ``http://`` WAV/MP3 decoded with PyAV, ``tone:HZ``),
speech from :mod:`softphone.media.tts` (flite for English, espeak-ng for other languages;
``payload_type: ssml``: ``<break>`` pauses are kept as silence, other tags are dropped, a
malformed document is a 422).

Webhooks: ``call.playback.started``/``ended`` (``media_url`` or ``media_name``, ``overlay``,
``status`` completed / cancelled (playback_stop, a gather's first digit) / call_hangup: the
SDK's literals), ``call.speak.started``/``ended`` (``status`` completed / call_hangup),
``call.gather.ended`` (``digits``, ``status`` valid / invalid / timeout / cancelled /
call_hangup); ``call.dtmf.received`` stays the engine's. ``gather_using_audio``'s prompts post
``call.playback.*`` (as Telnyx documents) and ``gather_using_speak``'s ``call.speak.*`` (Telnyx
documents none for it; extra events a backend may ignore).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from softphone.protocol import verto
from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.gather import Emitter, Gather, end_gather
from softphone.switch.callcontrol.params import (
    OK,
    alive,
    answered,
    bad,
    check_base64,
    get_bool,
    get_choice,
    get_int,
    get_loop,
    get_str,
    take_state,
)
from softphone.switch.callcontrol.player import (
    Playback,
    enqueue,
    fresh_source,
    looped,
    samples_of,
    stop_main,
    stop_overlays,
)
from softphone.switch.callcontrol.routes import ApiContext, register_route

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import AudioSource
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

logger = logging.getLogger(__name__)

DTMF_CHARS = "0123456789*#ABCD"
_PAUSES = {"w": 0.5, "W": 1.0}


# --- what to play ---------------------------------------------------------------------------------


def _targets(leg: CCLeg, body: dict[str, Any]) -> list[CCLeg]:
    which = get_choice(body, "target_legs", ("self", "opposite", "both"), default="self")
    other = leg.bridged_to if leg.bridged_to is not None and leg.bridged_to.alive else None
    if which == "self":
        return [leg]
    if other is None:
        raise bad("target_legs", f"target_legs {which!r} needs a bridged call")
    return [other] if which == "opposite" else [leg, other]


async def _media_source(cc: CallControl, body: dict[str, Any], times: int | None) -> tuple[AudioSource, str, str]:
    """The source of a playback body: ``audio_url``, ``media_name`` or base64 ``playback_content``."""
    url = get_str(body, "audio_url")
    name = get_str(body, "media_name")
    content = get_str(body, "playback_content")
    if sum(bool(x) for x in (url, name, content)) > 1:
        raise bad("audio_url", "audio_url, media_name and playback_content cannot be used together")
    if content:
        return await _content_source(content, times), "", ""
    spec = url or name
    if not spec:
        raise bad("audio_url", "playback_start needs audio_url (a media-directory file, loopback http:// URL "
                  "or tone:HZ[:MS]) or media_name")
    src = await cc.media(spec, loop=times != 1, param="audio_url" if url else "media_name")
    return looped(src, times), url, name


async def _content_source(content: str, times: int | None) -> AudioSource:
    from softphone.media.sources import ArraySource
    from softphone.switch.callcontrol.mediafiles import MediaRefused, decode_audio

    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad("playback_content", "playback_content must be base64-encoded audio") from exc
    try:
        samples = await asyncio.to_thread(decode_audio, data)
    except MediaRefused as exc:
        raise bad("playback_content", str(exc).replace("audio_url", "playback_content")) from exc
    return looped(ArraySource(samples, loop=times != 1), times)


def _is_ssml(body: dict[str, Any]) -> bool:
    return get_choice(body, "payload_type", ("text", "ssml"), default="text") == "ssml"


def speech_text(body: dict[str, Any], key: str = "payload", *, required: bool = True) -> str:
    """The checked ``payload`` to speak: plain text, or (``payload_type: ssml``) an SSML document
    whose ``<break>`` pauses are kept and other tags dropped; 422 when it is malformed or empty."""
    from softphone.media import tts

    text = get_str(body, key)
    if not text.strip():
        if required:
            raise bad(key, f"{key} is required: the text to speak")
        return ""
    if len(text) > tts.MAX_CHARS:
        raise bad(key, f"{key} is longer than {tts.MAX_CHARS} characters")
    if _is_ssml(body):
        try:
            parts = tts.ssml_parts(text)
        except ValueError as exc:
            raise bad(key, str(exc)) from exc
        if not any(isinstance(p, str) for p in parts):
            raise bad(key, "the SSML holds no text to speak")
    return text


def _voice_speed(body: dict[str, Any]) -> float:
    """``voice_settings.voice_speed`` (Telnyx voices; ``speed`` as other providers name it), 0.5-2.0."""
    settings = body.get("voice_settings")
    if settings is None:
        return 1.0
    if not isinstance(settings, dict):
        raise bad("voice_settings", "voice_settings must be an object")
    raw = settings.get("voice_speed", settings.get("speed", 1.0))
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0.5 <= raw <= 2.0:
        raise bad("voice_settings", "voice_settings.voice_speed must be a number from 0.5 to 2.0")
    return float(raw)


async def speech_samples(body: dict[str, Any], text: str) -> Frame:
    """Speak ``text`` (from :func:`speech_text`) with the body's ``voice``/``language``; 48 kHz
    samples (422 on a bad voice or language)."""
    from softphone.errors import MediaError
    from softphone.media import tts
    from softphone.media.frames import pcm_to_frames

    voice = get_str(body, "voice", "female") or "female"
    language = get_str(body, "language", "en-US") or "en-US"
    speed = _voice_speed(body)
    speak = tts.synthesize_ssml if _is_ssml(body) else tts.synthesize

    def run() -> Frame:
        samples, rate = speak(text, voice=voice, language=language, speed=speed)
        return pcm_to_frames(samples, rate, 1)

    try:
        return await asyncio.to_thread(run)
    except ValueError as exc:
        raise bad("voice", str(exc)) from exc
    except MediaError as exc:
        raise CommandError(422, "90050", "Text to speech unavailable", str(exc)) from exc


def _speech_source(samples: Frame, times: int | None) -> AudioSource:
    from softphone.media.sources import ArraySource

    return looped(ArraySource(samples, loop=times != 1), times)


# --- playback_start / playback_stop ---------------------------------------------------------------


async def playback_start(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    alive(leg)
    take_state(leg, body)
    times = get_loop(body)
    overlay = get_bool(body, "overlay")
    stop = get_choice(body, "stop", ("current", "all"), default="") if body.get("stop") else ""
    targets = _targets(leg, body)
    if overlay and len(targets) > 1:
        raise bad("target_legs", "with overlay, target_legs is limited to self")
    items = []
    for target in targets:
        src, url, name = await _media_source(cc, body, times)
        items.append((target, Playback(src, url, name, overlay=overlay)))
    for target, pb in items:
        if stop:
            stop_main(target, stop)
        enqueue(cc, target, pb)
    return OK


async def playback_stop(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    del cc
    alive(leg)
    take_state(leg, body)
    how = get_choice(body, "stop", ("current", "all"), default="all")
    if get_bool(body, "overlay"):
        stop_overlays(leg)
    else:
        stop_main(leg, how)
    return OK


# --- speak ---------------------------------------------------------------------------------------


async def speak(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    alive(leg)
    take_state(leg, body)
    text = speech_text(body)
    times = get_loop(body)
    stop = get_choice(body, "stop", ("current", "all"), default="") if body.get("stop") else ""
    targets = _targets(leg, body)
    samples = await speech_samples(body, text)
    for target in targets:
        if stop:
            stop_main(target, stop)
        enqueue(cc, target, Playback(_speech_source(samples, times), kind="speak"))
    return OK


# --- gathers with prompts ---------------------------------------------------------------------------


@dataclass(eq=False)
class PromptGather(Gather):
    """``gather_using_speak`` / ``gather_using_audio``: a prompt, retries, an invalid-input prompt.

    The prompt plays (interrupted by the first digit); ``timeout_millis`` runs from the end of the
    prompt. Input ends on the terminating digit, at ``maximum_digits``, or after
    ``inter_digit_timeout_millis``; it is valid with ``minimum_digits``..``maximum_digits`` digits
    all in ``valid_digits``. Invalid input or no input replays the prompt (invalid input first
    plays ``invalid_payload``/``invalid_audio_url``) up to ``maximum_tries`` times, then ends with
    ``invalid`` or ``timeout``.
    """

    timeout_s: float = 60.0
    max_tries: int = 3
    tries: int = 0
    make_prompt: Callable[[], Playback] | None = None
    make_invalid: Callable[[], Playback] | None = None
    engine: Any = None
    playing: list[Playback] = field(default_factory=list)
    bad_input: bool = False

    def start_try(self, leg: CCLeg, *, invalid: bool) -> None:
        self.tries += 1
        self.digits = ""
        self.bad_input = False
        self._cancel_timer()
        cc: CallControl = self.engine
        if invalid and self.make_invalid is not None:
            pb = self.make_invalid()
            self.playing.append(pb)
            enqueue(cc, leg, pb)
        if self.make_prompt is not None:
            pb = self.make_prompt()
            pb.on_end = lambda status: self._prompt_done(leg, status)
            self.playing.append(pb)
            enqueue(cc, leg, pb)
        else:
            self._prompt_done(leg, "completed")

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _active(self, leg: CCLeg) -> bool:
        return leg.extras.get("gather") is self and leg.alive

    def _prompt_done(self, leg: CCLeg, status: str) -> None:
        if not self._active(leg) or self.digits or status == "call_hangup":
            return
        self._cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(self.timeout_s, self._no_input, leg)

    def _stop_prompts(self) -> None:
        for pb in self.playing:
            if not pb.done.is_set():
                pb.stopped = pb.stopped or "cancelled"
        self.playing = [pb for pb in self.playing if not pb.done.is_set()]

    def _no_input(self, leg: CCLeg) -> None:
        if not self._active(leg):
            return
        if self.digits:
            self._finish(leg)
        elif self.tries < self.max_tries:
            self.start_try(leg, invalid=False)
        else:
            end_gather(self.engine, leg, "timeout")

    def _finish(self, leg: CCLeg) -> None:
        ok = (
            not self.bad_input
            and self.minimum_digits <= len(self.digits) <= self.maximum_digits
            and all(d in self.valid_digits for d in self.digits)
        )
        if ok:
            end_gather(self.engine, leg, "valid")
        elif self.tries < self.max_tries:
            self.start_try(leg, invalid=True)
        else:
            end_gather(self.engine, leg, "invalid")

    def on_digit(self, cc: Emitter, leg: CCLeg, digit: str) -> None:
        del cc
        self._stop_prompts()
        self._cancel_timer()
        if self.terminating_digit and digit == self.terminating_digit:
            self._finish(leg)
            return
        if digit not in self.valid_digits:
            self.bad_input = True
        self.digits += digit
        if len(self.digits) >= self.maximum_digits:
            self._finish(leg)
            return
        self.timer = asyncio.get_running_loop().call_later(self.inter_digit_s, self._finish, leg)

    def on_end(self, cc: Emitter, leg: CCLeg, status: str) -> None:
        self._stop_prompts()
        super().on_end(cc, leg, status)


def _gather_limits(body: dict[str, Any]) -> dict[str, Any]:
    max_d = get_int(body, "maximum_digits", 128, lo=1, hi=128)
    min_d = get_int(body, "minimum_digits", 1, lo=1, hi=128)
    if min_d > max_d:
        raise bad("minimum_digits", "minimum_digits must not exceed maximum_digits")
    term = get_str(body, "terminating_digit", "#")
    valid = get_str(body, "valid_digits", "0123456789#*")
    if len(term) > 1 or (term and term not in DTMF_CHARS):
        raise bad("terminating_digit", "terminating_digit must be one of 0-9 * # A-D")
    if any(ch not in DTMF_CHARS for ch in valid):
        raise bad("valid_digits", "valid_digits may hold only 0-9 * # A-D")
    return {
        "maximum_digits": max_d,
        "minimum_digits": min_d,
        "terminating_digit": term,
        "valid_digits": valid,
        "inter_digit_s": get_int(body, "inter_digit_timeout_millis", 5000, lo=1, hi=120000) / 1000.0,
        "timeout_s": get_int(body, "timeout_millis", 60000, lo=1, hi=600000) / 1000.0,
        "max_tries": get_int(body, "maximum_tries", 3, lo=1, hi=10),
    }


def _start_gather(cc: CallControl, leg: CCLeg, g: PromptGather) -> None:
    old = leg.extras.get("gather")
    if isinstance(old, Gather):
        end_gather(cc, leg, "cancelled")
    g.engine = cc
    leg.extras["gather"] = g
    g.start_try(leg, invalid=False)


async def gather_using_speak(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    alive(leg)
    take_state(leg, body)
    answered(leg, "gather_using_speak")
    limits = _gather_limits(body)
    text = speech_text(body)
    invalid_text = speech_text(body, "invalid_payload", required=False)
    prompt = await speech_samples(body, text)
    invalid = await speech_samples(body, invalid_text) if invalid_text else None
    g = PromptGather(
        limits.pop("maximum_digits"),
        limits.pop("minimum_digits"),
        limits.pop("terminating_digit"),
        limits.pop("valid_digits"),
        **limits,
        # Telnyx documents only call.dtmf.received and call.gather.ended for gather_using_speak; the
        # prompt's call.speak.started/ended are posted too (a backend may follow the prompt by them).
        make_prompt=lambda: Playback(_speech_source(prompt, 1), kind="speak"),
        make_invalid=(lambda: Playback(_speech_source(invalid, 1), kind="speak")) if invalid is not None else None,
    )
    _start_gather(cc, leg, g)
    return OK


async def gather_using_audio(
    cc: CallControl, leg: CCLeg, body: dict[str, Any], *, webhook: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``webhook``: more fields for its ``call.gather.ended`` (a conference gather's ``gather_id``)."""
    alive(leg)
    take_state(leg, body)
    answered(leg, "gather_using_audio")
    limits = _gather_limits(body)
    url = get_str(body, "audio_url") or get_str(body, "media_name")
    if not url:
        raise bad("audio_url", "gather_using_audio needs audio_url or media_name")
    bad_url = get_str(body, "invalid_audio_url") or get_str(body, "invalid_media_name")
    # Decode once (a loopback http:// URL is fetched once); each try plays a fresh source over the samples.
    prompt = await samples_of(cc, url, "audio_url")
    invalid = await samples_of(cc, bad_url, "invalid_audio_url") if bad_url else None

    def make(samples: Any, spec: str) -> Callable[[], Playback]:
        def build() -> Playback:
            return Playback(fresh_source(samples, 1), audio_url=spec)

        return build

    g = PromptGather(
        limits.pop("maximum_digits"),
        limits.pop("minimum_digits"),
        limits.pop("terminating_digit"),
        limits.pop("valid_digits"),
        **limits,
        make_prompt=make(prompt, url),
        make_invalid=make(invalid, bad_url) if invalid is not None else None,
    )
    if webhook:
        g.extra["webhook"] = dict(webhook)
    _start_gather(cc, leg, g)
    return OK


async def gather_stop(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    alive(leg)
    take_state(leg, body)
    if isinstance(leg.extras.get("gather"), Gather):
        end_gather(cc, leg, "cancelled")
    return OK


# --- send_dtmf / client_state_update ------------------------------------------------------------------


async def send_dtmf(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    """Send DTMF *to the leg's party*: in-band tones it hears and, for a WebRTC client, a
    ``telnyx_rtc.info`` per digit (how the SDKs report received DTMF). ``w``/``W`` pause 0.5/1 s."""
    alive(leg)
    take_state(leg, body)
    answered(leg, "send_dtmf")
    digits, tone_ms = dtmf_digits(body)
    cc.spawn(send_digits(leg, digits, tone_ms), "send-dtmf")
    return OK


def dtmf_digits(body: dict[str, Any]) -> tuple[str, int]:
    """The checked ``digits`` (0-9 * # A-D, w/W pauses) and ``duration_millis`` (100-500) of a body."""
    digits = get_str(body, "digits")
    if not digits:
        raise bad("digits", "digits is required")
    if len(digits) > 128 or any(ch not in _PAUSES and ch.upper() not in DTMF_CHARS for ch in digits):
        raise bad("digits", "digits may hold only 0-9 * # A-D and w/W pauses")
    return digits, get_int(body, "duration_millis", 250, lo=100, hi=500)


async def send_digits(leg: CCLeg, digits: str, tone_ms: int) -> None:
    """Play ``digits`` to the leg's party (and tell a WebRTC client), one after another."""
    from softphone.media.dsp import dtmf_source

    gap_ms = 100
    for ch in digits:
        if not leg.alive:
            return
        if ch in _PAUSES:
            await asyncio.sleep(_PAUSES[ch])
            continue
        digit = ch.upper()
        leg.endpoint.play(dtmf_source(digit, tone_ms=tone_ms, gap_ms=0))
        wire = leg.wire
        if wire is not None:
            w = wire.a
            try:
                await w.send(verto.INFO, {"callID": w.call_id, "dtmf": digit, "dialogParams": {"callID": w.call_id}})
            except Exception:  # the socket went away: the hangup path reports it
                logger.debug("send_dtmf: INFO to %s failed", leg.call_control_id, exc_info=True)
        await asyncio.sleep((tone_ms + gap_ms) / 1000.0)


async def client_state_update(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    del cc
    alive(leg)
    state = get_str(body, "client_state")
    if not state:
        raise bad("client_state", "client_state is required")
    leg.client_state = check_base64(state)
    return OK


async def _client_state_put(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """The SDK sends ``client_state_update`` as a PUT (the other actions are POSTs)."""
    cc: CallControl = api.cc
    leg = cc.leg(params["call_control_id"])
    api.authorize(leg.connection_id, token)
    return await client_state_update(cc, leg, body)


register_route("PUT", "/v2/calls/{call_control_id}/actions/client_state_update", _client_state_put)

ACTIONS = {
    "playback_start": playback_start,
    "playback_stop": playback_stop,
    "speak": speak,
    "gather_using_speak": gather_using_speak,
    "gather_using_audio": gather_using_audio,
    "gather_stop": gather_stop,
    "send_dtmf": send_dtmf,
    "client_state_update": client_state_update,
}
