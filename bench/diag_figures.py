"""What softphone precall, selftest and latency report against the local switch (issue 15 items 2, 3, 5).

One in-process switch; the softphone logs in as demo and sends a 1 kHz tone. Cases, side by side in
one run:

* precall through the echo with no impairment and with each ``--impair`` preset (the softphone's
  side, both directions): verdict, average MOS, RTT, jitter and loss both ways;
* selftest through the echo: healthy, and with a silent source (the finding and the tone re-run);
* latency: round trip through the echo and one way to our own login, without and with
  ``delay=100ms`` (both directions on the softphone: +200 ms round trip, +200 ms one way since both
  calls are on this client), median and spread.

Measured, not asserted; the load average is recorded at start and end. Results go into
bench/results.json under "diag" (other keys are kept). Usage: python bench/diag_figures.py [SECONDS]
(precall length, default 6 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from softphone.client.client import AudioConfig, Client
from softphone.diag import latency, precall, selftest
from softphone.media.impair import parse
from softphone.media.sources import NullSource
from softphone.protocol import Credentials
from softphone.switch import Switch, default_accounts

PRESETS = ["none", "good", "wifi", "congested", "satellite"]


async def _client(sw: Switch, impair: str | None) -> Client:
    c = Client(sw.url, Credentials(login="demo", password="demo-secret"),
               audio=AudioConfig(backend="tone", tone_hz=1000.0), reconnect=False,
               impair=parse(impair) if impair else None)
    await c.connect()
    return c


async def main(seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"loadavg_start": [round(x, 2) for x in os.getloadavg()], "precall": {},
                           "selftest": {}, "latency": {}}
    async with Switch(accounts=default_accounts(), port=0) as sw:
        for preset in PRESETS:
            c = await _client(sw, None if preset == "none" else f"{preset},seed=1")
            try:
                d = (await precall.measure(c, precall.ECHO_NUMBER, seconds)).as_dict()
            finally:
                await c.close()
            out["precall"][preset] = {k: d[k] for k in ("verdict", "exit_code", "loss_pct", "loss_sent_pct")} | {
                "mos": d["mos"]["avg"], "rtt_ms": d["rtt_ms"]["avg"], "jitter_ms": d["jitter_ms"]["avg"],
                "jitter_sent_ms": d["jitter_sent_ms"]["avg"], "level_dbfs": d["level_dbfs"]}
            print(f"precall {preset:10} {out['precall'][preset]}", flush=True)
        c = await _client(sw, None)
        try:
            for name, source in (("healthy", None), ("silent source", NullSource())):
                r = await selftest.measure(c, precall.ECHO_NUMBER, seconds=3, source=source)
                out["selftest"][name] = {"finding": r.finding.value, "with_test_tone":
                                         None if r.rest_finding is None else r.rest_finding.value,
                                         "exit_code": r.exit_code}
                print(f"selftest {name:14} {out['selftest'][name]}", flush=True)
        finally:
            await c.close()
        for impair in (None, "delay=100ms"):
            c = await _client(sw, impair)
            try:
                for mode in ("round_trip", "one_way"):
                    report = await (latency.measure_round_trip(c, precall.ECHO_NUMBER, count=8)
                                    if mode == "round_trip" else latency.measure_one_way(c, count=8))
                    f = report.as_dict()
                    key = f"{mode}{'' if impair is None else ' +' + impair}"
                    out["latency"][key] = {k: f[k] for k in ("found", "sent", "median_ms", "p25_ms", "p75_ms",
                                                             "min_ms", "max_ms", "stdev_ms")}
                    print(f"latency {key:28} {out['latency'][key]}", flush=True)
            finally:
                await c.close()
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


if __name__ == "__main__":
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
    result = asyncio.run(main(secs))
    path = Path(__file__).with_name("results.json")
    data = json.loads(path.read_text()) if path.exists() else {}
    data["diag"] = result
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"load average {result['loadavg_start']} -> {result['loadavg_end']}; written to {path} (diag)")
