"""The live panel: a pure ``render(snapshot) -> rich renderable``.

Used three ways: as the REPL's bottom toolbar (rendered to ANSI), in a
``rich.live.Live`` display for one-shots on a TTY, and as plain text in tests.
Every string that came from the network (caller names, numbers, causes, headers,
client_state) goes through :func:`safe`, which drops control characters (no terminal
escape injection) and escapes rich markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from softphone.app.snapshot import CallSnapshot, Snapshot

__all__ = ["ENDED_LINGER", "MAX_ROWS", "clock", "level_bar", "render", "render_summary", "safe", "visible_calls"]

ENDED_LINGER = 5.0  #: seconds an ended call stays on the panel
MAX_ROWS = 6  #: call rows at most (the current call and the newest others)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_SOCKET_STYLE = {"open": "green", "connecting": "yellow", "reconnecting": "yellow", "closed": "red"}
_CLIENT_STYLE = {"ready": "green", "logged_in": "green", "closed": "red", "disconnected": "red"}
_CALL_STYLE = {
    "active": "bold green",
    "held": "yellow",
    "ringing": "bold yellow",
    "early": "yellow",
    "hangup": "red",
    "destroyed": "red",
}


def safe(text: object, *, multiline: bool = False) -> str:
    """Network text made harmless for a rich markup string: control characters dropped, markup escaped.

    ``multiline`` keeps newlines and tabs (for our own multi-line messages such as ``help``); a
    single-line field (a caller name, a cause) never gets to break the layout.
    """
    return escape((_CONTROL_KEEP_LINES if multiline else _CONTROL).sub("", str(text)))


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    s = int(max(0.0, seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def level_bar(level: float, width: int = 20) -> str:
    """A meter such as ``█████░░░░░`` for a level in 0..1 (dBFS-like curve already applied)."""
    level = min(1.0, max(0.0, level))
    full = round(level * width)
    return "█" * full + "░" * (width - full)


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{fmt}}{unit}"


def _mos_style(mos: float | None) -> str:
    if mos is None:
        return "dim"
    return "green" if mos >= 4.0 else "yellow" if mos >= 3.5 else "red"


def _header(snap: Snapshot) -> Text:
    sock, cli = snap.socket, snap.client
    parts = [f"socket [{_SOCKET_STYLE.get(sock.state, 'white')}]{safe(sock.state)}[/]"]
    if sock.state == "reconnecting":
        retry = sock.retry_in(snap.ts)
        parts[-1] += f" (attempt {sock.attempt}" + (f", in {retry:.0f}s)" if retry is not None else ")")
    parts.append(f"client [{_CLIENT_STYLE.get(cli.state, 'yellow')}]{safe(cli.state)}[/]")
    if cli.user:
        parts.append(f"user {safe(cli.user)}")
    if cli.gateway_state:
        parts.append(f"gateway {safe(cli.gateway_state)}")
    if cli.dc or cli.region:
        parts.append("dc " + safe(cli.dc or "–") + " region " + safe(cli.region or "–"))
    if cli.error:
        parts.append(f"[red]{safe(cli.error)}[/]")
    if snap.impair:
        parts.append(f"[magenta]impaired {safe(snap.impair)}[/]")
    return Text.from_markup("  ".join(parts))


class _Meters:
    """The current call's input/output meters, as wide as the space allows (at most 20 cells each)."""

    def __init__(self, call: CallSnapshot) -> None:
        self.call = call

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(4, min(20, (options.max_width - len("in   out ")) // 2))
        c = self.call
        text = Text.from_markup(f"in [green]{level_bar(0.0 if c.muted else c.input_level, width)}[/] "
                                f"out [cyan]{level_bar(c.output_level, width)}[/]", overflow="crop")
        text.no_wrap = True
        yield text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(len("in   out ") + 8, len("in   out ") + 40)


def _flags(call: CallSnapshot) -> str:
    held = call.held and call.state != "held"  # the state already says so
    flags = [f for f, on in (("MUTED", call.muted), ("HELD", held), ("PARKED", call.parked)) if on]
    return f"[reverse]{' '.join(flags)}[/]" if flags else ""


def _rows(calls: Sequence[CallSnapshot], now: float, current: str | None) -> Table:
    """One compact row per call: mark, short id, direction and remote, state and time in it, flags.

    Only the remote shrinks (with an ellipsis) when the terminal is narrow.
    """
    cells = []
    for call in calls:
        arrow = "→" if call.direction == "outbound" else "←"
        mark = "▶" if call.id == current else " "
        state = f"[{_CALL_STYLE.get(call.state, 'white')}]{safe(call.state)}[/] {clock(call.time_in_state(now))}"
        flags = _flags(call)
        cells.append((f"{mark} {safe(call.id[:8])}", f"{arrow} [bold]{safe(call.remote) or '?'}[/]",
                      state + (f" {flags}" if flags else "")))
    fixed = max(Text.from_markup(c[2]).cell_len for c in cells)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=10)
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    grid.add_column(no_wrap=True, min_width=fixed)
    for row in cells:
        grid.add_row(*row)
    return grid


def _details(call: CallSnapshot, now: float) -> Table:
    """Media, meters, DTMF/cause and Telnyx ids of one call (the current one)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column()
    if not call.ended:
        grid.add_row(
            "media",
            f"{safe(call.codec) or '–'}  duration {clock(call.duration(now))}  RTT {_num(call.rtt_ms, '.0f', ' ms')}  "
            f"jitter {_num(call.jitter_ms, '.1f', ' ms')}  loss {_num(call.loss_pct, '.1f', '%')}  "
            f"MOS [{_mos_style(call.mos)}]{_num(call.mos, '.2f')}[/]  cost ${call.cost(now):.4f}",
        )
        grid.add_row("levels", _Meters(call))
        if call.warnings:
            grid.add_row("warnings", "[bold red]" + "  ".join(_warning_names(call.warnings)) + "[/]")
    else:
        grid.add_row("ended", f"duration {clock(call.duration(now))}  cost ${call.cost(now):.4f}")
    extra: list[str] = []
    if call.dtmf_received:
        extra.append(f"DTMF rx [bold]{safe(call.dtmf_received)}[/]")
    if call.dtmf_sent:
        extra.append(f"DTMF tx {safe(call.dtmf_sent)}")
    if call.cause:
        extra.append(f"cause {safe(call.cause)}" + (f" (SIP {call.sip_code})" if call.sip_code else ""))
    if extra:
        grid.add_row("info", "  ".join(extra))
    ids = [
        f"{label} {safe(value)}"
        for label, value in (
            ("control", call.call_control_id),
            ("session", call.session_id),
            ("leg", call.leg_id),
            ("client_state", call.client_state),
        )
        if value and not (label == "leg" and value in call.call_control_id)
    ]
    ids += [f"{safe(k)}={safe(v)}" for k, v in call.custom_headers]
    if ids:
        grid.add_row("telnyx", "[dim]" + "  ".join(ids) + "[/]")
    return grid


def _warning_names(codes: tuple[int, ...]) -> list[str]:
    """``31003 HIGH_PACKET_LOSS`` for each code (docs/events.md "Warning codes")."""
    from softphone.client.quality import CODES

    return [f"{code} {CODES[code][0]}" if code in CODES else str(code) for code in codes]


def visible_calls(snap: Snapshot, linger: float = ENDED_LINGER) -> list[CallSnapshot]:
    """The calls the panel shows: every live one, and ended ones for ``linger`` seconds after they ended."""
    shown = []
    for call in snap.calls:
        if call.ended:
            ended = call.ended_at if call.ended_at is not None else call.state_since
            if snap.ts - ended >= linger:
                continue
        shown.append(call)
    if len(shown) > MAX_ROWS:  # keep the current call and the newest others
        keep = [c for c in shown if c.id == snap.current][:1]
        others = [c for c in shown if c not in keep][-(MAX_ROWS - len(keep)):]
        shown = [c for c in shown if c in keep or c in others]
    return shown


def render(snap: Snapshot, title: str = "softphone", *, linger: float = ENDED_LINGER) -> RenderableType:
    """The whole panel for one snapshot (``snap.ts`` is its clock).

    One compact row per call and the details of the current call only, so three calls fit a
    60x30 terminal; an ended call leaves ``linger`` seconds after it ended.
    """
    rows: list[RenderableType] = [_header(snap)]
    shown = visible_calls(snap, linger)
    if shown:
        rows.append(_rows(shown, snap.ts, snap.current))
        current = next((c for c in shown if c.id == snap.current), None)
        if current is None and len(shown) == 1:
            current = shown[0]
        if current is not None:
            rows.append(_details(current, snap.ts))
        hidden = sum(1 for c in snap.calls if not c.ended) - sum(1 for c in shown if not c.ended)
        if hidden > 0:
            rows.append(Text(f"+{hidden} more (calls lists them)", style="dim"))
    else:
        rows.append(Text("no calls", style="dim"))
    if snap.notice:
        rows.append(Text.from_markup(f"[bold yellow]{safe(snap.notice)}[/]"))
    return Panel(Group(*rows), title=title, title_align="left", border_style="blue")


def render_summary(call: CallSnapshot, now: float) -> RenderableType:
    """The end-of-call summary."""
    table = Table(title=f"call {safe(call.id[:8])} summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("remote", f"{call.direction} {safe(call.remote) or '?'}")
    table.add_row("duration", clock(call.duration(now)))
    table.add_row("cause", (safe(call.cause) or "–") + (f" (SIP {call.sip_code})" if call.sip_code else ""))
    table.add_row("codec", safe(call.codec) or "–")
    table.add_row("MOS", _num(call.mos, ".2f"))
    table.add_row("cost", f"${call.cost(now):.4f} at ${call.rate_per_minute:g}/min")
    if call.dtmf_received:
        table.add_row("DTMF received", safe(call.dtmf_received))
    if call.warnings_seen:
        table.add_row("warnings", ", ".join(_warning_names(call.warnings_seen)))
    return table
