"""How one-shots and scripts show a running phone: live panel, plain lines or NDJSON.

* ``--json``: one NDJSON object per event on stdout (:mod:`softphone.app.events_json`);
  messages and the summary go to stderr as text, so stdout stays machine-readable.
* stdout is a TTY: a ``rich.live.Live(auto_refresh=False)`` panel redrawn on each
  snapshot (at most ten times a second), messages printed above it.
* otherwise: one plain line per event (``call.stats`` only with ``-v``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table

from softphone.app.events_json import dumps
from softphone.app.snapshot import PhoneEvent, Snapshot
from softphone.ui.panel import render, safe

if TYPE_CHECKING:
    from softphone.app.phone import Phone
    from softphone.cli.exitcodes import ExitCode

#: The per-call keys of the closing ``summary`` event (docs/events.md).
_SUMMARY_KEYS = ("id", "direction", "remote", "duration", "cause", "codec", "mos", "cost")

__all__ = ["Display"]

_MIN_REDRAW = 0.1


def _num(value: object, spec: str) -> str:
    """A number as people read it (``jitter=2.7ms``, ``cost=$0.000026``), not ``2.6666666666666665``/``2.6e-05``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _plain(event: PhoneEvent) -> str | None:
    d = event.data
    stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
    cid = f" [{event.call_id[:8]}]" if event.call_id else ""
    t = event.type
    if t in ("client.state", "call.state"):
        text = f"{d.get('old', '')} -> {d.get('new', '')}"
    elif t == "socket.reconnecting":
        text = f"attempt {d.get('attempt')} in {d.get('delay')}s"
    elif t == "client.ready":
        text = f"dc {d.get('dc') or '-'} region {d.get('region') or '-'}"
    elif t == "client.gateway_state":
        text = str(d.get("state", ""))
    elif t in ("call.dtmf", "call.dtmf_sent"):
        text = str(d.get("digits", ""))
    elif t == "call.hangup":
        text = f"{d.get('cause') or ''}" + (f" (SIP {d['sip_code']})" if d.get("sip_code") else "")
    elif t == "call.stats":
        text = (f"{d.get('codec') or '-'} rtt={_num(d.get('rtt_ms'), '.0f')}ms "
                f"jitter={_num(d.get('jitter_ms'), '.1f')}ms "
                f"loss={_num(d.get('loss_pct'), '.1f')}% mos={_num(d.get('mos'), '.2f')} "
                f"in={_num(d.get('input_level'), '.2f')} out={_num(d.get('output_level'), '.2f')} "
                f"cost=${_num(d.get('cost'), '.6f')}")
    elif t in ("call.created", "call.incoming"):
        text = f"{d.get('direction', '')} {d.get('remote', '')}"
    else:
        text = " ".join(f"{k}={_num(v, '.4g')}" for k, v in d.items() if not isinstance(v, dict | list))
    from softphone.log import redact

    return redact(f"{stamp} {t}{cid} {text}".rstrip()).replace("\x1b", "")


class Display:
    """Attach to a :class:`Phone` for the duration of a one-shot or script."""

    def __init__(self, phone: Phone, *, json: bool, verbosity: int = 0, stdout: TextIO | None = None,
                 title: str = "softphone") -> None:
        self.phone = phone
        self.json = json
        self.verbosity = verbosity
        self.stdout = stdout or sys.stdout
        self.tty = self.stdout.isatty() and not json
        self.console = Console(file=self.stdout, highlight=False)
        self.err = Console(file=sys.stderr, highlight=False)
        self.title = title
        self._live: Live | None = None
        self._last_draw = 0.0
        self._unsubs: list[Any] = []

    def __enter__(self) -> Display:
        self._unsubs.append(self.phone.on_event(self._on_event))
        if self.tty and self.verbosity >= 0:
            self._live = Live(render(self.phone.snapshot, self.title), console=self.console, auto_refresh=False,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
            self._unsubs.append(self.phone.on_snapshot(self._on_snapshot))
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self._live is not None:
            self._live.update(render(self.phone.snapshot, self.title), refresh=True)
            self._live.stop()
            self._live = None

    def _on_snapshot(self, snap: Snapshot) -> None:
        now = time.monotonic()
        if self._live is not None and now - self._last_draw >= _MIN_REDRAW:
            self._last_draw = now
            self._live.update(render(snap, self.title), refresh=True)

    def _on_event(self, event: PhoneEvent) -> None:
        if self.json:
            self.stdout.write(dumps(event) + "\n")
            self.stdout.flush()
        elif self._live is None and self.verbosity >= 0:
            if event.type == "call.stats" and self.verbosity < 1:
                return
            line = _plain(event)
            if line:
                self.stdout.write(line + "\n")
                self.stdout.flush()

    def final(self, event: PhoneEvent) -> None:
        """The closing ``summary`` event: NDJSON in JSON mode (the panel/plain output shows a table instead)."""
        if self.json:
            self.stdout.write(dumps(event) + "\n")
            self.stdout.flush()

    # --- output for commands ---------------------------------------------------------

    def say(self, text: str) -> None:
        """A message for the user (stderr in JSON mode)."""
        if self.verbosity < 0:
            return
        (self.err if self.json else self.console).print(safe(text, multiline=True))

    def error(self, text: str) -> None:
        from softphone.log import redact

        self.err.print(f"[red]error:[/] {safe(redact(text))}")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        table = Table(title=safe(title), title_justify="left")
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(safe(c) for c in row))
        self.show(table)

    def summary(self, call_ids: Sequence[str], code: ExitCode, *, timings: dict[str, Any] | None = None) -> None:
        """The closing ``summary`` event (``--json``) and, unless ``-qq``, one summary per call and the outcome.

        ``timings`` (``softphone run``): per-call timings, call id -> dict, added as the event's ``timings``.
        """
        from softphone.app.history import record_for
        from softphone.ui.panel import render_summary

        snap = self.phone.snapshot
        calls = [c for c in (snap.call(i) for i in dict.fromkeys(call_ids)) if c is not None]
        data: dict[str, Any] = {
            "exit_code": int(code), "outcome": code.name.lower(),
            "calls": [{k: v for k, v in record_for(c, snap.ts).items() if k in _SUMMARY_KEYS} for c in calls]}
        for entry, c in zip(data["calls"], calls, strict=True):
            entry["warnings"] = list(c.warnings_seen)
        codes = [*snap.warnings, *(code for c in calls for code in c.warnings_seen)]
        data["warnings"] = {"count": len(codes), "codes": codes}
        if timings is not None:
            data["timings"] = {cid: t for cid, t in timings.items() if snap.call(cid) is not None}
        self.final(PhoneEvent("summary", snap.ts, None, data))
        if self.verbosity < -1:
            return
        for c in calls:
            self.show(render_summary(c, snap.ts))
        if codes:
            self.say(f"warnings: {len(codes)} ({', '.join(str(c) for c in codes)})")
        self.say(f"outcome: {code.name.lower().replace('_', ' ')} (exit {int(code)})")

    def show(self, renderable: RenderableType) -> None:
        (self.err if self.json else self.console).print(renderable)
