"""One-shot commands: ``dial``, ``answer``, ``check`` and ``demo``.

Each logs in, drives one or more calls through :class:`~softphone.app.phone.Phone` while a
:class:`~softphone.cli.display.Display` shows them, prints a summary and returns an
:class:`~softphone.cli.exitcodes.ExitCode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from softphone.app.options import CallOptions
from softphone.app.snapshot import PhoneEvent, Snapshot
from softphone.cli.exitcodes import ExitCode, exit_code_for_hangup
from softphone.cli.runtime import open_phone, run_async

if TYPE_CHECKING:
    from softphone.app.options import Globals
    from softphone.app.phone import Phone
    from softphone.media.sources import AudioSource

__all__ = ["dial_arguments", "dtmf_option", "run_answer", "run_check", "run_demo", "run_dial"]

_UP = ("active", "held")


def dtmf_option(digits: str | None) -> str | None:
    """``--dtmf`` checked by the one DTMF check (upper-cased); ``None``/empty: send none.

    :class:`~softphone.errors.CommandError` (exit 2) names the bad digits.
    """
    from softphone.app.commands import check_digits

    return check_digits("--dtmf", digits) if digits else None


def dial_arguments(destination: str, headers: Sequence[str],
                   dtmf: str | None) -> tuple[list[tuple[str, str]], str | None]:
    """``softphone dial``'s destination, ``--header`` and ``--dtmf`` through the command table.

    The words are checked as the REPL's ``dial DESTINATION Name=value...`` line would be, and the
    headers parsed by the one header parser, so the one-shot and the shell cannot disagree.
    """
    from softphone.app.commands import parse_header, parse_words

    cmd, args = parse_words(["dial", destination, *headers])
    return [parse_header(cmd.name, h) for h in args[1:]], dtmf_option(dtmf)


async def until(phone: Phone, predicate: Callable[[Snapshot], bool | None], timeout: float | None,
                interrupted: asyncio.Event) -> str:
    """Wait for ``predicate``: "ok", "failed" (predicate said False), "timeout" or "interrupted"."""
    if interrupted.is_set():
        return "interrupted"
    waiter = asyncio.ensure_future(phone.wait_until(predicate, timeout))
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        done, _ = await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (waiter, stop):
            t.cancel()
    if waiter in done and not waiter.cancelled():
        if waiter.result():
            return "ok"
        return "failed" if predicate(phone.snapshot) is False else "timeout"
    return "interrupted"


def _state_is(call_id: str, states: Sequence[str]) -> Callable[[Snapshot], bool | None]:
    def check(s: Snapshot) -> bool | None:
        c = s.call(call_id)
        if c is None:
            return None
        if c.state in states:
            return True
        return False if c.ended else None

    return check


def _ended(call_id: str) -> Callable[[Snapshot], bool | None]:
    def check(s: Snapshot) -> bool | None:
        c = s.call(call_id)
        return True if c is None or c.ended else None

    return check


async def _hangup(phone: Phone, call_id: str) -> None:
    c = phone.snapshot.call(call_id)
    if c is not None and not c.ended:
        with contextlib.suppress(Exception):
            await phone.hangup(call_id)
        await phone.wait_until(_ended(call_id), 5.0)


async def talk(phone: Phone, call_id: str, opts: CallOptions, interrupted: asyncio.Event) -> ExitCode:
    """An answered call: optional DTMF, then until --duration (counted from the answer), a hang-up or Ctrl-C."""
    loop = asyncio.get_running_loop()
    deadline = None if opts.duration is None else loop.time() + opts.duration
    if opts.dtmf:
        delay = opts.dtmf_delay if deadline is None else min(opts.dtmf_delay, max(0.0, deadline - loop.time()))
        if await until(phone, _ended(call_id), delay, interrupted) == "timeout":
            await phone.dtmf(opts.dtmf, call_id)
    left = None if deadline is None else max(0.0, deadline - loop.time())
    outcome = await until(phone, _ended(call_id), left, interrupted)
    await _hangup(phone, call_id)
    return ExitCode.OK if outcome != "interrupted" or _was_answered(phone, call_id) else ExitCode.INTERRUPTED


def _was_answered(phone: Phone, call_id: str) -> bool:
    c = phone.snapshot.call(call_id)
    return c is not None and c.answered_at is not None


async def place_call(phone: Phone, destination: str, opts: CallOptions, wait_answer: float | None,
                     interrupted: asyncio.Event, headers: Sequence[tuple[str, str]] = (),
                     on_answer: Callable[[str], None] | None = None) -> tuple[str, ExitCode]:
    """Dial and drive one outbound call to its end; returns (call id, exit code).

    ``on_answer(call_id)`` runs once the call is up, before DTMF and the --duration wait.
    """
    call_id = await phone.dial(destination, headers=headers)
    outcome = await until(phone, _state_is(call_id, _UP), wait_answer, interrupted)
    if outcome == "ok":
        if on_answer is not None:
            on_answer(call_id)
        return call_id, await talk(phone, call_id, opts, interrupted)
    await _hangup(phone, call_id)
    if outcome == "timeout":
        return call_id, ExitCode.NO_ANSWER
    if outcome == "interrupted":
        return call_id, ExitCode.INTERRUPTED
    c = phone.snapshot.call(call_id)
    return call_id, exit_code_for_hangup(c.cause if c else None, c.sip_code if c else None, answered=False)


def run_dial(g: Globals, destination: str, opts: CallOptions, *, caller_name: str | None,
             caller_number: str | None, headers: Sequence[tuple[str, str]], wait_answer: float) -> int:
    from softphone.cli.display import Display

    async def body(interrupted: asyncio.Event) -> int:
        async with open_phone(g, opts, caller_name=caller_name, caller_number=caller_number) as phone:
            display = Display(phone, json=g.json, verbosity=g.verbosity, title=f"softphone dial {destination}")
            with display:
                await phone.login()
                call_id, code = await place_call(phone, destination, opts, wait_answer, interrupted, headers)
            display.summary([call_id], code)
            return code

    return run_async(g, body)


async def _keypress(prompt_phone: Phone) -> str:
    """Read one key (a / r) from a terminal without waiting for Enter."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()
    got: asyncio.Future[str] = loop.create_future()

    def readable() -> None:
        ch = os.read(fd, 1).decode(errors="ignore").lower()
        if ch in ("a", "r", "\r", "\n") and not got.done():
            got.set_result("r" if ch == "r" else "a")

    try:
        tty.setcbreak(fd)
        loop.add_reader(fd, readable)
        return await got
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


async def _decide(phone: Phone, call_id: str, auto_answer: float | None, interrupted: asyncio.Event) -> str:
    """"a" to answer, "r" to reject, "" when the caller gave up or Ctrl-C."""
    if auto_answer is not None or not sys.stdin.isatty():
        outcome = await until(phone, _ended(call_id), auto_answer or 0.0, interrupted)
        return "a" if outcome == "timeout" else ""
    phone.notice("incoming call: press a to answer, r to reject")
    key = asyncio.ensure_future(_keypress(phone))
    gone = asyncio.ensure_future(until(phone, _ended(call_id), None, interrupted))
    done, _ = await asyncio.wait({key, gone}, return_when=asyncio.FIRST_COMPLETED)
    for t in (key, gone):
        t.cancel()
    phone.notice("")
    return key.result() if key in done else ""


def run_answer(g: Globals, opts: CallOptions, *, auto_answer: float | None, count: int,
               timeout: float | None) -> int:
    from softphone.cli.display import Display

    async def body(interrupted: asyncio.Event) -> int:
        async with open_phone(g, opts) as phone:
            display = Display(phone, json=g.json, verbosity=g.verbosity, title="softphone answer")
            handled: list[str] = []
            code = ExitCode.OK
            with display:
                await phone.login()
                display.say(f"waiting for calls to {phone.snapshot.client.user}")
                while len(handled) < count:
                    ringing = await until(phone, lambda s: True if s.ringing_inbound and s.ringing_inbound.id
                                          not in handled else None, timeout, interrupted)
                    if ringing != "ok":
                        code = ExitCode.NO_ANSWER if ringing == "timeout" else ExitCode.INTERRUPTED
                        break
                    call = phone.snapshot.ringing_inbound
                    assert call is not None  # the predicate just saw it
                    handled.append(call.id)
                    choice = await _decide(phone, call.id, auto_answer, interrupted)
                    if choice == "a":
                        await phone.answer(call.id)
                        if await until(phone, _state_is(call.id, _UP), 15.0, interrupted) == "ok":
                            code = await talk(phone, call.id, opts, interrupted)
                        else:
                            code = ExitCode.ERROR
                    elif choice == "r":
                        await phone.reject(call.id)
                        code = ExitCode.REJECTED
                    elif interrupted.is_set():
                        code = ExitCode.INTERRUPTED
                    else:
                        code = ExitCode.NO_ANSWER
                    if interrupted.is_set():
                        break
            display.summary(handled, code)
            return code

    return run_async(g, body)


def run_check(g: Globals, *, local: bool) -> int:
    from softphone.cli.display import Display

    async def body(interrupted: asyncio.Event) -> int:
        async with open_phone(g, CallOptions(local=local, no_audio=True)) as phone:
            display = Display(phone, json=g.json, verbosity=min(g.verbosity, 0) if not g.json else g.verbosity)
            display.tty = False
            with display:
                await phone.login()
            c = phone.snapshot.client
            display.final(PhoneEvent("summary", phone.snapshot.ts, None, {
                "exit_code": 0, "outcome": "ok", "calls": [], "user": c.user, "gateway_state": c.gateway_state,
                "dc": c.dc, "region": c.region, "server": phone.snapshot.socket.url}))
            display.table("check", ("", ""), [
                ("server", phone.snapshot.socket.url), ("user", c.user), ("client", c.state),
                ("gateway", c.gateway_state or "-"), ("data centre", c.dc or "-"), ("region", c.region or "-")])
            return ExitCode.OK

    return run_async(g, body)


#: Seconds the demo keeps the DTMF call up after the digits came back, so they can be read in the panel.
DTMF_LINGER = 1.0


def demo_tone() -> AudioSource:
    """What the demo sends when it has no microphone: a 440 Hz beep, 0.5 s on / 0.5 s off.

    A steady tone would hold both level meters still; the beeps (and their echo) make them swing
    between about 80 % and 15 % (the meters fall 1.5 dB per 20 ms).
    """
    from softphone.media.sources import ToneSource

    return ToneSource(440.0, 0.3, on_ms=500, off_ms=500)


def run_demo(g: Globals, *, duration: float, no_audio: bool) -> int:
    from softphone.cli.display import Display

    async def body(interrupted: asyncio.Event) -> int:
        tone = no_audio
        note = "using a beeping test tone instead of the microphone (--no-audio)" if no_audio else ""
        if not no_audio:
            from softphone.media.hub import probe_pyaudio

            reason = await asyncio.to_thread(probe_pyaudio)
            if reason:
                tone, note = True, f"no usable microphone/speaker ({reason}): sending a beeping test tone instead"
        opts = CallOptions(local=True, tone=tone)
        async with open_phone(g, opts) as phone:
            display = Display(phone, json=g.json, verbosity=g.verbosity, title="softphone demo")
            if note:
                display.say(note)
            ids: list[str] = []
            with display:
                await phone.login()
                display.say(f"logged in to the local switch at {phone.snapshot.socket.url} as demo; calling echo")
                echo_len = max(1.0, duration - 2.5)
                beep = (lambda cid: phone.send_from(demo_tone(), cid)) if tone else None
                call_id, code = await place_call(phone, "echo", CallOptions(duration=echo_len), 10.0, interrupted,
                                                 on_answer=beep)
                ids.append(call_id)
                if code == ExitCode.OK and not interrupted.is_set():
                    display.say("now the dtmf service: sending 123#, it plays each digit back")
                    call_id = await phone.dial("dtmf")
                    ids.append(call_id)
                    if await until(phone, _state_is(call_id, _UP), 10.0, interrupted) == "ok":
                        await phone.dtmf("123#", call_id)
                        got = await until(phone, lambda s: True if "123#" in (s.call(call_id) or _NONE).dtmf_received
                                          else None, 5.0, interrupted)
                        rx = (phone.snapshot.call(call_id) or _NONE).dtmf_received
                        display.say(f"DTMF received back: {rx or '(none)'}")
                        if got not in ("ok", "interrupted"):
                            code = ExitCode.ERROR
                        # Leave the panel with the digits on screen a moment before hanging up.
                        await until(phone, _ended(call_id), DTMF_LINGER, interrupted)
                    await _hangup(phone, call_id)
            display.summary(ids, code)
            return code

    return run_async(g, body)


class _NoCall:
    dtmf_received = ""


_NONE = _NoCall()
