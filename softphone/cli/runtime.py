"""What every networked command needs: logging, the profile, an optional local switch, a Phone.

``--local`` starts an in-process :class:`~softphone.switch.Switch` on loopback
(a free port) and logs in as the demo user; otherwise the profile comes from the
config file (``--config``/``--profile``). Errors map to exit codes in one place,
:func:`exit_code_for_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from softphone.app.options import CallOptions, Globals
from softphone.cli.exitcodes import ExitCode
from softphone.errors import CommandError, ConfigError, LoginFailed, MediaError, SoftphoneError, TransportError

if TYPE_CHECKING:
    from softphone.app.phone import Phone
    from softphone.config import Profile

__all__ = ["exit_code_for_error", "open_phone", "open_profile", "run_async"]


def exit_code_for_error(exc: BaseException) -> ExitCode:
    """The exit code for an error that ended a command."""
    if isinstance(exc, LoginFailed):
        return ExitCode.LOGIN_FAILED
    if isinstance(exc, TransportError | OSError | TimeoutError):
        return ExitCode.NETWORK
    if isinstance(exc, ConfigError | CommandError):
        return ExitCode.USAGE
    return ExitCode.ERROR


def apply_audio(profile: Profile, opts: CallOptions) -> Profile:
    """The profile with the command line's audio options applied."""
    changes: dict[str, Any] = {}
    if opts.no_audio:
        changes["audio_backend"] = "null"
    elif opts.play is not None:
        changes.update(audio_backend="file", input_file=str(opts.play))
    elif opts.tone:
        changes["audio_backend"] = "tone"
    if opts.record is not None:
        changes["record_file"] = str(opts.record)
    if opts.record_mode is not None:
        changes["record_mode"] = opts.record_mode.lower()
    if opts.input_device is not None:
        changes["input_device"] = opts.input_device
    if opts.output_device is not None:
        changes["output_device"] = opts.output_device
    return replace(profile, **changes) if changes else profile


def load_profile(g: Globals, local_url: str | None) -> Profile:
    """The profile of the config file; with ``--local`` its server and credentials become the local switch's.

    ``--local`` keeps everything else of the profile (codecs, devices, caller id, rate, ringback ...);
    ICE servers go too (the local switch uses host candidates on loopback only), and no
    ``password_cmd``/``token_cmd`` runs.
    """
    if g.impair is not None:  # --impair (checked when parsed) wins over the profile's impair key
        return replace(_load_profile(g, local_url), impair=g.impair)
    return _load_profile(g, local_url)


def _load_profile(g: Globals, local_url: str | None) -> Profile:
    from softphone.config import load_config

    if local_url is None:
        return load_config(g.config, g.profile)
    from softphone.config import pick_profile, read_config
    from softphone.log import register_secret
    from softphone.switch.accounts import DEMO_PASSWORD, DEMO_USER

    base = pick_profile(read_config(g.config), g.profile)
    register_secret(DEMO_PASSWORD)
    return replace(base, server=local_url, region="", insecure=False, auth="sip", username=DEMO_USER,
                   password=DEMO_PASSWORD, token="", password_cmd="", token_cmd="", ice_servers=())


def preflight(profile: Profile) -> None:
    """Check the recording path and the requested devices before anything connects (CommandError: exit 2)."""
    import os

    if profile.record_file:
        path = Path(profile.record_file).expanduser()
        parent = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise CommandError(f"--record {path}: is a directory")
        if not parent.is_dir():
            raise CommandError(f"--record {path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise CommandError(f"--record {path}: not writable")
    wanted = [(flag, spec, out) for flag, spec, out in (("--input", profile.input_device, False),
                                                          ("--output", profile.output_device, True)) if spec]
    if not wanted or profile.audio_backend not in ("auto", "pyaudio"):
        return
    from softphone.media.hub import find_device

    for flag, spec, output in wanted:
        try:
            find_device(spec, output=output)
        except MediaError as exc:
            raise CommandError(f"{flag} {spec!r}: {exc} (see `softphone devices`)") from None


@contextlib.asynccontextmanager
async def open_profile(g: Globals, opts: CallOptions) -> AsyncIterator[Profile]:
    """The profile with the command line's audio options, checked (:func:`preflight`); with
    ``opts.local`` a local switch runs until exit and the profile logs in to it."""
    async with contextlib.AsyncExitStack() as stack:
        url: str | None = None
        if opts.local:
            from softphone.switch import Switch

            switch = Switch(host="127.0.0.1", port=0)
            await stack.enter_async_context(switch)
            url = switch.url
        profile = apply_audio(load_profile(g, url), opts)
        await asyncio.to_thread(preflight, profile)
        yield profile


@contextlib.asynccontextmanager
async def open_phone(g: Globals, opts: CallOptions, *, caller_name: str | None = None,
                     caller_number: str | None = None) -> AsyncIterator[Phone]:
    """A started :class:`Phone` (not logged in), with a local switch when asked; closed on exit."""
    from softphone.app.callrecord import CallRecorder
    from softphone.app.history import CallHistory
    from softphone.app.phone import Phone

    async with open_profile(g, opts) as profile:
        phone = Phone(profile, history=CallHistory(), caller_name=caller_name, caller_number=caller_number)
        with CallRecorder(phone):  # per-call diagnostics for `softphone bundle`
            async with phone:
                yield phone


class Interrupt(asyncio.Event):
    """Set by the first Ctrl-C. ``watchers`` counts who is waiting for it right now.

    A body that is in a phase that handles Ctrl-C itself (waiting for an answer, talking)
    waits on it; in any other phase (connecting, logging in, dialling) nobody does, and the
    first Ctrl-C cancels the body at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.watchers = 0

    async def wait(self) -> Literal[True]:
        self.watchers += 1
        try:
            return await super().wait()
        finally:
            self.watchers -= 1


def run_async(g: Globals, body: Callable[[asyncio.Event], Awaitable[int]],
              on_error: Callable[[str], None] | None = None) -> int:
    """Set up logging, run ``body(interrupted)`` under asyncio, map errors to exit codes.

    The first Ctrl-C sets ``interrupted``: a body waiting on it decides what to do (hang up,
    summarise); a body busy with anything else is cancelled at once (exit 130), and so is
    one that is still running at a second Ctrl-C. In ``--json`` mode a failure still ends
    the stream with a ``summary`` line (``exit_code``, ``outcome``, ``error``).
    """
    from softphone.log import redact, setup_logging

    setup_logging(g.verbosity, json=g.json, stream=sys.stderr)
    report = on_error or (lambda msg: print(f"error: {redact(msg)}", file=sys.stderr))

    async def main() -> int:
        interrupted = Interrupt()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_sigint() -> None:
            if (interrupted.is_set() or not interrupted.watchers) and task is not None:
                task.cancel()
            interrupted.set()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await body(interrupted)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    except (SoftphoneError, OSError) as exc:
        code = exit_code_for_error(exc)
        what = "login failed" if code == ExitCode.LOGIN_FAILED else "network" if code == ExitCode.NETWORK else \
            "media" if isinstance(exc, MediaError) else "error"
        message = str(exc) if what == "error" else f"{what}: {exc}"
        report(message)
        _json_summary(g, code, message)
        return code
    except (KeyboardInterrupt, asyncio.CancelledError):
        _json_summary(g, ExitCode.INTERRUPTED, "interrupted")
        return ExitCode.INTERRUPTED


def _json_summary(g: Globals, code: ExitCode, error: str) -> None:
    """The closing ``summary`` line of a ``--json`` stream that ended in an error."""
    if not g.json:
        return
    import time

    from softphone.app.events_json import dumps
    from softphone.app.snapshot import PhoneEvent

    print(dumps(PhoneEvent("summary", time.time(), None, {
        "exit_code": int(code), "outcome": code.name.lower(), "calls": [], "error": error})), flush=True)
