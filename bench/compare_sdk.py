"""Side by side: our softphone Client vs the official JS SDK in headless Chromium, in one run.

Both talk to the same local switch, started as a subprocess (``python -m softphone switch
serve``) on 127.0.0.1 so that its CPU is not counted as ours. Measured, medians of ``--runs``:

* ``connect() -> ready``;
* dial (the switch's ``echo`` service) ``-> active``, ``-> first inbound audio`` (the first RTP
  packet: ours ``MediaPeer.first_packet_at``, the SDK's remote track's ``unmute``) and ``-> first
  non-silent echoed sample`` (the tone back, decoded: ours in the call's sink, the SDK's in an
  AudioWorklet on the remote track; same threshold and quiet gap on both sides);
* round trip mouth -> echo -> ear, both in the same run: 100 ms 1 kHz bursts, timed from the
  burst's start to the first sample where it comes back (ours: from the moment the sender pulls
  the burst's first frame to the sink; the SDK: its microphone track replaced by a WebAudio
  oscillator gated at known AudioContext times, onsets in the AudioWorklet on the same clock, so
  WebAudio's own buffering in and out counts against the SDK);
* CPU (% of one core) of a ``--cpu-seconds`` two-way Opus call to echo: our client alone in
  its own process (``--worker``) vs every Chromium process; the switch's own CPU over the
  same window is reported separately for each;
* memory during that call: RSS and PSS (``/proc/<pid>/smaps_rollup``) of our process vs the
  sum over Chromium's processes;
* ``softphone --help`` wall time and process start -> ``client.ready`` of
  ``softphone --json check --local`` (in-process switch), medians of 10 / 5.

Prints a table (ours, SDK, ratio ours/SDK, PERFORMANCE.md target) and writes the run into
``bench/results.json`` under ``"compare_sdk"`` (other keys of that file are kept), with the load
average at start and end. Needs ``make deps`` (Chromium, the SDK bundle, playwright).

    .venv/bin/python bench/compare_sdk.py [--runs 7] [--cpu-seconds 10] [--cpu-runs 3] [--no-sdk]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SOFTPHONE = str(Path(PY).parent / "softphone")
TICK = os.sysconf("SC_CLK_TCK")
DEMO = ("demo", "demo-secret")
ALICE = ("alice", "alice-secret")

TARGETS = {
    "help_s": "<= 0.25 s",
    "start_to_ready_s": "<= 0.8 s",
    "connect_ready_ms": "",
    "dial_active_ms": "<= 0.1x SDK",
    "dial_first_audio_ms": "<= 0.25x SDK",
    "dial_first_sound_ms": "<= 0.25x SDK",
    "round_trip_ms": "<= 50 ms",
    "cpu_call_pct": "<= 0.5x SDK",
    "rss_mb": "",
    "pss_mb": "",
}
SDK_REFERENCE = {  # PERFORMANCE.md, measured earlier on our machines (medians of >= 10)
    "connect_ready_ms": 21, "dial_active_ms": 171, "dial_first_audio_ms": 230, "round_trip_ms": 142,
    "cpu_call_pct": 16.4,
}


# -- /proc helpers ----------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_mem_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB (0 if unreadable)."""
    rss = pss = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (from /proc ppid links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and every process below it (the switch's media workers)."""
    return proc_cpu_s(root) + sum(proc_cpu_s(p) for p in descendants(root))


def chromium_pids() -> list[int]:
    pids = []
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if "chrom" in comm:
            pids.append(pid)
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# -- the switch subprocess ---------------------------------------------------------------------------


class SwitchProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SwitchProcess:
        self.proc = subprocess.Popen(
            [PY, "-m", "softphone", "switch", "serve", "--port", str(self.port), "--api-port", str(free_port())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the switch subprocess did not start listening")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- ours ----------------------------------------------------------------------------------------------


def _client(url: str, creds: tuple[str, str], **audio: Any) -> Any:
    from softphone.client.client import AudioConfig, Client
    from softphone.protocol import Credentials

    return Client(url, Credentials(login=creds[0], password=creds[1]),
                  audio=AudioConfig(backend="tone", **audio))


ONSET_THRESHOLD = 2500
"""|sample| above which received audio counts as sound (s16), on both sides."""


class OnsetSink:
    """Times received audio: the first non-silent frame, and the onset of each tone burst."""

    def __init__(self, threshold: int = ONSET_THRESHOLD) -> None:
        self.threshold = threshold
        self.first_sound_at: float | None = None
        self.onsets: list[float] = []
        self._in_burst = False
        self._quiet = 0

    def write_frame(self, frame: np.ndarray) -> None:
        now = time.monotonic()
        loud = np.flatnonzero(np.abs(frame) > self.threshold)
        if loud.size:
            if self.first_sound_at is None:
                self.first_sound_at = now
            if not self._in_burst:
                self.onsets.append(now + loud[0] / 48000.0)
                self._in_burst = True
            self._quiet = 0
        else:
            self._quiet += 1
            if self._quiet >= 3:
                self._in_burst = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class BurstSource:
    """Silence with a 100 ms 1 kHz burst whenever :meth:`fire` is called; notes when it leaves."""

    def __init__(self) -> None:
        t = np.arange(4800) / 48000.0
        self._burst = (np.sin(2 * np.pi * 1000.0 * t) * 0.3 * 32767).astype(np.int16)
        self._pos: int | None = None
        self.sent_at: list[float] = []

    def fire(self) -> None:
        self._pos = 0

    def read_frame(self) -> np.ndarray | None:
        if self._pos is None:
            return None
        if self._pos == 0:
            self.sent_at.append(time.monotonic())
        chunk = self._burst[self._pos : self._pos + 960]
        self._pos += 960
        if self._pos >= self._burst.shape[0]:
            self._pos = None
        return chunk

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def ours_latency(url: str, runs: int, bursts: int) -> dict[str, Any]:
    from softphone.protocol import CallState

    ready = []
    for _ in range(runs):
        client = _client(url, DEMO)
        t0 = time.perf_counter()
        await client.connect()
        ready.append((time.perf_counter() - t0) * 1000)
        await client.close()
    client = _client(url, DEMO, tone_hz=440.0)
    await client.connect()
    active, first_audio, first_sound, rtt = [], [], [], []
    try:
        for i in range(runs + 1):  # the first call warms imports and codecs up; not counted
            sink = OnsetSink()
            start = time.monotonic()
            call = await client.new_call("echo")
            call.set_output(sink)
            await call.wait_state(CallState.ACTIVE)
            t_active = time.monotonic()
            while call.peer is None or call.peer.first_packet_at is None or sink.first_sound_at is None:
                if time.monotonic() - start > 5:
                    raise RuntimeError("no audio from echo")
                await asyncio.sleep(0.002)
            if i:
                active.append((t_active - start) * 1000)
                first_audio.append((call.peer.first_packet_at - start) * 1000)
                first_sound.append((sink.first_sound_at - start) * 1000)
            if i == runs:  # the last call also measures the round trip
                src = BurstSource()
                call.set_input(src)
                await asyncio.sleep(0.5)
                sink.onsets.clear()
                for _ in range(bursts):
                    n = len(sink.onsets)
                    src.fire()
                    t_fire = time.monotonic()
                    while len(sink.onsets) == n and time.monotonic() - t_fire < 1.0:
                        await asyncio.sleep(0.005)
                    if len(sink.onsets) > n and src.sent_at:
                        rtt.append((sink.onsets[n] - src.sent_at[-1]) * 1000)
                    await asyncio.sleep(0.3)
            await call.hangup()
            await call.wait_ended(5)
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    return {
        "connect_ready_ms": med(ready), "dial_active_ms": med(active), "dial_first_audio_ms": med(first_audio),
        "dial_first_sound_ms": med(first_sound), "round_trip_sink_ms": med(rtt),
        # + the 20 ms frame the first burst sample waits in before the sender can pull it (a microphone's frame;
        # the SDK's figure has that in it: WebAudio -> WebRTC capture -> 20 ms Opus frames)
        "round_trip_ms": None if not rtt else med(rtt) + 20.0,
        "samples": {"connect_ready_ms": ready, "dial_active_ms": active, "dial_first_audio_ms": first_audio,
                    "dial_first_sound_ms": first_sound, "round_trip_ms": rtt},
    }


async def worker(url: str, seconds: float, switch_pid: int) -> None:
    """Child process: one two-way Opus call to echo; print CPU and memory as JSON."""
    from softphone.protocol import CallState

    client = _client(url, DEMO, tone_hz=440.0)
    await client.connect()
    call = await client.new_call("echo")
    await call.wait_state(CallState.ACTIVE)
    await asyncio.sleep(1.0)
    c0, s0, w0 = time.process_time(), tree_cpu_s(switch_pid), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - w0
    cpu, switch_cpu = (time.process_time() - c0) / wall, (tree_cpu_s(switch_pid) - s0) / wall
    rss, pss = proc_mem_mb(os.getpid())
    codec = call.peer.negotiated_codec if call.peer else None
    await call.hangup()
    await call.wait_ended(5)
    await client.close()
    print(json.dumps({"cpu_pct": cpu * 100, "switch_cpu_pct": switch_cpu * 100, "rss_mb": rss, "pss_mb": pss,
                      "codec": codec}))


def ours_cpu(url: str, seconds: float, runs: int, switch_pid: int) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        out = subprocess.run([PY, __file__, "--worker", url, "--cpu-seconds", str(seconds),
                              "--switch-pid", str(switch_pid)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "cpu_call_pct": med([r["cpu_pct"] for r in results]),
        "switch_cpu_pct": med([r["switch_cpu_pct"] for r in results]),
        "rss_mb": med([r["rss_mb"] for r in results]), "pss_mb": med([r["pss_mb"] for r in results]),
        "codec": results[0]["codec"], "samples": {"cpu_call_pct": [r["cpu_pct"] for r in results]},
    }


# -- the JS SDK --------------------------------------------------------------------------------------------

# Times, for each peer connection the SDK makes: the first RTP packet of its remote audio track (the
# track's unmute event) and the first decoded non-silent sample of it (an AudioWorklet on the remote
# track, threshold and quiet gap as OnsetSink's); also every burst onset, on the AudioContext clock, for
# the round trip. Hooked on the prototype so that it works whatever reference the SDK bundle kept.
ONSET_WORKLET = """
class BenchOnset extends AudioWorkletProcessor {
  constructor() { super(); this.quiet = 1e9; }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let i = 0; i < ch.length; i++) {
        if (Math.abs(ch[i]) > %(threshold)f) {
          if (this.quiet >= %(quiet)d) this.port.postMessage(currentTime + i / sampleRate);
          this.quiet = 0;
        } else { this.quiet++; }
      }
    }
    return true;
  }
}
registerProcessor('bench-onset', BenchOnset);
"""

HOOK_JS = """async (worklet) => {
  if (window.__bench) return true;
  const recs = [];
  window.__bench = recs;
  const ctx = new AudioContext({ sampleRate: 48000 });
  window.__benchCtx = ctx;
  await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'application/javascript' })));
  await ctx.resume();
  const toPerf = (t) => {
    const ts = ctx.getOutputTimestamp();
    return (ts.performanceTime + (t - ts.contextTime) * 1000) / 1000;
  };
  window.__benchListen = true;
  const listen = (rec, track) => {
    if (!window.__benchListen) return;
    const el = new Audio();  // Chromium feeds a remote track to WebAudio only while an element plays it
    el.muted = true;
    el.srcObject = new MediaStream([track]);
    el.play().catch(() => {});
    const node = new AudioWorkletNode(ctx, 'bench-onset');
    node.port.onmessage = (m) => {
      if (rec.firstSound === null) rec.firstSound = toPerf(m.data);
      rec.onsets.push(m.data);
    };
    const mute = ctx.createGain();
    mute.gain.value = 0;
    ctx.createMediaStreamSource(el.srcObject).connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    rec.nodes = [el, node];
  };
  const hook = (pc) => {
    let rec = recs.find((r) => r.pc === pc);
    if (!rec) {
      rec = { pc, created: performance.now() / 1000, firstAudio: null, firstSound: null, mutedAtHook: null,
              onsets: [] };
      recs.push(rec);
    }
    for (const r of pc.getReceivers()) {
      const t = r.track;
      if (!t || t.kind !== 'audio' || t.__benchHooked) continue;
      t.__benchHooked = true;
      rec.mutedAtHook = t.muted;
      const mark = () => { if (rec.firstAudio === null) rec.firstAudio = performance.now() / 1000; };
      if (t.muted) t.addEventListener('unmute', mark); else mark();
      listen(rec, t);
    }
  };
  const P = RTCPeerConnection.prototype;
  for (const name of ['setLocalDescription', 'setRemoteDescription']) {
    const orig = P[name];
    P[name] = function (...a) {
      const p = orig.apply(this, a);
      hook(this);
      Promise.resolve(p).then(() => hook(this), () => {});
      return p;
    };
  }
  return true;
}"""

NEWCALL_JS = """(o) => { const t = performance.now() / 1000; const id = H.newCall(o); return [id, t]; }"""
CONNECT_JS = """(o) => { const t = performance.now() / 1000; H.connect(o); return t; }"""
FIRST_AUDIO_JS = """(t0) => {
  const r = window.__bench.filter((x) => x.created >= t0 - 0.001);
  const last = r.length ? r[r.length - 1] : null;
  return last ? [last.firstAudio, last.firstSound, last.mutedAtHook] : [null, null, null];
}"""
# The SDK's round trip: its microphone track replaced (public replaceTrack) by a WebAudio oscillator
# gated into 100 ms 1 kHz bursts at known AudioContext times; onsets come back on the same clock.
BURST_SETUP_JS = """async () => {
  const ctx = window.__benchCtx;
  const rec = window.__bench[window.__bench.length - 1];
  const osc = ctx.createOscillator();
  osc.frequency.value = 1000;
  const gate = ctx.createGain();
  gate.gain.value = 0;
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gate); gate.connect(dest); osc.start();
  const sender = rec.pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
  await sender.replaceTrack(dest.stream.getAudioTracks()[0]);
  window.__benchGate = gate;
  return true;
}"""
BURST_FIRE_JS = """() => {
  const ctx = window.__benchCtx, g = window.__benchGate.gain;
  const t0 = ctx.currentTime + 0.05;
  g.setValueAtTime(0.3, t0); g.setValueAtTime(0, t0 + 0.1);
  return t0;
}"""
BENCH_TEARDOWN_JS = """async () => {
  window.__benchListen = false;
  for (const rec of window.__bench) {
    for (const n of rec.nodes || []) {
      if (n.disconnect) n.disconnect();
      if (n.pause) { n.pause(); n.srcObject = null; }
    }
    rec.nodes = [];
  }
  if (window.__benchCtx) await window.__benchCtx.close();
  return true;
}"""
BURST_ONSET_JS = """(t0) => {
  const rec = window.__bench[window.__bench.length - 1];
  const later = rec.onsets.filter((t) => t >= t0);
  return later.length ? later[0] : null;
}"""


async def sdk_all(url: str, runs: int, bursts: int, seconds: float, cpu_runs: int, switch_pid: int,
                  tmp: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests" / "conformance"))
    from harness import BrowserClient, write_tone_wav

    wav = write_tone_wav(tmp / "sdk-mic.wav", 440.0, seconds=5.0)
    out: dict[str, Any] = {}
    async with BrowserClient(fake_audio_wav=wav, timeout=15) as b:
        out["launch_s"] = b.launch_seconds
        await b.evaluate(HOOK_JS, ONSET_WORKLET % {"threshold": ONSET_THRESHOLD / 32768, "quiet": 3 * 960})
        opts = {"host": url, "login": ALICE[0], "password": ALICE[1], "iceServers": [], "enableCallReports": False}
        ready = []
        for i in range(runs):
            since = len(b.events)
            t0 = await b.evaluate(CONNECT_JS, opts)
            ev = await b.wait_event("telnyx.ready", match=None, since=since)
            ready.append((ev.t - t0) * 1000)
            if i < runs - 1:
                await b.disconnect()
                await b.wait_event("page.disconnected")
                await asyncio.sleep(0.2)
        active, first_audio, first_sound, muted_flags, rtt = [], [], [], [], []
        for i in range(runs + 1):  # first call warms up (getUserMedia, codecs); not counted
            call_id, t0 = await b.evaluate(NEWCALL_JS, {"destinationNumber": "echo", "audio": True, "video": False})
            ev = await b.wait_call_state(call_id, "active")
            deadline = time.monotonic() + 5
            first = sound = muted = None
            while (first is None or sound is None) and time.monotonic() < deadline:
                first, sound, muted = await b.evaluate(FIRST_AUDIO_JS, t0)
                if first is None or sound is None:
                    await asyncio.sleep(0.02)
            if i:
                active.append((ev.t - t0) * 1000)
                if first is not None:
                    first_audio.append((first - t0) * 1000)
                if sound is not None:
                    first_sound.append((sound - t0) * 1000)
                muted_flags.append(muted)
            if i == runs:  # the last call also measures the round trip, as ours does
                await b.evaluate(BURST_SETUP_JS)
                await asyncio.sleep(0.5)
                for _ in range(bursts):
                    t_fire = await b.evaluate(BURST_FIRE_JS)
                    onset, waited = None, time.monotonic()
                    while onset is None and time.monotonic() - waited < 1.0:
                        await asyncio.sleep(0.02)
                        onset = await b.evaluate(BURST_ONSET_JS, t_fire)
                    if onset is not None:
                        rtt.append((onset - t_fire) * 1000)
                    await asyncio.sleep(0.3)
            await b.hangup(call_id)
            await b.wait_call_state(call_id, "destroy")
            await asyncio.sleep(0.2)
        out.update(connect_ready_ms=med(ready), dial_active_ms=med(active), dial_first_audio_ms=med(first_audio),
                   dial_first_sound_ms=med(first_sound), round_trip_ms=med(rtt),
                   remote_track_muted_until_rtp=all(m is True for m in muted_flags))
        out["samples"] = {"connect_ready_ms": ready, "dial_active_ms": active, "dial_first_audio_ms": first_audio,
                          "dial_first_sound_ms": first_sound, "round_trip_ms": rtt}
        await b.evaluate(BENCH_TEARDOWN_JS)  # no analyser, no AudioContext in the CPU calls

        cpus, sw_cpus, rss, pss = [], [], [], []
        for _ in range(cpu_runs):
            call_id, _t0 = await b.evaluate(NEWCALL_JS, {"destinationNumber": "echo", "audio": True, "video": False})
            await b.wait_call_state(call_id, "active")
            await asyncio.sleep(1.0)
            pids = chromium_pids()
            c0 = sum(proc_cpu_s(p) for p in pids)
            s0, w0 = tree_cpu_s(switch_pid), time.monotonic()
            await asyncio.sleep(seconds)
            wall = time.monotonic() - w0
            cpus.append((sum(proc_cpu_s(p) for p in pids) - c0) / wall * 100)
            sw_cpus.append((tree_cpu_s(switch_pid) - s0) / wall * 100)
            mems = [proc_mem_mb(p) for p in pids]
            rss.append(sum(m[0] for m in mems))
            pss.append(sum(m[1] for m in mems))
            stats = await b.rtp_stats(call_id)
            out["codec"] = (stats.get("codec") or {}).get("mimeType")
            out["chromium_processes"] = len(pids)
            await b.hangup(call_id)
            await b.wait_call_state(call_id, "destroy")
            await asyncio.sleep(0.3)
        out.update(cpu_call_pct=med(cpus), switch_cpu_pct=med(sw_cpus), rss_mb=med(rss), pss_mb=med(pss))
        out["samples"]["cpu_call_pct"] = cpus
    return out


# -- process-level figures -----------------------------------------------------------------------------------


def help_wall(runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([SOFTPHONE, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_to_ready(runs: int = 5) -> float | None:
    """Spawn ``softphone --json check --local`` and time spawn -> the ``client.ready`` event's ts."""
    times = []
    for _ in range(runs):
        t0 = time.time()
        out = subprocess.run([SOFTPHONE, "--json", "check", "--local"], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            if line.startswith("{") and '"client.ready"' in line:
                times.append(json.loads(line)["ts"] - t0)
                break
    return statistics.median(times) if times else None


# -- report -----------------------------------------------------------------------------------------------------


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    return f"{v:.3f} s" if unit == "s" else f"{v:.1f} {unit}"


def report(res: dict[str, Any]) -> None:
    ours, sdk = res["ours"], res.get("sdk") or {}
    rows = [
        ("softphone --help (wall)", "help_s", "s"),
        ("process start -> ready (check --local)", "start_to_ready_s", "s"),
        ("connect -> ready", "connect_ready_ms", "ms"),
        ("dial echo -> active", "dial_active_ms", "ms"),
        ("dial echo -> first RTP packet in", "dial_first_audio_ms", "ms"),
        ("dial echo -> first echoed sound", "dial_first_sound_ms", "ms"),
        ("round trip mouth -> echo -> ear", "round_trip_ms", "ms"),
        ("  ours from frame pulled to sink", "round_trip_sink_ms", "ms"),
        ("CPU, 2-way Opus call (% of a core)", "cpu_call_pct", "%"),
        ("  the switch's CPU in that call", "switch_cpu_pct", "%"),
        ("memory RSS during the call", "rss_mb", "MB"),
        ("memory PSS during the call", "pss_mb", "MB"),
    ]
    head = f"{'figure':40s}{'ours':>12s}{'JS SDK':>12s}{'ours/SDK':>10s}  target (PERFORMANCE.md)"
    print(head)
    print("-" * len(head))
    for label, key, unit in rows:
        a, b = ours.get(key), sdk.get(key)
        ratio = f"{a / b:.2f}" if isinstance(a, int | float) and isinstance(b, int | float) and b else "-"
        ref = SDK_REFERENCE.get(key)
        sdk_txt = fmt(b, unit) if b is not None else (f"({ref} ref)" if ref is not None else "-")
        print(f"{label:40s}{fmt(a, unit):>12s}{sdk_txt:>12s}{ratio:>10s}  {TARGETS.get(key, '')}")
    load = res["machine"]
    print(f"\nours: codec {ours.get('codec')}; SDK codec {sdk.get('codec')}, {sdk.get('chromium_processes')} "
          f"Chromium processes, launch {fmt(sdk.get('launch_s'), 's')}; load average at start "
          f"{load['loadavg_start'][0]:.2f}, at end {load['loadavg_end'][0]:.2f}")
    print("(ref) = PERFORMANCE.md's earlier SDK figure, where this run has none. Ratios < 1: ours is better.")


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": args.runs,
                           "cpu_seconds": args.cpu_seconds, "cpu_runs": args.cpu_runs,
                           "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
                           "targets": TARGETS, "sdk_reference": SDK_REFERENCE}
    ours: dict[str, Any] = {"help_s": help_wall(), "start_to_ready_s": start_to_ready()}
    with SwitchProcess() as sw:
        ours.update(await ours_latency(sw.url, args.runs, args.bursts))
        cpu = ours_cpu(sw.url, args.cpu_seconds, args.cpu_runs, sw.pid)
        ours["samples"].update(cpu.pop("samples"))
        ours.update(cpu)
        res["ours"] = ours
        if not args.no_sdk:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    res["sdk"] = await sdk_all(sw.url, args.runs, args.bursts, args.cpu_seconds, args.cpu_runs,
                                               sw.pid, Path(tmp))
                except Exception as exc:  # a missing browser must not lose our own figures
                    logging.exception("SDK side failed")
                    res["sdk"] = {"error": repr(exc)}
    sdk = res.get("sdk", {})
    res["ratios"] = {k: res["ours"][k] / sdk[k] for k in TARGETS
                     if isinstance(res["ours"].get(k), int | float) and isinstance(sdk.get(k), int | float) and sdk[k]}
    res["machine"]["loadavg_end"] = os.getloadavg()
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per latency figure (median)")
    parser.add_argument("--bursts", type=int, default=9, help="tone bursts for the round trip")
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument("--cpu-runs", type=int, default=3)
    parser.add_argument("--no-sdk", action="store_true", help="ours only")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"),
                        help='results file; this run goes under its "compare_sdk" key')
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--switch-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        asyncio.run(worker(args.worker, args.cpu_seconds, args.switch_pid))
        return
    res = asyncio.run(amain(args))
    report(res)
    write_results(Path(args.out), "compare_sdk", res)
    print(f"\nwritten to {args.out} (key compare_sdk)")


def write_results(path: Path, key: str, value: dict[str, Any]) -> None:
    """Put ``value`` under ``key`` of the JSON file at ``path``, keeping every other key (re-read just before)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    if key == "compare_sdk":  # the file's old layout had this bench's figures at the top level
        for old in LEGACY_KEYS:
            data.pop(old, None)
    data[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


LEGACY_KEYS = ("when", "runs", "cpu_seconds", "cpu_runs", "machine", "targets", "sdk_reference", "ours", "sdk",
               "ratios")


if __name__ == "__main__":
    main()
