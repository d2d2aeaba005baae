"""Switch CPU per echo call, forwarding encoded RTP vs decoding and re-encoding, side by side in one run.

The switch runs as its own process (``softphone switch serve``, media in-process), once with RTP
forwarding (the default) and once with ``SOFTPHONE_SWITCH_FORWARD=0`` (every leg decodes and
re-encodes, as before issue 14). Each time N echo calls (the softphone's ``Client`` with the tone
backend, in this process) send a 440 Hz tone; once every call hears its tone back, the switch
process's CPU (user + system, from /proc) is measured over WINDOW seconds, then every call's echoed
audio is checked again (dominant frequency and level) and one more call measures the round trip through
the echo (chirps: softphone.diag.latency) while the N calls run. Prints per-call CPU (% of one core) for both
and their ratio, with the load average at start and end; writes them to bench/results.json under
"forward_cpu" (other keys kept). Measured, not asserted.

    .venv/bin/python bench/forward_cpu.py [--calls 10] [--window 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from softphone.client.client import AudioConfig, Client
from softphone.diag.latency import measure_round_trip
from softphone.media.dsp import dominant_frequency
from softphone.media.sinks import BufferSink
from softphone.protocol import CallState, Credentials

RESULTS = Path(__file__).resolve().parent / "results.json"
TONE_HZ = 440.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def heard_ok(buf: BufferSink) -> bool:
    s = buf.samples(0.5)
    rms = float(np.sqrt(np.mean(s.astype(np.float64) ** 2))) if s.size else 0.0
    return abs(dominant_frequency(s) - TONE_HZ) <= 15 and rms > 300


async def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the switch did not listen on {port}")


async def run_mode(forward: bool, calls: int, window: float, tmp: Path) -> dict[str, Any]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    env.update(SOFTPHONE_DATA_DIR=str(tmp / f"data-{forward}"), SOFTPHONE_SWITCH_FORWARD="1" if forward else "0")
    switch = subprocess.Popen([sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port),
                               "--media-workers", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    clients: list[Client] = []
    try:
        await wait_port(port)
        bufs: list[BufferSink] = []
        active = []
        for _ in range(calls):
            client = Client(f"ws://127.0.0.1:{port}", Credentials(login="demo", password="demo-secret"),
                            audio=AudioConfig(backend="tone", tone_hz=TONE_HZ), reconnect=False)
            clients.append(client)
            await client.connect()
            call = await client.new_call("echo")
            buf = BufferSink(2.0)
            call.set_output(buf)
            bufs.append(buf)
            active.append(call)
        for call in active:
            await call.wait_state(CallState.ACTIVE, 20)
        deadline = time.monotonic() + 20
        while not all(heard_ok(b) for b in bufs) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        heard_before = sum(heard_ok(b) for b in bufs)
        cpu0, t0 = proc_cpu(switch.pid), time.monotonic()
        await asyncio.sleep(window)
        cpu1, t1 = proc_cpu(switch.pid), time.monotonic()
        heard_after = sum(heard_ok(b) for b in bufs)
        # One more call measures the round trip through the echo (chirps, softphone.diag.latency) meanwhile.
        probe = Client(f"ws://127.0.0.1:{port}", Credentials(login="demo", password="demo-secret"),
                       audio=AudioConfig(backend="null"), reconnect=False)
        clients.append(probe)
        await probe.connect()
        rtt = statistics.median((await measure_round_trip(probe, "echo", count=5)).delays_ms)
        for call in active:
            await call.hangup()
        core_pct = 100.0 * (cpu1 - cpu0) / (t1 - t0)
        return {"calls": calls, "switch_cpu_pct": round(core_pct, 2), "per_call_pct": round(core_pct / calls, 3),
                "heard_before": heard_before, "heard_after": heard_after, "echo_round_trip_ms": round(rtt, 1)}
    finally:
        for client in clients:
            await client.close()
        switch.terminate()
        try:
            switch.wait(10)
        except subprocess.TimeoutExpired:
            switch.kill()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        forwarded = await run_mode(True, args.calls, args.window, Path(tmp))
        decoded = await run_mode(False, args.calls, args.window, Path(tmp))
    load_end = os.getloadavg()
    ratio = forwarded["per_call_pct"] / decoded["per_call_pct"] if decoded["per_call_pct"] else None
    result = {"forwarded": forwarded, "decoded": decoded,
              "ratio_forwarded_to_decoded": round(ratio, 3) if ratio is not None else None,
              "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
              "goal_per_call_pct": 1.5, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["forward_cpu"] = result
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.calls} echo calls, switch CPU over {args.window:g} s (% of one core)")
    for name, row in (("forwarded", forwarded), ("decoded", decoded)):
        print(f"  {name:9s} total {row['switch_cpu_pct']:6.1f}  per call {row['per_call_pct']:6.2f}  "
              f"calls hearing their tone {row['heard_before']}/{row['calls']} before, {row['heard_after']} after; "
              f"echo round trip {row['echo_round_trip_ms']} ms")
    print(f"  ratio forwarded/decoded per call: {result['ratio_forwarded_to_decoded']}")
    print(f"  load average start {result['loadavg_start']} end {result['loadavg_end']}")


if __name__ == "__main__":
    asyncio.run(main())
