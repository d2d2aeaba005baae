"""Media workers on and off, side by side in one run: concurrent calls that stay clean and the switch's CPU.

Runs bench/capacity.py (the switch as ``softphone switch serve`` in its own process tree, lean callers
in other processes, every leg's frames on time judged from RTP arrival) once with
``--media-workers 0`` (all media in the signaling process) and once with ``--media-workers N``
(default 2, one per core here), stepping the same N, and prints for each kind of call the largest N
that held with each setting, their ratio, and the switch's whole-tree CPU at each step. Results go
into bench/results.json under ``media_workers`` (the capacity run itself, its load average at start
and end, the commit). Measured, never asserted.

    .venv/bin/python bench/media_workers.py [--steps 10,20,40,80] [--modes echo] [--workers 2] [--window 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="10,20,40,80")
    ap.add_argument("--modes", default="echo")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="media-workers-") as tmp:
        out = Path(tmp) / "capacity.json"
        cmd = [sys.executable, str(ROOT / "bench" / "capacity.py"), "--modes", args.modes,
               "--workers", f"0,{args.workers}", "--steps", args.steps, "--window", str(args.window),
               "--label", "media_workers", "--out", str(out)]
        subprocess.run(cmd, check=True)
        run: dict[str, Any] = json.loads(out.read_text())["capacity"]["media_workers"]
    load1 = os.getloadavg()
    table: dict[str, Any] = {}
    for mode in args.modes.split(","):
        by = {r["media_workers"]: r for r in run["runs"] if r["mode"] == mode}
        off, on = by[0], by[args.workers]
        ratio = round(on["largest_clean_n"] / off["largest_clean_n"], 2) if off["largest_clean_n"] else None
        table[mode] = {
            "largest_clean_n_workers_0": off["largest_clean_n"],
            f"largest_clean_n_workers_{args.workers}": on["largest_clean_n"],
            "ratio": ratio,
            "switch_cpu_pct_by_n_workers_0": {s["n"]: s["switch_cpu_pct"] for s in off["steps"]},
            f"switch_cpu_pct_by_n_workers_{args.workers}": {s["n"]: s["switch_cpu_pct"] for s in on["steps"]},
        }
        print(f"{mode}: largest clean N {off['largest_clean_n']} (0 workers) vs {on['largest_clean_n']} "
              f"({args.workers} workers), ratio {ratio}")
    print(f"load average {load0[0]:.2f} -> {load1[0]:.2f}")
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": run.get("commit"),
              "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in load1],
              "summary": table, "capacity_run": run}
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["media_workers"] = result
    tmp_out = args.out.with_suffix(".json.tmp-media-workers")
    tmp_out.write_text(json.dumps(data, indent=2) + "\n")
    tmp_out.replace(args.out)


if __name__ == "__main__":
    main()
