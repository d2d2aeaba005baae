"""Media streaming (``streaming_start`` / ``streaming_stop``): a call's audio over a websocket.

Telnyx's media streaming, as its AsyncAPI page describes it: on ``streaming_start`` the switch
opens a websocket *client* to ``stream_url`` and sends JSON frames

* ``{"event": "connected", "version": "1.0.0"}``,
* ``start`` with the call's ids, ``client_state``, ``custom_parameters`` and
  ``media_format`` (``encoding``, ``sample_rate``, ``channels``),
* one ``media`` frame per 20 ms and track: ``{"track": "inbound"|"outbound", "chunk", "timestamp",
  "payload"}`` where the payload is base64 RTP payload without RTP headers,
* ``stop`` when the stream ends (``streaming_stop``, hangup, or the server closing).

``stream_track``: ``inbound_track`` (default) is what the leg's party says, ``outbound_track``
what it hears, ``both_tracks`` both. ``stream_codec``: PCMU (8 kHz, the default and what
``default`` means here), PCMA (8 kHz) and L16 (16-bit linear, network byte order as RTP's L16, at
16 kHz); G722/OPUS/AMR-WB are not transcoded, and as on Telnyx the stream then falls back to the
call's codec, here PCMU; ``media_format`` always tells the truth.

Bidirectional: the server may send ``{"event": "media", "media": {"payload": ...}}`` back. With
``stream_bidirectional_mode`` ``rtp`` the payload is raw audio in ``stream_bidirectional_codec``
(PCMU, PCMA or L16) at ``stream_bidirectional_sampling_rate``; otherwise (``mp3``, Telnyx's
default) each payload is a whole audio file (MP3, WAV...), decoded with PyAV. Audio is queued and
played in order into the leg (``stream_bidirectional_target_legs``: ``self``, the default,
``opposite`` = the bridged leg, or ``both``); ``{"event": "clear"}`` drops what is queued, and
``{"event": "mark", "mark": {"name": ...}}`` comes back when the audio before it has played.

Webhooks: ``streaming.started`` once the websocket is open, ``streaming.stopped`` at the end,
``streaming.failed`` (``failure_reason``) when it cannot connect. DTMF the leg's party sends goes
down the socket too (``{"event": "dtmf", "dtmf": {"digit": "1"}}``). ``stream_url`` must be a
``ws://``/``wss://`` URL on loopback, else 422. ``answer`` takes the same ``stream_*`` options
(see :func:`softphone.switch.callcontrol.transcription.with_media_options`). Not done: Dialogflow,
streaming parameters on ``dial``. Payload codecs and the playout queue are in
:mod:`~softphone.switch.callcontrol.stream_audio`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from softphone.switch.callcontrol.engine import CommandError, gone
from softphone.switch.callcontrol.stream_audio import Codec, Playout, stream_codec
from softphone.switch.hosts import is_loopback_host

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.media_legs import LegAudio

logger = logging.getLogger(__name__)

OK: dict[str, Any] = {"result": "ok"}
CALL_RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 5.0  # a server that takes no frame for this long has gone
SEND_QUEUE_FRAMES = 500  # 10 s of one track: a stalled server loses the oldest audio, not the call
TRACKS = {"inbound_track": ("inbound",), "outbound_track": ("outbound",), "both_tracks": ("inbound", "outbound")}
TARGET_LEGS = ("self", "opposite", "both")


# --- one stream ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class MediaStream:
    """One media stream of one leg (see the module docstring)."""

    cc: CallControl
    leg: CCLeg
    url: str
    track: str
    codec: Codec
    bidirectional_mode: str
    bidirectional_codec: Codec
    target_legs: str
    custom_parameters: dict[str, str]
    auth_token: str
    stream_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    frames_sent: int = 0
    """Frames written to the socket (media, marks, errors, DTMF)."""
    stopped: bool = False
    _queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE_FRAMES))
    _seq: Any = field(default_factory=lambda: itertools.count(1))
    _chunks: dict[str, int] = field(default_factory=dict)
    _resamplers: dict[str, Any] = field(default_factory=dict)
    _back: Any = None
    """The resampler of the audio sent back (one for the stream, so 20 ms chunks join seamlessly)."""
    _task: asyncio.Task[None] | None = None
    _endpoints: list[LegAudio] = field(default_factory=list)
    _playout: Playout | None = None
    _play_targets: list[LegAudio] = field(default_factory=list)
    _ws: Any = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the stream is over (stopped, failed or never connected)."""

    # AudioTap: called on the media path; resample, encode and queue only.
    def said(self, frame: Frame | None) -> None:
        if "inbound" in TRACKS[self.track]:
            self._media("inbound", frame)

    def heard(self, frame: Frame | None) -> None:
        if "outbound" in TRACKS[self.track]:
            self._media("outbound", frame)

    def _media(self, track: str, frame: Frame | None) -> None:
        if self.stopped or self._ws is None:
            return
        from softphone.media.frames import FrameResampler

        samples = frame if frame is not None else np.zeros(FRAME, dtype=np.int16)
        resampler = self._resamplers.get(track)
        if resampler is None:
            resampler = self._resamplers[track] = FrameResampler(CALL_RATE, self.codec.rate)
        chunk = self._chunks.get(track, 0) + 1
        self._chunks[track] = chunk
        payload = base64.b64encode(self.codec.encode(resampler.process(samples))).decode("ascii")
        msg = {
            "event": "media",
            "sequence_number": str(next(self._seq)),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str((chunk - 1) * 20),
                "payload": payload,
            },
            "stream_id": self.stream_id,
        }
        self._put(json.dumps(msg))

    def dtmf(self, digit: str) -> None:
        """A ``dtmf`` frame: the leg's party pressed ``digit``."""
        if self.stopped or self._ws is None:
            return
        self._put(
            json.dumps(
                {
                    "event": "dtmf",
                    "stream_id": self.stream_id,
                    "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "sequence_number": str(next(self._seq)),
                    "dtmf": {"digit": digit},
                }
            )
        )

    def _put(self, text: str | None) -> None:
        if self._queue.full():  # drop the oldest: bounded delay, like a jitter buffer overflow
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(text)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = self.cc.spawn(self._run(), f"stream {self.stream_id[:8]}")

    def _call_meta(self) -> dict[str, Any]:
        leg = self.leg
        return {
            "user_id": leg.connection_id,
            "call_control_id": leg.call_control_id,
            "call_session_id": leg.call_session_id,
            "from": leg.from_,
            "to": leg.to,
        }

    async def _run(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"x-telnyx-streaming-auth-token": self.auth_token} if self.auth_token else {}
        try:
            ws = await asyncio.wait_for(
                connect(self.url, additional_headers=headers, open_timeout=CONNECT_TIMEOUT_S, max_size=2**24),
                CONNECT_TIMEOUT_S + 1,
            )
        except Exception as exc:
            self.stopped = True
            self._forget()
            self.cc.emit(
                self.leg,
                "streaming.failed",
                failure_reason=f"connection to {self.url} failed: {exc.__class__.__name__}: {exc}"[:300],
                stream_id=self.stream_id,
                stream_type="websocket",
                stream_params={"stream_url": self.url, "track": self.track},
            )
            return
        if self.stopped or not self.leg.alive:
            await ws.close()
            self._forget()
            return
        self._ws = ws
        connected: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
        if self.auth_token:
            connected["x-telnyx-streaming-auth-token"] = self.auth_token
        start = {
            "event": "start",
            "sequence_number": str(next(self._seq)),
            "start": {
                **self._call_meta(),
                "client_state": self.leg.client_state or None,
                "custom_parameters": self.custom_parameters,
                "media_format": {"encoding": self.codec.name, "sample_rate": self.codec.rate, "channels": 1},
            },
            "stream_id": self.stream_id,
        }
        await ws.send(json.dumps(connected))
        await ws.send(json.dumps(start))
        self._attach()
        self.cc.emit(self.leg, "streaming.started", stream_url=self.url, stream_id=self.stream_id)
        reader = asyncio.get_running_loop().create_task(self._read(ws), name=f"stream-read {self.stream_id[:8]}")
        try:
            await self._send(ws)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._detach()
            with contextlib.suppress(Exception):
                await ws.close()
            self._forget()
            self.cc.emit(self.leg, "streaming.stopped", stream_url=self.url, stream_id=self.stream_id)

    async def _send(self, ws: Any) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                stop = {
                    "event": "stop",
                    "sequence_number": str(next(self._seq)),
                    "stop": {"user_id": self.leg.connection_id, "call_control_id": self.leg.call_control_id},
                    "stream_id": self.stream_id,
                }
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.send(json.dumps(stop)), SEND_TIMEOUT_S)
                return
            try:
                await asyncio.wait_for(ws.send(text), SEND_TIMEOUT_S)
            except Exception:  # closed, or not reading: end the stream rather than hold the call's audio
                logger.info("stream %s: the server went away or stopped reading", self.stream_id)
                self.stopped = True
                return
            self.frames_sent += 1

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                await self._on_message(raw)
        except Exception:
            logger.debug("stream %s: read ended", self.stream_id, exc_info=True)
        if not self.stopped:  # the server closed: end the stream
            self.stop()

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            self._error(100002, "malformed_frame", "frames must be JSON")
            return
        if not isinstance(msg, dict):
            self._error(100002, "malformed_frame", "frames must be JSON objects")
            return
        event = msg.get("event")
        body = msg.get(event) if isinstance(event, str) else None
        if event == "media" and isinstance(body, dict) and isinstance(body.get("payload"), str):
            await self._play(body["payload"])
        elif event == "clear":
            if self._playout is not None:
                self._playout.clear()
        elif event == "mark" and isinstance(body, dict) and isinstance(body.get("name"), str):
            self._ensure_playout().add_mark(body["name"])
        else:
            self._error(100003, "unknown_event", f"unsupported frame: {str(event)[:40]!r}")

    async def _play(self, payload: str) -> None:
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            self._error(100004, "invalid_payload", "media.payload is not base64")
            return
        if self.bidirectional_mode == "rtp":
            from softphone.media.frames import StreamResampler

            if self._back is None:
                self._back = StreamResampler(self.bidirectional_codec.rate, CALL_RATE)
            audio = self._back.process(self.bidirectional_codec.decode(data))
        else:
            from softphone.switch.callcontrol.mediafiles import MediaRefused, decode_audio

            try:
                audio = await asyncio.to_thread(decode_audio, data)
            except MediaRefused as exc:
                self._error(100004, "invalid_payload", str(exc).replace("audio_url", "media.payload"))
                return
        if not self.stopped:
            self._ensure_playout().add_audio(audio)

    def _ensure_playout(self) -> Playout:
        if self._playout is None:
            from softphone.switch.media_legs import LegAudio

            self._playout = Playout(self._mark_played)
            legs = []
            if self.target_legs in ("self", "both"):
                legs.append(self.leg)
            if self.target_legs in ("opposite", "both") and self.leg.bridged_to is not None:
                legs.append(self.leg.bridged_to)
            for leg in legs:
                if isinstance(leg.endpoint, LegAudio):
                    leg.endpoint.play(self._playout)
                    self._play_targets.append(leg.endpoint)
        return self._playout

    def _mark_played(self, name: str) -> None:
        self._put(
            json.dumps(
                {
                    "event": "mark",
                    "sequence_number": str(next(self._seq)),
                    "stream_id": self.stream_id,
                    "mark": {"name": name},
                }
            )
        )

    def _error(self, code: int, title: str, detail: str) -> None:
        # Telnyx documents the error frame, not its codes: these (1000xx) are this switch's own.
        self._put(
            json.dumps(
                {
                    "event": "error",
                    "sequence_number": str(next(self._seq)),
                    "stream_id": self.stream_id,
                    "payload": {"code": code, "title": title, "detail": detail},
                }
            )
        )

    def _attach(self) -> None:
        from softphone.switch.media_legs import LegAudio

        endpoint = self.leg.endpoint
        if isinstance(endpoint, LegAudio) and self not in endpoint.taps:
            endpoint.taps.append(self)
            self._endpoints.append(endpoint)

    def _detach(self) -> None:
        for endpoint in self._endpoints:
            if self in endpoint.taps:
                endpoint.taps.remove(self)
        self._endpoints.clear()
        for endpoint in self._play_targets:
            if self._playout is not None:
                endpoint.stop_playing(self._playout)
        self._play_targets.clear()

    def _forget(self) -> None:
        self.done.set()
        streams = self.leg.extras.get("streams")
        if isinstance(streams, dict):
            streams.pop(self.stream_id, None)

    def stop(self) -> None:
        """End the stream: the ``stop`` frame goes out after what is queued, then the socket closes."""
        if self.stopped:
            return
        self.stopped = True
        self._detach()
        if self._ws is None and self._task is not None:
            self._task.cancel()  # still connecting
            self._forget()
            return
        self._put(None)


# --- the actions -----------------------------------------------------------------------------------------


def _bad(param: str, detail: str) -> CommandError:
    return CommandError(422, "10015", f"Invalid value for {param}", detail)


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...] | dict[str, Any], default: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in allowed:
        raise _bad(key, f"{key} must be one of {', '.join(allowed)}")
    return value


def check_stream_url(url: Any) -> str:
    """``stream_url`` if it is a ws:// or wss:// URL on loopback; else a 422."""
    if not isinstance(url, str) or not url:
        raise _bad("stream_url", "streaming_start needs stream_url (a ws:// URL on loopback)")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise _bad("stream_url", "stream_url must be a ws:// or wss:// URL")
    if not is_loopback_host(parts.hostname):
        raise _bad("stream_url", f"stream_url host {parts.hostname!r} is not loopback (this switch streams locally)")
    return url


def _custom_parameters(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value", ""), str) for p in raw
    ):
        raise _bad("custom_parameters", "custom_parameters must be a list of {name, value} strings")
    return {p["name"]: p.get("value", "") for p in raw}


def streams_of(leg: CCLeg) -> dict[str, MediaStream]:
    """The leg's running streams by ``stream_id``."""
    streams: dict[str, MediaStream] = leg.extras.setdefault("streams", {})
    return streams


def new_stream(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> MediaStream:
    """A stream for the ``stream_*`` parameters of ``body`` (streaming_start, answer); 422 when bad."""
    url = check_stream_url(body.get("stream_url"))
    if body.get("enable_dialogflow") is True:
        raise _bad("enable_dialogflow", "Dialogflow streaming is not available on this switch")
    track = _choice(body, "stream_track", TRACKS, "inbound_track")
    codec_name = _choice(body, "stream_codec", ("PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16", "default"), "default")
    mode = _choice(body, "stream_bidirectional_mode", ("mp3", "rtp"), "mp3")
    bidi_name = _choice(body, "stream_bidirectional_codec", ("PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"), "PCMU")
    if mode == "rtp" and bidi_name not in ("PCMU", "PCMA", "L16"):
        raise _bad("stream_bidirectional_codec", "this switch decodes PCMU, PCMA and L16 payloads")
    rate = body.get("stream_bidirectional_sampling_rate")
    if rate is None:
        rate = 8000 if bidi_name in ("PCMU", "PCMA") else 16000
    if isinstance(rate, bool) or rate not in (8000, 16000, 22050, 24000, 48000):
        raise _bad("stream_bidirectional_sampling_rate", "one of 8000, 16000, 22050, 24000, 48000")
    if bidi_name in ("PCMU", "PCMA") and rate != 8000:
        raise _bad("stream_bidirectional_sampling_rate", f"{bidi_name} is 8000 Hz")
    token = body.get("stream_auth_token", "")
    if not isinstance(token, str) or len(token) > 4000:
        raise _bad("stream_auth_token", "a string of at most 4000 characters")
    return MediaStream(
        cc,
        leg,
        url,
        track,
        stream_codec(codec_name),
        mode,
        Codec(bidi_name, int(rate)),
        _choice(body, "stream_bidirectional_target_legs", TARGET_LEGS, "self"),
        _custom_parameters(body.get("custom_parameters")),
        token,
    )


def _dtmf_to_streams(leg: CCLeg, digits: str) -> None:
    for stream in list(streams_of(leg).values()):
        for digit in digits:
            stream.dtmf(digit)


def run_stream(cc: CallControl, stream: MediaStream) -> None:
    """Start ``stream`` (connects in the background) and stop it when its leg hangs up."""
    if _dtmf_to_streams not in cc.dtmf_observers:
        cc.dtmf_observers.append(_dtmf_to_streams)
    streams_of(stream.leg)[stream.stream_id] = stream
    stream.start()
    cc.spawn(_stop_on_hangup(stream.leg, stream), "stream-hangup")


async def streaming_start(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    if not leg.alive:
        raise gone(leg)
    if isinstance(body.get("client_state"), str) and body["client_state"]:
        leg.client_state = body["client_state"]
    if leg.answered_at is None:
        raise CommandError(422, "90034", "Call not answered yet", "answer before streaming_start")
    run_stream(cc, new_stream(cc, leg, body))
    return OK


async def _stop_on_hangup(leg: CCLeg, stream: MediaStream) -> None:
    loop = asyncio.get_running_loop()
    waits = [loop.create_task(leg.ended.wait()), loop.create_task(stream.done.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    stream.stop()


async def streaming_stop(cc: CallControl, leg: CCLeg, body: dict[str, Any]) -> dict[str, Any]:
    del cc
    if not leg.alive:
        raise gone(leg)
    if isinstance(body.get("client_state"), str) and body["client_state"]:
        leg.client_state = body["client_state"]
    stream_id = body.get("stream_id")
    streams = streams_of(leg)
    if stream_id is not None:
        if not isinstance(stream_id, str) or stream_id not in streams:
            raise _bad("stream_id", f"no stream {stream_id!r} on this call")
        targets = [streams[stream_id]]
    else:
        targets = list(streams.values())
    if not targets:
        raise CommandError(422, "90055", "No streaming in progress", "start a stream before stopping it")
    for s in targets:
        s.stop()
    return OK


ACTIONS = {"streaming_start": streaming_start, "streaming_stop": streaming_stop}
