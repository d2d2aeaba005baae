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
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from softphone.errors import CommandError, SoftphoneError
from softphone.protocol.dtmf import check_digits  # the one DTMF check, re-exported for the front-ends
from softphone.protocol.states import CallState, ClientState

if TYPE_CHECKING:
    from softphone.app.hearing import Hearing
    from softphone.app.phone import Phone
    from softphone.media.impair import ImpairSpec

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
WAIT_TARGETS = ("socket", "client", "call", "prompt-end")
#: What ``expect`` can check (``expect WHAT ...``).
EXPECT_KINDS = ("dtmf", "speech", "tone", "silence", "audio", "hangup", "state", "header", "caller")
#: Commands whose words may end with ``on CALL`` (a call name or id prefix) to pick the call.
ON_CALL = ("expect", "wait", "say", "play", "transcript")
#: Hearing commands and what they need the phone to listen for ("speech" or "levels").
HEARING_NEEDS: dict[str, str] = {"speech": "speech", "transcript": "speech", "prompt-end": "levels",
                                  "tone": "levels", "silence": "levels", "audio": "levels"}
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
    #: Whether the word at an index may begin with ``#`` (DTMF digits in a free-form argument list).
    keeps_hash: Callable[[Sequence[str], int], bool] | None = None

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


def split_as(args: Sequence[str]) -> tuple[list[str], str | None]:
    """``[..., "as", NAME]`` -> (the words before, NAME); (args, None) without a trailing ``as NAME``."""
    if len(args) >= 2 and args[-2] == "as":
        return list(args[:-2]), args[-1]
    return list(args), None


def split_on(args: Sequence[str]) -> tuple[list[str], str | None]:
    """``[..., "on", CALL]`` -> (the words before, CALL); (args, None) without a trailing ``on CALL``."""
    if len(args) >= 2 and args[-2] == "on":
        return list(args[:-2]), args[-1]
    return list(args), None


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _check_name(cmd: str, name: str) -> None:
    if not _NAME_RE.fullmatch(name) or name in ("as", "on"):
        raise CommandError(f"{cmd}: call name {name!r} must be a word (letters, digits, _ or -)")


def _check_dial(args: Sequence[str]) -> None:
    rest, name = split_as(args)
    if name is not None:
        _check_name("dial", name)
    if not rest:
        raise CommandError("dial: missing argument <destination>")
    for h in rest[1:]:
        parse_header("dial", h)


async def _dial(ctx: CommandContext, args: Sequence[str]) -> None:
    rest, name = split_as(args)
    headers = [parse_header("dial", h) for h in rest[1:]]
    call_id = await ctx.phone.dial(rest[0], headers=headers)
    if name is not None:
        ctx.phone.name_call(name, call_id)
    ctx.say(f"dialing {rest[0]} (call {call_id[:8]}" + (f", {name})" if name else ")"))


def _check_answer(args: Sequence[str]) -> None:
    rest, name = split_as(args)
    if name is not None:
        _check_name("answer", name)
    if len(rest) > 1:
        raise CommandError("answer: too many arguments (usage: answer [call] [as NAME])")


async def _answer(ctx: CommandContext, args: Sequence[str]) -> None:
    rest, name = split_as(args)
    await ctx.phone.answer(_call_arg(rest, 0))
    if name is not None:
        ctx.phone.name_call(name, None)


async def _reject(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.reject(_call_arg(args, 0))


async def _hangup(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.hangup(_call_arg(args, 0))


async def _hold(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.hold(_call_arg(args, 0))


async def _unhold(ctx: CommandContext, args: Sequence[str]) -> None:
    await ctx.phone.unhold(_call_arg(args, 0))


def _impair_spec(args: Sequence[str]) -> ImpairSpec | None:
    from softphone.errors import ConfigError
    from softphone.media.impair import parse

    try:
        return parse(",".join(args))
    except ConfigError as exc:
        raise CommandError(f"impair: {exc}") from None


def _check_impair(args: Sequence[str]) -> None:
    _impair_spec(args)


async def _impair(ctx: CommandContext, args: Sequence[str]) -> None:
    from softphone.media.impair import describe

    spec = _impair_spec(args)
    ctx.phone.set_impairment(spec)
    ctx.say(f"impairment: {describe(spec)}")


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
    args, on = split_on(args)
    if args[0] == "prompt-end":
        timeout = _seconds("wait", args[1]) if len(args) > 1 else 30.0
        hearing = await ctx.phone.hearing(on, speech=False)
        started = time.monotonic()
        ok = await hearing.wait_prompt_end(timeout)
        ctx.phone.record_expect(_id_of(ctx, on), "prompt-end", ok, time.monotonic() - started)
        if not ok:
            heard = "still talking" if hearing.stats.prompts else "no audio"
            raise CheckFailed(f"wait: the far end's prompt did not end within {timeout:g}s ({heard})")
        return
    timeout = _seconds("wait", args[2]) if len(args) > 2 else 30.0
    if on is not None:
        ok = await _wait_call_state(ctx, on, args[1], timeout)
    else:
        ok = await ctx.phone.wait_for(args[0], args[1], timeout)
    if not ok:
        raise CheckFailed(f"wait: {args[0]} did not reach {args[1]!r} within {timeout:g}s")


async def _wait_call_state(ctx: CommandContext, on: str | None, state: str, timeout: float) -> bool:
    state = state.lower()
    wanted = {state} | ({"hangup", "destroyed"} if state in ("hangup", "ended", "destroyed") else set())

    def check(_s: object) -> bool | None:
        call = ctx.phone.call_named(on)
        if call is None:
            return None
        if call.state in wanted:
            return True
        return False if call.ended else None

    return await ctx.phone.wait_until(check, timeout)


def _id_of(ctx: CommandContext, on: str | None) -> str | None:
    snap = ctx.phone.call_named(on)
    return snap.id if snap is not None else None


def _timeout_at(cmd: str, args: Sequence[str], index: int, default: float) -> float:
    return _seconds(cmd, args[index]) if len(args) > index else default


def _check_expect(args: Sequence[str]) -> None:
    """Parse-time checks of ``expect WHAT ...`` (argument count and shape per kind)."""
    rest, on = split_on(args)
    what, vals = rest[0], rest[1:]
    shapes = {"dtmf": (1, 2), "speech": (1, 2), "tone": (1, 2), "silence": (1, 2), "audio": (0, 1),
              "hangup": (0, 2), "state": (1, 2), "header": (1, 2), "caller": (1, 1)}
    low, high = shapes[what]
    if not low <= len(vals) <= high:
        usage = {"dtmf": "DIGITS [TIMEOUT]", "speech": '"PHRASE[|PHRASE...]" [TIMEOUT]',
                 "tone": "FREQ[±TOL] [TIMEOUT]", "silence": "SECONDS [TIMEOUT]", "audio": "[TIMEOUT]",
                 "hangup": "[CAUSE] [TIMEOUT]", "state": "STATE [TIMEOUT]", "header": "X-Name [VALUE]",
                 "caller": "NAME|NUMBER"}[what]
        raise CommandError(f"expect {what}: usage: expect {what} {usage} [on CALL]")
    if what == "dtmf":
        check_digits("expect", vals[0])
        if len(vals) > 1:
            _seconds("expect", vals[1])
    elif what == "speech":
        if not any(w.strip() for w in vals[0].split("|")):
            raise CommandError("expect speech: the phrase is empty")
        if len(vals) > 1:
            _seconds("expect", vals[1])
    elif what == "tone":
        from softphone.app.hearing import parse_tone

        parse_tone(vals[0])
        if len(vals) > 1:
            _seconds("expect", vals[1])
    elif what in ("silence", "audio") or (what == "state" and len(vals) > 1):
        for v in vals if what != "state" else vals[1:]:
            _seconds("expect", v)
    if what == "state" and vals[0].lower() not in WAIT_STATES["call"]:
        raise CommandError(f"expect state: STATE must be one of {', '.join(WAIT_STATES['call'])}, not {vals[0]!r}")
    if what == "hangup" and vals:
        _hangup_args(vals)
    if on is not None and not on:
        raise CommandError("expect: 'on' needs a call name")


def _hangup_args(vals: Sequence[str]) -> tuple[str | None, float]:
    cause: str | None = None
    timeout = 10.0
    for v in vals:
        try:
            timeout = _seconds("expect", v)
        except CommandError:
            if cause is not None or not re.fullmatch(r"[A-Za-z_]+", v):
                raise CommandError(f"expect hangup: {v!r} is neither a cause (e.g. NORMAL_CLEARING) "
                                   "nor seconds") from None
            cause = v.upper()
    return cause, timeout


def _heard(text: str) -> str:
    return f"heard {text!r}" if text else "heard nothing"


async def _expect(ctx: CommandContext, args: Sequence[str]) -> None:
    rest, on = split_on(args)
    what, vals = rest[0], rest[1:]
    phone = ctx.phone
    started = time.monotonic()
    if what == "dtmf":
        timeout = _timeout_at("expect", vals, 1, 10.0)
        if on is not None and phone.call_named(on) is None:
            raise CommandError(f"expect: no call {on!r}")
        got = await phone.expect_dtmf(check_digits("expect", vals[0]), timeout, on)
        phone.record_expect(_id_of(ctx, on), f"dtmf {vals[0]}", got is None, time.monotonic() - started)
        if got is not None:
            raise CheckFailed(f"expect: wanted DTMF {vals[0]!r} within {timeout:g}s, received {got!r}")
        ctx.say(f"received DTMF {vals[0]}")
    elif what == "speech":
        timeout = _timeout_at("expect", vals, 1, 10.0)
        hearing = await phone.hearing(on, speech=True)
        ok, said, latency = await hearing.expect_speech(vals[0], timeout)
        phone.record_expect(_id_of(ctx, on), f"speech {vals[0]}", ok, time.monotonic() - started, latency)
        if not ok:
            raise CheckFailed(f"expect speech: wanted {vals[0]!r} within {timeout:g}s; {_heard(said)}")
        ctx.say(f"heard {said!r}" + (f" ({latency:.2f} s after the speech ended)" if latency is not None else ""))
    elif what == "tone":
        from softphone.app.hearing import parse_tone

        freq, tol = parse_tone(vals[0])
        timeout = _timeout_at("expect", vals, 1, 10.0)
        hearing = await phone.hearing(on, speech=False)
        found, heard = await hearing.expect_tone(freq, tol, timeout)
        phone.record_expect(_id_of(ctx, on), f"tone {vals[0]}", found, time.monotonic() - started)
        if not found:
            got = f"the strongest frequency heard last was {heard:.0f} Hz" if heard else "heard no audio"
            raise CheckFailed(f"expect tone: wanted {freq:g}±{tol:g} Hz within {timeout:g}s; {got}")
        ctx.say(f"heard a {freq:g} Hz tone")
    elif what == "silence":
        seconds = _seconds("expect", vals[0])
        timeout = _timeout_at("expect", vals, 1, seconds + 10.0)
        hearing = await phone.hearing(on, speech=False)
        best = await hearing.expect_silence(seconds, timeout)
        phone.record_expect(_id_of(ctx, on), f"silence {vals[0]}", best >= seconds - 1e-6,
                            time.monotonic() - started)
        if best < seconds - 1e-6:
            raise CheckFailed(f"expect silence: wanted {seconds:g}s of silence within {timeout:g}s; the longest "
                              f"quiet stretch was {best:.2f}s" + _transcript_tail(hearing))
        ctx.say(f"heard {seconds:g}s of silence")
    elif what == "audio":
        timeout = _timeout_at("expect", vals, 0, 10.0)
        hearing = await phone.hearing(on, speech=False)
        ok = await hearing.expect_audio(timeout)
        phone.record_expect(_id_of(ctx, on), "audio", ok, time.monotonic() - started)
        if not ok:
            raise CheckFailed(f"expect audio: wanted audio from the far end within {timeout:g}s; heard silence")
        ctx.say("heard audio")
    elif what == "hangup":
        cause, timeout = _hangup_args(vals)
        ok = await _wait_call_state(ctx, on, "ended", timeout)
        call = phone.call_named(on)
        phone.record_expect(_id_of(ctx, on), "hangup", ok, time.monotonic() - started)
        if not ok or call is None:
            state = call.state.value if call is not None else "no call"
            raise CheckFailed(f"expect hangup: wanted the call to end within {timeout:g}s; it is {state}")
        if cause is not None and call.cause.upper() != cause:
            raise CheckFailed(f"expect hangup: wanted cause {cause}, the call ended with {call.cause or 'no cause'}")
        ctx.say(f"the call ended ({call.cause or 'no cause'})")
    elif what == "state":
        timeout = _timeout_at("expect", vals, 1, 10.0)
        ok = await _wait_call_state(ctx, on, vals[0], timeout)
        phone.record_expect(_id_of(ctx, on), f"state {vals[0]}", ok, time.monotonic() - started)
        if not ok:
            call = phone.call_named(on)
            state = call.state.value if call is not None else "no call"
            raise CheckFailed(f"expect state: wanted {vals[0].lower()!r} within {timeout:g}s; the call is {state}")
    elif what == "header":
        call = phone.call_named(on)
        if call is None:
            raise CheckFailed("expect header: no call")
        values = [v for k, v in call.custom_headers if k.lower() == vals[0].lower()]
        if not values or (len(vals) > 1 and vals[1] not in values):
            have = ", ".join(f"{k}={v}" for k, v in call.custom_headers) or "none"
            want = f"{vals[0]}={vals[1]}" if len(vals) > 1 else vals[0]
            raise CheckFailed(f"expect header: wanted {want}; the call's custom headers: {have}")
        ctx.say(f"header {vals[0]}={values[0]}")
    elif what == "caller":
        call = phone.call_named(on)
        if call is None:
            raise CheckFailed("expect caller: no call")
        if not _caller_matches(vals[0], call.remote_name, call.remote_number):
            raise CheckFailed(f"expect caller: wanted {vals[0]!r}; the far end is {call.remote or 'unknown'}")
        ctx.say(f"caller {call.remote}")


def _caller_matches(want: str, name: str, number: str) -> bool:
    for alt in want.split("|"):
        alt = alt.strip()
        if not alt:
            continue
        if alt.lower() == name.lower():
            return True
        digits = re.sub(r"[^0-9]", "", alt)
        if digits and digits == re.sub(r"[^0-9]", "", number):
            return True
        if alt.lower() == number.lower():
            return True
    return False


def _transcript_tail(hearing: Hearing) -> str:
    text = hearing.transcript() if hearing.speech else ""
    return f"; heard {text[-200:]!r}" if text else ""


def _expect_keeps_hash(words: Sequence[str], index: int) -> bool:
    return index == 1 and bool(words) and words[0] == "dtmf"


def _check_wait(args: Sequence[str]) -> None:
    args, _on = split_on(args)
    if args[0] == "prompt-end":
        if len(args) > 2:
            raise CommandError("wait: usage: wait prompt-end [TIMEOUT]")
        if len(args) > 1:
            _seconds("wait", args[1])
        return
    if len(args) < 2:
        raise CommandError(f"wait: missing argument <state> (usage: wait {args[0]} STATE [TIMEOUT])")
    if len(args) > 3:
        raise CommandError("wait: too many arguments")
    if len(args) > 2:
        _seconds("wait", args[2])
    states = WAIT_STATES[args[0]]
    if args[1].lower() not in states:
        raise CommandError(f"wait: {args[0]} state must be one of {', '.join(states)}, not {args[1]!r}")


async def _say_cmd(ctx: CommandContext, args: Sequence[str]) -> None:
    rest, on = split_on(args)
    from softphone.media import tts

    text = " ".join(rest)
    try:
        source = await asyncio.to_thread(tts.speech_source, text)
    except Exception as exc:
        raise CommandError(f"say: {exc}") from None
    seconds = await ctx.phone.play(source, on)
    ctx.phone.record_expect(_id_of(ctx, on), "say", True, seconds)


def _check_play(args: Sequence[str]) -> None:
    rest, _on = split_on(args)
    if not rest:
        raise CommandError("play: usage: play FILE | play tone FREQ SECONDS [on CALL]")
    if rest[0] == "tone":
        if len(rest) != 3:
            raise CommandError("play: usage: play tone FREQ SECONDS")
        freq = _seconds("play", rest[1])
        if not 20 <= freq <= 20000:
            raise CommandError("play: tone frequency must be 20-20000 Hz")
        _seconds("play", rest[2])
    elif len(rest) != 1:
        raise CommandError("play: usage: play FILE (quote a name with spaces)")


async def _play(ctx: CommandContext, args: Sequence[str]) -> None:
    rest, on = split_on(args)
    if rest[0] == "tone":
        from softphone.media.sources import ToneSource

        freq, seconds = float(rest[1]), float(rest[2])
        source: object = ToneSource(freq, duration_ms=int(seconds * 1000))
    else:
        from softphone.media.sources import FileSource

        try:
            source = await asyncio.to_thread(FileSource, rest[0])
        except (OSError, ValueError, SoftphoneError) as exc:
            raise CommandError(f"play: cannot read {rest[0]!r}: {exc}") from None
    await ctx.phone.play(source, on)  # type: ignore[arg-type]


async def _transcript(ctx: CommandContext, args: Sequence[str]) -> None:
    rest, on = split_on(args)
    hearing = await ctx.phone.hearing(on or (rest[0] if rest else None), speech=True)
    ctx.say(hearing.transcript() or "(nothing heard yet)")


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
    Command("dial", (Arg("destination", "destination"), Arg("header", "text", optional=True, variadic=True)),
            "Call a number, SIP user or URI; extra Name=value arguments become custom headers; "
            "'as NAME' names the call for later commands.", _dial,
            aliases=("call",), example="dial +13128889999 X-Ticket=42 as caller", validate=_check_dial),
    Command("answer", (Arg("call", "call", optional=True, variadic=True),),
            "Answer the ringing inbound call ('as NAME' names it).", _answer,
            aliases=("a", "accept"), example="answer as agent", validate=_check_answer),
    Command("reject", (_CALL,), "Refuse the ringing inbound call (USER_BUSY).", _reject, aliases=("r", "decline")),
    Command("hangup", (_CALL,), "Hang up the current call (or cancel it while ringing).", _hangup,
            aliases=("h", "bye")),
    Command("hold", (_CALL,), "Put the call on hold.", _hold),
    Command("unhold", (_CALL,), "Take the call off hold.", _unhold, aliases=("resume",)),
    Command("mute", (_CALL,), "Stop sending microphone audio.", _mute),
    Command("unmute", (_CALL,), "Send microphone audio again.", _unmute),
    Command("impair", (Arg("spec", variadic=True),),
            "Impair the calls' media from now on, live calls too: a preset (good, wifi, congested, satellite) "
            "and/or loss=5%,burst=3,delay=100ms,jitter=40ms; 'none' lifts it.", _impair,
            example="impair congested", validate=_check_impair),
    Command("dtmf", (Arg("digits", "digits"), _CALL), "Send DTMF digits 0-9 * # A-D.", _dtmf,
            aliases=("send",), example="dtmf 1234#"),
    Command("devices", (), "List audio input and output devices.", _devices),
    Command("use", (Arg("which", "choice", choices=("input", "output")), Arg("device", "device", variadic=True)),
            "Switch the audio input or output device (index or name substring), live calls included.", _use,
            example="use output speakers"),
    Command("calls", (), "List calls.", _calls),
    Command("status", (), "Show connection, login and gateway state.", _status),
    Command("history", (Arg("count", "seconds", optional=True),), "Show recent calls with cost.", _history),
    Command("wait", (Arg("what", "choice", choices=WAIT_TARGETS), Arg("state", optional=True, variadic=True)),
            "Wait until the socket, client or current call reaches a state (default timeout 30 s); "
            "'wait prompt-end [TIMEOUT]': until the far end stops talking. 'on CALL' picks a call.", _wait,
            example="wait call active 10", validate=_check_wait),
    Command("expect", (Arg("what", "choice", choices=EXPECT_KINDS), Arg("value", optional=True, variadic=True)),
            "Check the call (default timeout 10 s): dtmf DIGITS, speech \"PHRASE|PHRASE\" (>= 75 % of the "
            "words in order), tone FREQ[±TOL], silence SECONDS, audio, hangup [CAUSE], state STATE, "
            "header X-Name [VALUE], caller NAME|NUMBER; [TIMEOUT] last; 'on CALL' picks a call.", _expect,
            example='expect speech "press one for sales" 15', validate=_check_expect,
            keeps_hash=_expect_keeps_hash),
    Command("say", (Arg("text", variadic=True),),
            "Speak text into the call (offline text to speech), then send the profile's audio again.", _say_cmd,
            example='say "I would like to speak to sales"'),
    Command("play", (Arg("what"), Arg("more", optional=True, variadic=True)),
            "Play a sound file, or 'tone FREQ SECONDS', into the call, then send the profile's audio again.",
            _play, example="play tone 440 1", validate=_check_play),
    Command("transcript", (Arg("call", "call", optional=True, variadic=True),),
            "Print what the call has heard so far (speech recognition).", _transcript),
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


def _tokens(line: str, comment_at: Callable[[list[str]], bool] | None = None) -> list[str]:
    """Words of ``line`` with quotes and escapes applied.

    A word that begins with a bare ``#`` ends the line when ``comment_at(words so far)`` says it
    is a comment there; the rest of the line is then never parsed, so a comment may hold anything
    (``# it's`` has an unbalanced quote).
    """
    words: list[str] = []
    word: list[str] = []
    in_word = False
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
                words.append("".join(word))
                word, in_word = [], False
        else:
            if not in_word:
                in_word = True
                if ch == "#" and (comment_at is None or comment_at(words)):
                    return words
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
        words.append("".join(word))
    return words


def split(line: str) -> list[str]:
    """Split a line into words, dropping a comment (see the module doc for where ``#`` starts one)."""

    def comment_at(words: list[str]) -> bool:
        if not words:
            return True  # a line that begins with '#'
        cmd = _BY_NAME.get(words[0].lower())
        if cmd is None:
            return True
        index = len(words) - 1  # the argument this word would be
        arg = cmd.arg_at(index)
        if arg is not None and arg.kind == "digits":
            return False
        return not (cmd.keeps_hash is not None and cmd.keeps_hash(words[1:], index))

    return _tokens(line, comment_at)


def _quote(word: str) -> str:
    if word and not any(c.isspace() or c in "'\"\\" for c in word) and not word.startswith("#"):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'" if "'" in word else f"'{word}'"


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_vars(line: str, variables: Mapping[str, str] | None = None, *, environ: bool = True) -> str:
    """``${NAME}`` replaced by ``variables[NAME]`` (``--var NAME=VALUE``), else the environment variable.

    :class:`CommandError` names the first variable that is defined nowhere. ``$${`` stands for a
    literal ``${``.
    """
    if "${" not in line:
        return line
    values = variables or {}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            return values[name]
        if environ and name in os.environ:
            return os.environ[name]
        raise CommandError(f"unknown variable ${{{name}}} (give --var {name}=VALUE or set it in the environment)")

    parts = line.split("$${")
    return "${".join(_VAR_RE.sub(sub, part) for part in parts)


def parse_var(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (``--var``) -> (NAME, VALUE); :class:`CommandError` for a bad name."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise CommandError(f"--var {text!r} must be NAME=VALUE (NAME: letters, digits, _)")
    return name, value


def call_refs(cmd: Command, args: Sequence[str]) -> list[str]:
    """The call names/ids a command line refers to (``on CALL``, a call argument), for parse-time checks."""
    if cmd.name in ("dial", "answer"):
        rest, _name = split_as(args)
        return list(rest[:1]) if cmd.name == "answer" else []
    refs: list[str] = []
    rest = list(args)
    if cmd.name in ON_CALL:
        rest, on = split_on(args)
        if on is not None:
            refs.append(on)
    if cmd.name == "transcript" and rest:
        refs.append(rest[0])
    for index, value in enumerate(rest):
        arg = cmd.arg_at(index)
        if arg is not None and arg.kind == "call" and cmd.name != "transcript":
            refs.append(value)
    return refs


def defined_name(cmd: Command, args: Sequence[str]) -> str | None:
    """The call name a line defines (``dial ... as NAME``, ``answer ... as NAME``)."""
    if cmd.name in ("dial", "answer"):
        return split_as(args)[1]
    return None


def hearing_need(cmd: Command, args: Sequence[str]) -> str | None:
    """What a line needs the phone to listen for: "speech", "levels" or None."""
    if cmd.name == "transcript":
        return "speech"
    if cmd.name in ("expect", "wait") and args:
        return HEARING_NEEDS.get(args[0])
    return None


def parse_line(line: str, variables: Mapping[str, str] | None = None) -> tuple[Command, list[str]] | None:
    """Parse a command line; ``None`` for blank lines and comments. ``${NAME}`` in a word is replaced
    (:func:`expand_vars`) after the line is split, so a value with spaces stays one argument."""
    words = [expand_vars(w, variables) for w in split(line)]
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
    variables = ctx.extra.get("vars")  # a front-end's own; else the Phone's (the shell's --var)
    parsed = parse_line(line, variables if isinstance(variables, dict) else ctx.phone.variables)
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
