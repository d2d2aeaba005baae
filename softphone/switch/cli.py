"""``softphone switch ...``: run the local switch, mint JWTs, list calls and accounts.

Heavy modules (the server, aiortc) are imported inside the commands so that
``softphone --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from softphone.switch.callcontrol.apps import CallControlOptions

app = typer.Typer(
    help="The local Telnyx-compatible switch.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

AccountsOpt = Annotated[
    Path | None, typer.Option("--accounts", "-a", help="Accounts TOML file (default: the built-in accounts).")
]


def _accounts(path: Path | None) -> object:
    from softphone.errors import ConfigError
    from softphone.switch.accounts import load_accounts

    try:
        return load_accounts(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8765,
    accounts: AccountsOpt = None,
    ping_interval: Annotated[float, typer.Option(help="Seconds between server pings.")] = 30.0,
    ping_timeout: Annotated[float, typer.Option(help="Drop clients silent for this long (s).")] = 60.0,
    rate: Annotated[float, typer.Option(help="USD per minute per WebRTC leg.")] = 0.002,
    records: Annotated[Path | None, typer.Option(help="Call records JSONL file.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM) to serve wss://.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    api_port: Annotated[
        int | None, typer.Option(help="Call Control commands API port (default: [call_control] api_port, 8766).")
    ] = None,
    park_timeout: Annotated[
        float | None, typer.Option(help="Seconds a parked call waits for commands (default 60).")
    ] = None,
    impair: Annotated[
        str | None,
        typer.Option(metavar="SPEC", help="Impair every leg's media: a preset (good, wifi, congested, satellite) "
                     "and/or loss=5%,burst=3,delay=100ms,jitter=40ms."),
    ] = None,
    media_workers: Annotated[
        int | None,
        typer.Option(
            "--media-workers",
            min=0,
            help="Media worker processes (default: one per CPU core; 0: all media in the main process).",
        ),
    ] = None,
) -> None:
    """Run the switch until Ctrl-C or SIGTERM (with Call Control when a connection has a webhook_url or api_key).

    On SIGTERM / Ctrl-C every call gets a bye (NORMAL_CLEARING) and every socket a close
    (1001 going away) before the process exits, and the media worker processes stop. A bad
    accounts file, or the built-in JWT secret on a non-loopback host, exits 2 with one message.
    """
    import logging

    from softphone.errors import ConfigError
    from softphone.switch.accounts import Accounts
    from softphone.switch.app import Switch
    from softphone.switch.callcontrol.apps import apps_from_accounts, check_apps, load_options
    from softphone.switch.hosts import is_loopback_host
    from softphone.switch.records import default_records_path
    from softphone.switch.throttle import load_throttle

    accts = _accounts(accounts)
    assert isinstance(accts, Accounts)
    rec_path = records if records is not None else default_records_path()
    try:
        from softphone.media.impair import parse as parse_impair

        impair_spec = parse_impair(impair) if impair is not None else None
        cc_options = load_options(accounts)
        throttle = load_throttle(accounts)
        check_apps(apps_from_accounts(accts), allow_remote=cc_options.allow_remote_webhooks)
        if accts.default_secret and not is_loopback_host(host):
            raise ConfigError(
                f"refusing to listen on {host}: the accounts use the built-in jwt_secret, so anyone could forge "
                "login tokens; set jwt_secret in an accounts file (--accounts)"
            )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if api_port is not None:
        cc_options.api_port = api_port
    if park_timeout is not None:
        cc_options.park_timeout = park_timeout
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workers = media_workers if media_workers is not None else (os.cpu_count() or 1)

    async def run() -> None:
        sw = Switch(
            accounts=accts,
            host=host,
            port=port,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            rate_per_minute=rate,
            records_path=rec_path,
            tls_cert=tls_cert,
            tls_key=tls_key,
            call_control=cc_options if accts.connections and (_has_apps(accts) or _has_texml(cc_options)) else None,
            login_throttle=throttle,
            media_workers=workers,
        )
        sw.impair = impair_spec
        from softphone.switch.gc_freeze import IdleFreezer

        sw.gc_freezer = IdleFreezer()  # this process is the switch's own: idle sessions skip full GC walks
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with sw:
            typer.echo(f"switch listening on {sw.url}")
            if sw.call_control is not None:
                opts = sw.call_control.options
                texml = {*opts.texml_apps, *(a.sid for a in opts.texml_number_apps.values())}
                apps = ", ".join(sorted(set(sw.call_control.apps) | texml))
                typer.echo(f"call control API on {sw.api_url}/v2 (applications: {apps})")
                signing = sw.call_control.webhooks.signing_key
                if signing is not None:
                    typer.echo(f"webhook public key (ed25519, base64): {signing.public_key_b64}")
            typer.echo(f"accounts: {', '.join(accts.usernames())}")
            typer.echo(f"call records: {rec_path}")
            pids = ", ".join(str(w["pid"]) for w in sw.media_workers())
            where = f"(pids {pids})" if pids else "(in-process media)"
            typer.echo(f"media workers: {len(sw.media_workers())} {where}")
            await stop.wait()
            typer.echo(f"switch stopping: ending {len(sw.active_calls())} call(s)")
        typer.echo("switch stopped")

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        typer.echo("switch stopped")
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:  # the port is taken, or the address is not ours
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc


def _has_texml(options: CallControlOptions) -> bool:
    """A connection or a number names a TeXML application (Call Control then starts too)."""
    return bool(options.texml_apps or options.texml_number_apps)


def _has_apps(accts: object) -> bool:
    from softphone.switch.accounts import Accounts
    from softphone.switch.callcontrol.apps import apps_from_accounts

    return isinstance(accts, Accounts) and bool(apps_from_accounts(accts))


@app.command(name="pstn-call")
def pstn_call(
    from_: Annotated[str, typer.Option("--from", help="The outside caller's number, e.g. +15557654321.")],
    to: Annotated[str, typer.Option("--to", help="A number owned by a connection of the switch.")],
    play: Annotated[
        Path | None, typer.Option("--play", help="WAV file the caller says (looped).", exists=True, dir_okay=False)
    ] = None,
    tone: Annotated[float | None, typer.Option("--tone", help="Say a steady tone of this frequency (Hz).")] = None,
    record: Annotated[Path | None, typer.Option("--record", help="Record what the caller hears (WAV).")] = None,
    dtmf: Annotated[str | None, typer.Option("--dtmf", help="DTMF digits the caller presses once answered.")] = None,
    dtmf_delay: Annotated[float, typer.Option("--dtmf-delay", min=0, help="Seconds after answer.")] = 3.0,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0, help="Hang up this many seconds after answer.")
    ] = None,
    api: Annotated[str, typer.Option("--api", help="The switch's commands API.")] = "http://127.0.0.1:8766",
) -> None:
    """Call in from outside (simulated PSTN): a leg with no websocket, audio from a WAV or tone."""
    from softphone.switch.callcontrol.pstn_cli import run_pstn_call

    audio = f"tone:{tone:g}" if tone and play is None else ""
    raise typer.Exit(
        run_pstn_call(
            api,
            from_,
            to,
            audio=audio,
            play=str(play.resolve()) if play is not None else "",
            record=str(record.resolve()) if record is not None else "",
            dtmf=dtmf or "",
            dtmf_delay=dtmf_delay,
            duration=duration,
        )
    )


@app.command()
def token(
    credential: Annotated[str, typer.Argument(help="Telephony credential username, e.g. gencred1.")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 24 * 3600,
    accounts: AccountsOpt = None,
) -> None:
    """Print a JWT (login_token) for a telephony credential."""
    from softphone.errors import ConfigError
    from softphone.switch.accounts import Accounts, token_for

    accts = _accounts(accounts)
    assert isinstance(accts, Accounts)
    try:
        typer.echo(token_for(credential, accts, ttl))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def calls(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    records: Annotated[Path | None, typer.Option(help="Call records JSONL file.")] = None,
) -> None:
    """Show the call records (one row per WebRTC leg, with estimated cost)."""
    from softphone.switch.records import read_records, render_records

    typer.echo(render_records(read_records(records), as_json=as_json))


@app.command(name="accounts")
def accounts_cmd(
    accounts: AccountsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List connections and credentials (secrets redacted)."""
    from softphone.switch.accounts import Accounts

    accts = _accounts(accounts)
    assert isinstance(accts, Accounts)
    rows = accts.redacted()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(
        f"{'connection':<12} {'username':<12} {'kind':<10} {'password':<8} {'numbers':<16} {'inbound':<13} webhook"
    )
    for r in rows:
        nums = ",".join(r["numbers"])
        typer.echo(
            f"{r['connection']:<12} {r['username']:<12} {r['kind']:<10} {r['password']:<8} "
            f"{nums:<16} {r['inbound_format']:<13} {r['webhook_url']}".rstrip()
        )
    _print_webhook_key(accounts)


def _print_webhook_key(accounts: Path | None) -> None:
    """The public key webhooks are signed with (generated into the data directory if needed)."""
    from softphone.errors import ConfigError
    from softphone.switch.callcontrol.apps import load_options
    from softphone.switch.callcontrol.webhooks import SigningKey

    try:
        data_dir = load_options(accounts).data_dir
    except ConfigError:
        return
    signing = SigningKey.for_switch(data_dir)
    if signing is not None:
        typer.echo(f"webhook public key (ed25519, base64): {signing.public_key_b64}  ({signing.path})")
