"""Signaling cost of the switch: call setups per second to ``reject`` and ``busy``, and idle clients.

The switch runs in its own process (``bench/signaling.py serve``, a :class:`softphone.switch.app.Switch`
on a free loopback port with a generated accounts file: one connection with one telephony
credential per client). The clients are lean: raw websockets and JSON-RPC Verto frames built with
:mod:`softphone.protocol.verto` (no aiortc, no media), in their own processes.

1. **setups/s**: ``C`` clients log in, then each places calls back to back for ``T`` seconds: an
   invite with a real (loopback) SDP offer, made once by aiortc at the start, to ``reject`` (the
   switch byes CALL_REJECTED) or ``busy`` (ringing, then USER_BUSY after 1 s). A setup is one invite
   answered by a bye; the figure is setups/s, with the switch's CPU over the window (``/proc``
   utime+stime, % of one core) and CPU-ms per setup, whose inverse is what one core would carry
   (``per_core_s``: a figure that holds when the machine is shared).
2. **idle clients**: log in ``N`` clients (1,000 then 10,000) in bursts of 50, one burst at a time,
   spread over several client processes (each raises RLIMIT_NOFILE); per burst, login p50/p99 (the
   ``login`` request to its result, and connect plus login); the switch's RSS delta / sessions; then
   the switch's idle CPU with all of them connected.

Results go into ``bench/results.json`` under ``"signaling"`` (other keys untouched), with the load
average at the start and end. ``--baseline DIR`` runs every figure twice in the same run, once with
the switch of another tree (``git archive <commit> | tar -x -C DIR``), and adds ours/baseline ratios.
Measured, never asserted::

    .venv/bin/python bench/signaling.py [--clients 1000,10000] [--seconds 5] [--baseline DIR] [--label after]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The switch process of a --baseline run imports softphone from that tree instead.
sys.path.insert(0, os.environ.get("SIGNALING_SWITCH_SRC") or str(ROOT))

from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from softphone.protocol import verto  # noqa: E402
from softphone.protocol.jsonrpc import build_request, build_result  # noqa: E402

BURST = 50
IDLE_S = 35.0
GC_FREEZE = True
"""Run the switch with its idle-session GC policy, as ``softphone switch serve`` does (--no-gc-freeze: without)."""
PASSWORD = "bench-secret-not-real"  # a generated, throw-away accounts file on loopback
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def user(i: int) -> str:
    return f"bench{i:05d}"


def write_accounts(path: Path, count: int) -> None:
    lines = ['jwt_secret = "bench-only-secret"', "", "[[connection]]", 'id = "bench"', f'password = "{PASSWORD}"', ""]
    for i in range(count):
        lines += ["[[connection.credential]]", f'username = "{user(i)}"', f'password = "{PASSWORD}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")


# --- the switch process ---------------------------------------------------------------------------


async def serve(accounts: str, gc_freeze: bool) -> None:
    import logging

    from softphone.switch.accounts import load_accounts
    from softphone.switch.app import Switch

    logging.basicConfig(level=logging.ERROR)
    raise_nofile()
    sw = Switch(accounts=load_accounts(accounts), port=0, records_path=os.devnull, call_control=False)
    if gc_freeze:  # as `softphone switch serve` does
        from softphone.switch.gc_freeze import IdleFreezer

        sw.gc_freezer = IdleFreezer()
    await sw.start()
    from softphone.switch.media_legs import ensure_media

    await ensure_media()
    print(f"PORT {sw.port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await sw.stop()


class Switch:
    """The switch process and its /proc figures."""

    def __init__(self, accounts: Path, src: str | None = None) -> None:
        extra = [] if GC_FREEZE and src is None else ["no-gc-freeze"]
        env = dict(os.environ)
        env.pop("SIGNALING_SWITCH_SRC", None)
        if src is not None:
            env["SIGNALING_SWITCH_SRC"] = src
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(accounts), *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"switch did not start: {line!r}")
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- a lean Verto client -----------------------------------------------------------------------------


class Lean:
    """One websocket, logged in as one credential; acks every server request."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.sessid = ""
        self.ids = 0
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.byes: dict[str, asyncio.Future[str]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "method" in msg:
                    if "id" in msg:
                        await self.ws.send(build_result(msg["id"], {"method": msg["method"]}))
                    if msg["method"] == verto.BYE:
                        p = msg["params"]
                        fut = self.byes.pop(p.get("callID", ""), None)
                        if fut is not None and not fut.done():
                            fut.set_result(str(p.get("cause", "")))
                else:
                    fut2 = self.waiting.pop(str(msg.get("id")), None)
                    if fut2 is not None and not fut2.done():
                        fut2.set_result(msg)
        except Exception:
            pass

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        key = f"{os.getpid()}-{self.ids}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[key] = fut
        await self.ws.send(build_request(key, method, params))
        return await fut

    async def login(self, username: str) -> None:
        params = verto.login_params(
            login=username, passwd=PASSWORD, login_token=None, sessid=None, reconnection=False,
            sdk_version="2.27.10", user_agent="bench/signaling",
        )
        res = await self.call(verto.LOGIN, params)
        if "result" not in res:
            raise RuntimeError(f"login failed: {res}")
        self.sessid = res["result"]["sessid"]

    async def setup(self, dest: str, sdp: str) -> str:
        call_id = str(uuid.uuid4())
        bye: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.byes[call_id] = bye
        dialog = verto.CallDialog(call_id=call_id, destination=dest, caller_name="bench", caller_number="bench")
        res = await self.call(verto.INVITE, verto.invite_params(self.sessid, sdp, dialog, "bench/signaling"))
        if "result" not in res:
            self.byes.pop(call_id, None)
            raise RuntimeError(f"invite refused: {res}")
        return await asyncio.wait_for(bye, 30)


async def connect(url: str) -> Lean:
    ws = await ws_connect(url, ping_interval=None, max_size=2**20, open_timeout=60)
    return Lean(ws)


# --- worker processes ----------------------------------------------------------------------------------


async def setups_worker(url: str, first: int, count: int, dest: str, seconds: float, sdp: str) -> None:
    raise_nofile()
    clients = [await connect(url) for _ in range(count)]
    await asyncio.gather(*(c.login(user(first + i)) for i, c in enumerate(clients)))
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # GO
    done = 0
    causes: dict[str, int] = {}
    stop = time.monotonic() + seconds

    async def loop(c: Lean) -> None:
        nonlocal done
        while time.monotonic() < stop:
            cause = await c.setup(dest, sdp)
            causes[cause] = causes.get(cause, 0) + 1
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(loop(c) for c in clients))
    print(json.dumps({"setups": done, "wall": time.monotonic() - t0, "causes": causes}), flush=True)
    for c in clients:
        await c.ws.close()


async def idle_worker(url: str) -> None:
    """Reads ``burst FIRST COUNT`` lines; logs in that many clients at once and keeps them open."""
    raise_nofile()
    clients: list[Lean] = []
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        _, first, count = line.split()

        async def one(i: int) -> tuple[float, float]:
            t0 = time.perf_counter()
            c = await connect(url)
            t1 = time.perf_counter()
            await c.login(user(i))
            t2 = time.perf_counter()
            clients.append(c)
            return (t2 - t1) * 1000, (t2 - t0) * 1000

        rows = await asyncio.gather(*(one(int(first) + k) for k in range(int(count))))
        print(json.dumps({"login_ms": [r[0] for r in rows], "connect_login_ms": [r[1] for r in rows]}), flush=True)
    for c in clients:  # no closing handshakes: 2,500 of them one by one take minutes against a busy switch
        c.reader.cancel()
        c.ws.transport.abort()


def worker(args: list[str], stdin: bool = True) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


# --- the measurements ----------------------------------------------------------------------------------


async def make_offer() -> str:
    from softphone.media.peer import MediaPeer, PeerOptions

    peer = MediaPeer(PeerOptions.loopback())
    try:
        return await peer.create_offer()
    finally:
        await peer.close()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def measure_setups(
    dest: str, clients: int, procs: int, seconds: float, sdp: str, tmp: Path, src: str | None = None
) -> dict[str, Any]:
    accounts = tmp / f"setups-{dest}.toml"
    write_accounts(accounts, clients)
    sw = Switch(accounts, src)
    sdp_file = tmp / "offer.sdp"
    sdp_file.write_text(sdp)
    try:
        per = clients // procs
        argv = ["setups", sw.url, "0", str(per), dest, str(seconds), str(sdp_file)]
        ws = [worker([*argv[:2], str(k * per), *argv[3:]]) for k in range(procs)]
        for w in ws:
            assert w.stdout is not None
            if w.stdout.readline().strip() != "READY":
                raise RuntimeError("a setups worker did not log in")
        cpu0, t0 = sw.cpu_s(), time.monotonic()
        for w in ws:
            assert w.stdin is not None
            w.stdin.write("GO\n")
            w.stdin.flush()
        outs = []
        for w in ws:
            assert w.stdout is not None
            outs.append(json.loads(w.stdout.readline()))
        cpu1, t1 = sw.cpu_s(), time.monotonic()
        for w in ws:
            w.wait(30)
    finally:
        sw.close()
    setups = sum(o["setups"] for o in outs)
    causes: dict[str, int] = {}
    for o in outs:
        for k, v in o["causes"].items():
            causes[k] = causes.get(k, 0) + v
    wall = t1 - t0
    cpu = cpu1 - cpu0
    return {
        "dest": dest, "clients": clients, "client_procs": procs, "seconds": round(wall, 2), "setups": setups,
        "setups_per_s": round(setups / wall, 1), "switch_cpu_pct": round(100 * cpu / wall, 1),
        "switch_cpu_ms_per_setup": round(1000 * cpu / setups, 3) if setups else None,
        "per_core_s": round(setups / cpu, 1) if cpu else None, "causes": causes,
    }


def measure_idle(
    count: int, procs: int, tmp: Path, src: str | None = None, idle_s: float = IDLE_S
) -> dict[str, Any]:
    accounts = tmp / f"idle-{count}.toml"
    write_accounts(accounts, count)
    sw = Switch(accounts, src)
    ws: list[subprocess.Popen[str]] = []
    try:
        time.sleep(1.0)
        rss0 = sw.rss_kb()
        ws = [worker(["idle", sw.url]) for _ in range(procs)]
        time.sleep(1.0)  # let the workers import before the first burst
        login: list[float] = []
        both: list[float] = []
        burst_p99: list[float] = []
        t0 = time.monotonic()
        for b, first in enumerate(range(0, count, BURST)):
            w = ws[b % procs]
            assert w.stdin is not None and w.stdout is not None
            w.stdin.write(f"burst {first} {min(BURST, count - first)}\n")
            w.stdin.flush()
            row = json.loads(w.stdout.readline())
            login += row["login_ms"]
            both += row["connect_login_ms"]
            burst_p99.append(pct(row["login_ms"], 0.99))
        login_wall = time.monotonic() - t0
        time.sleep(2.0)
        rss1 = sw.rss_kb()
        cpu0, c0 = sw.cpu_s(), time.monotonic()
        time.sleep(idle_s)  # 35 s by default: longer than the switch's 30 s ping interval
        idle_cpu = 100 * (sw.cpu_s() - cpu0) / (time.monotonic() - c0)
    finally:
        for w in ws:
            assert w.stdin is not None
            w.stdin.write("quit\n")
            w.stdin.flush()
        for w in ws:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        sw.close()
    return {
        "clients": count, "client_procs": procs, "burst": BURST, "login_wall_s": round(login_wall, 1),
        "login_p50_ms": round(statistics.median(login), 2), "login_p99_ms": round(pct(login, 0.99), 2),
        "connect_login_p50_ms": round(statistics.median(both), 2),
        "connect_login_p99_ms": round(pct(both, 0.99), 2),
        "worst_burst_p99_ms": round(max(burst_p99), 2),
        "rss_before_mb": round(rss0 / 1024, 1), "rss_after_mb": round(rss1 / 1024, 1),
        "rss_kb_per_session": round((rss1 - rss0) / count, 1), "idle_cpu_pct": round(idle_cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1000,10000", help="idle client counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each setups run")
    parser.add_argument("--reject-clients", type=int, default=50)
    parser.add_argument("--busy-clients", type=int, default=400)
    parser.add_argument("--procs", type=int, default=2, help="client processes for setups")
    parser.add_argument("--idle-procs", type=int, default=4, help="client processes for idle clients")
    parser.add_argument("--label", default="current", help="key of this run under signaling.runs")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--idle-seconds", type=float, default=IDLE_S, help="how long the idle CPU is measured")
    parser.add_argument("--skip-setups", action="store_true")
    parser.add_argument("--no-gc-freeze", action="store_true", help="the switch without its GC policy")
    parser.add_argument("--baseline", metavar="DIR", help="also run the switch of another tree (e.g. `git archive "
                        "<commit> | tar -x -C DIR`), each figure side by side, with ratios")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()
    global GC_FREEZE
    GC_FREEZE = not args.no_gc_freeze
    raise_nofile()
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
                           "git": _git_head(), "gc_freeze": GC_FREEZE, "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        srcs: list[tuple[str, str | None]] = [("ours", None)]
        if args.baseline:
            srcs.insert(0, ("baseline", str(Path(args.baseline).resolve())))
            res["baseline_src"] = args.baseline
        if not args.skip_setups:
            sdp = asyncio.run(make_offer())
            for dest, n in (("reject", args.reject_clients), ("busy", args.busy_clients)):
                for name, src in srcs:
                    row = measure_setups(dest, n, args.procs, args.seconds, sdp, tmp, src)
                    print(dest, name, row, flush=True)
                    res.setdefault(name, {})[dest] = row
        if not args.skip_idle:
            for n in (int(x) for x in args.clients.split(",") if x):
                for name, src in srcs:
                    row = measure_idle(n, args.idle_procs, tmp, src, args.idle_seconds)
                    print("idle", name, row, flush=True)
                    res.setdefault(name, {}).setdefault("idle", []).append(row)
        if args.baseline:
            res["ratios"] = _ratios(res["ours"], res["baseline"])
            print("ratios (ours / baseline)", json.dumps(res["ratios"], indent=1), flush=True)
    res["loadavg_end"] = os.getloadavg()
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    sig = data.setdefault("signaling", {})
    sig.setdefault("runs", {})[args.label] = res
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))


RATIO_KEYS = ("setups_per_s", "switch_cpu_ms_per_setup", "per_core_s", "login_p50_ms", "login_p99_ms",
              "worst_burst_p99_ms", "rss_kb_per_session", "idle_cpu_pct")


def _ratios(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    def one(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
        return {k: (round(a[k] / b[k], 3) if b.get(k) else None) for k in RATIO_KEYS if k in a and k in b}

    out: dict[str, Any] = {d: one(ours[d], base[d]) for d in ("reject", "busy") if d in ours and d in base}
    for a, b in zip(ours.get("idle", []), base.get("idle", []), strict=False):
        out[f"idle_{a['clients']}"] = one(a, b)
    return out


def _git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], gc_freeze=sys.argv[3:4] != ["no-gc-freeze"]))
    elif len(sys.argv) > 1 and sys.argv[1] == "setups":
        url, first, count, dest, seconds, sdp_path = sys.argv[2:8]
        asyncio.run(setups_worker(url, int(first), int(count), dest, float(seconds), Path(sdp_path).read_text()))
    elif len(sys.argv) > 1 and sys.argv[1] == "idle":
        asyncio.run(idle_worker(sys.argv[2]))
    else:
        main()
