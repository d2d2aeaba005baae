"""Call Control settings: which connections are Call Control applications, and options.

In the accounts TOML a connection becomes a Call Control application by naming a
webhook (and optionally a failover webhook and an API key for the commands API)::

    [call_control]
    api_port = 8766              # the commands API (http://127.0.0.1:8766/v2/...)
    park_timeout_secs = 60       # a parked call nobody commands ends (RECOVERY_ON_TIMER_EXPIRE / 408)
    data_dir = "~/.local/share/softphone/switch"   # recordings go to <data_dir>/recordings/
    media_dir = "~/sounds"       # the only files audio_url may name (default <data_dir>/media)

    [[connection]]
    id = "app"
    password = "app-secret"
    numbers = ["+13125550150"]
    webhook_url = "http://127.0.0.1:9000/webhooks"
    webhook_failover_url = "http://127.0.0.1:9001/webhooks"
    api_key = "KEYlocal123"

These keys are read by :mod:`softphone.switch.accounts` (``Connection.webhook_url``,
``webhook_failover_url``, ``api_key``); the ``[call_control]`` table by
:func:`load_options`. A connection without ``api_key`` accepts any (or no) bearer token: the API listens on
loopback only. Webhook URLs must be loopback unless ``allow_remote_webhooks = true``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softphone.errors import ConfigError
from softphone.switch.accounts import Accounts
from softphone.switch.callcontrol.mediafiles import default_data_dir
from softphone.switch.callcontrol.webhooks import WebhookURLError, check_url

DEFAULT_API_PORT = 8766
DEFAULT_PARK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CallControlApp:
    """A connection's Call Control settings."""

    connection_id: str
    webhook_url: str = ""
    webhook_failover_url: str = ""
    api_key: str = ""


@dataclass
class CallControlOptions:
    """Engine options (see the module docstring)."""

    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    park_timeout: float = DEFAULT_PARK_TIMEOUT_S
    ringback: str = "early"
    """``early`` (ringback as early media) or ``ringing`` (``telnyx_rtc.ringing`` only: local ringback)."""
    allow_remote_webhooks: bool = False
    webhook_tries: int = 3
    webhook_backoff: float = 0.25
    dial_timeout: float = 30.0
    outside_ring_s: float = 1.0
    """How long a simulated outside number rings before it answers."""
    data_dir: Path = field(default_factory=default_data_dir)
    """Where recordings go (``<data_dir>/recordings/<name>``)."""
    media_dir: Path | None = None
    """Files ``audio_url`` may name (default ``<data_dir>/media``)."""

    @property
    def media_root(self) -> Path:
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"


def apps_from_accounts(accounts: Accounts) -> dict[str, CallControlApp]:
    """Apps for the connections that name a ``webhook_url`` or an ``api_key``."""
    return {
        c.id: CallControlApp(c.id, c.webhook_url, c.webhook_failover_url, c.api_key)
        for c in accounts.connections
        if c.webhook_url or c.webhook_failover_url or c.api_key
    }


def check_apps(apps: dict[str, CallControlApp], *, allow_remote: bool = False) -> None:
    """Raise :class:`ConfigError` for a webhook URL the switch would refuse to call."""
    for app in apps.values():
        for key, url in (("webhook_url", app.webhook_url), ("webhook_failover_url", app.webhook_failover_url)):
            if url:
                try:
                    check_url(url, allow_remote=allow_remote)
                except WebhookURLError as exc:
                    raise ConfigError(f"connection {app.connection_id}: {exc}", key=key) from exc


def options_from_dict(data: dict[str, Any], *, path: str = "<accounts>") -> CallControlOptions:
    """The ``[call_control]`` table."""
    table = data.get("call_control", {})
    if not isinstance(table, dict):
        raise ConfigError("[call_control] must be a table", path=path)
    opts = CallControlOptions()
    port = table.get("api_port", opts.api_port)
    timeout = table.get("park_timeout_secs", opts.park_timeout)
    ringback = table.get("ringback", opts.ringback)
    remote = table.get("allow_remote_webhooks", False)
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError("call_control.api_port must be a port number", path=path, key="api_port")
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError("call_control.park_timeout_secs must be > 0", path=path, key="park_timeout_secs")
    if ringback not in ("early", "ringing"):
        raise ConfigError("call_control.ringback must be 'early' or 'ringing'", path=path, key="ringback")
    opts.api_port, opts.park_timeout, opts.ringback = port, float(timeout), ringback
    for key in ("data_dir", "media_dir"):
        value = table.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"call_control.{key} must be a directory path", path=path, key=key)
        setattr(opts, key, Path(value).expanduser())
    opts.allow_remote_webhooks = remote is True
    return opts


def load_options(path: str | Path | None) -> CallControlOptions:
    """The ``[call_control]`` options of an accounts TOML file (defaults without a file)."""
    if path is None:
        return CallControlOptions()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read accounts file: {exc}", path=str(p)) from exc
    return options_from_dict(data, path=str(p))
