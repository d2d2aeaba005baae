"""``softphone load SCRIPT``: one command file as many calls at once, from one process.

Calls start at ``--rate`` per second (the ramp) with at most ``--concurrency`` under way; each is
:func:`softphone.cli.testrun.run_case` on its own Phone (its own connection). ``--calls N`` calls
in all, or with ``--duration S`` as many as start within S seconds. With ``--csv rows.csv`` each
row is one call's variables (``${NAME}`` from the header's names; rows are reused in turn when
``--calls`` is larger); every call also has ``${CALL}`` (1, 2, ...). Every call's file is
substituted and parsed before the first dials (``FILE:LINE``, exit 2).

On a terminal a live view shows calls started, up, passed, failed and setup-time percentiles. The
final report gives, for every timing (dial to ringing and to answer, each ``wait``/``expect``
line, the call and the whole case), n, p50, p95, p99 and max, and the failure causes with their
counts, and how late the event loop ran (frames late: 20 ms wake-ups more than a frame late,
:class:`LoopLag`): as a table (plain text off a terminal), as JSON (``--json``: one ``load.summary`` object),
as CSV (``--report-csv FILE``: one row per call, its variables, result, start offset and timings) and as HTML
(``--html``). Exit 0 only when every call passed (SCRIPT_FAILED, 9, otherwise).
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.cli.exitcodes import ExitCode
from softphone.errors import CommandError

if TYPE_CHECKING:
    from softphone.app.options import Globals
    from softphone.cli.results import CaseResult
    from softphone.cli.testrun import TestCase

__all__ = ["LoopLag", "percentile", "plan_calls", "read_rows", "run_load", "summarize"]

FRAME_S = 0.02
"""One media frame (20 ms): the event loop's pace under load is measured against it."""


class LoopLag:
    """How late the event loop wakes up, sampled every 20 ms while the calls run.

    Every call's media is paced on this loop, so a wake-up more than a frame late is a frame
    (of every call) sent or handled late: ``late`` counts those ("frames late").
    """

    def __init__(self, period: float = FRAME_S) -> None:
        self.period = period
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.period
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            lag = now - due
            self.lags.append(lag)
            due = (now if lag > self.period else due) + self.period  # after a stall, pace from now

    def report(self) -> dict[str, float]:
        late = sum(1 for lag in self.lags if lag > self.period)
        return {"ticks": len(self.lags), "late": late,
                "late_pct": round(100.0 * late / len(self.lags), 2) if self.lags else 0.0,
                "lag_p99_ms": round(1000 * percentile(self.lags, 99), 2),
                "lag_max_ms": round(1000 * max(self.lags, default=0.0), 2)}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return 0.0
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line (CommandError when empty or unnamed columns)."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        if not names or any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n or "") for n in names):
            raise CommandError(f"{path}: the first line must name the columns (letters, digits, _), got {names}")
        rows = [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
    if not rows:
        raise CommandError(f"{path}: no rows")
    return rows


def plan_calls(script: str, calls: int, rows: Sequence[Mapping[str, str]] | None, *,
               text: str | None = None) -> list[TestCase]:
    """Every call's parsed case (variables: the row's, plus CALL), before anything dials."""
    from softphone.cli.testrun import load_case

    body = Path(script).read_text(encoding="utf-8") if text is None else text
    out = []
    stem = Path(script).stem
    for i in range(calls):
        variables = {**(rows[i % len(rows)] if rows else {}), "CALL": str(i + 1)}
        out.append(load_case(script, variables, name=f"{stem}#{i + 1}", text=body))
    return out


def _cause(r: CaseResult) -> str:
    """A failure's cause with the call-specific parts (ids, numbers, quoted text) folded, to count alike ones."""
    f = r.failure
    if f is None:
        return ""
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", f.message)
    msg = re.sub(r"\b[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b|\d+(\.\d+)?", "N", msg)
    return f"L{f.line} {f.command.split(' ')[0]}: {msg}"


def summarize(results: Sequence[CaseResult], *, concurrency: int, rate: float, wall: float,
              cpu: float, loop: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The final report's numbers: totals, per-timing percentiles and failure causes."""
    values: dict[str, list[float]] = {}
    for r in results:
        for k, v in r.timings.items():
            values.setdefault(k, []).append(v)
    timings = {k: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95), "p99": percentile(v, 99),
                   "max": max(v)} for k, v in values.items()}
    causes = Counter(_cause(r) for r in results if not r.passed)
    passed = sum(1 for r in results if r.passed)
    return {"calls": len(results), "passed": passed, "failed": len(results) - passed,
            "pass_rate": passed / len(results) if results else 0.0, "concurrency": concurrency, "rate": rate,
            "wall": round(wall, 3), "cpu": round(cpu, 3), "cpu_pct": round(100 * cpu / wall, 1) if wall else 0.0,
            "timings": {k: {p: round(x, 4) if isinstance(x, float) else x for p, x in v.items()}
                        for k, v in timings.items()},
            "failure_causes": dict(causes.most_common()), "frames_late": dict(loop or {})}


def _write_csv(path: Path, results: Sequence[CaseResult]) -> None:
    var_names = sorted({k for r in results for k in r.variables})
    timing_names = list(dict.fromkeys(k for r in results for k in r.timings))
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["call", *var_names, "passed", "start", "duration", "failure", *timing_names])
        t0 = min((r.started for r in results), default=0.0)
        for r in sorted(results, key=lambda r: r.index):
            f = r.failure
            w.writerow([r.index + 1, *(r.variables.get(k, "") for k in var_names), int(r.passed),
                        f"{r.started - t0:.3f}", f"{r.duration:.3f}",
                        "" if f is None else f"L{f.line} {f.command}: {f.message}",
                        *(f"{r.timings[k]:.4f}" if k in r.timings else "" for k in timing_names)])


class _Live:
    """The live progress view (a TTY) or nothing."""

    def __init__(self, out: Any, tty: bool, total: int | None) -> None:
        self.out, self.tty, self.total = out, tty, total
        self.started = self.up = self.passed = self.failed = 0
        self.setup: list[float] = []
        self._live: Any = None

    def render(self) -> Any:
        from rich.table import Table

        t = Table(title="softphone load", title_justify="left")
        for col in ("started", "up", "passed", "failed", "setup p50", "setup p95"):
            t.add_column(col, justify="right")
        total = f"/{self.total}" if self.total else ""
        t.add_row(f"{self.started}{total}", str(self.up), str(self.passed), str(self.failed),
                  f"{percentile(self.setup, 50):.3f}s", f"{percentile(self.setup, 95):.3f}s")
        return t

    def __enter__(self) -> _Live:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.render(), console=Console(file=self.out, highlight=False), auto_refresh=False,
                              transient=True)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)


def _print_table(out: Any, summary: Mapping[str, Any], tty: bool) -> None:
    late = summary.get("frames_late") or {}
    head = (f"{summary['calls']} calls: {summary['passed']} passed, {summary['failed']} failed; "
            f"wall {summary['wall']:.1f}s, cpu {summary['cpu']:.1f}s ({summary['cpu_pct']:.0f} %)"
            + (f"; frames late {late.get('late', 0)}/{late.get('ticks', 0)} (loop lag p99 "
               f"{late.get('lag_p99_ms', 0):.1f} ms)" if late else ""))
    if not tty:
        out.write(head + "\n")
        out.write(f"{'timing':<28} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}\n")
        for k, v in summary["timings"].items():
            out.write(f"{k:<28} {v['n']:>5} {v['p50']:>8.3f} {v['p95']:>8.3f} {v['p99']:>8.3f} {v['max']:>8.3f}\n")
        for cause, n in summary["failure_causes"].items():
            out.write(f"failed {n}x: {cause}\n")
        out.flush()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, highlight=False)
    t = Table(title="timings (s)", title_justify="left")
    for col in ("timing", "n", "p50", "p95", "p99", "max"):
        t.add_column(col, justify="left" if col == "timing" else "right")
    for k, v in summary["timings"].items():
        t.add_row(escape(k), str(v["n"]), *(f"{v[p]:.3f}" for p in ("p50", "p95", "p99", "max")))
    console.print(t)
    if summary["failure_causes"]:
        c = Table(title="failure causes", title_justify="left")
        c.add_column("calls", justify="right")
        c.add_column("cause")
        for cause, n in summary["failure_causes"].items():
            c.add_row(str(n), escape(cause))
        console.print(c)
    console.print(f"[bold]{escape(head)}")


def run_load(g: Globals, script: Path, *, calls: int | None, concurrency: int, rate: float,
             rows_csv: Path | None = None, duration: float | None = None, json_out: bool = False,
             html: Path | None = None, report_csv: Path | None = None, local: bool = False, audio: bool = False,
             stdout: Any = None) -> int:
    """The ``softphone load`` command (see the module docstring); returns the exit code."""
    from softphone.cli.runtime import run_async

    out = stdout or sys.stdout
    try:
        rows = read_rows(rows_csv) if rows_csv is not None else None
        total = calls if calls is not None else (len(rows) if rows and duration is None else None)
        if total is None and duration is None:
            total = 1
        # With only --duration, plan enough calls for the whole time at the rate (each parsed up front).
        planned = total if total is not None else max(1, int(rate * (duration or 0)) + 1)
        cases = plan_calls(str(script), planned, rows)
    except OSError as exc:
        print(f"error: {exc.filename or script}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    tty = bool(getattr(out, "isatty", lambda: False)()) and not json_out

    async def body(interrupted: asyncio.Event) -> int:
        from softphone.cli.testrun import profile_source, run_case

        results: list[CaseResult] = []
        gate = asyncio.Semaphore(max(1, concurrency))
        live = _Live(out, tty, total)
        tasks: list[asyncio.Task[None]] = []
        import softphone.app.hearing
        import softphone.client.client
        import softphone.media.peer  # noqa: F401  (imported before the loop is measured: not load)

        cpu0, t0 = time.process_time(), time.monotonic()
        lag = LoopLag()
        lag_task = asyncio.create_task(lag.run(), name="loop lag")
        async with profile_source(g, local=local, audio=audio) as profile:
            async def one(case: TestCase, i: int) -> None:
                try:
                    r = await run_case(case, profile, interrupted=interrupted, index=i)
                finally:
                    gate.release()
                    live.up -= 1
                results.append(r)
                if r.passed:
                    live.passed += 1
                else:
                    live.failed += 1
                if "answer" in r.timings:
                    live.setup.append(r.timings["answer"])
                live.update()

            watch = asyncio.ensure_future(interrupted.wait())  # a first Ctrl-C: stop, report what ran (130)
            with live:
                interval = 1.0 / rate if rate > 0 else 0.0
                next_start = time.monotonic()
                for i, case in enumerate(cases):
                    if interrupted.is_set() or (duration is not None and time.monotonic() - t0 >= duration):
                        break
                    await gate.acquire()
                    delay = next_start - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if interrupted.is_set():
                        gate.release()
                        break
                    next_start = max(next_start + interval, time.monotonic() - interval)
                    live.started += 1
                    live.up += 1
                    tasks.append(asyncio.create_task(one(case, i), name=f"load call {i + 1}"))
                    live.update()
                await asyncio.gather(*tasks)
            watch.cancel()
        lag_task.cancel()
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        results.sort(key=lambda r: r.index)
        summary = summarize(results, concurrency=concurrency, rate=rate, wall=wall, cpu=cpu, loop=lag.report())
        if json_out:
            out.write(json.dumps({"v": 1, "type": "load.summary", "ts": round(time.time(), 3), **summary}) + "\n")
            out.flush()
        else:
            _print_table(out, summary, tty)
        if report_csv is not None:
            _write_csv(report_csv, results)
        if html is not None:
            from softphone.cli.report_html import render_load_report

            html.write_text(render_load_report(results, summary), encoding="utf-8")
        if interrupted.is_set():
            return ExitCode.INTERRUPTED
        return ExitCode.OK if results and summary["failed"] == 0 else ExitCode.SCRIPT_FAILED

    return run_async(g, body)
