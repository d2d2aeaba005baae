"""``softphone run FILE``: command files.

A command file holds the shell's commands (see :mod:`softphone.app.commands`) one per line,
``#`` comments and blank lines. It is parsed completely before anything runs, so a
typo on line 40 fails at once as ``file:40: ...`` (exit USAGE). A file with no ``login``
line logs in with the profile first. At run time the first failing line stops the file
(``--keep-going`` reports it and continues); the exit code is that of the first
failure: a failed ``wait``/``expect`` gives SCRIPT_FAILED, a login or network failure
its own code. Calls still up at the end are hung up.

``${NAME}`` in any word is replaced by ``--var NAME=VALUE`` or, failing that, the environment
variable; an unknown variable is a parse error. Calls can be named (``dial DEST as NAME``,
``answer as NAME``) and the name given wherever a command takes a call (``hangup agent``,
``expect speech "hello" on agent``); a call name used before any line defines it is a parse
error (a call id prefix of 8 hex digits or more is accepted as it is). A file that uses a hearing command
(``expect speech|tone|silence|audio``, ``wait prompt-end``, ``transcript``) listens to every call
it places or answers from the start (with recognition only when it uses speech). The closing
``summary`` carries per-call ``timings`` (:meth:`softphone.app.phone.Phone.timings`).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.app.commands import (
    CheckFailed,
    Command,
    CommandContext,
    QuitRequested,
    call_refs,
    defined_name,
    hearing_need,
    parse_line,
    parse_var,
)
from softphone.app.options import CallOptions
from softphone.cli.exitcodes import ExitCode
from softphone.cli.runtime import exit_code_for_error, open_phone, run_async
from softphone.errors import CommandError, SoftphoneError

if TYPE_CHECKING:
    from softphone.app.options import Globals

__all__ = ["ScriptLine", "listen_mode", "parse_script", "parse_vars", "preflight", "run_script"]


class ScriptLine:
    """One command of a file, with where it came from; ``text`` is the line with its secrets masked."""

    __slots__ = ("args", "command", "lineno", "text")

    def __init__(self, lineno: int, text: str, command: Command, args: list[str]) -> None:
        self.lineno, self.text, self.command, self.args = lineno, text, command, args


_ID_PREFIX = re.compile(r"[0-9a-fA-F]{8}[0-9a-fA-F-]*")  # as `dial` shows it: "call 3f2a9c1d"


def parse_vars(items: Sequence[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a dict (:class:`CommandError` for a malformed one)."""
    return dict(parse_var(item) for item in items)


def parse_script(text: str, name: str, variables: Mapping[str, str] | None = None) -> list[ScriptLine]:
    """Parse a whole file; :class:`CommandError` names ``name:line`` of the first bad line.

    ``variables`` (``--var``) and the environment fill ``${NAME}``; call names must be defined
    (``as NAME``) on an earlier line.
    """
    out: list[ScriptLine] = []
    names: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        try:
            parsed = parse_line(raw, variables)
            if parsed is not None:
                cmd, args = parsed
                for ref in call_refs(cmd, args):
                    if ref not in names and not _ID_PREFIX.fullmatch(ref):
                        known = f" (named so far: {', '.join(sorted(names))})" if names else ""
                        raise CommandError(f"{cmd.name}: unknown call {ref!r}: name a call with "
                                           f"'dial DEST as NAME' or 'answer as NAME' first{known}")
                defined = defined_name(cmd, args)
                if defined is not None:
                    names.add(defined)
        except CommandError as exc:
            raise CommandError(f"{name}:{lineno}: {exc}") from None
        if parsed is not None:
            out.append(ScriptLine(lineno, parsed[0].display(parsed[1]), parsed[0], parsed[1]))
    return out


def listen_mode(lines: Sequence[ScriptLine]) -> str:
    """How the phone must listen for these lines: "speech", "levels" or "off"."""
    needs = {hearing_need(line.command, line.args) for line in lines}
    return "speech" if "speech" in needs else "levels" if "levels" in needs else "off"


def preflight(lines: Sequence[ScriptLine], name: str = "") -> None:
    """What the file needs that may be missing: a recogniser (``expect speech``, ``transcript``) and a
    text-to-speech engine (``say``). :class:`CommandError` naming the package, before anything dials."""
    import importlib.util
    import shutil

    for line in lines:
        if hearing_need(line.command, line.args) == "speech" and importlib.util.find_spec("pocketsphinx") is None:
            raise CommandError(f"{name}:{line.lineno}: {line.command.name} needs speech recognition: the "
                               "pocketsphinx package (pip install pocketsphinx; its wheel ships the English model)")
        if line.command.name == "say":
            from softphone.media.tts import resolve_voice

            engine = resolve_voice().engine
            if shutil.which(engine) is None:
                raise CommandError(f"{name}:{line.lineno}: say needs text to speech: {engine} is not installed "
                                   f"(apt install {engine})")


def timings_of(phone: Any, call_ids: Sequence[str]) -> dict[str, Any]:
    """The closing summary's ``timings``: call id -> :meth:`Phone.timings`."""
    return {cid: phone.timings(cid) for cid in dict.fromkeys(call_ids)}


def _code(exc: BaseException) -> ExitCode:
    if isinstance(exc, CheckFailed):
        return ExitCode.SCRIPT_FAILED
    return exit_code_for_error(exc)


def run_script(g: Globals, file: Path, *, keep_going: bool, local: bool, no_audio: bool,
               variables: Sequence[str] = ()) -> int:
    from softphone.cli.display import Display
    from softphone.log import redact

    name = "<stdin>" if str(file) == "-" else str(file)
    try:
        text = sys.stdin.read() if name == "<stdin>" else file.read_text(encoding="utf-8")
        lines = parse_script(text, name, parse_vars(variables))
        preflight(lines, name)
    except OSError as exc:
        print(f"error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE

    async def body(interrupted: asyncio.Event) -> int:
        async with open_phone(g, CallOptions(local=local, no_audio=no_audio)) as phone:
            display = Display(phone, json=g.json, verbosity=g.verbosity, title=f"softphone run {name}")
            ctx = CommandContext(phone=phone, say=display.say, table=display.table)
            phone.listen = listen_mode(lines)
            first_failure = ExitCode.OK
            call_ids: list[str] = []  # every call the file placed or took, for the closing summary
            stop_watching = phone.on_event(
                lambda e: call_ids.append(e.call_id) if e.call_id and e.call_id not in call_ids else None)
            with display:
                if not any(line.command.name == "login" for line in lines):
                    await phone.login()  # a file without its own `login` uses the profile's credentials
                for line in lines:
                    if interrupted.is_set():
                        first_failure = first_failure or ExitCode.INTERRUPTED
                        break
                    phone.emit("script.line", file=name, line=line.lineno, command=redact(line.text))
                    try:
                        await _run(line, ctx, interrupted)
                    except QuitRequested:
                        break
                    except (SoftphoneError, OSError, TimeoutError) as exc:
                        display.error(f"{name}:{line.lineno}: {exc}")
                        first_failure = first_failure or _code(exc)
                        if not keep_going:
                            break
                await phone.hangup_all()
            stop_watching()
            display.summary(call_ids, first_failure, timings=timings_of(phone, call_ids))
            return first_failure

    return run_async(g, body)


async def _run(line: ScriptLine, ctx: CommandContext, interrupted: asyncio.Event) -> None:
    work = asyncio.ensure_future(line.command.handler(ctx, line.args))
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work in done:
        work.result()
    else:
        work.cancel()
