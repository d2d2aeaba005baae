"""Capacity of the switch: how many concurrent calls it carries with clean audio, stepping N.

The switch runs in its own process(es) (``softphone switch serve`` on a free loopback port, with a
private accounts file and records file); the callers are other processes: bench/lean_caller.py, many
calls per process, each with real ICE, DTLS-SRTP and Verto signaling but pre-encoded Opus, so the
callers' CPU stays small next to the switch's. Two kinds of call:

- ``echo``: N calls to the echo service (the switch sends every caller's tone back);
- ``bridged``: N client-to-client calls through the switch (two legs each): callers registered as
  ``cap-a<i>`` dial ``cap-b<i>``, whose process auto-answers and sends a tone of its own (660 Hz
  against the A side's 440 Hz, so a probe that hears the right frequency proves the right bridge).

At each step every call's frames on time, late and missing are judged from RTP arrival times over a
measurement window (bench/lean_caller.py ``judge``), one probe call per side is decoded (dominant
frequency and level), and the switch's CPU is read from /proc for its whole process tree (media
worker processes included) over the same window. A step *holds* when every call set up and has
>= 99 % of its frames on time and the probes hear their tone (within 3 % of the frequency, louder
than -30 dBFS). A step that does not hold is tried once more (``--retries``: the machine is shared and
a neighbour's burst makes frames late); stepping stops at the first step that still does not hold, and
the run ends with the largest N that held and the switch's CPU per call there (% of one core). Every
attempt is kept in the results, with the load average and how late the callers themselves sent.

If ``softphone switch serve`` has ``--media-workers``, each kind is measured with 0 workers (all in
one process) and with the default. Results go into bench/results.json under ``capacity.<label>``
with the commit and the load average at start and end; measured, never asserted.

    .venv/bin/python bench/capacity.py [--quick] [--steps 8,16,25,50,75,100,150] [--modes echo,bridged]
        [--window 8] [--label final] [--switch-src DIR]   # DIR: run the switch from another source tree
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
CALLER = Path(__file__).resolve().parent / "lean_caller.py"
STEPS = "8,16,25,50,75,100,150"
HOLDS_PCT = 99.0
CALLS_PER_PROCESS = 50
FREQ_A, FREQ_B = 440.0, 660.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the switch exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("the switch did not start")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total


def commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip()


def package_dir(env: dict[str, str]) -> str:
    """Where the switch's ``softphone`` package comes from, as its subprocess sees it."""
    out = subprocess.run([sys.executable, "-c", "import softphone, os; print(os.path.dirname(softphone.__file__))"],
                         capture_output=True, text=True, env=env, check=False, cwd=tempfile.gettempdir())
    return out.stdout.strip()


def switch_has_workers(env: dict[str, str]) -> bool:
    out = subprocess.run([sys.executable, "-m", "softphone", "switch", "serve", "--help"], capture_output=True,
                         text=True, env=env, check=False, cwd=tempfile.gettempdir())
    return "--media-workers" in out.stdout


class Switch:
    """``softphone switch serve`` on a free port with a private accounts file (random secrets)."""

    def __init__(self, tmp: Path, env: dict[str, str], users: int, workers: int | None) -> None:
        self.port = free_port()
        self.passwords = {f"cap-{side}{i}": secrets.token_urlsafe(12) for side in "ab" for i in range(users)}
        accounts = tmp / "accounts.toml"
        lines = [f'jwt_secret = "{secrets.token_urlsafe(24)}"']
        for user, pw in self.passwords.items():
            lines += ["[[connection]]", f'id = "{user}"', f'password = "{pw}"', 'inbound_format = "sip_username"']
        accounts.write_text("\n".join(lines) + "\n")
        accounts.chmod(0o600)
        cmd = [sys.executable, "-m", "softphone", "switch", "serve", "--port", str(self.port), "--accounts",
               str(accounts), "--records", str(tmp / "records.jsonl")]
        if workers is not None:
            cmd += ["--media-workers", str(workers)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / "switch.log", "ab"), env=env,
                                     cwd=tmp)  # not the repository root: `-m` would put ./softphone first
        wait_port(self.port, self.proc)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class CallerProc:
    """One bench/lean_caller.py process, driven over its stdin/stdout (one JSON object per line)."""

    def __init__(self, switch: Switch, env: dict[str, str], user: str, mode: str, dest: str, calls: int,
                 freq: float, rate: float, log: IO[bytes], extra: tuple[str, ...] = ()) -> None:
        self.calls = calls
        cenv = {**env, "LEAN_CALLER_PASSWORD": switch.passwords[user]}
        self.proc = subprocess.Popen(
            [sys.executable, str(CALLER), "--url", switch.url, "--user", user, "--mode", mode, "--dest", dest,
             "--calls", str(calls), "--freq", str(freq), "--rate", str(rate), "--probe",
             "--ready-timeout", str(20 + calls / rate * 2), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=cenv)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"lean caller exited ({self.proc.wait()}) before {event!r}")
            msg: dict[str, Any] = json.loads(line)
            if msg.get("event") == event:
                return msg
        raise RuntimeError(f"no {event!r} from the lean caller in {timeout:g} s")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        try:
            self.send("stop")
            self.proc.wait(20)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def probe_ok(probe: dict[str, Any] | None, freq: float) -> bool:
    return probe is not None and abs(probe["freq_hz"] - freq) <= 0.03 * freq and probe["level_dbfs"] > -30.0


def run_step(switch: Switch, env: dict[str, str], mode: str, n: int, window: float, rate: float,
             log: IO[bytes], per_process: int = CALLS_PER_PROCESS) -> dict[str, Any]:
    procs = math.ceil(n / per_process)
    shares = split(n, procs)
    answerers: list[CallerProc] = []
    dialers: list[CallerProc] = []
    per_proc_rate = rate / procs
    t_setup = time.monotonic()
    try:
        if mode == "bridged":
            answerers = [CallerProc(switch, env, f"cap-b{i}", "answer", "", k, FREQ_B, per_proc_rate, log)
                         for i, k in enumerate(shares)]
            for c in answerers:
                c.expect("registered", 30)
        dialers = [CallerProc(switch, env, f"cap-a{i}", "dial", "echo" if mode == "echo" else f"cap-b{i}", k,
                              FREQ_A, per_proc_rate, log) for i, k in enumerate(shares)]
        everyone = answerers + dialers
        ready = [c.expect("ready", 60 + 3 * n / rate) for c in everyone]
        setup_s = time.monotonic() - t_setup
        time.sleep(1.5)  # warm-up: jitter buffers and the switch's queues settle
        load = os.getloadavg()[0]
        cpu0, w0 = tree_cpu(switch.proc.pid), time.monotonic()
        for c in everyone:
            c.send(f"measure {window}")
        results = [c.expect("result", window + 60) for c in everyone]
        wall = time.monotonic() - w0
        switch_cpu = 100 * (tree_cpu(switch.proc.pid) - cpu0) / wall
    finally:
        for c in dialers + answerers:
            c.stop()
    calls = [call for r in results for call in r["calls"]]
    up = sum(r["up"] for r in ready[len(answerers):])
    failures = [f for r in ready for f in r["failures"]]
    pcts = sorted(c["on_time_pct"] for c in calls)
    probes = {"a": results[len(answerers)]["probe"]}
    if answerers:
        probes["b"] = results[0]["probe"]
    # Each side hears the other: echo returns the A tone; a bridge gives A the B tone and B the A tone.
    expect_a = FREQ_A if mode == "echo" else FREQ_B
    probes_ok = probe_ok(probes["a"], expect_a) and (not answerers or probe_ok(probes.get("b"), FREQ_A))
    holds = (up == n and len(calls) == (2 * n if answerers else n) and bool(pcts) and pcts[0] >= HOLDS_PCT
             and probes_ok)
    return {
        "n": n, "holds": holds, "calls_up": up, "setup_failures": failures[:5], "setup_s": round(setup_s, 1),
        "switch_cpu_pct": round(switch_cpu, 1), "switch_cpu_per_call_pct": round(switch_cpu / n, 2),
        "callers_cpu_pct": round(sum(r["caller_cpu_pct"] for r in results), 1), "caller_processes": len(everyone),
        "callers_send_late_pct_max": max(r["send_lag"]["late_pct"] for r in results),
        "callers_send_lag_p99_ms_max": max(r["send_lag"]["lag_p99_ms"] for r in results),
        "legs_judged": len(calls), "frames_on_time_pct_min": pcts[0] if pcts else 0.0,
        "frames_on_time_pct_median": pcts[len(pcts) // 2] if pcts else 0.0,
        "legs_below_99pct": sum(1 for p in pcts if p < HOLDS_PCT),
        "frames": {k: sum(c[k] for c in calls) for k in ("expected", "on_time", "late", "missing")},
        "late_p99_ms_max": max((c["late_p99_ms"] or 0.0 for c in calls), default=None),
        "probes": probes, "probes_ok": probes_ok, "loadavg_1m": round(load, 2), "window_s": window,
    }


def step_line(mode: str, workers: int | None, row: dict[str, Any]) -> str:
    g = row.get
    return (f"  {mode:8s} workers={'default' if workers is None else workers:>7} N={row['n']:4d} "
            f"#{row.get('attempt', 1)} "
            f"{'holds' if row['holds'] else 'FAILS'}  on-time min {g('frames_on_time_pct_min', 0):6.2f} %  "
            f"median {g('frames_on_time_pct_median', 0):6.2f} %  switch CPU {g('switch_cpu_pct', 0):6.1f} %  "
            f"callers {g('callers_cpu_pct', 0):5.1f} % (sent late {g('callers_send_late_pct_max', 0):.1f} %)  "
            f"load {g('loadavg_1m', 0):.2f}  {g('error', '')}")


def run_mode(env: dict[str, str], tmp: Path, mode: str, steps: list[int], workers: int | None, window: float,
             rate: float, per_process: int = CALLS_PER_PROCESS, retries: int = 1) -> dict[str, Any]:
    users = math.ceil(max(steps) / per_process)
    sub = tmp / f"{mode}-{'default' if workers is None else workers}"
    sub.mkdir()
    switch = Switch(sub, env, users, workers)
    rows: list[dict[str, Any]] = []
    with open(sub / "callers.log", "ab") as log:
        try:
            for n in steps:
                row = {}
                for attempt in range(1 + retries):
                    if attempt:
                        time.sleep(2.0)
                    try:
                        row = run_step(switch, env, mode, n, window, rate, log, per_process)
                    except RuntimeError as exc:
                        row = {"n": n, "holds": False, "error": str(exc)[:300]}
                    row["attempt"] = attempt + 1
                    rows.append(row)
                    print(step_line(mode, workers, row), flush=True)
                    if row["holds"] or switch.proc.poll() is not None:
                        break
                if not row["holds"] or switch.proc.poll() is not None:
                    break
                time.sleep(2.0)  # the switch ends the last step's calls
        finally:
            switch.stop()
    clean = [r for r in rows if r["holds"]]
    best = max(clean, key=lambda r: r["n"]) if clean else None
    return {"mode": mode, "media_workers": "default" if workers is None else workers,
            "largest_clean_n": best["n"] if best else 0,
            "switch_cpu_per_call_pct": best["switch_cpu_per_call_pct"] if best else None, "steps": rows}


def write_results(path: Path, label: str, run: dict[str, Any]) -> None:
    """Merge ``run`` into ``path`` under capacity.<label>, re-reading the file just before (others write it too)."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("capacity", {})[label] = run
    tmp = path.with_suffix(".json.tmp-capacity")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default=STEPS)
    ap.add_argument("--quick", action="store_true", help="one step (the first of --steps, default 8)")
    ap.add_argument("--modes", default="echo,bridged")
    ap.add_argument("--window", type=float, default=8.0, help="seconds of audio judged per step")
    ap.add_argument("--rate", type=float, default=25.0, help="new calls per second, all caller processes")
    ap.add_argument("--workers", default="auto",
                    help="'auto': 0 and the default when the switch has --media-workers; or a list like 0,2")
    ap.add_argument("--calls-per-process", type=int, default=CALLS_PER_PROCESS,
                    help="calls one lean caller process carries (per side)")
    ap.add_argument("--retries", type=int, default=1,
                    help="a step that does not hold is tried this many times more (the machine is shared)")
    ap.add_argument("--label", default="current", help="key under capacity in results.json")
    ap.add_argument("--switch-src", type=Path, default=None,
                    help="run the switch from this source tree (e.g. an exported older commit)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    steps = [int(x) for x in args.steps.split(",")]
    if args.quick:
        steps = steps[:1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    tmp = Path(tempfile.mkdtemp(prefix="capacity-"))
    env.update(SOFTPHONE_DATA_DIR=str(tmp / "data"), SOFTPHONE_CONFIG=str(tmp / "none.toml"))
    switch_env = dict(env)
    if args.switch_src is not None:
        switch_env["PYTHONPATH"] = str(args.switch_src.resolve())
    if args.workers == "auto":
        workers: list[int | None] = [0, None] if switch_has_workers(switch_env) else [None]
    else:
        workers = [int(w) for w in args.workers.split(",")]
    pkg = package_dir(switch_env)
    load0 = os.getloadavg()
    t0 = time.monotonic()
    print(f"capacity: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"switch from {pkg}, steps {steps}, window {args.window:g} s", flush=True)
    runs = []
    for mode in args.modes.split(","):
        for w in workers:
            runs.append(run_mode(switch_env, tmp, mode, steps, w, args.window, args.rate, args.calls_per_process,
                                 args.retries))
    load1 = os.getloadavg()
    summary: dict[str, Any] = {}
    for r in runs:
        key = f"{r['mode']}_workers_{r['media_workers']}"
        summary[key] = {"largest_clean_n": r["largest_clean_n"],
                        "switch_cpu_per_call_pct": r["switch_cpu_per_call_pct"]}
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
        "switch_src": str(args.switch_src) if args.switch_src else "this tree", "switch_package": pkg,
        "cores": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in load1],
        "wall_s": round(time.monotonic() - t0, 1), "holds_when": f"every leg >= {HOLDS_PCT:g} % of frames on time "
        "(<= 60 ms behind its best packet), every call up, probes within 3 % of the tone and > -30 dBFS",
        "caller": "bench/lean_caller.py (aioice + pyOpenSSL DTLS-SRTP + pylibsrtp, pre-encoded Opus)",
        "calls_per_caller_process": args.calls_per_process, "retries_per_step": args.retries,
        "summary": summary, "runs": runs,
    }
    for key, s in summary.items():
        print(f"{key}: largest clean N {s['largest_clean_n']}, switch CPU per call "
              f"{s['switch_cpu_per_call_pct']} % of a core")
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; {result['wall_s']} s")
    if not args.no_write:
        write_results(args.out, args.label, result)


if __name__ == "__main__":
    main()
