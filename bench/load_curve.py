"""The load curve: `softphone load` with 10, 20 and 50 concurrent echo calls, every call's audio checked.

The switch runs as its own process on this machine (``softphone switch serve`` on a free loopback
port); each step is one ``softphone load`` process whose calls send a 440 Hz tone (the ``tone``
backend), call ``echo`` and ``expect tone 440`` twice, ``HOLD`` seconds apart, so every call's echoed
audio is checked at the start and at the end. For each concurrency it prints: the pass rate; CPU
of the load process and of the switch (% of one core, over the step's wall time); frames late (the
load process's event loop waking more than a 20 ms frame late, as `softphone load` reports it) and
the loop's p99 lag; p95 of dial-to-answer and of the expects. Measured, not asserted.

    .venv/bin/python bench/load_curve.py [--steps 10,20,50] [--rate 10] [--hold 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = """dial echo
wait call active 20
expect tone 440 8
sleep {hold}
expect tone 440 5
hangup
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("the switch did not start")


def step(env: dict[str, str], script: Path, n: int, rate: float, switch_pid: int) -> dict[str, Any]:
    sw0, me0, t0 = proc_cpu(switch_pid), children_cpu(), time.monotonic()
    out = subprocess.run([sys.executable, "-m", "softphone", "load", str(script), "--calls", str(n),
                          "--concurrency", str(n), "--rate", str(rate), "--audio", "--json"],
                         capture_output=True, text=True, env=env, timeout=600, check=False)
    wall = time.monotonic() - t0
    sw, me = proc_cpu(switch_pid) - sw0, children_cpu() - me0
    try:
        summary = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"softphone load failed ({out.returncode}): {out.stderr[-2000:]}") from None
    t = summary["timings"]

    def p95(name: str) -> float | None:
        return t[name]["p95"] if name in t else None

    expects = sorted(k for k in t if k.endswith(" expect"))
    return {"concurrency": n, "calls": summary["calls"], "passed": summary["passed"],
            "pass_rate": summary["pass_rate"], "wall_s": round(wall, 1),
            "load_cpu_pct": round(100 * me / wall, 1), "switch_cpu_pct": round(100 * sw / wall, 1),
            "frames_late": summary["frames_late"], "answer_p95_s": p95("answer"),
            "expect_p95_s": {k: p95(k) for k in expects}, "failure_causes": summary["failure_causes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="10,20,50")
    ap.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    ap.add_argument("--hold", type=float, default=5.0, help="seconds between the two tone checks")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="load-curve-"))
    cfg = tmp / "config.toml"
    cfg.write_text(f'default_profile = "sw"\n[profiles.sw]\nserver = "ws://127.0.0.1:{port}"\nusername = "demo"\n'
                   'password = "demo-secret"\naudio_backend = "tone"\n')
    cfg.chmod(0o600)
    script = tmp / "echo.sp"
    script.write_text(SCRIPT.format(hold=args.hold))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    env.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp / "data"))
    switch = subprocess.Popen([sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    rows = []
    try:
        wait_port(port)
        for n in (int(x) for x in args.steps.split(",")):
            rows.append(step(env, script, n, args.rate, switch.pid))
            time.sleep(1.0)  # the switch settles between steps
    finally:
        switch.terminate()
        switch.wait(10)
    if args.json:
        print(json.dumps({"rate": args.rate, "hold": args.hold, "cores": os.cpu_count(), "steps": rows}, indent=2))
        return
    print(f"softphone load: echo calls with the tone checked twice ({args.hold:g} s apart), ramp {args.rate:g}/s, "
          f"{os.cpu_count()} cores, switch in its own process")
    print(f"{'calls':>5} {'pass':>6} {'load CPU':>9} {'switch CPU':>11} {'frames late':>12} {'lag p99':>8} "
          f"{'answer p95':>11} {'expect p95 (first, last)':>25}")
    for r in rows:
        fl = r["frames_late"]
        ex = list(r["expect_p95_s"].values())
        exs = ", ".join(f"{v:.2f}" for v in ex if v is not None)
        print(f"{r['concurrency']:>5} {100 * r['pass_rate']:>5.0f}% {r['load_cpu_pct']:>8.0f}% "
              f"{r['switch_cpu_pct']:>10.0f}% {fl['late']:>5}/{fl['ticks']:<6} {fl['lag_p99_ms']:>6.1f}ms "
              f"{(r['answer_p95_s'] or 0):>10.2f}s {exs:>25}")
        for cause, count in r["failure_causes"].items():
            print(f"      failed {count}x: {cause}")


if __name__ == "__main__":
    main()
