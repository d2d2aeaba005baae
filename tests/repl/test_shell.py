"""The shell driven through a pipe (prompt-toolkit create_pipe_input + DummyOutput) against an in-process switch."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.vt100 import Vt100_Output

from softphone.app.commands import COMMANDS
from softphone.app.history import CallHistory
from softphone.app.phone import Phone
from softphone.app.snapshot import Snapshot
from softphone.config import BUILTIN_PROFILES
from softphone.repl.history import SafeFileHistory
from softphone.repl.shell import Shell
from softphone.switch import Switch


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


def _screen() -> tuple[io.StringIO, Vt100_Output]:
    """A terminal output that records everything prompt-toolkit draws."""
    buf = io.StringIO()
    return buf, Vt100_Output(buf, lambda: Size(rows=30, columns=100), term="xterm")


async def test_help_in_shell_keeps_one_command_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    shell = Shell(Phone(BUILTIN_PROFILES["local"]), input=None, output=DummyOutput(), color=False)
    assert await shell.execute("help")
    lines = capsys.readouterr().out.splitlines()
    starts = [line.split()[0] for line in lines if line.strip() and not line.startswith(" ")]
    assert [c.name for c in COMMANDS] == [s for s in starts if s in {c.name for c in COMMANDS}], lines
    assert len(lines) >= len(COMMANDS)
    capsys.readouterr()
    await shell.execute("help dial")
    assert len(capsys.readouterr().out.strip().splitlines()) >= 2


async def test_login_user_prompts_for_password_without_echo(tmp_path: Path) -> None:
    async with Switch(port=0) as switch:
        # A profile without credentials: the password can only come from the prompt.
        profile = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null", username="", password="")
        hist = tmp_path / "repl_history"
        screen, out = _screen()
        with create_pipe_input() as inp:
            async with Phone(profile) as phone:
                shell = Shell(phone, input=inp, output=out, history_path=str(hist), color=False)
                task = asyncio.ensure_future(shell.run(login=False))
                inp.send_text("login alice\r")
                await asyncio.sleep(0.5)
                assert "password for alice:" in screen.getvalue()
                inp.send_text("alice-secret\r")
                await _until(phone, lambda s: s.client.state == "ready" and s.client.user == "alice")
                inp.send_text("status\r")  # the command prompt is back and works
                await asyncio.sleep(0.5)
                inp.send_text("quit\r")
                assert await asyncio.wait_for(task, 10) == 0
        drawn = screen.getvalue()
        assert "alice-secret" not in drawn and "************" in drawn
        assert "alice-secret" not in hist.read_text()
        assert shell.session.history.get_strings() == ["status", "quit"]


async def test_login_password_prompt_cancelled_by_ctrl_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = replace(BUILTIN_PROFILES["local"], server="ws://127.0.0.1:9", audio_backend="null")
    with create_pipe_input() as inp:
        phone = Phone(profile)
        shell = Shell(phone, input=inp, output=DummyOutput(), color=False)
        task = asyncio.ensure_future(shell.execute("login bob"))
        await asyncio.sleep(0.3)
        inp.send_text("\x03")
        assert await asyncio.wait_for(task, 5)
    assert "login cancelled" in capsys.readouterr().out
    assert phone.snapshot.client.state == "disconnected"


async def test_quit_prompt_no_answer_gives_the_command_prompt_back(tmp_path: Path) -> None:
    async with Switch(port=0) as switch:
        profile = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null")
        screen, out = _screen()
        with create_pipe_input() as inp:
            async with Phone(profile) as phone:
                shell = Shell(phone, input=inp, output=out, color=False)
                task = asyncio.ensure_future(shell.run(login=True))
                await _until(phone, lambda s: s.client.state == "ready")
                inp.send_text("dial echo\r")
                await _until(phone, lambda s: bool(s.calls) and s.calls[-1].state == "active")
                inp.send_text("\x04")  # Ctrl-D with a call up: asks
                await asyncio.sleep(0.5)
                assert "hang up and quit? [y/N]" in screen.getvalue()
                inp.send_text("n\r")
                await asyncio.sleep(0.5)
                after_no = screen.getvalue()
                tail = after_no[after_no.rindex("hang up and quit?"):]
                assert "softphone>" in tail, tail
                assert shell.session.message == "softphone> "
                assert not task.done() and not phone.snapshot.calls[-1].ended
                inp.send_text("hangup\r")
                await _until(phone, lambda s: s.calls[-1].ended)
                inp.send_text("quit\r")
                assert await asyncio.wait_for(task, 10) == 0
        assert "n" not in shell.session.history.get_strings()


def test_shell_history_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "repl_history"
    SafeFileHistory(str(path)).append_string("dial echo")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loose = tmp_path / "old_history"
    loose.write_text("")
    os.chmod(loose, 0o644)
    SafeFileHistory(str(loose))
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o600


def _toolbar_text(shell: Shell) -> str:
    return "".join(t for _, t, *_ in shell._toolbar.__pt_formatted_text__())


async def test_toolbar_drops_an_ended_call_after_the_linger_time(tmp_path: Path) -> None:
    from softphone.ui.panel import ENDED_LINGER

    skew = [0.0]  # the phone's clock, moved forward by the test
    async with Switch(port=0) as switch:
        profile = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null")
        with create_pipe_input() as inp:
            async with Phone(profile, clock=lambda: time.time() + skew[0]) as phone:
                shell = Shell(phone, input=inp, output=DummyOutput(), color=False)
                task = asyncio.ensure_future(shell.run(login=True))
                await _until(phone, lambda s: s.client.state == "ready")
                inp.send_text("dial echo\r")
                await _until(phone, lambda s: bool(s.calls) and s.calls[-1].state == "active")
                short = phone.snapshot.calls[-1].id[:8]
                assert short in _toolbar_text(shell)
                inp.send_text("hangup\r")
                await _until(phone, lambda s: s.calls[-1].ended)
                await asyncio.sleep(0.5)  # a few panel ticks: the ended call is still shown
                assert short in _toolbar_text(shell) and "cause NORMAL_CLEARING" in _toolbar_text(shell)
                skew[0] = ENDED_LINGER
                await asyncio.sleep(0.5)  # the next tick redraws without it
                assert short not in _toolbar_text(shell) and "no calls" in _toolbar_text(shell)
                assert phone.snapshot.calls[-1].id.startswith(short)  # still in the snapshot (calls, history)
                inp.send_text("quit\r")
                assert await asyncio.wait_for(task, 10) == 0


async def test_run_shell_serves_the_phone_the_front_end_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_shell takes the Phone to open from its caller (the CLI composes it; repl/ imports no cli/)."""
    from prompt_toolkit.application import create_app_session

    from softphone.repl.shell import run_shell

    monkeypatch.setenv("SOFTPHONE_DATA_DIR", str(tmp_path))
    async with Switch(port=0) as switch:
        profile = replace(BUILTIN_PROFILES["local"], server=switch.url, audio_backend="null")
        phone = Phone(profile)
        with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
            task = asyncio.ensure_future(run_shell(phone))
            await _until(phone, lambda s: s.client.state == "ready")  # the shell logged in with the profile
            inp.send_text("dial echo\r")
            await _until(phone, lambda s: bool(s.calls) and s.calls[-1].state == "active")
            inp.send_text("hangup\r")
            await _until(phone, lambda s: s.calls[-1].ended)
            inp.send_text("quit\r")
            assert await asyncio.wait_for(task, 10) == 0
        assert phone.snapshot.socket.state == "closed"  # run_shell closed the phone it was given
        assert "dial echo" in (tmp_path / "repl_history").read_text()
