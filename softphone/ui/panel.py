"""The live panel: a pure ``render(snapshot) -> rich renderable``.

Used three ways: as the REPL's bottom toolbar (rendered to ANSI), in a
``rich.live.Live`` display for one-shots on a TTY, and as plain text in tests.
Every string that came from the network (caller names, numbers, causes, headers,
client_state) goes through :func:`safe`, which drops control characters (no terminal
escape injection) and escapes rich markup.
"""

from __future__ import annotations

import re

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from softphone.snapshot import CallSnapshot, Snapshot

__all__ = ["clock", "level_bar", "render", "render_summary", "safe"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

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


def safe(text: object) -> str:
    """Network text made harmless for a rich markup string."""
    return escape(_CONTROL.sub("", str(text)))


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
    return Text.from_markup("  ".join(parts))


def _call(call: CallSnapshot, now: float, current: bool) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    arrow = "→" if call.direction == "outbound" else "←"
    state = f"[{_CALL_STYLE.get(call.state, 'white')}]{safe(call.state)}[/] {clock(call.time_in_state(now))}"
    flags = [f for f, on in (("MUTED", call.muted), ("HELD", call.held), ("PARKED", call.parked)) if on]
    mark = "▶ " if current else "  "
    grid.add_row(
        f"{mark}call {safe(call.id[:8])}",
        f"{call.direction} {arrow} [bold]{safe(call.remote) or '?'}[/]  {state}"
        + f"  duration {clock(call.duration(now))}"
        + (f"  [reverse]{' '.join(flags)}[/]" if flags else ""),
    )
    grid.add_row(
        "  media",
        f"codec {safe(call.codec) or '–'}  RTT {_num(call.rtt_ms, '.0f', ' ms')}  "
        f"jitter {_num(call.jitter_ms, '.1f', ' ms')}  loss {_num(call.loss_pct, '.1f', '%')}  "
        f"MOS [{_mos_style(call.mos)}]{_num(call.mos, '.2f')}[/]  cost ${call.cost(now):.4f}",
    )
    grid.add_row(
        "  levels",
        f"in [green]{level_bar(0.0 if call.muted else call.input_level)}[/]  "
        f"out [cyan]{level_bar(call.output_level)}[/]",
    )
    extra: list[str] = []
    if call.dtmf_received:
        extra.append(f"DTMF rx [bold]{safe(call.dtmf_received)}[/]")
    if call.dtmf_sent:
        extra.append(f"DTMF tx {safe(call.dtmf_sent)}")
    if call.cause:
        extra.append(f"cause {safe(call.cause)}" + (f" (SIP {call.sip_code})" if call.sip_code else ""))
    if extra:
        grid.add_row("  info", "  ".join(extra))
    ids = [
        f"{label} {safe(value)}"
        for label, value in (
            ("control", call.call_control_id),
            ("session", call.session_id),
            ("leg", call.leg_id),
            ("client_state", call.client_state),
        )
        if value
    ]
    ids += [f"{safe(k)}={safe(v)}" for k, v in call.custom_headers]
    if ids:
        grid.add_row("  telnyx", "[dim]" + "  ".join(ids) + "[/]")
    return grid


def render(snap: Snapshot, title: str = "softphone") -> RenderableType:
    """The whole panel for one snapshot."""
    rows: list[RenderableType] = [_header(snap)]
    live = [c for c in snap.calls if not c.ended]
    shown = live or list(snap.calls[-1:])
    for call in shown:
        rows.append(_call(call, snap.ts, call.id == snap.current))
    if not snap.calls:
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
    return table
