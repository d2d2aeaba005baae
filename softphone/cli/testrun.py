"""``softphone test FILES...``: command files as test cases, with reports CI reads.

Each file is one test case, run through the command files' machinery
(:func:`softphone.cli.script.parse_script` and the command table): every file is parsed
(``${NAME}`` from ``--var`` or the environment) before anything dials, so a typo is ``FILE:LINE`` and
exit USAGE (2). Cases run ``--jobs`` at a time in one process, each with its own
:class:`~softphone.app.phone.Phone` (its own connection); with ``--local`` they share one
in-process switch. A case passes when every line ran; the first failing line fails it, and
the failure names the file, the line, the command and what was expected and heard.

Artifacts (``--artifacts DIR``, default ``softphone-artifacts``): per case a folder with
``transcript.txt`` (the case's output lines and events) and ``last.wav``, the last
:data:`RECORD_TAIL_S` seconds of its last call recorded in stereo (your side left, the far end
right: the ``--record`` machinery). Reports: ``--junit`` (JUnit XML the way pytest writes it),
``--json`` (one NDJSON ``test.case`` object per case, then ``test.summary``), ``--html`` (one
self-contained page, :mod:`softphone.cli.report_html`). On a terminal a progress bar runs and a
summary table closes; otherwise one plain line per case. Exit 0 only when every case passed
(SCRIPT_FAILED, 9, otherwise).

:func:`run_case` is also what ``softphone load`` runs for each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sys
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from softphone.app.commands import CheckFailed, CommandContext, QuitRequested
from softphone.app.options import CallOptions
from softphone.cli.exitcodes import ExitCode
from softphone.cli.results import CaseResult, Failure
from softphone.errors import CommandError, SoftphoneError

if TYPE_CHECKING:
    from softphone.app.options import Globals
    from softphone.app.phone import Phone
    from softphone.app.snapshot import PhoneEvent
    from softphone.cli.script import ScriptLine
    from softphone.config import Profile

__all__ = [
    "RECORD_TAIL_S",
    "CaseResult",
    "Failure",
    "TestCase",
    "junit_xml",
    "load_case",
    "run_case",
    "run_tests",
]

RECORD_TAIL_S = 10.0
"""How much of a case's last call ``last.wav`` keeps."""

@dataclass(frozen=True)
class TestCase:
    """A parsed command file."""

    __test__ = False  # not a pytest class

    name: str
    file: str
    lines: list[ScriptLine]
    variables: dict[str, str] = field(default_factory=dict)


def load_case(file: str, variables: Mapping[str, str] | None = None, *, name: str | None = None,
              text: str | None = None) -> TestCase:
    """Read and parse one file, ``${NAME}`` from ``variables`` or the environment (the command files' own
    rules: :func:`softphone.cli.script.parse_script`); :class:`CommandError` ``FILE:LINE: ...``; OSError."""
    from softphone.cli.script import parse_script

    body = Path(file).read_text(encoding="utf-8") if text is None else text
    vars_ = dict(variables or {})
    lines = parse_script(body, file, vars_)
    return TestCase(name or Path(file).stem, file, lines, vars_)


# --- running one case -------------------------------------------------------------------------

ProfileFor = Callable[[Path | None], "Profile"]


def _timings(events: Sequence[dict[str, Any]], t0: float) -> dict[str, float]:
    """The first call's timings from its events: dial to ringing (post_dial_delay), to answer, answer to
    hangup (talk)."""
    out: dict[str, float] = {}
    first: str | None = None
    created = answered = None
    for e in events:
        cid = e.get("call_id")
        if e["type"] == "call.created" and first is None:
            first, created = cid, e["t"]
        if cid is None or cid != first or created is None:
            continue
        new = e["data"].get("new") if e["type"] == "call.state" else None
        if new in ("ringing", "early") and "post_dial_delay" not in out:
            out["post_dial_delay"] = e["t"] - created
        if new == "active" and answered is None:
            answered = e["t"]
            out["answer"] = answered - created
        if e["type"] == "call.hangup" and answered is not None and "talk" not in out:
            out["talk"] = e["t"] - answered
    del t0
    return out


def _keep_tail(full: Path, tail: Path, seconds: float) -> None:
    """Write the last ``seconds`` of WAV ``full`` to ``tail`` and delete ``full``."""
    try:
        with wave.open(str(full), "rb") as src:
            params = src.getparams()
            n = src.getnframes()
            keep = min(n, int(seconds * params.framerate))
            src.setpos(n - keep)
            data = src.readframes(keep)
        with wave.open(str(tail), "wb") as dst:
            dst.setparams(params)
            dst.writeframes(data)
    except (OSError, wave.Error, EOFError):
        return
    full.unlink(missing_ok=True)


async def run_case(case: TestCase, profile: Profile, *, artifacts: Path | None = None,
                   interrupted: asyncio.Event | None = None, index: int = 0,
                   on_line: Callable[[CaseResult, ScriptLine], None] | None = None) -> CaseResult:
    """Run ``case`` on a fresh Phone; never raises for the case's own failures (they are in the result)."""
    from softphone.app.phone import Phone
    from softphone.cli.script import listen_mode
    from softphone.log import redact

    result = CaseResult(case.name, case.file, time.time(), variables=dict(case.variables), index=index)
    t0 = time.monotonic()
    full_wav: Path | None = None
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
        full_wav = artifacts / "call.wav"
        profile = replace(profile, record_file=str(full_wav), record_mode="stereo")
        result.artifacts = str(artifacts)

    def say(text: str) -> None:
        result.output.append(redact(text))

    def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        say(title)
        say("  ".join(columns))
        for row in rows:
            say("  ".join(row))

    def on_event(e: PhoneEvent) -> None:
        data = {k: v for k, v in e.data.items() if not isinstance(v, dict | list)}
        result.events.append({"t": round(time.monotonic() - t0, 4), "type": e.type, "call_id": e.call_id,
                              "data": data})
        if e.type == "call.stats":
            result.stats = data

    current: ScriptLine | None = None
    try:
        async with Phone(profile, history=None) as phone:
            stop_watching = phone.on_event(on_event)
            ctx = CommandContext(phone=phone, say=say, table=table)
            phone.listen = listen_mode(case.lines)  # hear (and recognise speech) only when the file needs it
            try:
                try:
                    if not any(line.command.name == "login" for line in case.lines):
                        await phone.login()
                    for line in case.lines:
                        if interrupted is not None and interrupted.is_set():
                            result.failure = Failure(line.lineno, line.text, "interrupted", "error")
                            break
                        current = line
                        if on_line is not None:
                            on_line(result, line)
                        phone.emit("script.line", file=case.file, line=line.lineno, command=redact(line.text))
                        started = time.monotonic()
                        try:
                            if not await _until_interrupted(line.command.handler(ctx, line.args), interrupted):
                                result.failure = Failure(line.lineno, redact(line.text), "interrupted", "error")
                                break
                        except QuitRequested:
                            break
                        if line.command.name in ("wait", "expect"):
                            waited = time.monotonic() - started
                            result.timings[f"L{line.lineno} {line.command.name}"] = waited
                            phone.emit("script.check", line=line.lineno, ok=True, seconds=round(waited, 3))
                    current = None
                except CheckFailed as exc:
                    result.failure = _failure(current, exc, "failure")
                    if current is not None:
                        phone.emit("script.check", line=current.lineno, ok=False, seconds=None)
                except (SoftphoneError, OSError, TimeoutError) as exc:
                    result.failure = _failure(current, exc, "error")
                result.heard = await _heard(phone)  # before the hangups: what each call heard
                with contextlib.suppress(SoftphoneError, OSError, TimeoutError):
                    await phone.hangup_all()
                    await asyncio.sleep(0.2)  # the hangups' events arrive
                result.timings.update(_phone_timings(phone, result))
            finally:
                stop_watching()
    except (SoftphoneError, OSError, TimeoutError) as exc:  # the phone itself (start, close)
        result.failure = result.failure or _failure(current, exc, "error")
    result.duration = time.monotonic() - t0
    result.timings = {**_timings(result.events, t0), **result.timings, "case": result.duration}
    if artifacts is not None:
        if full_wav is not None and full_wav.exists():
            await asyncio.to_thread(_keep_tail, full_wav, artifacts / "last.wav", RECORD_TAIL_S)
        (artifacts / "transcript.txt").write_text(_transcript(result), encoding="utf-8")
    return result


async def _until_interrupted(work: Awaitable[None], interrupted: asyncio.Event | None) -> bool:
    """Run ``work``; False (it is cancelled) when ``interrupted`` is set first (Ctrl-C)."""
    if interrupted is None:
        await work
        return True
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False


async def _heard(phone: Phone) -> dict[str, str]:
    """What each call of the case heard (speech recognised), by call name or id prefix."""
    if phone.listen != "speech":
        return {}
    out: dict[str, str] = {}
    for snap in phone.snapshot.calls:
        try:
            hearing = await phone.hearing(snap.id)
        except CommandError:  # not listened to
            continue
        out[phone.call_name(snap.id) or snap.id[:8]] = hearing.transcript()
    return out


def _phone_timings(phone: Phone, result: CaseResult) -> dict[str, float]:
    """The Phone's own timings of the case's calls (first call first; numbers only), its quality figures
    into ``result.stats`` where the ``call.stats`` events left them unset."""
    out: dict[str, float] = {}
    for snap in phone.snapshot.calls:
        values = phone.timings(snap.id)
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.setdefault(str(key), float(value))
        for i, entry in enumerate(values.get("expects") or []):
            if isinstance(entry, dict) and isinstance(entry.get("latency_s"), int | float):
                # e.g. "E1 speech latency": how long after the phrase ended the expectation answered
                kind = str(entry.get("expect", "")).split(" ", 1)[0]
                out.setdefault(f"E{i + 1} {kind} latency", float(entry["latency_s"]))
        for key, value in (values.get("quality") or {}).items():
            if value is not None:
                result.stats.setdefault(key, value)
    return out


def _failure(line: ScriptLine | None, exc: BaseException, kind: str) -> Failure:
    from softphone.log import redact

    message = redact(str(exc) or type(exc).__name__)
    if line is None:
        return Failure(0, "(setup)", message, "error")
    return Failure(line.lineno, redact(line.text), message, kind)


def _transcript(result: CaseResult) -> str:
    lines = [f"# {result.file}: {'PASS' if result.passed else 'FAIL'} in {result.duration:.2f}s"]
    if result.failure is not None:
        f = result.failure
        lines.append(f"# {result.file}:{f.line}: {f.command}: {f.message}")
    lines.append("## output")
    lines.extend(result.output)
    if result.heard:
        lines.append("## heard")
        lines.extend(f"{call}: {text}" for call, text in result.heard.items())
    lines.append("## events")
    for e in result.events:
        data = " ".join(f"{k}={v}" for k, v in e["data"].items())
        lines.append(f"{e['t']:9.3f} {e['type']} {(e['call_id'] or '')[:8]} {data}".rstrip())
    return "\n".join(lines) + "\n"


# --- the run ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def profile_source(g: Globals, *, local: bool, audio: bool) -> AsyncIterator[Profile]:
    """The profile every case uses (the local switch's with ``--local``); no devices unless ``audio``."""
    from softphone.cli.runtime import apply_audio, load_profile, preflight

    async with contextlib.AsyncExitStack() as stack:
        url: str | None = None
        if local:
            from softphone.switch import Switch

            switch = Switch(host="127.0.0.1", port=0)
            await stack.enter_async_context(switch)
            url = switch.url
        profile = apply_audio(load_profile(g, url), CallOptions(local=local, no_audio=not audio))
        profile = replace(profile, ringback=False, ringtone=False) if not audio else profile
        await asyncio.to_thread(preflight, profile)
        yield profile


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "case"


def junit_xml(results: Sequence[CaseResult], *, suite: str = "softphone", started: float | None = None) -> str:
    """JUnit XML as pytest writes it (``testsuites/testsuite/testcase`` with ``failure``/``error``)."""
    failures = sum(1 for r in results if r.failure is not None and r.failure.kind == "failure")
    errors = sum(1 for r in results if r.failure is not None and r.failure.kind != "failure")
    total = sum(r.duration for r in results)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started if started is not None else time.time()))
    root = ET.Element("testsuites", name=suite, tests=str(len(results)), failures=str(failures),
                      errors=str(errors), skipped="0", time=f"{total:.3f}")
    ts = ET.SubElement(root, "testsuite", name=suite, errors=str(errors), failures=str(failures), skipped="0",
                       tests=str(len(results)), time=f"{total:.3f}", timestamp=stamp, hostname=socket.gethostname())
    for r in results:
        # No file/line attributes: pytest's xunit2 family drops them too (the Jenkins schema has none);
        # the failure message starts with FILE:LINE instead.
        tc = ET.SubElement(ts, "testcase", classname=_classname(r.file), name=r.name, time=f"{r.duration:.3f}")
        if r.failure is not None:
            f = r.failure
            el = ET.SubElement(tc, "failure" if f.kind == "failure" else "error",
                               message=f"{r.file}:{f.line}: {f.command}: {f.message}",
                               type="CheckFailed" if f.kind == "failure" else "Error")
            el.text = _transcript(r)
        out = ET.SubElement(tc, "system-out")
        out.text = "\n".join(r.output) + (f"\nartifacts: {r.artifacts}" if r.artifacts else "")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(file: str) -> str:
    parts = Path(file).with_suffix("").parts
    return ".".join(_safe(p) for p in parts if p not in ("", ".", "..", "/")) or "softphone"


def _line(r: CaseResult) -> str:
    if r.passed:
        return f"PASS {r.file} ({r.duration:.1f}s)"
    f = r.failure
    assert f is not None
    return f"FAIL {r.file}:{f.line}: {f.command}: {f.message} ({r.duration:.1f}s)"


def run_tests(g: Globals, files: Sequence[str], *, jobs: int = 1, junit: Path | None = None,
              json_out: bool = False, html: Path | None = None, local: bool = False, audio: bool = False,
              artifacts: Path | None = Path("softphone-artifacts"),
              variables: Mapping[str, str] | None = None, stdout: Any = None) -> int:
    """The ``softphone test`` command (see the module docstring); returns the exit code."""
    from softphone.cli.runtime import run_async

    out = stdout or sys.stdout
    cases: list[TestCase] = []
    try:
        for file in files:
            cases.append(load_case(file, variables))
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    names: dict[str, int] = {}
    for c in cases:  # unique artifact folders for files with the same stem
        names[c.name] = names.get(c.name, 0) + 1
    tty = bool(getattr(out, "isatty", lambda: False)()) and not json_out

    async def body(interrupted: asyncio.Event) -> int:
        started = time.time()
        results: list[CaseResult | None] = [None] * len(cases)
        gate = asyncio.Semaphore(max(1, jobs))
        progress = _Progress(out, len(cases), tty=tty, json_out=json_out)
        async with profile_source(g, local=local, audio=audio) as profile:
            async def one(i: int, case: TestCase) -> None:
                async with gate:
                    if interrupted.is_set():
                        return  # not started: not in the reports
                    folder = None
                    if artifacts is not None:
                        folder = artifacts / (_safe(case.name) + (f"-{i + 1}" if names[case.name] > 1 else ""))
                    progress.start(case)
                    r = await run_case(case, profile, artifacts=folder, interrupted=interrupted, index=i)
                    results[i] = r
                    progress.done(r)

            with progress:
                # Waiting on `interrupted` tells run_async that a first Ctrl-C is handled here: the cases
                # stop at their current line and the reports are still written (exit 130).
                watch = asyncio.ensure_future(interrupted.wait())
                try:
                    await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))
                finally:
                    watch.cancel()
        done = [r for r in results if r is not None]
        progress.summary(done)
        if junit is not None:
            junit.write_text(junit_xml(done, started=started), encoding="utf-8")
        if html is not None:
            from softphone.cli.report_html import render_test_report

            html.write_text(render_test_report(done, title="softphone test"), encoding="utf-8")
        if interrupted.is_set():
            return ExitCode.INTERRUPTED
        return ExitCode.OK if all(r.passed for r in done) else ExitCode.SCRIPT_FAILED

    return run_async(g, body)


class _Progress:
    """A rich progress bar and closing table on a terminal; plain lines (or NDJSON) otherwise."""

    def __init__(self, out: Any, total: int, *, tty: bool, json_out: bool) -> None:
        self.out, self.total, self.tty, self.json = out, total, tty, json_out
        self._progress: Any = None
        self._task: Any = None
        self.failed = 0

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("[bold]softphone test"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                      console=Console(file=self.out, highlight=False), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("cases", total=self.total, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, case: TestCase) -> None:
        if self._progress is not None:
            self._progress.update(self._task, status=f"running {case.file}")

    def done(self, r: CaseResult) -> None:
        self.failed += 0 if r.passed else 1
        if self.json:
            record = r.as_dict()
            record.pop("events")
            self.out.write(json.dumps({"v": 1, "type": "test.case", "ts": round(time.time(), 3), **record}) + "\n")
            self.out.flush()
        elif self._progress is not None:
            self._progress.update(self._task, advance=1, status=f"[red]{self.failed} failed" if self.failed else "")
            if not r.passed:
                self._progress.console.print(f"[red]{_escape(_line(r))}")
        else:
            self.out.write(_line(r) + "\n")
            self.out.flush()

    def summary(self, results: Sequence[CaseResult]) -> None:
        passed = sum(1 for r in results if r.passed)
        if self.json:
            self.out.write(json.dumps({"v": 1, "type": "test.summary", "ts": round(time.time(), 3),
                                       "tests": len(results), "passed": passed,
                                       "failed": len(results) - passed,
                                       "duration": round(sum(r.duration for r in results), 3)}) + "\n")
            self.out.flush()
            return
        if not self.tty:
            self.out.write(f"{passed} passed, {len(results) - passed} failed\n")
            self.out.flush()
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="softphone test", title_justify="left")
        for col in ("result", "file", "time", "failure"):
            table.add_column(col)
        for r in results:
            f = r.failure
            table.add_row("[green]PASS" if r.passed else "[red]FAIL", _escape(r.file), f"{r.duration:.1f}s",
                          "" if f is None else _escape(f"line {f.line}: {f.command}: {f.message}"))
        console = Console(file=self.out, highlight=False)
        console.print(table)
        console.print(f"[bold]{passed} passed, {len(results) - passed} failed")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
