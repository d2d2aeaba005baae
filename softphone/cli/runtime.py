"""What every networked command needs: logging, the profile, an optional local switch, a Phone.

``--local`` starts an in-process :class:`~softphone.switch.server.Switch` on loopback
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.cli.exitcodes import ExitCode
from softphone.errors import CommandError, ConfigError, LoginFailed, MediaError, SoftphoneError, TransportError

if TYPE_CHECKING:
    from softphone.cli.app import Globals
    from softphone.config import Profile
    from softphone.phone import Phone

__all__ = ["CallOptions", "exit_code_for_error", "open_phone", "run_async"]


@dataclass(frozen=True)
class CallOptions:
    """Audio and call-length options shared by dial, answer and demo."""

    duration: float | None = None
    dtmf: str | None = None
    dtmf_delay: float = 1.0
    play: Path | None = None
    record: Path | None = None
    record_mode: str | None = None
    input_device: str | None = None
    output_device: str | None = None
    no_audio: bool = False
    local: bool = False
    tone: bool = False


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
    from softphone.config import load_config

    if local_url is not None:
        from softphone.config import BUILTIN_PROFILES
        from softphone.switch.accounts import DEMO_PASSWORD, DEMO_USER

        base = BUILTIN_PROFILES["local"]
        profile = replace(base, server=local_url, auth="sip", username=DEMO_USER, password=DEMO_PASSWORD,
                          token="", password_cmd="", token_cmd="")
        from softphone.log import register_secret

        register_secret(DEMO_PASSWORD)
        return profile
    return load_config(g.config, g.profile)


@contextlib.asynccontextmanager
async def open_phone(g: Globals, opts: CallOptions, *, caller_name: str | None = None,
                     caller_number: str | None = None) -> AsyncIterator[Phone]:
    """A started :class:`Phone` (not logged in), with a local switch when asked; closed on exit."""
    from softphone.history import CallHistory
    from softphone.phone import Phone

    async with contextlib.AsyncExitStack() as stack:
        url: str | None = None
        if opts.local:
            from softphone.switch.server import Switch

            switch = Switch(host="127.0.0.1", port=0)
            await stack.enter_async_context(switch)
            url = switch.url
        profile = apply_audio(load_profile(g, url), opts)
        phone = Phone(profile, history=CallHistory(), caller_name=caller_name, caller_number=caller_number)
        await stack.enter_async_context(phone)
        yield phone


def run_async(g: Globals, body: Callable[[asyncio.Event], Awaitable[int]],
              on_error: Callable[[str], None] | None = None) -> int:
    """Set up logging, run ``body(interrupted)`` under asyncio, map errors to exit codes.

    SIGINT sets ``interrupted`` (the body decides what to do: hang up, summarise);
    a second Ctrl-C cancels.
    """
    from softphone.log import redact, setup_logging

    setup_logging(g.verbosity, json=g.json, stream=sys.stderr)
    report = on_error or (lambda msg: print(f"error: {redact(msg)}", file=sys.stderr))

    async def main() -> int:
        interrupted = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_sigint() -> None:
            if interrupted.is_set() and task is not None:
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
        report(f"{what}: {exc}")
        return code
    except (KeyboardInterrupt, asyncio.CancelledError):
        return ExitCode.INTERRUPTED
