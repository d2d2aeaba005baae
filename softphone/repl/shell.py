"""The interactive shell: ``PromptSession.prompt_async()`` inside ``patch_stdout(raw=True)``.

The live panel is the prompt's bottom toolbar: each snapshot is rendered by rich to
ANSI and the application is invalidated to repaint it (``rich.live`` is never used
while a prompt is open). When a call rings, ``a`` / ``r`` on an empty line answer or
reject it; Ctrl-C hangs up the current call (or clears the line); Ctrl-D quits,
asking first when a call is up. ``login USER`` without a password asks for it with
echo off. Questions (the quit confirmation, the password) go through a second prompt
session without history, so the command prompt and its history stay as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import DummyHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style
from rich.console import Console
from rich.table import Table

from softphone.app.commands import CommandContext, QuitRequested, parse_line, run_line
from softphone.app.snapshot import PhoneEvent, Snapshot
from softphone.errors import SoftphoneError
from softphone.repl.completer import SERVICES, CommandCompleter
from softphone.repl.history import SafeFileHistory
from softphone.ui.panel import render, safe

if TYPE_CHECKING:
    from softphone.app.phone import Phone

__all__ = ["Shell", "run_shell"]

_STYLE = Style.from_dict({"bottom-toolbar": "noreverse", "bottom-toolbar.text": "noreverse"})
_ANNOUNCE = ("call.incoming", "call.hangup", "call.active", "client.ready", "client.login_failed",
             "socket.reconnecting", "call.dtmf", "call.device_warning", "client.error")


class Shell:
    """One interactive session over a :class:`Phone`."""

    def __init__(self, phone: Phone, *, input: Input | None = None, output: Output | None = None,
                 history_path: str | None = None, color: bool | None = None) -> None:
        self.phone = phone
        self.devices: list[str] = []
        self._toolbar = ANSI("")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._color = sys.stdout.isatty() if color is None else color
        self.session: PromptSession[str] = PromptSession(
            message="softphone> ",
            history=SafeFileHistory(history_path) if history_path else None,
            completer=CommandCompleter({"device": lambda: self.devices, "destination": self._destinations,
                                        "call": lambda: [c.id[:8] for c in self.phone.snapshot.calls]}),
            complete_while_typing=False,
            bottom_toolbar=lambda: self._toolbar,
            key_bindings=self._bindings(),
            style=_STYLE,
            input=input,
            output=output,
            erase_when_done=False,
        )
        # Questions: their own session, so neither their message nor their answers (a password)
        # stick to the command prompt or reach any history.
        self._ask: PromptSession[str] = PromptSession(
            history=DummyHistory(), bottom_toolbar=lambda: self._toolbar, style=_STYLE, input=input, output=output,
            erase_when_done=False)
        self.ctx = CommandContext(phone=phone, say=self.say, table=self.table)

    # --- output ----------------------------------------------------------------------

    def _console(self, width: int | None = None) -> Console:
        return Console(file=sys.stdout, force_terminal=self._color, no_color=not self._color, highlight=False,
                       width=width or shutil.get_terminal_size((100, 24)).columns)

    def say(self, text: str) -> None:
        self._console().print(safe(text, multiline=True))

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        t = Table(title=safe(title), title_justify="left")
        for col in columns:
            t.add_column(col)
        for row in rows:
            t.add_row(*(safe(c) for c in row))
        self._console().print(t)

    def _render_toolbar(self, snap: Snapshot) -> None:
        app = get_app_or_none()
        width = app.output.get_size().columns if app is not None else shutil.get_terminal_size((100, 24)).columns
        buf = io.StringIO()
        Console(file=buf, force_terminal=True, color_system="256", width=max(40, width), highlight=False).print(
            render(snap, "softphone  (a answer, r reject when ringing; Ctrl-C hang up; Ctrl-D quit)"), end="")
        self._toolbar = ANSI(buf.getvalue())
        if app is not None:
            app.invalidate()

    def _on_event(self, event: PhoneEvent) -> None:
        if event.type not in _ANNOUNCE:
            return
        snap = self.phone.snapshot
        call = snap.call(event.call_id) if event.call_id else None
        who = call.remote if call else ""
        d = event.data
        text = {
            "call.incoming": f"incoming call from {who}: press a to answer, r to reject",
            "call.active": f"call with {who} is up",
            "call.hangup": f"call with {who} ended: {d.get('cause') or ''}"
            + (f" (SIP {d['sip_code']})" if d.get("sip_code") else ""),
            "call.dtmf": f"DTMF received: {d.get('digits', '')}",
            "client.ready": f"ready as {snap.client.user}",
            "client.login_failed": f"login failed: {d.get('message', '')}",
            "client.error": f"error: {d.get('message', '')}",
            "socket.reconnecting": f"connection lost; reconnecting (attempt {d.get('attempt')})",
            "call.device_warning": f"audio: {d.get('message', '')}",
        }[event.type]
        from softphone.log import redact

        self.say(" ".join(redact(text).split()))  # network text: one line

    def _destinations(self) -> Iterable[str]:
        recent = self.phone.history.recent_destinations() if self.phone.history is not None else []
        return [*recent, *SERVICES]

    # --- keys --------------------------------------------------------------------------

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        ringing = Condition(lambda: self.phone.snapshot.ringing_inbound is not None)
        empty = Condition(lambda: (a := get_app_or_none()) is not None and not a.current_buffer.text)

        @kb.add("a", filter=ringing & empty)
        def _answer(event: KeyPressEvent) -> None:
            self.spawn("answer")

        @kb.add("r", filter=ringing & empty)
        def _reject(event: KeyPressEvent) -> None:
            self.spawn("reject")

        return kb

    def spawn(self, line: str) -> None:
        task = asyncio.ensure_future(self.execute(line))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- loop --------------------------------------------------------------------------

    def _call_up(self) -> bool:
        return any(not c.ended for c in self.phone.snapshot.calls)

    async def execute(self, line: str) -> bool:
        """Run one line; False when the shell should end."""
        from softphone.log import redact

        try:
            parsed = parse_line(line)
            if parsed is not None and parsed[0].name == "login" and len(parsed[1]) == 1 \
                    and not parsed[1][0].startswith("eyJ"):
                await self._login_asking_password(parsed[1][0])
            else:
                await run_line(self.ctx, line)
        except QuitRequested:
            return False
        except (SoftphoneError, OSError, TimeoutError) as exc:
            self.say(f"error: {redact(str(exc))}")
        return True

    async def _login_asking_password(self, user: str) -> None:
        """``login USER``: ask for the password without echo, then log in as the full command would."""
        try:
            password = await self._ask.prompt_async(f"password for {user}: ", is_password=True)
        except (EOFError, KeyboardInterrupt):
            self.say("login cancelled")
            return
        if not password:
            self.say("login cancelled: no password given")
            return
        parsed = parse_line("login")
        assert parsed is not None
        await parsed[0].handler(self.ctx, [user, password])

    async def _confirm_quit(self) -> bool:
        if not self._call_up():
            return True
        try:
            answer = await self._ask.prompt_async("a call is up: hang up and quit? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            return True
        return answer.strip().lower() in ("y", "yes")

    async def run(self, login: bool = True) -> int:
        """Serve the prompt until the user quits; 0 (the CLI's ``ExitCode.OK``) when they do."""
        unsubs = [self.phone.on_snapshot(self._render_toolbar), self.phone.on_event(self._on_event)]
        self._render_toolbar(self.phone.snapshot)
        try:
            with patch_stdout(raw=True):
                self.say("softphone shell: type 'help' for commands, Tab completes, Ctrl-D quits")
                if login:
                    await self.execute("login")
                with contextlib.suppress(Exception):
                    self.devices = [str(d["name"]) for d in await self.phone.devices()]
                while True:
                    try:
                        line = await self.session.prompt_async()
                    except KeyboardInterrupt:
                        if self._call_up():
                            await self.execute("hangup")
                        continue
                    except EOFError:
                        if await self._confirm_quit():
                            break
                        continue
                    if not await self.execute(line):
                        if await self._confirm_quit():
                            break
                for task in list(self._tasks):
                    task.cancel()
                await self.phone.hangup_all()
        finally:
            for unsub in unsubs:
                unsub()
        return 0


async def run_shell(phone: contextlib.AbstractAsyncContextManager[Phone]) -> int:
    """``softphone`` / ``softphone shell``: the shell over the :class:`Phone` that ``phone`` opens.

    The front-end that starts the shell supplies the Phone (profile, ``--local`` switch) and runs
    this coroutine under its runtime (logging, Ctrl-C, exit codes), so the shell imports neither.
    History goes to ``repl_history`` in the data directory. Returns 0 once the user quits.
    """
    import signal

    from softphone.app.history import data_dir

    # SIGINT reaches prompt-toolkit as Ctrl-C; the runtime's handler must not end the shell.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    path = data_dir() / "repl_history"
    path.parent.mkdir(parents=True, exist_ok=True)
    async with phone as opened:
        return await Shell(opened, history_path=str(path)).run()
