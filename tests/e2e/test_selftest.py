"""softphone selftest end to end against the local switch: each broken stage is named correctly.

Real parts: the switch over websockets, aiortc media, its echo service, and for the far-end cases a
second softphone (alice) that answers and sends back what it hears (:class:`FarEcho`). Reproduced:
the healthy path; a silent (muted) source -> capture_silent (the rest re-checked with a tone); media
that never connects (relay-only ICE without a relay) -> nothing_sent;
a far end that sends silence -> received_silent; the switch's leg towards us that stops sending (its
RTP dropped by an impairment on that leg, Switch.set_impairment / softphone.media.impair) ->
nothing_received; an output device that stops
pulling frames -> playout_stalled (a device-like sink whose consumer thread stops, and the real
thing: a PulseAudio sink suspended under PortAudio); and the CLI's JSON, table lines and exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator

import cliutil
import pytest
from cliutil import PASSWORD, sp

from softphone.client import events as ce
from softphone.client.call import Call
from softphone.client.client import AudioConfig, Client
from softphone.diag.precall import ECHO_NUMBER
from softphone.diag.selftest import Finding, diagnose, measure
from softphone.media.frames import Frame
from softphone.media.sinks import BaseSink
from softphone.media.sources import NullSource
from softphone.protocol import Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@contextlib.asynccontextmanager
async def client(switch: Switch, user: str = "demo", password: str = PASSWORD, **audio: object
                 ) -> AsyncIterator[Client]:
    c = Client(switch.url, Credentials(login=user, password=password),
               audio=AudioConfig(**{"backend": "tone", "tone_hz": 1000.0, **audio}), reconnect=False)  # type: ignore[arg-type]
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


class DelayLine(BaseSink):
    """Frames out ``delay`` seconds after they came in (by the clock, not by a frame count, so a sender
    that catches up after a stall cannot drain it faster); silence (None) while nothing is due.
    :meth:`set_delay` to a shorter delay drops what is queued (call it between bursts of sound)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queue: deque[tuple[float, Frame]] = deque(maxlen=500)

    def set_delay(self, delay: float) -> None:
        if delay < self.delay:
            self.queue.clear()
        self.delay = delay

    def write_frame(self, frame: Frame) -> None:
        self.queue.append((time.monotonic() + self.delay, frame.copy()))

    def read_frame(self) -> Frame | None:
        if self.queue and self.queue[0][0] <= time.monotonic():
            return self.queue.popleft()[1]
        return None


class FarEcho:
    """A second softphone that answers every call and sends back what it hears, ``delay`` s later."""

    def __init__(self, client: Client, delay: float = 0.0) -> None:
        self.client = client
        self.delay = delay
        self.calls: list[Call] = []
        self.lines: list[DelayLine] = []
        self.answered = asyncio.Event()
        client.subscribe(self._on_event)

    def _on_event(self, event: ce.Event) -> None:
        if isinstance(event, ce.CallIncoming):
            self.client.spawn(self._answer(self.client.calls[event.call_id]), "far-echo")

    async def _answer(self, call: Call) -> None:
        await call.answer()
        line = DelayLine(self.delay)
        call.set_output(line)  # what it hears ...
        call.set_input(line)  # ... is what it sends
        self.calls.append(call)
        self.lines.append(line)
        self.answered.set()


@contextlib.asynccontextmanager
async def far_echo(switch: Switch, delay: float = 0.0) -> AsyncIterator[FarEcho]:
    async with client(switch, "alice", "alice-secret") as alice:
        yield FarEcho(alice, delay)


async def test_a_healthy_call_passes_every_stage(switch: Switch) -> None:
    async with client(switch) as demo:
        report = await measure(demo, ECHO_NUMBER, seconds=2)
    assert report.finding == Finding.OK, report.rows()
    assert report.exit_code == 0 and len(report.observations) == 1
    obs = report.observations[0]
    assert obs.capture_db > -30 and obs.received_db > -30
    assert obs.packets_sent > 50 and obs.packets_received > 50
    assert obs.frames_consumed is None  # the tone backend has no output device: playout not judged


async def test_a_muted_source_is_capture_silent_and_the_rest_is_checked_with_a_tone(switch: Switch) -> None:
    async with client(switch) as demo:
        report = await measure(demo, ECHO_NUMBER, seconds=2, source=NullSource())
    assert report.finding == Finding.CAPTURE_SILENT, report.rows()
    assert report.exit_code == 20
    silent, tone = report.observations
    assert silent.capture_db < -80 and silent.packets_sent > 50  # silence is still sent as RTP
    assert tone.tone and tone.capture_db > -30 and tone.received_db > -30
    assert report.rest_finding == Finding.OK
    assert dict(report.rows())["with test tone"] == "the rest of the path works"


async def test_a_far_end_that_sends_silence_is_received_silent(switch: Switch) -> None:
    async with client(switch) as demo, far_echo(switch) as far:
        async def mute_far_end() -> None:
            await far.answered.wait()
            far.calls[0].mute()  # it keeps sending RTP, of silence

        muting = asyncio.ensure_future(mute_far_end())
        report = await measure(demo, "alice", seconds=2)
        await muting
    assert report.finding == Finding.RECEIVED_SILENT, report.rows()
    assert report.exit_code == 23
    obs = report.observations[0]
    assert obs.capture_db > -30 and obs.packets_received > 50 and obs.received_db < -80


async def test_a_switch_leg_that_stops_sending_is_nothing_received(switch: Switch) -> None:
    """The echo's leg towards us drops what it sends (Switch.set_impairment on that leg): one direction gone."""
    from softphone.media.impair import parse

    async with client(switch) as demo:
        dropped: list[int] = []

        def on_event(event: ce.Event) -> None:
            if isinstance(event, ce.CallActive):
                dropped.append(switch.set_impairment(parse("loss=99.9%,dir=out"), event.call_id))

        demo.subscribe(on_event)
        report = await measure(demo, ECHO_NUMBER, seconds=2)
    assert dropped == [1], dropped  # the one leg of the echo call
    assert report.finding == Finding.NOTHING_RECEIVED, report.rows()
    assert report.exit_code == 22
    obs = report.observations[0]
    assert obs.packets_sent > 50 and obs.packets_received < 5 and obs.capture_db > -30
    assert obs.rtt_ms is None  # no fresh RTCP report either: the leg's RTCP is dropped too


async def test_media_that_never_connects_is_nothing_sent(switch: Switch) -> None:
    """Relay-only ICE with no TURN server (the SDKs' forceRelayCandidate without a relay): the call is up
    in signalling, but no candidate pair ever forms, so the sender never takes a frame."""
    from softphone.media.peer import MediaPeer, PeerOptions

    demo = Client(switch.url, Credentials(login="demo", password=PASSWORD),
                  audio=AudioConfig(backend="tone", tone_hz=1000.0), reconnect=False,
                  peer_factory=lambda src, sink, name, codecs: MediaPeer(
                      PeerOptions(relay_only=True, loopback_only=True, codecs=codecs, gather_timeout=0.3),
                      source=src, sink=sink, name=name))
    await demo.connect()
    try:
        report = await measure(demo, ECHO_NUMBER, seconds=2)
    finally:
        await demo.close()
    assert report.finding == Finding.NOTHING_SENT, report.rows()
    assert report.exit_code == 21 and len(report.observations) == 1  # no tone re-run: capture was not judged
    stages = {name: ok for name, ok, _ in diagnose(report.observations[0])}
    assert stages["capture"] is None and stages["send"] is False
    assert report.observations[0].media_state in ("new", "connecting", "failed")


class DeviceSink(BaseSink):
    """Like a sound card's output: a thread takes one frame every 20 ms (``frames_consumed``) until stalled."""

    def __init__(self) -> None:
        self.queue: deque[Frame] = deque(maxlen=10)
        self.frames_consumed = 0
        self.pulling = threading.Event()
        self.pulling.set()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def write_frame(self, frame: Frame) -> None:
        self.queue.append(frame)

    def _run(self) -> None:
        while not self._stop:
            time.sleep(0.02)
            if self.pulling.is_set() and self.queue:
                self.queue.popleft()
                self.frames_consumed += 1

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)


@contextlib.contextmanager
def device_sink() -> Iterator[DeviceSink]:
    sink = DeviceSink()
    try:
        yield sink
    finally:
        sink.close()


async def test_an_output_that_stops_pulling_is_playout_stalled(switch: Switch) -> None:
    async with client(switch) as demo:
        with device_sink() as sink:
            report = await measure(demo, ECHO_NUMBER, seconds=2, sink=sink)
            assert report.finding == Finding.OK, report.rows()
            assert (report.observations[0].frames_consumed or 0) > 50  # the device pulls: playout judged ok
            sink.pulling.clear()  # the device's callback stops running
            report = await measure(demo, ECHO_NUMBER, seconds=2, sink=sink)
    assert report.finding == Finding.PLAYOUT_STALLED, report.rows()
    assert report.exit_code == 24
    obs = report.observations[0]
    assert obs.frames_consumed == 0 and obs.received_db > -30 and obs.packets_received > 50


@pytest.mark.audio
@pytest.mark.audio_devices
async def test_a_suspended_pulseaudio_sink_is_playout_stalled(switch: Switch, virtual_audio: dict[str, str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The real device path: PortAudio on a PulseAudio null sink that is suspended mid-call."""
    from test_client_audio import play_tone
    from test_client_device_loss import SINK, pactl, pulse_module

    monkeypatch.setenv("PULSE_SINK", "gone")
    with pulse_module(*SINK), play_tone("vmicfeed", 660.0):
        async with client(switch, backend="pyaudio", input_device="vmic", output_device="pulse") as demo:
            healthy = await measure(demo, ECHO_NUMBER, seconds=2)
            assert healthy.finding == Finding.OK, healthy.rows()
            assert (healthy.observations[0].frames_consumed or 0) > 50
            pactl("suspend-sink", "gone", "1")  # PortAudio keeps the stream "active"; its callback stops
            try:
                report = await measure(demo, ECHO_NUMBER, seconds=3)
            finally:
                pactl("suspend-sink", "gone", "0")
    assert report.finding == Finding.PLAYOUT_STALLED, report.rows()
    obs = report.observations[0]
    assert obs.frames_consumed == 0 and obs.capture_db > -40 and obs.received_db > -40


@pytest.mark.audio
@pytest.mark.audio_devices
async def test_a_muted_pulseaudio_microphone_is_capture_silent(switch: Switch, virtual_audio: dict[str, str]) -> None:
    """The real device path: PortAudio records from the virtual microphone while PulseAudio mutes it."""
    from test_client_audio import play_tone
    from test_client_device_loss import pactl

    with play_tone("vmicfeed", 660.0):
        async with client(switch, backend="pyaudio", input_device="vmic", output_device="vspeaker") as demo:
            pactl("set-source-mute", "mic", "1")
            try:
                report = await measure(demo, ECHO_NUMBER, seconds=2)
            finally:
                pactl("set-source-mute", "mic", "0")
    assert report.finding == Finding.CAPTURE_SILENT, report.rows()
    silent, tone = report.observations
    assert silent.capture_db < -80 and silent.packets_sent > 50
    assert report.rest_finding == Finding.OK, report.rows()  # the tone comes back and the speaker plays it
    assert (tone.frames_consumed or 0) > 50


# --- the command ----------------------------------------------------------------------------------

switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env  # a `softphone switch serve` subprocess


def test_cli_json_names_a_silent_microphone_and_exits_20(env: dict[str, str]) -> None:
    # profile sw: audio_backend null -> silence is sent, like a muted microphone
    r = sp(env, "selftest", "--seconds", "1.5", "--json")
    assert r.returncode == 20, r.stderr
    doc = json.loads(r.stdout)
    assert doc["type"] == "selftest" and doc["finding"] == "capture_silent" and doc["exit_code"] == 20
    assert doc["with_test_tone"] == "ok" and len(doc["runs"]) == 2
    assert [s["stage"] for s in doc["runs"][0]["stages"]] == ["capture", "send", "receive", "decode", "playout"]
    assert PASSWORD not in r.stdout + r.stderr


def test_cli_table_lines_when_piped_and_a_healthy_tone(env: dict[str, str]) -> None:
    r = sp(env, "selftest", "--tone", "--seconds", "1.5")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert lines["finding"].startswith("ok:") and lines["capture"].startswith("ok")
    assert lines["receive"].startswith("ok") and lines["playout"].startswith("-")


def test_cli_a_destination_that_does_not_answer_is_an_error(env: dict[str, str]) -> None:
    r = sp(env, "selftest", "+15550001004", "--seconds", "1")  # the busy service
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "USER_BUSY" in r.stderr and r.stdout == ""
