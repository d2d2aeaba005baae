"""The live panel rendered as text."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from softphone.app.snapshot import CallSnapshot, ClientSnapshot, Snapshot, SocketSnapshot
from softphone.ui.panel import ENDED_LINGER, MAX_ROWS, level_bar, render, render_summary, safe


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
                 "▶ abcdef01", "→ echo", "active 1:05", "duration 1:05", "opus/48000",
                 "RTT 12 ms", "jitter 1.5 ms", "loss 0.0%", "MOS 4.40", "DTMF rx 12#", "control v3:ctl",
                 "X-Ticket=42", "cost $0.0022"):
        assert want in out, want
    assert level_bar(0.5, 20) in out and level_bar(0.25, 20) in out


def test_flags_and_reconnect_countdown() -> None:
    s = snap(muted=True, held=True, state="held")
    s = Snapshot(ts=s.ts, socket=SocketSnapshot("reconnecting", "ws://x", attempt=3, retry_at=170.0),
                 client=s.client, calls=s.calls, current=s.current)
    out = text(render(s))
    assert "held 1:05 MUTED" in out
    assert "active 1:05 MUTED HELD" in text(render(snap(muted=True, held=True)))
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


def _call(n: int, **kw: object) -> CallSnapshot:
    uid = f"{n}{n}{n}{n}aaaa-c2f6-4e57-85e8-41639646615c"
    fields: dict[str, object] = {
        "id": uid, "direction": "outbound", "remote_name": f"Caller Number{n}", "remote_number": f"+1312555010{n}",
        "state": "active", "state_since": 100.0, "created_at": 99.0, "answered_at": 100.0, "codec": "opus/48000",
        "rtt_ms": 12.0, "jitter_ms": 1.5, "loss_pct": 0.0, "mos": 4.4, "input_level": 0.5, "output_level": 0.25,
        "call_control_id": f"v3:{uid}", "session_id": f"{n}{n}287b9e-36ca-4405-9eed-2139d7de0f25", "leg_id": uid,
        "client_state": "eyJzdGF0ZSI6InRlc3QifQ==", "custom_headers": (("X-Ticket", f"{n}"),), **kw}
    return CallSnapshot(**fields)  # type: ignore[arg-type]


def _three(ts: float = 165.0, **third: object) -> Snapshot:
    calls = (_call(1, state="held", held=True), _call(2, direction="inbound", dtmf_received="12#"),
             _call(3, **third))
    return Snapshot(ts=ts, socket=SocketSnapshot("open", "ws://x"),
                    client=ClientSnapshot("ready", "demo", "REGED", "local", "local"),
                    calls=calls, current=calls[1].id, notice="incoming call from bob: press a to answer, r to reject")


def test_three_calls_fit_a_60x30_terminal() -> None:
    console = Console(width=60, height=30, record=True, file=io.StringIO(), color_system=None)
    console.print(render(_three(), "softphone  (a answer, r reject when ringing; Ctrl-C hang up; Ctrl-D quit)"))
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) <= 30 - 4, "\n".join(lines)  # room for the prompt and a message or two
    assert all(len(line) <= 60 for line in lines)
    for n in (1, 2, 3):  # one row per call, with its remote and state
        rows = [line for line in lines if f"{n}{n}{n}{n}aaaa" in line and "control" not in line]
        assert len(rows) == 1, lines
        assert f"Caller Number{n} <+1312555010{n}>" in rows[0]
        assert ("held 1:05" if n == 1 else "active 1:05") in rows[0]
    assert "▶ 2222aaaa ← " in "\n".join(lines)
    out = "\n".join(lines)
    # details for the current call only
    assert "opus/48000" in out and "duration 1:05" in out and "DTMF rx 12#" in out and "X-Ticket=2" in out
    assert "v3:2222aaaa" in out and "v3:1111aaaa" not in out and "v3:3333aaaa" not in out
    assert out.count("levels") == 1 and out.count("MOS") == 1
    assert level_bar(0.5, 20) in out
    assert "incoming call from bob" in out


def test_ended_call_leaves_the_panel_after_a_few_seconds() -> None:
    ended = {"state": "hangup", "ended_at": 160.0, "state_since": 160.0, "cause": "NORMAL_CLEARING", "sip_code": 200}
    soon = text(render(_three(ts=160.0 + ENDED_LINGER - 0.5, **ended)), width=60)
    assert "3333aaaa" in soon and "hangup 0:00" in soon
    later = text(render(_three(ts=160.0 + ENDED_LINGER, **ended)), width=60)
    assert "3333aaaa" not in later and "1111aaaa" in later and "2222aaaa" in later
    # the last call, ended and current: its cause shows without frozen meters, then the panel is empty
    alone = Snapshot(ts=161.0, calls=(_call(3, **ended),), current=_call(3).id)
    out = text(render(alone), width=60)
    assert "hangup" in out and "cause NORMAL_CLEARING (SIP 200)" in out and "duration 1:00" in out
    assert "levels" not in out and "█" not in out
    out = text(render(replace(alone, ts=160.0 + ENDED_LINGER)), width=60)
    assert "3333aaaa" not in out and "no calls" in out


def test_many_calls_keep_the_current_one_and_say_how_many_are_hidden() -> None:
    calls = tuple(_call(n) for n in range(1, 10))
    out = text(render(Snapshot(ts=165.0, calls=calls, current=calls[0].id)), width=60)
    assert "▶ 1111aaaa" in out and "9999aaaa" in out
    assert sum(f"{n}{n}{n}{n}aaaa" in out for n in range(1, 10)) == MAX_ROWS
    assert f"+{9 - MAX_ROWS} more" in out


def test_network_newline_does_not_break_a_call_row() -> None:
    out = text(render(snap(remote_name="Mal\nlory", remote_number="+1555")), width=60)
    assert "Mallory <+1555>" in out


def test_safe_keeps_our_newlines_only_when_asked() -> None:
    assert safe("a\nb\tc\x1b[2J") == "abc[2J"
    assert safe("a\nb\tc\x1b[2J\r", multiline=True) == "a\nb\tc[2J"
