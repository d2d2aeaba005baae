"""Client.close() right after a call ends still finalises its recording (issue 9 item 3).

The media teardown of an ended call used to be an ordinary task that close() cancelled: the WAV's
header then said 0 frames (or one write's worth) in front of the audio.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from softphone.client.call import Call
from softphone.client.client import AudioConfig, Client, ClientEvent
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DEMO = Credentials(login="demo", password="demo-secret")
ALICE = Credentials(login="alice", password="alice-secret")


def answerer(client: Client) -> Callable[[ClientEvent], Awaitable[None]]:
    async def answer(e: ClientEvent) -> None:
        await client.calls[e.call_id or ""].answer()

    return answer


async def hearing(*calls: Call, timeout: float = 10.0) -> None:
    """Wait until every call's output level shows received audio."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all((c.output_level_db or -200.0) > -50.0 for c in calls):
        assert loop.time() < deadline, "no audio received within the timeout"
        await asyncio.sleep(0.02)


async def growing(*paths: Path, seconds: float, timeout: float = 15.0) -> None:
    """Wait until every (stereo, 48 kHz) recording on disk holds ``seconds`` of audio."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    want = 44 + int(seconds * 48000) * 4
    while not all(p.stat().st_size >= want for p in paths):
        assert loop.time() < deadline, f"recordings did not grow to {seconds} s: {[p.stat().st_size for p in paths]}"
        await asyncio.sleep(0.02)


def check_wav(path: Path) -> int:
    with wave.open(str(path)) as wf:
        frames, channels = int(wf.getnframes()), int(wf.getnchannels())
    assert channels == 2 and frames > 0
    assert path.stat().st_size == 44 + frames * channels * 2, f"{path.name}: header says {frames} frames"
    return frames


@pytest.mark.parametrize("ender", ["caller", "callee"])
async def test_close_right_after_the_call_ends_finalises_both_recordings(tmp_path: Path, ender: str) -> None:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        for rep in range(10):
            c_wav, a_wav = tmp_path / f"c{rep}.wav", tmp_path / f"a{rep}.wav"
            caller = Client(sw.url, DEMO, audio=AudioConfig(backend="tone", tone_hz=440, record_file=str(c_wav)))
            callee = Client(sw.url, ALICE, audio=AudioConfig(backend="tone", tone_hz=660, record_file=str(a_wav)))
            try:
                await caller.connect()
                await callee.connect()
                callee.on("call.incoming", answerer(callee))
                out = await caller.new_call("alice")
                await out.wait_state(CallState.ACTIVE)
                inbound = next(iter(callee.calls.values()))
                # both files hold audio before the hang-up (on a loaded machine, ICE, DTLS and the
                # decoder can lag the call's clock by more than a fixed sleep: a file then held
                # one frame, finalised correctly, and the length check failed)
                await hearing(out, inbound)
                await growing(c_wav, a_wav, seconds=0.3)
                # local hang-up on one side, the far end's bye on the other; close both at once
                await (out if ender == "caller" else inbound).hangup()
                await (inbound if ender == "caller" else out).wait_ended(5)
            finally:
                await asyncio.gather(caller.close(), callee.close())
            assert check_wav(c_wav) > 0.2 * 48000 and check_wav(a_wav) > 0.1 * 48000, f"rep {rep}"
