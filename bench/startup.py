"""Startup time of the CLI: ``softphone --help``, ``softphone dial --help``, ``softphone --version``.

Each command runs 5 times as a subprocess (the installed ``softphone`` console script next to this
Python, else ``python -m softphone``); the median wall time is the figure. One more run of each
under ``python -X importtime`` tells whether pydantic, aiortc, numpy or av were imported and the
total import time. Results go into bench/results.json under ``startup.<label>`` with the commit and
the load average at start and end; measured, never asserted (the targets are in PERFORMANCE.md:
<= 0.25 s for ``--help``, <= 0.30 s for ``dial --help``).

With ``--baseline-src DIR`` (a source tree, e.g. ``git archive <commit> | tar -x -C DIR``) the same
commands also run from that tree, interleaved run by run with this one (both as ``python -m
softphone``), and the ratios this/baseline are recorded: side by side in one run, as the load moves.

    .venv/bin/python bench/startup.py [--runs 5] [--label current] [--baseline-src DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"help": ["--help"], "dial_help": ["dial", "--help"], "version": ["--version"]}
#: Subprocesses run here: ``python -m`` puts the working directory first on sys.path, which from the
#: repository root would shadow a --baseline-src tree (and the installed package) with ./softphone.
NEUTRAL_CWD = tempfile.mkdtemp(prefix="startup-")
HEAVY = ("pydantic", "aiortc", "av", "numpy", "prompt_toolkit", "websockets")


def launcher() -> list[str]:
    script = Path(sys.executable).with_name("softphone")
    return [str(script)] if script.exists() else [sys.executable, "-m", "softphone"]


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True,
                   cwd=NEUTRAL_CWD)
    return time.perf_counter() - t0


def interleaved(cmds: dict[str, list[str]], envs: dict[str, dict[str, str]], runs: int) -> dict[str, list[float]]:
    """Wall times of each (tree, command), alternating the trees on every run."""
    times: dict[str, list[float]] = {f"{tree}:{name}": [] for tree in envs for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            for tree, env in envs.items():
                times[f"{tree}:{name}"].append(wall([sys.executable, "-m", "softphone", *cmd], env))
    return times


def imports(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Top-level packages imported and the summed import time (``-X importtime``, stderr)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "softphone", *args], capture_output=True,
                         text=True, env=env, check=False, cwd=NEUTRAL_CWD)
    total_us = 0
    roots: set[str] = set()
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            total_us += int(parts[0].split(":")[1])
        except ValueError:
            continue  # the header line
        roots.add(parts[2].strip().split(".")[0])
    return {"heavy_imported": sorted(roots & set(HEAVY)), "import_ms": round(total_us / 1000, 1),
            "modules": len(roots)}


def commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--label", default="current", help="key under startup in results.json")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--baseline-src", type=Path, default=None, help="also run the commands from this source tree")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    env["COLUMNS"] = "100"
    base = launcher()
    load0 = os.getloadavg()
    wall([*base, "--version"], env)  # warm the page cache and the bytecode
    figures: dict[str, Any] = {}
    for name, cmd in COMMANDS.items():
        times = [wall(base + cmd, env) for _ in range(args.runs)]
        figures[name] = {"command": "softphone " + " ".join(cmd), "median_s": round(statistics.median(times), 3),
                         "min_s": round(min(times), 3), "max_s": round(max(times), 3), **imports(cmd, env)}
    py = [wall([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
    side: dict[str, Any] | None = None
    if args.baseline_src is not None:
        benv = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
        both = interleaved(COMMANDS, {"this": env, "baseline": benv}, args.runs)
        med = {k: statistics.median(v) for k, v in both.items()}
        side = {"baseline_src": str(args.baseline_src), "launcher": "python -m softphone"}
        for name in COMMANDS:
            side[name] = {"baseline_s": round(med[f"baseline:{name}"], 3), "this_s": round(med[f"this:{name}"], 3),
                          "ratio": round(med[f"this:{name}"] / med[f"baseline:{name}"], 2),
                          "baseline_heavy_imported": imports(COMMANDS[name], benv)["heavy_imported"]}
    load1 = os.getloadavg()
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(), "runs": args.runs,
              "launcher": " ".join(Path(x).name for x in base), "python_pass_median_s": round(statistics.median(py), 3),
              "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in load1],
              "dial_help_over_help": round(figures["dial_help"]["median_s"] / figures["help"]["median_s"], 2),
              **figures, "side_by_side": side}
    print(f"startup (median of {args.runs}; load average {load0[0]:.2f} -> {load1[0]:.2f}; "
          f"python -c pass {result['python_pass_median_s']:.3f} s)")
    for f in figures.values():
        print(f"  {f['command']:24s} {f['median_s']:.3f} s  (imports {f['import_ms']:.0f} ms; heavy: "
              f"{', '.join(f['heavy_imported']) or 'none'})")
    if side is not None:
        print(f"  side by side with {args.baseline_src} (python -m softphone, interleaved):")
        for name in COMMANDS:
            f = side[name]
            print(f"    {figures[name]['command']:24s} baseline {f['baseline_s']:.3f} s  this {f['this_s']:.3f} s  "
                  f"ratio {f['ratio']:.2f}")
    if not args.no_write:
        data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
        data.setdefault("startup", {})[args.label] = result
        tmp = args.out.with_suffix(".json.tmp-startup")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
