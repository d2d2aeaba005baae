"""``softphone token mint [CREDENTIAL_ID]``: print one login JWT minted through the REST API.

``POST {api_base_url}/telephony_credentials/{CREDENTIAL_ID}/token`` with the API key as a bearer
token (softphone.client.tokens). The key comes from ``--api-key-cmd``, else ``TELNYX_API_KEY``,
else the profile's ``api_key`` / ``api_key_cmd``; the credential from the argument, else the
profile's ``credential_id``; the API from ``--api-base-url``, else the profile's ``api_base_url``.
``--local`` starts the local switch in-process (with its REST API on a free loopback port) and mints
there: CREDENTIAL_ID may then also be a credential's SIP username (default ``gencred1``).

The token goes to stdout alone (one line); every message goes to stderr, without the key or the
token. Exit codes: 0 printed, 2 bad usage or configuration, 7 the key or credential was refused,
8 the API could not be reached (or answered 5xx), 1 anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path

from softphone.app.options import Globals
from softphone.cli.exitcodes import ExitCode
from softphone.cli.runtime import exit_code_for_error
from softphone.errors import ConfigError, SoftphoneError

__all__ = ["LOCAL_DEFAULT_CREDENTIAL", "mint_command"]

#: What ``--local`` mints for when no CREDENTIAL_ID is given (a credential of the built-in accounts).
LOCAL_DEFAULT_CREDENTIAL = "gencred1"


def _profile_settings(g: Globals) -> tuple[str, str, str, str, bool]:
    """(api_base_url, api_key, api_key_cmd, credential_id, insecure) of the selected profile (no commands run)."""
    from softphone.config import pick_profile, read_config

    profile = pick_profile(read_config(g.config), g.profile)
    return profile.api_base_url, profile.api_key, profile.api_key_cmd, profile.credential_id, profile.insecure


def _api_key(cmd: str | None, profile_key: str, profile_cmd: str, config: Path | None) -> str:
    from softphone.config import run_secret_cmd

    if cmd:
        return run_secret_cmd(cmd, "--api-key-cmd", None)
    if os.environ.get("TELNYX_API_KEY"):
        return os.environ["TELNYX_API_KEY"]
    if profile_key:
        return profile_key
    if profile_cmd:
        return run_secret_cmd(profile_cmd, "api_key_cmd", config)
    raise ConfigError("no API key: pass --api-key-cmd, set TELNYX_API_KEY, or api_key / api_key_cmd in the profile")


async def _mint(base_url: str, key: str, credential_id: str, insecure: bool) -> str:
    from softphone.client.tokens import TokenMinter

    return await TokenMinter(base_url, key, credential_id, insecure=insecure).mint()


async def _mint_local(credential: str | None, key_cmd: str | None) -> str:
    from softphone.switch import Switch
    from softphone.switch.callcontrol.apps import CallControlOptions

    with tempfile.TemporaryDirectory(prefix="softphone-token-") as data:
        opts = CallControlOptions(api_port=0, data_dir=Path(data))
        async with Switch(host="127.0.0.1", port=0, call_control=opts) as sw:
            assert sw.call_control is not None
            wanted = credential or LOCAL_DEFAULT_CREDENTIAL
            named = sw.accounts.credential(wanted)
            cred_id = named.id if named is not None else wanted
            # The built-in accounts take any key; an accounts file's connection may want its own.
            key = _api_key(key_cmd, "", "", None) if key_cmd or os.environ.get("TELNYX_API_KEY") else "local"
            return await _mint(f"{sw.call_control.api_url}/v2", key, cred_id, False)


def mint_command(
    g: Globals,
    credential_id: str | None,
    *,
    api_key_cmd: str | None = None,
    api_base_url: str | None = None,
    local: bool = False,
) -> int:
    """Mint and print one token; returns the exit code."""
    from softphone.log import redact, setup_logging

    setup_logging(g.verbosity)
    if local and g.verbosity <= 0:  # the in-process switch's start-up warnings are not this command's output
        import logging

        logging.getLogger("softphone.switch").setLevel(logging.ERROR)
    try:
        if local:
            token = asyncio.run(_mint_local(credential_id, api_key_cmd))
        else:
            base, key, key_cmd, cred, insecure = _profile_settings(g)
            cred = credential_id or cred
            if not cred:
                raise ConfigError("no CREDENTIAL_ID given and the profile has no credential_id")
            key = _api_key(api_key_cmd, key, key_cmd, g.config)
            token = asyncio.run(_mint(api_base_url or base, key, cred, insecure))
    except SoftphoneError as exc:
        print(f"softphone: {redact(str(exc))}", file=sys.stderr)
        return exit_code_for_error(exc)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(token + "\n")
        sys.stdout.flush()
    return ExitCode.OK
