"""The one command table: REPL, ``help``, command files and one-shots are built from it.

Each :class:`Command` is data (name, aliases, arguments, help) plus an async handler
that acts on a :class:`~softphone.app.phone.Phone` through a :class:`CommandContext`.
Handlers never print: they report through ``ctx.say`` / ``ctx.table``, which each
front-end implements (rich in the REPL and one-shots, plain text in scripts).

Parsing is shell-like (whitespace-separated words, ``'...'``/``"..."`` quotes, backslash
escapes). ``#`` starts a comment where it begins a word outside quotes, except in a DTMF
digits argument (``dtmf 123#``, ``expect dtmf 123#``), which takes ``#`` and ``*`` as they are.
``parse_line`` returns the command and its arguments after checking every argument that can
be checked without a call (count, choices, seconds, DTMF digits, ``Name=value`` headers, ``wait``
states), so a command file fails at ``file:line`` before anything connects, with the message the
REPL would show. One-shots (``softphone dial ... --header --dtmf``) check their arguments with the
same functions (:func:`parse_words`, :func:`parse_header`, :func:`check_digits`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from softphone.errors import CommandError
from softphone.protocol.dtmf import check_digits  # the one DTMF check, re-exported for the front-ends
from softphone.protocol.states import CallState, ClientState

if TYPE_CHECKING:
    from softphone.app.phone import Phone

__all__ = [
    "COMMANDS",
    "Arg",
    "CheckFailed",
    "Command",
    "CommandContext",
    "QuitRequested",
    "check_digits",
    "display_line",
    "find_command",
    "format_help",
    "is_secret_line",
    "parse_header",
    "parse_line",
    "parse_words",
    "run_line",
]

ArgKind = Literal["text", "destination", "call", "device", "digits", "seconds", "choice", "secret", "header"]
WAIT_TARGETS = ("socket", "client", "call")
#: The states ``wait TARGET STATE`` can wait for (``ended`` stands for hangup/destroyed).
WAIT_STATES: dict[str, tuple[str, ...]] = {
    "socket": ("connecting", "open", "reconnecting", "closed"),
    "client": tuple(s.value for s in ClientState),
    "call": (*(s.value for s in CallState), "ended"),
}
def parse_header(cmd: str, text: str) -> tuple[str, str]:
    """The one custom-header parser: ``Name=value`` -> ``(Name, value)`` (name stripped, value kept as is).

    :class:`CommandError` when there is no ``=`` or no name. Used by ``dial`` in the REPL and
    command files and by the ``--header`` option of the one-shot ``softphone dial``.
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise CommandError(f"{cmd}: header {text!r} must be Name=value")
    return name.strip(), value


class CheckFailed(CommandError):
    """A ``wait`` timed out or an ``expect`` did not match (exit code SCRIPT_FAILED)."""


class QuitRequested(Exception):
    """Raised by ``quit``; the front-end ends its loop."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One positional argument."""

    name: str
    kind: ArgKind = "text"
    optional: bool = False
    variadic: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    def usage(self) -> str:
        core = self.name + ("..." if self.variadic else "")
        return f"[{core}]" if self.optional else f"<{core}>"


Handler = Callable[["CommandContext", Sequence[str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """A verb of the softphone."""

    name: str
    args: tuple[Arg, ...]
    help: str
    handler: Handler
    aliases: tuple[str, ...] = ()
    example: str = ""
    #: Checks between arguments (e.g. ``wait``: the state must exist for the target).
    validate: Callable[[Sequence[str]], None] | None = None

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(a.usage() for a in self.args)])

    def check_args(self, args: Sequence[str]) -> None:
        required = sum(1 for a in self.args if not a.optional and not a.variadic)
        variadic = any(a.variadic for a in self.args)
        if len(args) < required:
            raise CommandError(f"{self.name}: missing argument {self.args[len(args)].usage()} (usage: {self.usage})")
        if not variadic and len(args) > len(self.args):
            raise CommandError(f"{self.name}: too many arguments (usage: {self.usage})")
        for index, value in enumerate(args):
            arg = self.arg_at(index)
            if arg is None:
                continue
            if arg.choices and value not in arg.choices and not arg.variadic:
                raise CommandError(f"{self.name}: {arg.name} must be one of {', '.join(arg.choices)}, not {value!r}")
            if arg.kind == "seconds":
                _seconds(self.name, value)
            elif arg.kind == "digits":
                check_digits(self.name, value)
            elif arg.kind == "header":
                parse_header(self.name, value)
        if self.validate is not None:
            self.validate(args)

    def arg_at(self, index: int) -> Arg | None:
        """The argument a word at ``index`` fills (a variadic last argument takes the rest)."""
        if index < len(self.args):
            return self.args[index]
        return self.args[-1] if self.args and self.args[-1].variadic else None

    def display(self, args: Sequence[str]) -> str:
        """The command line with every secret argument masked (for echoes, events and logs)."""
        shown = [self.name]
        for i, value in enumerate(args):
            arg = self.arg_at(i)
            secret = (arg is not None and arg.kind == "secret") or (self.name == "login" and len(args) == 1)
            shown.append("***" if secret else _quote(value))
        return " ".join(shown)


@dataclass
class CommandContext:
    """What a handler may use. The front-end supplies the output functions."""

    phone: Phone
    say: Callable[[str], None]
    table: Callable[[str, Sequence[str], Sequence[Sequence[str]]], None]
    history_limit: int = 20
    extra: dict[str, object] = field(default_factory=dict)


def _seconds(cmd: str, value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise CommandError(f"{cmd}: {value!r} is not a number of seconds") from None
    if s < 0 or s != s:
        raise CommandError(f"{cmd}: seconds must be >= 0")
    return s


def _call_arg(args: Sequence[str], index: int) -> str | None:
    return args[index] if len(args) > index else None


# --- handlers ---------------------------------------------------------------------------


async def _login(ctx: CommandContext, args: Sequence[str]) -> None:
    if len(args) == 1:
        if not args[0].startswith("eyJ"):
            raise CommandError("login: give USER PASSWORD, a TOKEN, or nothing to use the profile")
        await ctx.phone.login(token=args[0])
    elif len(args) == 2:
        await ctx.phone.login(user=args[0], password=args[1])
    else:
        await ctx.phone.login()
    snap = ctx.phone.snapshot.client
    where = " ".join(x for x in (snap.dc, snap.region) if x)
    ctx.say(f"logged in as {snap.user}" + (f" ({where})" if where else ""))


async def _logout(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.logout()
    ctx.say("logged out")


async def _dial(ctx: CommandContext, args: Sequence[str]) -> None:
    headers = [parse_header("dial", h) for h in args[1:]]
    call_id = await ctx.phone.dial(args[0], headers=headers)
    ctx.say(f"dialing {args[0]} (call {call_id[:8]})")


async def _answer(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.answer(_call_arg(args, 0))


async def _reject(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.reject(_call_arg(args, 0))


async def _hangup(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.hangup(_call_arg(args, 0))


async def _hold(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.hold(_call_arg(args, 0))


async def _unhold(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.unhold(_call_arg(args, 0))


async def _mute(ctx: CommandContext, args: Sequence[str]) -> None:
    ctx.phone.mute(_call_arg(args, 0))


async def _unmute(ctx: CommandContext, args: Sequence[str]) -> None:
    ctx.phone.unmute(_call_arg(args, 0))


async def _dtmf(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.dtmf(check_digits("dtmf", args[0]), _call_arg(args, 1))


async def _devices(ctx: CommandContext, args: Sequence[str]) -> None:
    rows = [
        (str(d.get("index", "")), str(d.get("kind", "")), str(d.get("name", "")), "*" if d.get("default") else "")
        for d in await ctx.phone.devices()
    ]
    ctx.table("Audio devices", ("#", "kind", "name", "default"), rows)


async def _use(ctx: CommandContext, args: Sequence[str]) -> None:
    which, device = args[0], " ".join(args[1:])
    if not device:
        raise CommandError("use: missing argument <device> (usage: use <input|output> <device>)")
    if which == "input":
        ctx.phone.use_input(device)
    else:
        ctx.phone.use_output(device)
    ctx.say(f"{which}: {device}")


async def _calls(ctx: CommandContext, args: Sequence[str]) -> None:
    snap = ctx.phone.snapshot
    rows = [
        (
            ("> " if c.id == snap.current else "  ") + c.id[:8],
            c.direction,
            c.remote,
            c.state + (" (held)" if c.held else "") + (" (muted)" if c.muted else ""),
            f"{c.duration(snap.ts):.0f}s",
            c.codec,
        )
        for c in snap.calls
    ]
    ctx.table("Calls", ("id", "dir", "remote", "state", "duration", "codec"), rows)


async def _status(ctx: CommandContext, args: Sequence[str]) -> None:
    s = ctx.phone.snapshot
    ctx.say(
        f"socket {s.socket.state}; client {s.client.state}"
        + (f" as {s.client.user}" if s.client.user else "")
        + (f"; gateway {s.client.gateway_state}" if s.client.gateway_state else "")
        + (f"; dc {s.client.dc}" if s.client.dc else "")
        + (f"; region {s.client.region}" if s.client.region else "")
        + f"; {len([c for c in s.calls if not c.ended])} call(s)"
    )


async def _history(ctx: CommandContext, args: Sequence[str]) -> None:
    limit = int(_seconds("history", args[0])) if args else ctx.history_limit
    rows = [
        (r.get("started", "")[:19], r.get("direction", ""), r.get("remote", ""), f"{r.get('duration', 0):.0f}s",
         r.get("cause", ""), f"${r.get('cost', 0):.4f}")
        for r in ctx.phone.history_records()[-limit:]
    ]
    ctx.table("History", ("started", "dir", "remote", "duration", "cause", "cost"), rows)


async def _wait(ctx: CommandContext, args: Sequence[str]) -> None:
    timeout = _seconds("wait", args[2]) if len(args) > 2 else 30.0
    ok = await ctx.phone.wait_for(args[0], args[1], timeout)
    if not ok:
        raise CheckFailed(f"wait: {args[0]} did not reach {args[1]!r} within {timeout:g}s")


async def _expect(ctx: CommandContext, args: Sequence[str]) -> None:
    timeout = _seconds("expect", args[2]) if len(args) > 2 else 10.0
    got = await ctx.phone.expect_dtmf(check_digits("expect", args[1]), timeout)
    if got is not None:
        raise CheckFailed(f"expect: wanted DTMF {args[1]!r} within {timeout:g}s, received {got!r}")
    ctx.say(f"received DTMF {args[1]}")


def _check_wait(args: Sequence[str]) -> None:
    if len(args) > 1:
        states = WAIT_STATES[args[0]]
        if args[1].lower() not in states:
            raise CommandError(f"wait: {args[0]} state must be one of {', '.join(states)}, not {args[1]!r}")


async def _sleep(ctx: CommandContext, args: Sequence[str]) -> None:
    await asyncio.sleep(_seconds("sleep", args[0]))


async def _echo(ctx: CommandContext, args: Sequence[str]) -> None:
    ctx.say(" ".join(args))


async def _help(ctx: CommandContext, args: Sequence[str]) -> None:
    ctx.say(format_help(args[0] if args else None))


async def _quit(ctx: CommandContext, args: Sequence[str]) -> None:
    raise QuitRequested


_CALL = Arg("call", "call", optional=True, help="call id prefix (default: the current call)")

COMMANDS: tuple[Command, ...] = (
    Command("login", (Arg("user", optional=True), Arg("password", "secret", optional=True)),
            "Log in with the profile's credentials, or USER PASSWORD, or a TOKEN (JWT).", _login,
            example="login"),
    Command("logout", (), "Hang up every call and close the connection.", _logout),
    Command("dial", (Arg("destination", "destination"), Arg("header", "header", optional=True, variadic=True)),
            "Call a number, SIP user or URI; extra Name=value arguments become custom headers.", _dial,
            aliases=("call",), example="dial +13128889999 X-Ticket=42"),
    Command("answer", (_CALL,), "Answer the ringing inbound call.", _answer, aliases=("a", "accept")),
    Command("reject", (_CALL,), "Refuse the ringing inbound call (USER_BUSY).", _reject, aliases=("r", "decline")),
    Command("hangup", (_CALL,), "Hang up the current call (or cancel it while ringing).", _hangup,
            aliases=("h", "bye")),
    Command("hold", (_CALL,), "Put the call on hold.", _hold),
    Command("unhold", (_CALL,), "Take the call off hold.", _unhold, aliases=("resume",)),
    Command("mute", (_CALL,), "Stop sending microphone audio.", _mute),
    Command("unmute", (_CALL,), "Send microphone audio again.", _unmute),
    Command("dtmf", (Arg("digits", "digits"), _CALL), "Send DTMF digits 0-9 * # A-D.", _dtmf,
            aliases=("send",), example="dtmf 1234#"),
    Command("devices", (), "List audio input and output devices.", _devices),
    Command("use", (Arg("which", "choice", choices=("input", "output")), Arg("device", "device", variadic=True)),
            "Switch the audio input or output device (index or name substring), live calls included.", _use,
            example="use output speakers"),
    Command("calls", (), "List calls.", _calls),
    Command("status", (), "Show connection, login and gateway state.", _status),
    Command("history", (Arg("count", "seconds", optional=True),), "Show recent calls with cost.", _history),
    Command("wait", (Arg("what", "choice", choices=WAIT_TARGETS), Arg("state"), Arg("timeout", "seconds", True)),
            "Wait until the socket, client or current call reaches a state (default timeout 30 s).", _wait,
            example="wait call active 10", validate=_check_wait),
    Command("expect", (Arg("what", "choice", choices=("dtmf",)), Arg("digits", "digits"),
                       Arg("timeout", "seconds", True)),
            "Wait until the current call has received these DTMF digits (default timeout 10 s).", _expect,
            example="expect dtmf 123# 5"),
    Command("sleep", (Arg("seconds", "seconds"),), "Pause.", _sleep),
    Command("echo", (Arg("text", variadic=True, optional=True),), "Print text.", _echo),
    Command("help", (Arg("command", "choice", optional=True),), "List commands, or explain one.", _help,
            aliases=("?",)),
    Command("quit", (), "Leave (hangs up calls).", _quit, aliases=("exit", "q")),
)

_BY_NAME: dict[str, Command] = {}
for _c in COMMANDS:
    for _n in (_c.name, *_c.aliases):
        _BY_NAME[_n] = _c


def names() -> list[str]:
    """Every command name and alias (for completion)."""
    return sorted(_BY_NAME)


def find_command(name: str) -> Command:
    """The command called ``name`` (or an alias); :class:`CommandError` otherwise."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        close = [n for n in _BY_NAME if n.startswith(name.lower()[:2])]
        hint = f" (did you mean {', '.join(sorted(close))}?)" if close else " (try 'help')"
        raise CommandError(f"unknown command {name!r}{hint}") from None


def _tokens(line: str) -> list[tuple[str, bool]]:
    """Words of ``line`` with quotes and escapes applied; the flag says the word began with a bare ``#``."""
    words: list[tuple[str, bool]] = []
    word: list[str] = []
    in_word = hashed = False
    quote = ""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < n and line[i + 1] in '"\\$`':
                i += 1
                word.append(line[i])
            else:
                word.append(ch)
        elif ch.isspace():
            if in_word:
                words.append(("".join(word), hashed))
                word, in_word, hashed = [], False, False
        else:
            if not in_word:
                in_word, hashed = True, ch == "#"
            if ch in "'\"":
                quote = ch
            elif ch == "\\":
                if i + 1 >= n:
                    raise CommandError("cannot parse line: No escaped character")
                i += 1
                word.append(line[i])
            else:
                word.append(ch)
        i += 1
    if quote:
        raise CommandError("cannot parse line: No closing quotation")
    if in_word:
        words.append(("".join(word), hashed))
    return words


def split(line: str) -> list[str]:
    """Split a line into words, dropping a comment (see the module doc for where ``#`` starts one)."""
    tokens = _tokens(line)
    if not tokens or tokens[0][1]:
        return []
    cmd = _BY_NAME.get(tokens[0][0].lower())
    words = [tokens[0][0]]
    for index, (word, hashed) in enumerate(tokens[1:]):
        arg = cmd.arg_at(index) if cmd is not None else None
        if hashed and (arg is None or arg.kind != "digits"):
            break
        words.append(word)
    return words


def _quote(word: str) -> str:
    if word and not any(c.isspace() or c in "'\"\\" for c in word) and not word.startswith("#"):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'" if "'" in word else f"'{word}'"


def parse_line(line: str) -> tuple[Command, list[str]] | None:
    """Parse a command line; ``None`` for blank lines and comments."""
    words = split(line)
    if not words:
        return None
    return parse_words(words)


def parse_words(words: Sequence[str]) -> tuple[Command, list[str]]:
    """The command and its checked arguments from words already split (a line, or a one-shot's argv)."""
    if not words:
        raise CommandError("no command given (try 'help')")
    cmd = find_command(words[0])
    args = list(words[1:])
    cmd.check_args(args)
    return cmd, args


async def run_line(ctx: CommandContext, line: str) -> Command | None:
    """Parse and run one line. Raises :class:`CommandError` / :class:`QuitRequested` / core errors."""
    parsed = parse_line(line)
    if parsed is None:
        return None
    cmd, args = parsed
    await cmd.handler(ctx, args)
    return cmd


def is_secret_line(line: str) -> bool:
    """True for lines that carry a credential (``login USER PASSWORD`` / ``login TOKEN``)."""
    try:
        words = split(line)
    except CommandError:
        words = line.split()
    if not words:
        return False
    cmd = _BY_NAME.get(words[0].lower())
    return cmd is not None and any(a.kind == "secret" for a in cmd.args) and len(words) > 1


def display_line(line: str) -> str:
    """``line`` as it may be echoed or logged: a command's secret arguments become ``***``."""
    try:
        words = split(line)
    except CommandError:
        words = line.split()
    if not words:
        return line.strip()
    cmd = _BY_NAME.get(words[0].lower())
    if cmd is None:
        return line.strip()
    return cmd.display(words[1:]).replace(cmd.name, words[0], 1)


def format_help(name: str | None = None) -> str:
    """Help text for one command, or the list of all."""
    if name:
        cmd = find_command(name)
        lines = [f"{cmd.usage}", f"  {cmd.help}"]
        if cmd.aliases:
            lines.append(f"  aliases: {', '.join(cmd.aliases)}")
        if cmd.example:
            lines.append(f"  example: {cmd.example}")
        return "\n".join(lines)
    width = max(len(c.usage) for c in COMMANDS)
    return "\n".join(f"{c.usage:<{width}}  {c.help}" for c in COMMANDS)
