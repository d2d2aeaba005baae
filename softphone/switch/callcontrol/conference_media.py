"""Conference media: ``/v2/conferences/{id}/actions/{play|speak|stop|send_dtmf|gather_using_audio|
record_start|record_stop|record_pause|record_resume}`` (Telnyx's Conferencing API, the SDK's
``conferences.actions``).

* **play** / **speak**: every participant (or those in ``call_control_ids``) hears the audio mixed
  over the room (``audio_url``/``media_name`` under the media policy, ``loop``; speech from
  :mod:`softphone.media.tts`); ``conference.playback.started``/``ended`` or
  ``conference.speak.started``/``ended`` once for the conference.
* **stop**: ends the conference's plays (for ``call_control_ids``, or everyone).
* **send_dtmf**: DTMF to every participant (or ``call_control_ids``), as the call action sends it.
* **gather_using_audio**: a participant's (``call_control_id``) gather with a prompt, as the call
  action runs it; ``gather_id`` rides on its ``call.gather.ended``.
* **record_start** (``format`` wav/mp3, ``channels`` single/dual, ``play_beep``,
  ``custom_file_name``): the room as a 20 ms mix of what every participant says plus the
  conference's plays; ``dual`` puts the conference's first participant on channel A and everyone
  else on B. Participants joining later are recorded from when they join. Ends with
  ``record_stop`` or when the conference ends; ``conference.recording.saved`` carries the same
  kind of loopback URL as a call recording (see :mod:`~softphone.switch.callcontrol.recording`).

The routes join the API through the route registry (:mod:`~softphone.switch.callcontrol.routes`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
import wave
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from softphone.switch.callcontrol import player, recording, voice
from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.mediafiles import MediaRefused, recording_path
from softphone.switch.callcontrol.params import OK, bad, get_bool, get_choice, get_loop, get_str
from softphone.switch.callcontrol.routes import ApiContext, register_route
from softphone.switch.media_legs import LegAudio

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import AudioSource
    from softphone.switch.callcontrol.conference import Conference
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

FRAME = 960


def _conference(api: ApiContext, params: dict[str, str], token: str) -> Conference:
    cc: CallControl = api.cc
    conf = cc.conferences.get(params["id"])
    if conf is None or not api.allowed(conf.connection_id, token):
        raise CommandError(404, "10005", "Resource not found", f"no conference {params['id']}"[:120])
    if conf.ended:
        raise CommandError(422, "90041", "Conference has ended", conf.id)
    return conf


def _members(conf: Conference, body: dict[str, Any]) -> list[CCLeg]:
    ids = body.get("call_control_ids")
    if ids is None:
        if not conf.participants:
            raise CommandError(422, "90042", "Conference has no participants", conf.id)
        return list(conf.participants)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise bad("call_control_ids", "call_control_ids must be a non-empty list of call control ids")
    by_id = {p.call_control_id: p for p in conf.participants}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise bad("call_control_ids", f"not in this conference: {', '.join(missing)}"[:200])
    return [by_id[i] for i in ids]


def _creator_session(conf: Conference) -> str | None:
    return conf.participants[0].call_session_id if conf.participants else None


# --- play / speak / stop ----------------------------------------------------------------------------


@dataclass(eq=False)
class ConfPlay:
    """One play or speak in a conference: one overlay playback per listener."""

    kind: str
    """``playback`` or ``speak``."""
    fields: dict[str, Any]
    playbacks: list[tuple[str, player.Playback]] = field(default_factory=list)
    """(listener's call control id, its playback)."""


def _plays(conf: Conference) -> list[ConfPlay]:
    return _CONF_PLAYS.setdefault(conf, [])


_CONF_PLAYS: weakref.WeakKeyDictionary[Conference, list[ConfPlay]] = weakref.WeakKeyDictionary()
"""A conference's plays in progress (each dropped when it ends; the entry goes with the conference)."""


async def _start_play(cc: CallControl, conf: Conference, targets: list[CCLeg], make: Any, kind: str,
                      fields: dict[str, Any]) -> None:
    play = ConfPlay(kind, fields)
    for leg in targets:
        pb = player.Playback(make(), kind="silent", overlay=True)
        play.playbacks.append((leg.call_control_id, pb))
        player.enqueue(cc, leg, pb)
    for rec in _CONF_RECORDINGS.get(conf, {}).values():
        rec.sources.append(make())
    _plays(conf).append(play)
    event = "conference.playback" if kind == "playback" else "conference.speak"
    common = {"creator_call_session_id": _creator_session(conf), "occurred_at": _now(), **fields}
    cc.emit_conference(conf, f"{event}.started", None, **common)

    async def finish() -> None:
        await asyncio.gather(*(pb.done.wait() for _, pb in play.playbacks))
        with contextlib.suppress(ValueError):
            _plays(conf).remove(play)
        ended = {"creator_call_session_id": _creator_session(conf), "occurred_at": _now(), **fields}
        cc.emit_conference(conf, f"{event}.ended", None, **ended)

    cc.spawn(finish(), "conference-play")


def _now() -> str:
    from softphone.switch.callcontrol.webhooks import iso_now

    return iso_now(time.time())


async def play(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cc: CallControl = api.cc
    conf = _conference(api, params, token)
    targets = _members(conf, body)
    times = get_loop(body)
    url, name = get_str(body, "audio_url"), get_str(body, "media_name")
    if url and name:
        raise bad("audio_url", "audio_url and media_name cannot be used together")
    if not url and not name:
        raise bad("audio_url", "play needs audio_url or media_name")
    decoded = await player.samples_of(cc, url or name, "audio_url" if url else "media_name")

    def make() -> AudioSource:
        return player.fresh_source(decoded, times)

    fields = {"media_name": name} if name else {"media_url": url}
    await _start_play(cc, conf, targets, make, "playback", fields)
    return OK


async def speak(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cc: CallControl = api.cc
    conf = _conference(api, params, token)
    targets = _members(conf, body)
    text = voice.speech_text(body)
    samples = await voice.speech_samples(body, text)
    await _start_play(cc, conf, targets, lambda: player.fresh_source(samples, 1), "speak", {})
    return OK


async def stop(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    conf = _conference(api, params, token)
    targets = {leg.call_control_id for leg in _members(conf, body)} if body.get("call_control_ids") else None
    for p in _plays(conf):
        for ccid, pb in p.playbacks:
            if targets is None or ccid in targets:
                pb.stopped = pb.stopped or "cancelled"
    if targets is None:
        for rec in _CONF_RECORDINGS.get(conf, {}).values():
            rec.sources.clear()
    return OK


async def send_dtmf(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """DTMF to every participant (or ``call_control_ids``), as the call action sends it to one leg."""
    cc: CallControl = api.cc
    conf = _conference(api, params, token)
    targets = _members(conf, body)
    digits, tone_ms = voice.dtmf_digits(body)
    for leg in targets:
        cc.spawn(voice.send_digits(leg, digits, tone_ms), "conference-dtmf")
    return OK


async def gather_using_audio(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """A participant's gather (``call_control_id``), run as the call action; ``gather_id`` rides on
    its ``call.gather.ended``."""
    cc: CallControl = api.cc
    conf = _conference(api, params, token)
    ccid = get_str(body, "call_control_id")
    leg = next((p for p in conf.participants if p.call_control_id == ccid), None)
    if leg is None:
        raise bad("call_control_id", "call_control_id must name a participant of this conference")
    gather_id = get_str(body, "gather_id")
    if len(gather_id) > 100:
        raise bad("gather_id", "gather_id is at most 100 characters")
    leg_body = {k: v for k, v in body.items() if k not in ("call_control_id", "gather_id")}
    if "initial_timeout_millis" in leg_body and "timeout_millis" not in leg_body:
        leg_body["timeout_millis"] = leg_body.pop("initial_timeout_millis")
    return await voice.gather_using_audio(cc, leg, leg_body, webhook={"gather_id": gather_id} if gather_id else None)


# --- recording ----------------------------------------------------------------------------------------


class _SaidTap:
    """What one participant says, queued for the conference recorder's clock."""

    def __init__(self) -> None:
        self.queue: collections.deque[Frame] = collections.deque(maxlen=25)

    def said(self, frame: Frame | None) -> None:
        if frame is not None:
            self.queue.append(np.array(frame, dtype=np.int16, copy=True))

    def heard(self, frame: Frame | None) -> None:
        del frame


@dataclass(eq=False)
class ConfRecording:
    id: str
    conf: Conference
    fmt: str
    channels: str
    part: Any
    final: Any
    client_state: str = ""
    trim: bool = False
    paused: bool = False
    stopping: bool = False
    started_at: float = field(default_factory=time.time)
    frames_written: int = 0
    taps: dict[str, tuple[CCLeg, _SaidTap]] = field(default_factory=dict)
    sources: list[AudioSource] = field(default_factory=list)
    first: str = ""
    wav: wave.Wave_write | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def sync_taps(self) -> None:
        now = {p.call_control_id: p for p in self.conf.participants}
        for ccid in [c for c in self.taps if c not in now]:
            self._untap(ccid)
        for ccid, leg in now.items():
            if ccid not in self.taps and isinstance(leg.endpoint, LegAudio):
                tap = _SaidTap()
                leg.endpoint.taps.append(tap)
                self.taps[ccid] = (leg, tap)

    def _untap(self, ccid: str) -> None:
        leg, tap = self.taps.pop(ccid)
        if isinstance(leg.endpoint, LegAudio):
            with contextlib.suppress(ValueError):
                leg.endpoint.taps.remove(tap)

    def untap_all(self) -> None:
        for ccid in list(self.taps):
            self._untap(ccid)

    def tick(self) -> None:
        """Write the next 20 ms: channel A the first participant, B everyone else and the plays."""
        a = np.zeros(FRAME, np.int32)
        b = np.zeros(FRAME, np.int32)
        for ccid, (_, tap) in self.taps.items():
            if tap.queue:
                (a if ccid == self.first else b)[:] += tap.queue.popleft()[:FRAME]
        for src in list(self.sources):
            f = src.read_frame()
            if f is None:
                if player.is_finished(src):
                    self.sources.remove(src)
                continue
            b += f[:FRAME]
        if self.paused or self.wav is None:
            return
        if self.channels == "dual":
            out = np.empty((FRAME, 2), "<i2")
            out[:, 0] = np.clip(a, -32768, 32767)
            out[:, 1] = np.clip(b, -32768, 32767)
        else:
            out = np.clip(a + b, -32768, 32767).astype("<i2")
        self.wav.writeframes(out.tobytes())
        self.frames_written += 1


_CONF_RECORDINGS: weakref.WeakKeyDictionary[Conference, dict[str, ConfRecording]] = weakref.WeakKeyDictionary()
"""A conference's recordings in progress, by recording id."""


async def _run_recording(cc: CallControl, rec: ConfRecording) -> None:
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    try:
        while not rec.stopping and not rec.conf.ended:
            rec.sync_taps()
            rec.tick()
            next_tick += 0.02
            delay = next_tick - loop.time()
            if delay < -0.2:
                next_tick = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))
    finally:
        rec.untap_all()
        _CONF_RECORDINGS.get(rec.conf, {}).pop(rec.id, None)
        wav, rec.wav = rec.wav, None
        if wav is not None:
            wav.close()
        await _save(cc, rec)
        rec.done.set()


async def _save(cc: CallControl, rec: ConfRecording) -> None:
    try:
        seconds = await asyncio.to_thread(recording.write_final, rec.part, rec.final, rec.fmt, trim=rec.trim)
    except Exception:
        recording.logger.exception("conference recording %s: cannot write %s", rec.id, rec.final)
        rec.part.unlink(missing_ok=True)
        return
    ended = time.time()
    url = recording.remember(cc, rec.id, rec.fmt, rec.final, {
        "conference_id": rec.conf.id,
        "connection_id": rec.conf.connection_id,
        "channels": rec.channels,
        "duration_millis": int(seconds * 1000),
        "source": "conference",
        "recording_started_at": recording.iso(rec.started_at),
        "recording_ended_at": recording.iso(ended),
    })
    cc.emit_conference(
        rec.conf,
        "conference.recording.saved",
        None,
        recording_id=rec.id,
        channels=rec.channels,
        format=rec.fmt,
        client_state=rec.client_state or None,
        recording_started_at=recording.iso(rec.started_at),
        recording_ended_at=recording.iso(ended),
        recording_urls={rec.fmt: url},
        public_recording_urls={rec.fmt: url},
    )


async def record_start(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cc: CallControl = api.cc
    conf = _conference(api, params, token)
    fmt = get_choice(body, "format", ("wav", "mp3"))
    channels = get_choice(body, "channels", ("single", "dual"), default="single")
    custom = recording.custom_name(body)
    rid = str(uuid.uuid4())
    try:
        part = recording_path(cc.options.data_dir, f"{rid}.part.wav")
        final = recording_path(cc.options.data_dir, f"{custom.removesuffix('.' + fmt) if custom else rid}.{fmt}")
    except MediaRefused as exc:
        raise bad("custom_file_name" if custom else "format", str(exc)) from exc
    trim = get_choice(body, "trim", ("trim-silence",), default="") if body.get("trim") else ""
    rec = ConfRecording(rid, conf, fmt, channels, part, final, client_state=get_str(body, "client_state"),
                        trim=bool(trim))
    rec.first = conf.participants[0].call_control_id if conf.participants else ""
    rec.wav = wave.open(str(part), "wb")
    rec.wav.setnchannels(2 if channels == "dual" else 1)
    rec.wav.setsampwidth(2)
    rec.wav.setframerate(48000)
    if get_bool(body, "play_beep"):
        from softphone.media.sources import ToneSource

        for leg in conf.participants:
            leg.endpoint.play(ToneSource(1000.0, 0.3, duration_ms=250))
    _CONF_RECORDINGS.setdefault(conf, {})[rid] = rec
    cc.spawn(_run_recording(cc, rec), "conference-record")
    return OK


def _pick(conf: Conference, body: dict[str, Any]) -> list[ConfRecording]:
    recs = _CONF_RECORDINGS.get(conf, {})
    rid = get_str(body, "recording_id")
    if rid:
        if rid not in recs:
            raise bad("recording_id", f"no recording {rid} in this conference")
        return [recs[rid]]
    if not recs:
        raise CommandError(422, "90061", "Conference is not being recorded", conf.id)
    return list(recs.values())


async def record_stop(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    conf = _conference(api, params, token)
    for rec in _pick(conf, body):
        cs = get_str(body, "client_state")
        if cs:
            rec.client_state = cs
        rec.stopping = True
    return OK


async def record_pause(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    for rec in _pick(_conference(api, params, token), body):
        rec.paused = True
    return OK


async def record_resume(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    for rec in _pick(_conference(api, params, token), body):
        rec.paused = False
    return OK


for _name, _handler in (
    ("play", play),
    ("speak", speak),
    ("stop", stop),
    ("send_dtmf", send_dtmf),
    ("gather_using_audio", gather_using_audio),
    ("record_start", record_start),
    ("record_stop", record_stop),
    ("record_pause", record_pause),
    ("record_resume", record_resume),
):
    register_route("POST", f"/v2/conferences/{{id}}/actions/{_name}", _handler)
