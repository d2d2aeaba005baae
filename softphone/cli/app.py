"""``softphone``: the typer application.

Only typer (and the standard library) is imported here, so ``softphone --help`` is
fast. Every command imports what it needs (the client, aiortc, prompt-toolkit...)
inside its function. Commands are sync functions that call ``asyncio.run``; shared
options live in the app callback and travel in ``ctx.obj`` (:class:`Globals`).
"""

import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from softphone.app.options import CallOptions, Globals
from softphone.cli.exitcodes import ExitCode
from softphone.errors import CommandError

__all__ = ["app", "main"]

app = typer.Typer(
    name="softphone",
    help="A command-line softphone for Telnyx WebRTC voice. Run without a command for the interactive shell.",
    rich_markup_mode="rich",
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Create, show and locate the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
token_app = typer.Typer(help="Login tokens (JWT) minted through the REST API.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _version(value: bool) -> None:
    if value:
        from softphone import __version__  # read from the installed metadata: only when asked

        typer.echo(f"softphone {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    profile: Annotated[str | None, typer.Option("--profile", "-p", envvar="SOFTPHONE_PROFILE",
                                                help="Profile of the config file to use.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", envvar="SOFTPHONE_CONFIG",
                                                help="Config file (default: the per-user one).")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv debug).")] = 0,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, help="Less output.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="NDJSON events on stdout (docs/events.md).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    impair: Annotated[str | None, typer.Option(
        "--impair", envvar="SOFTPHONE_IMPAIR", metavar="SPEC",
        help="Impair the calls' media: a preset (good, wifi, congested, satellite) and/or "
             "loss=5%,burst=3,delay=100ms,jitter=40ms (README: Impairments).")] = None,
) -> None:
    if impair is not None:
        from softphone.errors import ConfigError
        from softphone.media.impair import parse

        try:
            parse(impair)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--impair") from None
    ctx.obj = Globals(profile=profile, config=config, verbosity=verbose - quiet, json=json_out, impair=impair)
    if ctx.invoked_subcommand is None:
        _run_shell(ctx.obj, local=False)


def _g(ctx: typer.Context) -> Globals:
    obj = ctx.obj
    return obj if isinstance(obj, Globals) else Globals()


#: `softphone devices --json` and `softphone history --json` mean the global `--json`.
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (same as the global --json).")]


def _json(ctx: typer.Context, json_out: bool) -> Globals:
    g = _g(ctx)
    return Globals(profile=g.profile, config=g.config, verbosity=g.verbosity, json=True,
                   impair=g.impair) if json_out else g


def _finish(code: int) -> None:
    raise typer.Exit(int(code))


# --- options shared by dial / answer ----------------------------------------------------------

LocalOpt = Annotated[bool, typer.Option("--local", help="Start the local switch in-process and log in as demo.")]
InputOpt = Annotated[str | None, typer.Option("--input", help="Audio input device (index or name substring).")]
OutputOpt = Annotated[str | None, typer.Option("--output", help="Audio output device (index or name substring).")]
PlayOpt = Annotated[Path | None, typer.Option("--play", help="Send this audio file instead of the microphone.",
                                              exists=True, dir_okay=False)]
RecordOpt = Annotated[Path | None, typer.Option("--record", help="Record the call to this WAV file (--record-mode).",
                                                dir_okay=False)]


class RecordMode(enum.StrEnum):
    """What ``--record`` writes (softphone.media.sinks.RECORD_MODES)."""

    stereo = "stereo"
    mixed = "mixed"
    remote = "remote"


RecordModeOpt = Annotated[RecordMode | None, typer.Option(
    "--record-mode", case_sensitive=False,
    help="stereo: your side left, the far end right (default); mixed: both in mono; remote: the far end only.")]
NoAudioOpt = Annotated[bool, typer.Option("--no-audio", help="No devices: send silence, discard what arrives.")]
DurationOpt = Annotated[float | None, typer.Option("--duration", "--hangup-after", min=0,
                                                   help="Hang up this many seconds after answer.")]
DtmfOpt = Annotated[str | None, typer.Option("--dtmf", help="Send these DTMF digits once answered.")]
DtmfDelayOpt = Annotated[float, typer.Option("--dtmf-delay", min=0, help="Seconds before the DTMF digits.")]


@app.command()
def dial(
    ctx: typer.Context,
    destination: Annotated[str, typer.Argument(help="Number (E.164), SIP user or sip: URI.")],
    caller_name: Annotated[str | None, typer.Option("--caller-name", help="Caller ID name.")] = None,
    caller_number: Annotated[str | None, typer.Option("--caller-number", help="Caller ID number.")] = None,
    header: Annotated[list[str] | None, typer.Option("--header", "-H", help="Custom SIP header X-Name=value.")] = None,
    wait_answer: Annotated[float, typer.Option("--wait-answer", min=0,
                                               help="Give up when not answered after this many seconds.")] = 60.0,
    duration: DurationOpt = None,
    dtmf: DtmfOpt = None,
    dtmf_delay: DtmfDelayOpt = 1.0,
    play: PlayOpt = None,
    record: RecordOpt = None,
    record_mode: RecordModeOpt = None,
    input_device: InputOpt = None,
    output_device: OutputOpt = None,
    no_audio: NoAudioOpt = False,
    local: LocalOpt = False,
) -> None:
    """Log in, call DESTINATION, show the live panel, print a summary; the exit code tells the outcome."""
    from softphone.cli.oneshot import dial_arguments, run_dial

    try:  # the command table's parsers: the same checks as `dial DESTINATION Name=value` in the shell
        headers, dtmf = dial_arguments(destination, header or [], dtmf)
    except CommandError as exc:
        raise typer.BadParameter(str(exc)) from None
    opts = CallOptions(
        duration=duration, dtmf=dtmf, dtmf_delay=dtmf_delay, play=play, record=record,
        record_mode=record_mode.value if record_mode else None,
        input_device=input_device, output_device=output_device, no_audio=no_audio, local=local,
    )
    _finish(run_dial(_g(ctx), destination, opts, caller_name=caller_name, caller_number=caller_number,
                     headers=headers, wait_answer=wait_answer))


def _answer(
    ctx: typer.Context,
    auto_answer: Annotated[float | None, typer.Option("--auto-answer", min=0,
                                                      help="Answer automatically after this many seconds.")] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Exit after this many calls.")] = 1,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0,
                                                  help="Give up when no call arrives in time.")] = None,
    duration: DurationOpt = None,
    dtmf: DtmfOpt = None,
    dtmf_delay: DtmfDelayOpt = 1.0,
    play: PlayOpt = None,
    record: RecordOpt = None,
    record_mode: RecordModeOpt = None,
    input_device: InputOpt = None,
    output_device: OutputOpt = None,
    no_audio: NoAudioOpt = False,
    local: LocalOpt = False,
) -> None:
    """Wait for inbound calls and answer them (after --auto-answer seconds, or on a keypress: a answer, r reject)."""
    from softphone.cli.oneshot import dtmf_option, run_answer

    try:
        dtmf = dtmf_option(dtmf)
    except CommandError as exc:
        raise typer.BadParameter(str(exc)) from None
    opts = CallOptions(
        duration=duration, dtmf=dtmf, dtmf_delay=dtmf_delay, play=play, record=record,
        record_mode=record_mode.value if record_mode else None,
        input_device=input_device, output_device=output_device, no_audio=no_audio, local=local,
    )
    _finish(run_answer(_g(ctx), opts, auto_answer=auto_answer, count=count, timeout=timeout))


app.command("answer")(_answer)
app.command("listen", help="Alias of answer.", hidden=True)(_answer)


@app.command()
def run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Command file ('-' for stdin).", allow_dash=True)],
    keep_going: Annotated[bool, typer.Option("--keep-going", "-k", help="Report failing lines and continue.")] = False,
    local: LocalOpt = False,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="No audio devices (tone-free silence).")] = False,
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE for ${NAME} in the file (repeatable).")
                   ] = None,
) -> None:
    """Run a command file: shell commands plus wait, expect, sleep, echo and # comments."""
    from softphone.cli.script import run_script

    _finish(run_script(_g(ctx), file, keep_going=keep_going, local=local, no_audio=no_audio, variables=var or ()))


VarOpt = Annotated[list[str] | None, typer.Option("--var", help="A variable for ${NAME} in the files: NAME=VALUE.")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.",
                                              dir_okay=False)]
AudioDevOpt = Annotated[bool, typer.Option("--audio", help="Use the profile's audio devices (default: none).")]


def _vars(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--var {item!r} must be NAME=VALUE")
        out[name.strip()] = value
    return out


@app.command("test")
def test_command(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Command files, one test case each.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Cases run at the same time.")] = 1,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.",
                                               dir_okay=False)] = None,
    html: HtmlOpt = None,
    artifacts: Annotated[Path, typer.Option("--artifacts", help="Per-case transcript and last seconds (WAV).",
                                            file_okay=False)] = Path("softphone-artifacts"),
    var: VarOpt = None,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
    audio: AudioDevOpt = False,
) -> None:
    """Run command files as test cases: a summary, JUnit XML / JSON / HTML reports; exit 0 only when all pass."""
    from softphone.cli.testrun import run_tests

    g = _g(ctx)
    _finish(run_tests(g, [str(f) for f in files], jobs=jobs, junit=junit, json_out=json_out or g.json, html=html,
                      local=local, audio=audio, artifacts=artifacts, variables=_vars(var)))


@app.command("load")
def load_command(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="The command file every call runs.")],
    calls: Annotated[int | None, typer.Option("--calls", "-n", min=1, help="Calls in all.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Calls at the same time.")] = 1,
    rate: Annotated[str, typer.Option("--rate", "-r", help="New calls per second (e.g. 5 or 5/s).")] = "1/s",
    rows: Annotated[Path | None, typer.Option("--csv", help="CSV file: each row one call's ${NAME} variables.",
                                              exists=True, dir_okay=False)] = None,
    duration: Annotated[float | None, typer.Option("--duration", min=0,
                                                   help="Start calls for this many seconds.")] = None,
    report_csv: Annotated[Path | None, typer.Option("--report-csv", help="Write one CSV row per call here.",
                                                    dir_okay=False)] = None,
    html: HtmlOpt = None,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
    audio: AudioDevOpt = False,
) -> None:
    """Run a command file as many calls with a ramp; p50/p95/p99 of every timing and the failure causes."""
    from softphone.cli.load import run_load

    text = rate.strip().lower().removesuffix("/s").strip()
    try:
        per_second = float(text)
    except ValueError:
        raise typer.BadParameter(f"--rate {rate!r}: give calls per second, e.g. 5 or 5/s") from None
    if per_second <= 0:
        raise typer.BadParameter("--rate must be > 0")
    g = _g(ctx)
    _finish(run_load(g, script, calls=calls, concurrency=concurrency, rate=per_second, rows_csv=rows,
                     duration=duration, json_out=json_out or g.json, html=html, report_csv=report_csv,
                     local=local, audio=audio))


@app.command()
def devices(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List audio devices (a table, or JSON with --json)."""
    from softphone.cli.misc import show_devices

    _finish(show_devices(_json(ctx, json_out)))


@app.command()
def check(ctx: typer.Context, local: LocalOpt = False) -> None:
    """Log in and print the gateway state, data centre and region (exit 0, or the login/network code)."""
    from softphone.cli.oneshot import run_check

    _finish(run_check(_g(ctx), local=local))


@app.command()
def precall(
    ctx: typer.Context,
    destination: Annotated[str | None, typer.Argument(
        help="Number to call (default: the echo +13128889999; on Telnyx +18722315806).")] = None,
    seconds: Annotated[float, typer.Option("--seconds", "-s", min=1, help="How long the test call lasts.")] = 10.0,
    tone: Annotated[bool, typer.Option("--tone", help="Send a test tone instead of the microphone.")] = False,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """A test call: RTT, jitter, loss, MOS, bitrate and levels both ways, a verdict (exit 0 good, 10/11/12)."""
    from softphone.cli.diagview import run_diag
    from softphone.diag.precall import run as precall_run

    _finish(run_diag(_json(ctx, json_out), CallOptions(local=local, tone=tone),
                     lambda profile: precall_run(profile, destination, seconds)))


@app.command()
def doctor(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds for each network step.")] = 5.0,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Do not open the audio devices.")] = False,
    no_login: Annotated[bool, typer.Option("--no-login", help="Stop at the websocket; do not log in.")] = False,
) -> None:
    """Check audio, the server (DNS, TCP, TLS, websocket, login), ICE servers, clock, versions (exit 0, 10, 11)."""
    import asyncio
    import contextlib

    from softphone.cli.diagview import print_report
    from softphone.cli.runtime import load_profile, run_async
    from softphone.diag.doctor import Options
    from softphone.diag.doctor import run as run_doctor

    g = _json(ctx, json_out)

    async def body(interrupted: asyncio.Event) -> int:
        async with contextlib.AsyncExitStack() as stack:  # no preflight: a bad device is a row, not exit 2
            url = None
            if local:
                from softphone.switch import Switch

                url = (await stack.enter_async_context(Switch(host="127.0.0.1", port=0))).url
            report = await run_doctor(load_profile(g, url), Options(timeout, audio=not no_audio, login=not no_login))
        print_report(report, json_out=g.json)
        return report.exit_code

    _finish(run_async(g, body))


@app.command()
def latency(
    ctx: typer.Context,
    destination: Annotated[str | None, typer.Argument(
        help="An echo (default +13128889999; Telnyx: +18722315806); --one-way: one that rings this login (you).")
    ] = None,
    one_way: Annotated[bool, typer.Option("--one-way", help="Call your own login and answer it: one-way delay.")
                       ] = False,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Chirps to send, one a second.")] = 6,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """Mouth-to-ear delay: chirps through an echo (round trip) or to yourself (--one-way); median and spread."""
    from softphone.cli.diagview import run_diag
    from softphone.diag.latency import run as latency_run

    _finish(run_diag(_json(ctx, json_out), CallOptions(local=local, no_audio=True),
                     lambda profile: latency_run(profile, destination, one_way=one_way, count=count)))


@app.command()
def selftest(
    ctx: typer.Context,
    destination: Annotated[str | None, typer.Argument(
        help="An echo to call (default: +13128889999; on Telnyx +18722315806).")] = None,
    seconds: Annotated[float, typer.Option("--seconds", "-s", min=1, help="How long each stage is watched.")] = 4.0,
    tone: Annotated[bool, typer.Option("--tone", help="Send a test tone instead of the microphone.")] = False,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """One-way audio finder: which stage is broken (capture, send, receive, decode, playout); exit 0 or 20-24."""
    from softphone.cli.diagview import run_diag
    from softphone.diag.selftest import run as selftest_run

    _finish(run_diag(_json(ctx, json_out), CallOptions(local=local, tone=tone),
                     lambda profile: selftest_run(profile, destination, seconds)))


@app.command()
def bundle(
    ctx: typer.Context,
    call: Annotated[str, typer.Argument(help="A call id (or a unique prefix of one), or 'last'.")] = "last",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The zip to write (default: "
                                                "./softphone-bundle-ID-TIME.zip).", dir_okay=False)] = None,
    with_recording: Annotated[bool, typer.Option("--with-recording", help="Add the call's recording (--record).")
                              ] = False,
    no_doctor: Annotated[bool, typer.Option("--no-doctor", help="Leave out the doctor's checks.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """A zip for a support ticket: the call's events, SDPs, stats, debug log, environment, doctor (redacted)."""
    import asyncio

    from softphone.cli.diagview import print_report
    from softphone.cli.runtime import load_profile, run_async
    from softphone.diag.bundle import make_bundle
    from softphone.errors import ConfigError

    g = _json(ctx, json_out)

    async def body(interrupted: asyncio.Event) -> int:
        try:
            profile = load_profile(g, None)
        except ConfigError as exc:  # the call's material still goes in; only the doctor is left out
            print(f"bundle: no doctor ({exc})", file=sys.stderr)
            profile = None
        made = await make_bundle(call, profile=profile, output=output, with_recording=with_recording,
                                 run_doctor=not no_doctor)
        print_report(made, json_out=g.json)
        return made.exit_code

    _finish(run_async(g, body))


@app.command()
def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Show the last N calls (0: all).")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Show past calls with duration and estimated cost, and totals."""
    from softphone.cli.misc import show_history

    _finish(show_history(_json(ctx, json_out), limit))


@app.command()
def demo(
    ctx: typer.Context,
    duration: Annotated[float, typer.Option("--duration", min=1, help="Seconds before hanging up.")] = 10.0,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Use a tone instead of the microphone.")] = False,
) -> None:
    """No account needed: start the local switch, call its echo service, send DTMF and see it come back."""
    from softphone.cli.oneshot import run_demo

    _finish(run_demo(_g(ctx), duration=duration, no_audio=no_audio))


@app.command()
def shell(ctx: typer.Context, local: LocalOpt = False, var: VarOpt = None) -> None:
    """The interactive shell (also what `softphone` alone starts)."""
    _run_shell(_g(ctx), local=local, variables=var or ())


def _run_shell(g: Globals, local: bool, variables: list[str] | tuple[str, ...] = ()) -> None:
    # The CLI composes the shell: it supplies the Phone (profile, --local switch) and the runtime;
    # softphone.repl never imports softphone.cli.
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    from softphone.app.phone import Phone
    from softphone.cli.runtime import open_phone, run_async
    from softphone.cli.script import parse_vars
    from softphone.repl.shell import run_shell

    try:
        values = parse_vars(variables)  # --var NAME=VALUE for ${NAME} in shell lines
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _finish(ExitCode.USAGE)
        return

    @contextlib.asynccontextmanager
    async def phone_with_vars() -> AsyncIterator[Phone]:
        async with open_phone(g, CallOptions(local=local)) as phone:
            phone.variables.update(values)
            yield phone

    async def body(interrupted: asyncio.Event) -> int:
        await run_shell(phone_with_vars())
        return ExitCode.OK

    _finish(run_async(g, body))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def switch(ctx: typer.Context) -> None:
    """The local Telnyx-compatible switch: serve, token, calls, accounts (see `softphone switch --help`)."""
    # Forwarded rather than mounted with add_typer so its imports stay out of `softphone --help`.
    from softphone.switch.cli import app as switch_app

    switch_app(args=list(ctx.args), prog_name="softphone switch")


@config_app.command("init")
def config_init(
    ctx: typer.Context, force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False
) -> None:
    """Write a commented config file (mode 0600)."""
    from softphone.cli.misc import config_init as impl

    _finish(impl(_g(ctx), force))


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the selected profile, secrets redacted."""
    from softphone.cli.misc import config_show as impl

    _finish(impl(_g(ctx)))


@config_app.command("path")
def config_path(ctx: typer.Context) -> None:
    """Print the config file's path."""
    from softphone.cli.misc import config_path as impl

    _finish(impl(_g(ctx)))


@token_app.command("mint")
def token_mint(
    ctx: typer.Context,
    credential_id: Annotated[str | None, typer.Argument(
        help="Telephony credential id (default: the profile's credential_id; with --local also a SIP username).")
    ] = None,
    api_key_cmd: Annotated[str | None, typer.Option(
        "--api-key-cmd", help="Command printing the API key (else TELNYX_API_KEY, else the profile's).")] = None,
    api_base_url: Annotated[str | None, typer.Option(
        "--api-base-url", help="REST API v2 root (default: the profile's api_base_url).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Start the local switch in-process and mint there.")] = False,
) -> None:
    """Print one login JWT for CREDENTIAL_ID on stdout (exit 7: key or credential refused, 8: network)."""
    from softphone.cli.token import mint_command

    _finish(mint_command(_g(ctx), credential_id, api_key_cmd=api_key_cmd, api_base_url=api_base_url, local=local))


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point. Usage errors exit with ExitCode.USAGE (2)."""
    args = sys.argv[1:] if argv is None else argv
    if "--help" in args or "-h" in args:
        from softphone.cli.richhelp import defer_trivial_coercion, hide_flag_metavars, import_rich_utils_light

        import_rich_utils_light()  # rich help without markdown-it: ~75 ms less for `--help`
        hide_flag_metavars()  # no `<bool>`/`<int>` after options that take no value
        defer_trivial_coercion()  # `dial --help` without pydantic: the app's own options are at their defaults
    try:
        return app(args=argv, prog_name="softphone")
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
