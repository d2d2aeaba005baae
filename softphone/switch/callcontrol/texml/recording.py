"""``<Record>``: what the caller says, to a WAV file the switch serves, with ``recordingStatusCallback``.

After an optional beep, the caller's audio is kept until a ``finishOnKey`` digit, ``timeout``
seconds of silence, ``maxLength`` seconds, or the hangup; with ``transcribeCallback`` the
recording is also recognised offline (pocketsphinx) and the text posted there. The file goes to
``<data_dir>/recordings/<RecordingSid>.wav`` (48 kHz mono 16-bit) and is served on the commands
API at ``GET /v2/texml/recordings/<RecordingSid>.wav`` (the ``RecordingUrl``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softphone.switch.callcontrol.texml.document import Verb
    from softphone.switch.callcontrol.texml.flow import Runner

logger = logging.getLogger("softphone.switch.callcontrol.texml")

SILENCE_RMS = 150.0
"""Below this RMS level (int16, about -47 dBFS) a frame counts as silence for ``timeout``."""


def _int(v: Verb, name: str, default: int) -> int:
    raw = v.attr(name)
    return int(raw) if raw.isdigit() else default


def recordings_dir(data_dir: Path) -> Path:
    return data_dir / "recordings"


async def record(s: Runner, v: Verb) -> dict[str, str] | None:
    """Record the caller; the action parameters, or None when the call ended before anything was kept."""
    import numpy as np

    from softphone.media.sources import ToneSource
    from softphone.switch.callcontrol.gather import Gather, end_gather

    cc, leg = s.cc, s.leg
    max_len = max(1, _int(v, "maxLength", 3600))
    quiet_s = max(1, _int(v, "timeout", 5))
    finish = v.attrs.get("finishOnKey", "1234567890*#")
    if v.attr("playBeep", "true").lower() != "false":
        await s.play(ToneSource(1000.0, 0.3, duration_ms=300), interruptible=False)
    if not leg.alive:
        return None
    frames: list[Any] = []
    leg.endpoint.set_receiver(frames.append)
    g: Gather | None = None
    if finish:
        if isinstance(leg.extras.get("gather"), Gather):
            end_gather(cc, leg, "cancelled")
        g = Gather(maximum_digits=1, minimum_digits=1, terminating_digit="", valid_digits=finish)
        leg.extras["gather"] = g
    started = time.monotonic()
    last_voice = started
    checked = 0
    try:
        while leg.alive:
            if g is not None and leg.extras.get("gather") is not g:
                break
            now = time.monotonic()
            for frame in frames[checked:]:
                if float(np.sqrt(np.mean(np.square(frame.astype(np.float64))))) >= SILENCE_RMS:
                    last_voice = now
            checked = len(frames)
            if now - started >= max_len or now - last_voice >= quiet_s:
                break
            await asyncio.sleep(0.05)
    finally:
        if leg.bridged_to is None and not leg.conference_id:
            leg.endpoint.set_receiver(None)
        if g is not None and leg.extras.get("gather") is g:
            leg.extras.pop("gather", None)
    digits = (g.digits if g is not None else "") or ("hangup" if not leg.alive else "")
    sid = s.new_sid("RE")
    path = recordings_dir(cc.options.data_dir) / f"{sid}.wav"
    samples = np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
    await asyncio.to_thread(_write_wav, path, samples)
    duration = samples.shape[0] / 48000.0
    url = f"{cc.api_url}/v2/texml/recordings/{sid}.wav" if cc.api_url else path.as_uri()
    params = {
        "RecordingSid": sid,
        "RecordingUrl": url,
        "RecordingDuration": str(round(duration)),
        "RecordingStatus": "completed",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
        "Digits": digits,
    }
    s.leg.extras.setdefault("texml_recordings", []).append(str(path))
    callback = v.attr("recordingStatusCallback")
    if callback:
        cc.spawn(_status_callback(s, callback, v.attr("recordingStatusCallbackMethod", "POST"), params),
                 "texml-recording-callback")
    transcribe_to = v.attr("transcribeCallback")
    if transcribe_to and v.attr("transcribe", "true").lower() != "false":
        cc.spawn(_transcribe(s, transcribe_to, samples, params), "texml-transcribe")
    return params if leg.alive else None


async def _transcribe(s: Runner, url: str, samples: Any, recording: dict[str, str]) -> None:
    """``transcribe``: the recording through pocketsphinx, posted to ``transcribeCallback``."""
    from softphone.media import asr

    try:
        text = await asyncio.to_thread(asr.recognize, samples, 48000) if samples.shape[0] else ""
        status = "completed"
    except Exception as exc:  # a missing model or a decoder failure: report it, do not kill the call
        logger.warning("TeXML transcription of %s failed: %s", recording["RecordingSid"], exc)
        text, status = "", "failed"
    extra = {
        "TranscriptionSid": s.new_sid("TR"),
        "TranscriptionText": text,
        "TranscriptionStatus": status,
        "RecordingSid": recording["RecordingSid"],
        "RecordingUrl": recording["RecordingUrl"],
    }
    await _status_callback(s, url, "POST", extra)


def _write_wav(path: Path, samples: Any, channels: int = 1) -> None:
    """48 kHz 16-bit WAV; ``samples`` is mono, or interleaved stereo when ``channels`` is 2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(samples.astype("<i2").tobytes())


class BridgeRecorder:
    """``<Dial record="record-from-answer[-dual]">``: both parties of a bridge, mixed or one per channel.

    It taps the bridge's two receivers (each still feeds the other party) and keeps the frames;
    :meth:`finish` writes the WAV and posts the Dial's ``recordingStatusCallback``.
    """

    def __init__(self, s: Runner, v: Verb, dual: bool) -> None:
        self.s, self.v, self.dual = s, v, dual
        self.caller: list[Any] = []
        self.callee: list[Any] = []
        self.started = time.monotonic()

    def tap(self, leg: Any, other: Any) -> None:
        caller, callee = self.caller, self.callee

        def from_caller(frame: Any) -> None:
            other.endpoint.push(frame)
            caller.append(frame)

        def from_callee(frame: Any) -> None:
            leg.endpoint.push(frame)
            callee.append(frame)

        leg.endpoint.set_receiver(from_caller)
        other.endpoint.set_receiver(from_callee)

    async def finish(self) -> dict[str, str]:
        import numpy as np

        s = self.s
        n = max(len(self.caller), len(self.callee))
        silence = np.zeros(960, dtype=np.int16)
        a = np.concatenate([*self.caller, *([silence] * (n - len(self.caller)))]) if n else silence[:0]
        b = np.concatenate([*self.callee, *([silence] * (n - len(self.callee)))]) if n else silence[:0]
        if self.dual:
            samples = np.stack([a, b], axis=1).reshape(-1)
        else:
            samples = np.clip(a.astype(np.int32) + b.astype(np.int32), -32768, 32767).astype(np.int16)
        sid = s.new_sid("RE")
        path = recordings_dir(s.cc.options.data_dir) / f"{sid}.wav"
        await asyncio.to_thread(_write_wav, path, samples, 2 if self.dual else 1)
        url = f"{s.cc.api_url}/v2/texml/recordings/{sid}.wav" if s.cc.api_url else path.as_uri()
        params = {
            "RecordingSid": sid,
            "RecordingUrl": url,
            "RecordingDuration": str(round(n * 0.02)),
            "RecordingStatus": "completed",
            "RecordingChannels": "2" if self.dual else "1",
            "RecordingSource": "DialVerb",
        }
        s.leg.extras.setdefault("texml_recordings", []).append(str(path))
        callback = self.v.attr("recordingStatusCallback")
        if callback:
            s.cc.spawn(_status_callback(s, callback, self.v.attr("recordingStatusCallbackMethod", "POST"), params),
                       "texml-recording-callback")
        return params


async def _status_callback(s: Runner, url: str, method: str, extra: dict[str, str]) -> None:
    from softphone.switch.callcontrol.texml.fetch import FetchError, request, resolve

    target = resolve(s.document_url if s.document_url != "inline" else s.url, url)
    try:
        await request(target, method, s.params(**extra), allow_remote=s.cc.options.allow_remote_webhooks)
    except FetchError as exc:
        logger.warning("TeXML recordingStatusCallback %s failed: %s", target, exc)
