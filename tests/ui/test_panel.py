"""The live panel rendered as text."""

from __future__ import annotations

import io

from rich.console import Console

from softphone.snapshot import CallSnapshot, ClientSnapshot, Snapshot, SocketSnapshot
from softphone.ui.panel import level_bar, render, render_summary, safe


def text(renderable: object, width: int = 140) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue()


def snap(**call_kw: object) -> Snapshot:
    call = CallSnapshot(**{  # type: ignore[arg-type]
        "id": "abcdef0123456789", "direction": "outbound", "remote_number": "echo", "state": "active",
        "state_since": 100.0, "created_at": 99.0, "answered_at": 100.0, "codec": "opus/48000", "rtt_ms": 12.0,
        "jitter_ms": 1.5, "loss_pct": 0.0, "mos": 4.4, "input_level": 0.5, "output_level": 0.25,
        "dtmf_received": "12#", "call_control_id": "v3:ctl", "custom_headers": (("X-Ticket", "42"),), **call_kw})
    return Snapshot(ts=165.0, socket=SocketSnapshot("open", "ws://x"),
                    client=ClientSnapshot("ready", "demo", "REGED", "local", "loopback"),
                    calls=(call,), current=call.id)


def test_panel_shows_everything() -> None:
    out = text(render(snap()))
    for want in ("socket open", "client ready", "user demo", "gateway REGED", "dc local region loopback",
                 "call abcdef01", "outbound → echo", "active 1:05", "duration 1:05", "codec opus/48000",
                 "RTT 12 ms", "jitter 1.5 ms", "loss 0.0%", "MOS 4.40", "DTMF rx 12#", "control v3:ctl",
                 "X-Ticket=42", "cost $0.0022"):
        assert want in out, want
    assert level_bar(0.5, 20) in out and level_bar(0.25, 20) in out


def test_flags_and_reconnect_countdown() -> None:
    s = snap(muted=True, held=True, state="held")
    s = Snapshot(ts=s.ts, socket=SocketSnapshot("reconnecting", "ws://x", attempt=3, retry_at=170.0),
                 client=s.client, calls=s.calls, current=s.current)
    out = text(render(s))
    assert "MUTED HELD" in out
    assert "attempt 3, in 5s" in out


def test_network_text_is_escaped() -> None:
    evil = "[bold red]Mallory[/] \x1b[2J\x07"
    out = text(render(snap(remote_name=evil, remote_number="+1555")))
    assert "[bold red]Mallory[/]" in out
    assert "\x1b" not in out and "\x07" not in out
    assert safe("[x]") == "\\[x]"


def test_no_calls_and_summary() -> None:
    out = text(render(Snapshot(ts=1.0)))
    assert "no calls" in out and "socket closed" in out
    call = snap().calls[0]
    summary = text(render_summary(call, 160.0))
    assert "1:00" in summary and "opus/48000" in summary and "$0.0020" in summary


def test_level_bar_bounds() -> None:
    assert level_bar(-1, 4) == "░░░░"
    assert level_bar(2, 4) == "████"
