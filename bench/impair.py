"""Impairments asked vs measured (issue 15 item 4): loss, delay, jitter and MOS per preset, through the echo.

Each case is one call from a softphone with ``--impair``-style impairment (both directions on the
softphone's side) to the local switch's echo, over loopback, for a few seconds. Printed per case:
what was asked, the loss each end measured (the switch's leg: what we sent; the softphone: what it
received), the RTCP round trip, the received jitter (median of 1 s samples) and the MOS; the
baseline (no impairment) is measured in the same run, so figures are side by side. The results go
into bench/results.json under "impair" with the load average at start and end. Measured, not
asserted. Usage: python bench/impair.py [SECONDS]   (default 6 s a case)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from softphone.client.client import AudioConfig, Client
from softphone.media.impair import parse
from softphone.media.sources import ToneSource
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

CASES = ["none", "loss=5%,seed=1", "loss=20%,seed=1", "loss=20%,burst=4,seed=1", "delay=50ms", "delay=100ms",
         "delay=100ms,dir=out", "jitter=10ms,seed=1", "jitter=40ms,seed=1", "jitter=40ms,reorder=no,seed=1",
         "good,seed=1", "wifi,seed=1", "congested,seed=1", "satellite,seed=1"]


async def one(text: str, seconds: float) -> dict[str, Any]:
    spec = parse(text) if text != "none" else None
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="null"), impair=spec)
        try:
            await client.connect()
            call = await client.new_call("echo")
            call.set_input(ToneSource(440, 0.5))
            await call.wait_state(CallState.ACTIVE, timeout=15)
            jit, rtts, moses = [], [], []
            for _ in range(int(seconds)):
                await asyncio.sleep(1.0)
                assert call.peer is not None
                mine = await call.peer.stats()
                if mine.jitter_ms is not None:
                    jit.append(mine.jitter_ms)
                if mine.rtt_ms is not None:
                    rtts.append(mine.rtt_ms)
                if mine.mos is not None:
                    moses.append(mine.mos)
            leg = sw.leg_media(call.id)
            assert leg is not None and leg.peer is not None
            far = await leg.peer.stats()
            await call.hangup()
            await call.wait_ended(10)
        finally:
            await client.close()
    return {
        "asked": text,
        "loss_pct_far": far.packet_loss_pct, "loss_pct_near": mine.packet_loss_pct,
        "packets_near": mine.packets_received + mine.packets_lost,
        "rtt_ms": round(statistics.median(rtts), 1) if rtts else None,
        "jitter_ms_near": round(statistics.median(jit), 1) if jit else None,
        "jitter_ms_far": round(far.jitter_ms, 1) if far.jitter_ms is not None else None,
        "mos": round(statistics.median(moses), 2) if moses else None,
    }


async def main(seconds: float) -> dict[str, Any]:
    load_start = os.getloadavg()
    rows = []
    for text in CASES:
        row = await one(text, seconds)
        rows.append(row)
        print(f"{text:34s} loss far {row['loss_pct_far']:5.1f}% near {row['loss_pct_near']:5.1f}%  "
              f"RTT {row['rtt_ms']!s:>6} ms  jitter near {row['jitter_ms_near']!s:>5} "
              f"far {row['jitter_ms_far']!s:>5} ms  MOS {row['mos']}", flush=True)
    base = rows[0]["rtt_ms"] or 0.0
    for row in rows:
        row["rtt_added_ms"] = round(row["rtt_ms"] - base, 1) if row["rtt_ms"] is not None else None
    return {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds_per_case": seconds,
            "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()), "cases": rows}


if __name__ == "__main__":
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
    result = asyncio.run(main(secs))
    path = Path(__file__).with_name("results.json")
    data = json.loads(path.read_text()) if path.exists() else {}
    data["impair"] = result
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"load average {result['loadavg_start']} -> {result['loadavg_end']}; written to {path} (impair)")
