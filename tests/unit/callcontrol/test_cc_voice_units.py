"""Pure parts of the media actions: body field checks, counted loops, the recording writer, MP3 encoding."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softphone.media.dsp import dominant_frequency
from softphone.media.sources import ArraySource, ToneSource
from softphone.switch.callcontrol import params
from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.player import looped
from softphone.switch.callcontrol.recording import Recording, encode_mp3


def test_loop_bool_choice_base64() -> None:
    assert params.get_loop({}) == 1
    assert params.get_loop({"loop": "infinity"}) is None
    assert params.get_loop({"loop": 7}) == 7 and params.get_loop({"loop": "3"}) == 3
    for bad in (0, 101, -1, True, "x", 2.5):
        with pytest.raises(CommandError) as err:
            params.get_loop({"loop": bad})
        assert (err.value.status, err.value.code, err.value.title) == (422, "10015", "Invalid value for loop")
    assert params.get_bool({"o": "true"}, "o") is True and params.get_bool({"o": False}, "o") is False
    assert params.get_bool({}, "o") is False
    with pytest.raises(CommandError):
        params.get_bool({"o": 1}, "o")
    assert params.get_choice({}, "c", ("a", "b"), default="a") == "a"
    with pytest.raises(CommandError, match="required"):
        params.get_choice({}, "c", ("a", "b"))
    with pytest.raises(CommandError):
        params.get_choice({"c": "z"}, "c", ("a", "b"))
    assert params.get_int({"n": 5}, "n", 1, lo=1, hi=9) == 5
    with pytest.raises(CommandError):
        params.get_int({"n": 10}, "n", 1, lo=1, hi=9)
    assert params.check_base64("aGk=") == "aGk="
    with pytest.raises(CommandError):
        params.check_base64("not base64!")


def _drain(src: Any, limit: int = 10_000) -> np.ndarray:
    out = []
    for _ in range(limit):
        if getattr(src, "finished", False):
            break
        f = src.read_frame()
        if f is None:
            break
        out.append(f)
    return np.concatenate(out) if out else np.zeros(0, np.int16)


def test_counted_loops() -> None:
    one = np.full(1500, 1000, np.int16)  # 31.25 ms: loops do not fall on frame boundaries
    played = _drain(looped(ArraySource(one, loop=True), 3))
    assert np.count_nonzero(played) == 4500  # exactly three copies, the rest of the last frame silent
    assert looped(ArraySource(one), 1).read_frame() is not None
    forever = looped(ArraySource(one, loop=True), None)
    assert _drain(forever, 100).shape[0] == 100 * 960
    tone = looped(ToneSource(700.0, duration_ms=100), 4)
    samples = _drain(tone)
    assert 0.38 < np.count_nonzero(samples) / 48000 < 0.42
    assert abs(dominant_frequency(samples) - 700) < 5


def _rec(tmp_path: Path, channels: str, track: str = "both") -> Recording:
    rec = Recording("r", None, "wav", channels, track, tmp_path / "r.part.wav", tmp_path / "r.wav")  # type: ignore[arg-type]
    rec.open()
    return rec


def _tone(hz: float, frames: int) -> list[np.ndarray]:
    src = ToneSource(hz, 0.3)
    return [src.read_frame() for _ in range(frames)]  # type: ignore[misc]


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wf:
        return np.frombuffer(wf.readframes(wf.getnframes()), "<i2").reshape(-1, wf.getnchannels())


def test_recording_pairs_inbound_with_outbound_and_pauses(tmp_path: Path) -> None:
    rec = _rec(tmp_path, "dual")
    said, heard = _tone(600, 100), _tone(1100, 100)
    for i in range(100):
        rec.said(said[i])
        if i == 40:
            rec.paused = True
        if i == 70:
            rec.paused = False
        rec.heard(heard[i])
    rec.close()
    pcm = _read(rec.part)
    assert pcm.shape == (70 * 960, 2)  # 30 frames paused
    assert abs(dominant_frequency(pcm[:, 0]) - 600) < 2 and abs(dominant_frequency(pcm[:, 1]) - 1100) < 2


def test_recording_single_track_and_inbound_without_a_clock(tmp_path: Path) -> None:
    rec = _rec(tmp_path, "single", "outbound")
    for f in _tone(900, 10):
        rec.said(np.full(960, 5000, np.int16))
        rec.heard(f)
    for _ in range(40):  # the party talks, nothing is sent: after 500 ms it is written alone
        rec.said(np.full(960, 100, np.int16))
    rec.close()
    pcm = _read(rec.part)[:, 0]
    assert pcm.shape[0] == (10 + 40 - 25) * 960
    assert abs(dominant_frequency(pcm[: 10 * 960]) - 900) < 3  # outbound only: the 5000 offset is gone
    assert not pcm[10 * 960 :].any()  # inbound written alone, but the track is outbound: silence


def test_max_length_calls_back_once(tmp_path: Path) -> None:
    rec = _rec(tmp_path, "single")
    rec.max_frames = 5
    hits: list[int] = []
    rec.on_limit = lambda: hits.append(rec.frames_written)
    for f in _tone(500, 20):
        rec.heard(f)
    rec.close()
    assert hits == [5] and _read(rec.part).shape[0] == 5 * 960


def test_encode_mp3(tmp_path: Path) -> None:
    import av

    wav_path = tmp_path / "s.wav"
    with wave.open(str(wav_path), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(48000)
        left, right = np.concatenate(_tone(600, 50)), np.concatenate(_tone(1100, 50))
        wf.writeframes(np.stack([left, right], axis=1).astype("<i2").tobytes())
    encode_mp3(wav_path, tmp_path / "s.mp3")
    with av.open(str(tmp_path / "s.mp3")) as c:
        stream = c.streams.audio[0]
        assert stream.channels == 2
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(stream)], axis=1)
    assert abs(dominant_frequency((pcm[0] * 32767).astype(np.int16)) - 600) < 3
    assert abs(dominant_frequency((pcm[1] * 32767).astype(np.int16)) - 1100) < 3


def test_silence_timeout_calls_back(tmp_path: Path) -> None:
    rec = _rec(tmp_path, "single")
    rec.silence_frames = 10
    hits: list[int] = []
    rec.on_limit = lambda: hits.append(rec.frames_written)
    for f in _tone(500, 5):
        rec.heard(f)
    for _ in range(30):
        rec.heard(None)  # silence both ways
    rec.close()
    assert hits == [15]


# --- the prompt gathers' state machine, on an in-memory leg (no sockets: a task reads the leg's mix) ---


class FakeEngine:
    """What the media actions use of the engine: emit, spawn, media."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, leg: Any, event_type: str, **extra: Any) -> None:
        self.events.append((event_type, extra))

    def spawn(self, coro: Any, name: str) -> Any:
        import asyncio

        return asyncio.get_running_loop().create_task(coro, name=name)

    async def media(self, spec: str, *, loop: bool = False, param: str = "audio_url") -> Any:
        from softphone.switch.callcontrol.mediafiles import load_media

        return load_media(spec, Path("/nonexistent"), loop=loop)

    def names(self, prefix: str = "") -> list[str]:
        return [e for e, _ in self.events if e.startswith(prefix)]


async def _leg_with_clock() -> tuple[Any, Any]:
    import asyncio
    import time

    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.media_legs import LegAudio

    ep = LegAudio("unit")
    leg = CCLeg("v3:unit", "app", "+1", "+2", "incoming", ep, "pstn")
    leg.answered_at = time.time()

    async def clock() -> None:
        while True:
            ep.read_heard()
            await asyncio.sleep(0.002)  # ten times real time

    return leg, asyncio.get_running_loop().create_task(clock())


async def _until(pred: Any, timeout: float = 3.0) -> None:
    import asyncio

    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


async def test_prompt_gather_invalid_then_valid() -> None:
    from softphone.switch.callcontrol import voice
    from softphone.switch.callcontrol.gather import gather_digit

    cc = FakeEngine()
    leg, clock = await _leg_with_clock()
    try:
        await voice.gather_using_audio(cc, leg, {  # type: ignore[arg-type]
            "audio_url": "tone:700:200", "invalid_audio_url": "tone:400:100",
            "minimum_digits": 2, "maximum_digits": 2, "maximum_tries": 2, "client_state": "eA==",
        })
        await _until(lambda: cc.names() == ["call.playback.started"])
        gather_digit(cc, leg, "1")  # interrupts the prompt
        gather_digit(cc, leg, "#")  # one digit, two needed: invalid -> the invalid prompt, then the prompt
        await _until(lambda: len(cc.names("call.playback.started")) == 3)
        gather_digit(cc, leg, "4")
        gather_digit(cc, leg, "2")
        await _until(lambda: "call.gather.ended" in cc.names())
        ended = [x for e, x in cc.events if e == "call.gather.ended"]
        assert ended == [{"digits": "42", "status": "valid"}]
        pb_ends = [x["status"] for e, x in cc.events if e == "call.playback.ended"]
        assert pb_ends[:2] == ["cancelled", "completed"]  # the prompt cut by the digit, the invalid prompt played
        assert "gather" not in leg.extras and leg.client_state == "eA=="
    finally:
        clock.cancel()


async def test_prompt_gather_timeout_after_tries_and_hangup() -> None:
    import asyncio

    from softphone.switch.callcontrol import voice
    from softphone.switch.callcontrol.gather import end_gather

    cc = FakeEngine()
    leg, clock = await _leg_with_clock()
    try:
        await voice.gather_using_audio(cc, leg, {  # type: ignore[arg-type]
            "audio_url": "tone:700:100", "timeout_millis": 30, "maximum_tries": 3,
        })
        await _until(lambda: "call.gather.ended" in cc.names())
        assert cc.names("call.playback.started") == ["call.playback.started"] * 3
        assert [x for e, x in cc.events if e == "call.gather.ended"] == [{"digits": "", "status": "timeout"}]
        await voice.gather_using_audio(cc, leg, {"audio_url": "tone:700:5000"})  # type: ignore[arg-type]
        await _until(lambda: len(cc.names("call.playback.started")) == 4)
        end_gather(cc, leg, "call_hangup")  # what the engine does on hangup
        assert [x for e, x in cc.events if e == "call.gather.ended"][-1] == {"digits": "", "status": "call_hangup"}
        await _until(lambda: len(cc.names("call.playback.ended")) == 4)  # the prompt stopped too
        await voice.gather_using_audio(cc, leg, {"audio_url": "tone:700:5000"})  # type: ignore[arg-type]
        end_gather(cc, leg, "cancelled")  # before its prompt even started: it never plays
        await asyncio.sleep(0.1)
        assert len(cc.names("call.playback.started")) == 4
    finally:
        clock.cancel()


async def test_a_prompt_dropped_from_the_queue_still_starts_the_gathers_timeout() -> None:
    from softphone.switch.callcontrol import voice

    cc = FakeEngine()
    leg, clock = await _leg_with_clock()
    try:
        await voice.playback_start(cc, leg, {"audio_url": "tone:300:5000"})  # type: ignore[arg-type]
        await voice.gather_using_audio(cc, leg, {  # type: ignore[arg-type]
            "audio_url": "tone:700:100", "timeout_millis": 50, "maximum_tries": 1,
        })
        await _until(lambda: cc.names("call.playback.started") == ["call.playback.started"])
        await voice.playback_stop(cc, leg, {})  # type: ignore[arg-type]  (stop: all - the prompt waited behind)
        await _until(lambda: "call.gather.ended" in cc.names())
        assert [x for e, x in cc.events if e == "call.gather.ended"] == [{"digits": "", "status": "timeout"}]
        assert len(cc.names("call.playback.started")) == 1  # the dropped prompt never played
    finally:
        clock.cancel()


def test_trim_silence(tmp_path: Path) -> None:
    from softphone.switch.callcontrol.recording import trim_silence

    path = tmp_path / "t.wav"
    tone = np.concatenate(_tone(700, 10))
    data = np.concatenate([np.zeros(48000, np.int16), tone, np.zeros(24000, np.int16)])
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(48000)
        wf.writeframes(np.stack([np.zeros_like(data), data], axis=1).astype("<i2").tobytes())
    trim_silence(path)
    pcm = _read(path)
    assert pcm.shape == (10 * 960, 2) and abs(dominant_frequency(pcm[:, 1]) - 700) < 3
