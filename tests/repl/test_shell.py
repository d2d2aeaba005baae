"""The shell driven through a pipe (prompt-toolkit create_pipe_input + DummyOutput) against an in-process switch."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from softphone.config import BUILTIN_PROFILES
from softphone.history import CallHistory
from softphone.phone import Phone
from softphone.repl.shell import Shell
from softphone.snapshot import Snapshot
from softphone.switch.server import Switch


async def _until(phone: Phone, pred: object, timeout: float = 10.0) -> None:
    assert await phone.wait_until(lambda s: True if pred(s) else None, timeout), phone.snapshot  # type: ignore[operator]


async def test_shell_dial_hangup_and_safe_history(tmp_path: Path) -> None:
    async with Switch(port=0) as switch:
        profile = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null")
        hist = tmp_path / "repl_history"
        with create_pipe_input() as inp:
            async with Phone(profile, history=CallHistory(tmp_path / "calls.jsonl")) as phone:
                shell = Shell(phone, input=inp, output=DummyOutput(), history_path=str(hist), color=False)
                task = asyncio.ensure_future(shell.run(login=False))
                inp.send_text("login demo demo-secret\r")
                await _until(phone, lambda s: s.client.state == "ready")
                inp.send_text("dial echo\r")
                await _until(phone, lambda s: bool(s.calls) and s.calls[-1].state == "active")
                inp.send_text("mute\r")
                await _until(phone, lambda s: s.calls[-1].muted)
                inp.send_text("dtmf 12\r")
                inp.send_text("hangup\r")
                await _until(phone, lambda s: s.calls[-1].ended)
                inp.send_text("quit\r")
                assert await asyncio.wait_for(task, 10) == 0
        text = hist.read_text()
        assert "dial echo" in text and "hangup" in text
        assert "demo-secret" not in text and "login demo" not in text
        assert CallHistory(tmp_path / "calls.jsonl").records()[0]["remote"] == "echo"


async def test_shell_answers_inbound_with_one_key(tmp_path: Path) -> None:
    async with Switch(port=0) as switch:
        base = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null")
        alice = replace(base, username="alice", password="alice-secret")
        with create_pipe_input() as inp:
            async with Phone(base) as me, Phone(alice) as caller:
                shell = Shell(me, input=inp, output=DummyOutput(), color=False)
                task = asyncio.ensure_future(shell.run(login=True))
                await _until(me, lambda s: s.client.state == "ready")
                await caller.login()
                await caller.dial("demo")
                await _until(me, lambda s: s.ringing_inbound is not None)
                assert "incoming call" in me.snapshot.notice
                inp.send_text("a")  # one key, no Enter
                await _until(me, lambda s: bool(s.calls) and s.calls[-1].state == "active")
                inp.send_text("hangup\r")
                await _until(caller, lambda s: s.calls[-1].ended)
                inp.send_text("quit\r")
                assert await asyncio.wait_for(task, 10) == 0


def test_toolbar_renders_snapshot() -> None:
    phone = Phone(BUILTIN_PROFILES["local"])
    shell = Shell(phone, input=None, output=DummyOutput(), color=False)
    shell._render_toolbar(Snapshot(ts=1.0))
    assert "socket closed" in "".join(t for _, t, *_ in shell._toolbar.__pt_formatted_text__())
