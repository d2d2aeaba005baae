"""Call recording: ``record_start`` / ``record_stop`` / ``record_pause`` / ``record_resume``.

A recording watches a leg's audio both ways through the leg's taps
(:class:`~softphone.switch.media_legs.AudioTap`): *inbound* is what the leg's party says,
*outbound* what it hears (the other party, playbacks, speech). ``channels: single`` mixes the
chosen ``recording_track`` (both, inbound, outbound) to mono; ``dual`` puts inbound on the first
channel (Telnyx: "the first leg on channel A") and outbound on the second. While paused
nothing is written. ``max_length`` (seconds of audio) and ``timeout_secs`` (seconds of silence
on both tracks) end it by themselves; a hangup ends it too.

The audio is written as it comes (48 kHz, 16-bit WAV) under ``<data dir>/recordings/``; at the
end an MP3 is encoded from it with PyAV when ``format: mp3`` (a failure there posts
``call.recording.error``, reason "Internal server error"). Then ``call.recording.saved`` is
posted with ``recording_urls`` / ``public_recording_urls`` pointing at
``GET <api>/switch/recordings/<recording_id>.<wav|mp3>``, which the switch serves on loopback
without an API key: like Telnyx's pre-signed download URLs, the unguessable id is the key.
``GET /v2/recordings`` (list, ``filter[...]``, pages), ``GET`` and ``DELETE
/v2/recordings/{recording_id}`` are Telnyx's recordings resource (the SDK's ``recordings``),
for the connection's API key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
import uuid
import wave
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.mediafiles import MediaRefused, recording_path
from softphone.switch.callcontrol.params import OK, alive, answered, bad, get_bool, get_choice, get_int, get_str
from softphone.switch.callcontrol.routes import ApiContext, RawResponse, current_request, page, register_route
from softphone.switch.media_legs import LegAudio

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

logger = logging.getLogger(__name__)

RATE = 48000
FRAME = 960
MAX_SAID_QUEUE = 25
"""Frames of the party's voice held waiting for the outbound clock (500 ms) before being written alone."""
SILENCE_DBFS = -50.0
_FILE = re.compile(r"^([0-9a-f-]{36})\.(wav|mp3)$")
_CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}



@dataclass
class Saved:
    """A finished recording: the file and Telnyx's recording object (``GET /v2/recordings/{id}``)."""

    path: Path
    record: dict[str, Any]


_SAVED: weakref.WeakKeyDictionary[Any, dict[str, Saved]] = weakref.WeakKeyDictionary()
"""Per engine: recording id -> :class:`Saved` (what the download and recordings routes serve)."""


def iso(ts: float) -> str:
    """An ISO 8601 time as the webhooks write them."""
    from softphone.switch.callcontrol.webhooks import iso_now

    return iso_now(ts)


def custom_name(body: dict[str, Any]) -> str:
    """A checked ``custom_file_name`` ("" when absent)."""
    custom = get_str(body, "custom_file_name")
    if custom and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", custom):
        raise bad("custom_file_name", "custom_file_name may hold letters, digits, '_', '-' and '.' (at most 100)")
    return custom


def remember(cc: CallControl, rid: str, fmt: str, path: Path, fields: dict[str, Any]) -> str:
    """Keep a finished recording for the download and recordings routes; returns its download URL."""
    url = f"{cc.api_url}/switch/recordings/{rid}.{fmt}"
    now = iso(time.time())
    record = {
        "record_type": "recording",
        "id": rid,
        "download_urls": {fmt: url},
        "status": "completed",
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    _SAVED.setdefault(cc, {})[rid] = Saved(path, record)
    return url


@dataclass(eq=False)
class Recording:
    """One recording of one leg (an :class:`~softphone.switch.media_legs.AudioTap`)."""

    id: str
    leg: CCLeg
    fmt: str
    channels: str
    track: str
    part: Path
    """The WAV being written (48 kHz; 1 channel for single, 2 for dual)."""
    final: Path
    max_frames: int = 0
    silence_frames: int = 0
    trim: bool = False
    """``trim: trim-silence``: silence at both ends is cut from the saved file."""
    paused: bool = False
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    frames_written: int = 0
    quiet_run: int = 0
    stopping: bool = False
    _wav: wave.Wave_write | None = None
    _said: collections.deque[Frame] = field(default_factory=collections.deque)
    _zeros: Frame = field(default_factory=lambda: np.zeros(FRAME, np.int16))
    on_limit: Any = None
    """Called once when ``max_length`` or ``timeout_secs`` is reached (the engine stops it)."""
    watch: asyncio.Task[None] | None = None
    """Ends the recording with the call."""

    def open(self) -> None:
        self._wav = wave.open(str(self.part), "wb")
        self._wav.setnchannels(2 if self.channels == "dual" else 1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)

    # --- AudioTap -------------------------------------------------------------------------

    def said(self, frame: Frame | None) -> None:
        """What the party said: queued for the next outbound frame (the outbound side is the clock)."""
        if self._wav is None:
            return
        self._said.append(self._zeros if frame is None else np.array(frame, dtype=np.int16, copy=True))
        while len(self._said) > MAX_SAID_QUEUE:  # nothing heard for 500 ms (no peer clock yet): write alone
            self._write(self._said.popleft(), self._zeros)

    def heard(self, frame: Frame | None) -> None:
        """What the party heard (20 ms, steady): written beside the oldest queued inbound frame."""
        if self._wav is None:
            return
        said = self._said.popleft() if self._said else self._zeros
        self._write(said, self._zeros if frame is None else frame)

    # --- writing ----------------------------------------------------------------------------

    def _write(self, inbound: Frame, outbound: Frame) -> None:
        if self._wav is None or self.paused or self.stopping:
            return
        if self.track == "inbound":
            outbound = self._zeros
        elif self.track == "outbound":
            inbound = self._zeros
        if self.channels == "dual":
            out = np.empty((FRAME, 2), "<i2")
            out[:, 0] = inbound[:FRAME]
            out[:, 1] = outbound[:FRAME]
        else:
            total = inbound[:FRAME].astype(np.int32) + outbound[:FRAME]
            out = np.clip(total, -32768, 32767).astype("<i2")
        self._wav.writeframes(out.tobytes())
        self.frames_written += 1
        self._check_limits(inbound, outbound)

    def _check_limits(self, inbound: Frame, outbound: Frame) -> None:
        from softphone.media.frames import level_dbfs

        hit = self.max_frames and self.frames_written >= self.max_frames
        if self.silence_frames:
            quiet = level_dbfs(inbound) < SILENCE_DBFS and level_dbfs(outbound) < SILENCE_DBFS
            self.quiet_run = self.quiet_run + 1 if quiet else 0
            hit = hit or self.quiet_run >= self.silence_frames
        if hit and not self.stopping:
            self.stopping = True
            if self.on_limit is not None:
                self.on_limit()

    def close(self) -> None:
        """Finish the WAV being written (idempotent)."""
        wav, self._wav = self._wav, None
        if wav is not None:
            wav.close()


def encode_mp3(wav_path: Path, mp3_path: Path) -> None:
    """Encode a 16-bit WAV as MP3 with PyAV (libmp3lame). Blocking."""
    import av

    with wave.open(str(wav_path), "rb") as wf:
        channels, rate = wf.getnchannels(), wf.getframerate()
        data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").astype(np.int16)
    planar = data.reshape(-1, channels).T
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(mp3_path), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout=layout)
        for i in range(0, planar.shape[1], 1152):
            chunk = np.ascontiguousarray(planar[:, i : i + 1152])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16p", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def trim_silence(path: Path, dbfs: float = SILENCE_DBFS) -> None:
    """``trim: trim-silence``: cut the 20 ms frames quieter than ``dbfs`` (on every channel) at both
    ends of a 16-bit WAV, in place. Blocking."""
    with wave.open(str(path), "rb") as wf:
        channels, rate = wf.getnchannels(), wf.getframerate()
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").reshape(-1, channels)
    win = rate // 50
    n = pcm.shape[0] // win
    threshold = 32768.0 * 10 ** (dbfs / 20)
    peaks = np.abs(pcm[: n * win].astype(np.int32)).reshape(n, win * channels).max(axis=1) if n else np.zeros(0)
    loud = np.flatnonzero(peaks > threshold)
    kept = pcm[int(loud[0]) * win : (int(loud[-1]) + 1) * win] if loud.size else pcm[:0]
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(np.ascontiguousarray(kept).tobytes())


def write_final(part: Path, final: Path, fmt: str, *, trim: bool = False) -> float:
    """Turn the WAV written during the call into the saved file (MP3 encoded when asked, silence
    trimmed first with ``trim``); returns its length in seconds. Blocking."""
    if trim:
        trim_silence(part)
    with wave.open(str(part), "rb") as wf:
        seconds = wf.getnframes() / wf.getframerate()
    if fmt == "mp3":
        encode_mp3(part, final)
        part.unlink(missing_ok=True)
    else:
        part.replace(final)
    return seconds


def _recordings(leg: CCLeg) -> dict[str, Recording]:
    recs = leg.extras.get("recordings")
    if not isinstance(recs, dict):
        recs = leg.extras["recordings"] = {}
    return recs


def _taps(leg: CCLeg) -> list[Any]:
    ep = leg.endpoint
    if not isinstance(ep, LegAudio):
        raise CommandError(422, "90060", "Call cannot be recorded", f"{leg.call_control_id} has no audio path")
    return ep.taps


def _pick(leg: CCLeg, body: dict[str, Any]) -> list[Recording]:
    """The recordings a stop/pause/resume names (``recording_id``, else all of the leg's)."""
    recs = _recordings(leg)
    rid = get_str(body, "recording_id")
    if rid:
        if rid not in recs:
            raise bad("recording_id", f"no recording {rid} on this call")
        return [recs[rid]]
    if not recs:
        raise CommandError(422, "90061", "Call is not being recorded", leg.call_control_id)
    return list(recs.values())


async def record_start(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    alive(leg)
    answered(leg, "record_start")
    fmt = get_choice(body, "format", ("wav", "mp3"))
    channels = get_choice(body, "channels", ("single", "dual"))
    track = get_choice(body, "recording_track", ("both", "inbound", "outbound"), default="both")
    max_length = get_int(body, "max_length", 0, lo=0, hi=14400)
    timeout_secs = get_int(body, "timeout_secs", 0, lo=0, hi=14400)
    beep = get_bool(body, "play_beep")
    custom = custom_name(body)
    taps = _taps(leg)
    cs = body.get("client_state")
    if isinstance(cs, str) and cs:
        leg.client_state = cs
    rid = str(uuid.uuid4())
    stem = custom.removesuffix(f".{fmt}") if custom else rid
    try:
        part = recording_path(cc.options.data_dir, f"{rid}.part.wav")
        final = recording_path(cc.options.data_dir, f"{stem}.{fmt}")
    except MediaRefused as exc:
        raise bad("custom_file_name" if custom else "format", str(exc)) from exc
    trim = get_choice(body, "trim", ("trim-silence",), default="") if body.get("trim") else ""
    rec = Recording(rid, leg, fmt, channels, track, part, final,
                    max_frames=max_length * 50, silence_frames=timeout_secs * 50, trim=bool(trim))
    try:
        rec.open()
    except OSError as exc:
        raise CommandError(422, "90060", "Call cannot be recorded", exc.strerror or str(exc)) from exc
    rec.on_limit = lambda: cc.spawn(finish(cc, rec), "record-limit")
    _recordings(leg)[rid] = rec
    if beep:
        from softphone.media.sources import ToneSource

        leg.endpoint.play(ToneSource(1000.0, 0.3, duration_ms=250))
    taps.append(rec)
    rec.watch = cc.spawn(_end_with_call(cc, rec), "record-hangup")
    return OK


async def _end_with_call(cc: CallControl, rec: Recording) -> None:
    await rec.leg.ended.wait()
    await finish(cc, rec)


async def finish(cc: CallControl, rec: Recording) -> None:
    """Stop ``rec``, write the final file and post ``call.recording.saved`` (once)."""
    leg = rec.leg
    if _recordings(leg).pop(rec.id, None) is None:
        return
    rec.stopping = True
    if rec.watch is not None and rec.watch is not asyncio.current_task():
        rec.watch.cancel()
    with contextlib.suppress(ValueError):
        _taps(leg).remove(rec)
    rec.ended_at = time.time()
    rec.close()
    try:
        seconds = await asyncio.to_thread(write_final, rec.part, rec.final, rec.fmt, trim=rec.trim)
    except Exception:
        logger.exception("recording %s: cannot write %s", rec.id, rec.final)
        rec.part.unlink(missing_ok=True)
        cc.emit(leg, "call.recording.error", reason="Internal server error", recording_id=rec.id)
        return
    url = remember(cc, rec.id, rec.fmt, rec.final, {
        "call_control_id": leg.call_control_id,
        "call_leg_id": leg.call_leg_id,
        "call_session_id": leg.call_session_id,
        "connection_id": leg.connection_id,
        "channels": rec.channels,
        "duration_millis": int(seconds * 1000),
        "from": leg.from_,
        "to": leg.to,
        "initiated_by": "StartCallRecordingAPI",
        "source": "call",
        "recording_started_at": iso(rec.started_at),
        "recording_ended_at": iso(rec.ended_at),
    })
    cc.emit(
        leg,
        "call.recording.saved",
        recording_id=rec.id,
        channels=rec.channels,
        format=rec.fmt,
        recording_started_at=iso(rec.started_at),
        recording_ended_at=iso(rec.ended_at),
        duration_millis=int(seconds * 1000),
        recording_urls={rec.fmt: url},
        public_recording_urls={rec.fmt: url},
    )


async def record_stop(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    alive(leg)
    recs = _pick(leg, body)
    cs = body.get("client_state")
    if isinstance(cs, str) and cs:
        leg.client_state = cs
    for rec in recs:
        rec.stopping = True  # nothing more is written from now on
        cc.spawn(finish(cc, rec), "record-stop")
    return OK


async def record_pause(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    del cc
    alive(leg)
    for rec in _pick(leg, body):
        rec.paused = True
    return OK


async def record_resume(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    del cc
    alive(leg)
    for rec in _pick(leg, body):
        rec.paused = False
    return OK


async def download(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``GET /switch/recordings/<id>.<wav|mp3>``: the saved audio (no key: the id is the key)."""
    del body, token
    m = _FILE.match(params["file"])
    saved = _SAVED.get(api.cc, {}).get(m.group(1)) if m else None
    if m is None or saved is None or not saved.path.is_file() or saved.path.suffix != f".{m.group(2)}":
        raise CommandError(404, "10005", "Resource not found", f"no recording {params['file']}"[:120])
    data = await asyncio.to_thread(saved.path.read_bytes)
    return RawResponse(200, _CONTENT_TYPES[m.group(2)], data)


def _mine(api: ApiContext, params: dict[str, str], token: str) -> Saved:
    saved = _SAVED.get(api.cc, {}).get(params["recording_id"])
    if saved is None or not api.allowed(saved.record["connection_id"], token):
        raise CommandError(404, "10005", "Resource not found", f"no recording {params['recording_id']}"[:120])
    return saved


async def list_recordings(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``GET /v2/recordings`` (``filter[call_control_id]``, ``filter[connection_id]``, ... and paging)."""
    del params, body
    query = current_request().query
    filters = {k[7:-1]: v for k, v in query.items() if k.startswith("filter[") and k.endswith("]")}
    items = [
        s.record for s in _SAVED.get(api.cc, {}).values()
        if api.allowed(s.record["connection_id"], token)
        and all(str(s.record.get(k, "")) == v for k, v in filters.items() if k in s.record)
    ]
    return page(items, query)


async def get_recording(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``GET /v2/recordings/{recording_id}``."""
    del body
    return _mine(api, params, token).record


async def delete_recording(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    """``DELETE /v2/recordings/{recording_id}``: the file goes too."""
    del body
    saved = _mine(api, params, token)
    _SAVED.get(api.cc, {}).pop(params["recording_id"], None)
    saved.path.unlink(missing_ok=True)
    return saved.record


register_route("GET", "/switch/recordings/{file}", download)
register_route("GET", "/v2/recordings", list_recordings)
register_route("GET", "/v2/recordings/{recording_id}", get_recording)
register_route("DELETE", "/v2/recordings/{recording_id}", delete_recording)

ACTIONS = {
    "record_start": record_start,
    "record_stop": record_stop,
    "record_pause": record_pause,
    "record_resume": record_resume,
}
