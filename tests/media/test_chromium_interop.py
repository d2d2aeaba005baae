"""MediaPeer against Chromium's own WebRTC stack (no JS SDK), over CDP on 127.0.0.1.

Skipped when no Chromium is installed. Chromium offers and answers with its
real SDP (many codecs, extmaps, ssrc lines, host candidates on the machine's
interfaces); with ``loopback_only`` we drop those candidates and ICE still
completes through a peer-reflexive 127.0.0.1 candidate learned from Chromium's
checks, so no packet leaves loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from softphone.media import sdp as sdputil
from softphone.media.dsp import dominant_frequency
from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource


def candidate_addresses(sdp: str) -> list[str]:
    """Every ``a=candidate`` address of ``sdp``."""
    return [c[1] for c in map(sdputil.candidate_address, sdp.splitlines()) if c is not None]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

if CHROMIUM is None:  # never skip quietly: `make test` installs Chromium
    pytest.fail("Chromium is not installed (run `make test`, which installs it)", pytrace=False)

SETUP = """
window.mk = (freq) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  const ctx = new AudioContext(); const osc = ctx.createOscillator(); osc.frequency.value = freq;
  const dst = ctx.createMediaStreamDestination(); osc.connect(dst); osc.start();
  window.stream = dst.stream;
  return pc;
};
window.gathered = (pc) => new Promise(r => { if (pc.iceGatheringState === 'complete') r();
  pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 3000); });
window.rx = async () => { const s = await pc.getStats(); let n = 0;
  s.forEach(v => { if (v.type === 'inbound-rtp') n = v.packetsReceived; });
  return JSON.stringify({packets: n, state: pc.connectionState}); };
"""

Eval = Callable[[str], Awaitable[Any]]


@pytest.fixture
async def chromium() -> AsyncIterator[Eval]:
    import websockets

    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="media-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
         "--autoplay-policy=no-user-gesture-required", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(150):
            if os.path.exists(port_file) and open(port_file).read().count("\n") >= 1:
                break
            await asyncio.sleep(0.1)
        port = open(port_file).read().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as resp:
            pages = json.load(resp)
        url = next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"]
        async with websockets.connect(url, max_size=None) as ws:
            counter = 0

            async def evaluate(expr: str) -> Any:
                nonlocal counter
                counter += 1
                params = {"expression": expr, "awaitPromise": True, "returnByValue": True}
                await ws.send(json.dumps({"id": counter, "method": "Runtime.evaluate", "params": params}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == counter:
                        result = msg["result"]
                        if "exceptionDetails" in result:
                            raise RuntimeError(result["exceptionDetails"])
                        return result["result"].get("value")

            await evaluate(SETUP)
            yield evaluate
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)


async def test_chromium_offers_we_answer(chromium: Eval) -> None:
    offer = await chromium(
        "(async () => { const pc = mk(700); pc.addTrack(stream.getAudioTracks()[0], stream);"
        " await pc.setLocalDescription(await pc.createOffer()); await gathered(pc);"
        " return pc.localDescription.sdp; })()"
    )
    sink = BufferSink(3)
    peer = MediaPeer(PeerOptions.loopback(), source=ToneSource(440), sink=sink)
    try:
        answer = await peer.accept_offer(offer)
        assert set(candidate_addresses(answer)) == {"127.0.0.1"}
        await chromium(f"pc.setRemoteDescription({{type: 'answer', sdp: {json.dumps(answer)}}}).then(() => 1)")
        await peer.wait_connected(10)
        assert peer.negotiated_codec == "opus/48000"
        await asyncio.sleep(1.2)
        assert abs(dominant_frequency(sink.samples(0.8)) - 700) < 15
        rx = json.loads(await chromium("rx()"))
        assert rx["state"] == "connected" and rx["packets"] > 20
    finally:
        await peer.close()


@pytest.mark.parametrize("codecs", [["opus", "PCMU", "PCMA"], ["PCMU"]])
async def test_we_offer_chromium_answers(chromium: Eval, codecs: list[str]) -> None:
    sink = BufferSink(3)
    peer = MediaPeer(PeerOptions.loopback(codecs=codecs), source=ToneSource(440), sink=sink)
    try:
        offer = await peer.create_offer()
        answer = await chromium(
            f"(async () => {{ const pc = mk(900);"
            f" await pc.setRemoteDescription({{type: 'offer', sdp: {json.dumps(offer)}}});"
            " const t = pc.getTransceivers()[0]; await t.sender.replaceTrack(stream.getAudioTracks()[0]);"
            " t.direction = 'sendrecv'; await pc.setLocalDescription(await pc.createAnswer());"
            " await gathered(pc); return pc.localDescription.sdp; })()"
        )
        await peer.set_answer(answer)
        await peer.wait_connected(10)
        assert peer.negotiated_codec == ("opus/48000" if codecs[0] == "opus" else "PCMU/8000")
        await asyncio.sleep(1.2)
        assert abs(dominant_frequency(sink.samples(0.8)) - 900) < 15
        rx = json.loads(await chromium("rx()"))
        assert rx["state"] == "connected" and rx["packets"] > 20
    finally:
        await peer.close()
