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
:func:`load_options`.

A connection can instead (or as well) name a **TeXML application**: the switch then runs
the document at ``texml_voice_url`` for outside calls to the connection's numbers, for its
clients' calls that no user or number takes, and for the TeXML Calls API::

    [[connection]]
    id = "ivr"
    password = "ivr-secret"
    numbers = ["+13125550160"]
    inbound_format = "e164"      # so a client dialling the number reaches the TeXML app too
    texml_voice_url = "http://127.0.0.1:9000/texml/voice"   # or a file: "ivr.xml" (a TeXML Bin)
    texml_voice_method = "POST"                         # or GET
    texml_status_callback = "http://127.0.0.1:9000/texml/status"
    texml_fallback_url = "http://127.0.0.1:9001/texml/voice"

A number of the connection can have an application of its own (the same ``texml_*`` keys; its
``ApplicationSid`` is ``texml_application_id``, by default ``<connection>-<digits>``)::

    [[connection.texml_number]]
    number = "+13125550161"
    texml_voice_url = "sales.xml"

A file path (absolute, ``~/...``, ``file://...``, or relative to the accounts file) must exist;
its ``{{From}}``-style placeholders are replaced by the request parameters. These keys are
read here (:func:`texml_apps_from_dict`) into :attr:`CallControlOptions.texml_apps`.

A connection without ``api_key`` accepts any (or no) bearer token: the API listens on
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
TEXML_KEYS = ("texml_voice_url", "texml_voice_method", "texml_status_callback", "texml_fallback_url",
              "texml_status_callback_method")
DEFAULT_PARK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CallControlApp:
    """A connection's Call Control settings."""

    connection_id: str
    webhook_url: str = ""
    webhook_failover_url: str = ""
    api_key: str = ""


@dataclass(frozen=True)
class TexmlApp:
    """A connection's TeXML application (see the module docstring)."""

    connection_id: str
    voice_url: str
    """An ``http://`` URL on loopback, or a local file (a TeXML Bin)."""
    voice_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    fallback_url: str = ""
    app_id: str = ""
    """The application's id (``ApplicationSid``); a connection's application is known by the connection id."""
    number: str = ""
    """The number this application belongs to ("" for a connection's application)."""

    @property
    def sid(self) -> str:
        """``ApplicationSid`` in requests, and what the TeXML Calls API's ``ApplicationSid`` names."""
        return self.app_id or self.connection_id


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

    texml_apps: dict[str, TexmlApp] = field(default_factory=dict)
    """TeXML applications by connection id (``texml_*`` keys of ``[[connection]]`` tables)."""
    texml_number_apps: dict[str, TexmlApp] = field(default_factory=dict)
    """Numbers with a TeXML application of their own, by normalized number (``[[connection.texml_number]]``)."""

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
    opts.texml_apps, opts.texml_number_apps = _texml_tables(data, path=path, allow_remote=opts.allow_remote_webhooks)
    return opts


def texml_apps_from_dict(
    data: dict[str, Any], *, path: str = "<accounts>", allow_remote: bool = False
) -> dict[str, TexmlApp]:
    """The TeXML applications named by ``[[connection]]`` tables; raises :class:`ConfigError`."""
    return _texml_tables(data, path=path, allow_remote=allow_remote)[0]


def texml_number_apps_from_dict(
    data: dict[str, Any], *, path: str = "<accounts>", allow_remote: bool = False
) -> dict[str, TexmlApp]:
    """The numbers with an application of their own (``[[connection.texml_number]]``), by normalized number."""
    return _texml_tables(data, path=path, allow_remote=allow_remote)[1]


def _texml_tables(
    data: dict[str, Any], *, path: str, allow_remote: bool
) -> tuple[dict[str, TexmlApp], dict[str, TexmlApp]]:
    from softphone.switch.accounts import normalize_number

    raw_conns = data.get("connection", [])
    apps: dict[str, TexmlApp] = {}
    numbers: dict[str, TexmlApp] = {}
    if not isinstance(raw_conns, list):
        return apps, numbers  # accounts_from_dict reports this one
    base = Path(path).parent if not path.startswith("<") else Path.cwd()
    for i, raw in enumerate(raw_conns):
        if not isinstance(raw, dict):
            continue
        conn_id = raw.get("id")
        cid = conn_id if isinstance(conn_id, str) else ""
        where = f"connection {conn_id}" if cid else f"connection[{i}]"
        if any(k in raw for k in TEXML_KEYS):
            apps[cid] = _texml_app(raw, cid, where, base, path, allow_remote)
        per_number = raw.get("texml_number", [])
        if not isinstance(per_number, list):
            raise ConfigError(f"{where}: use [[connection.texml_number]] tables", path=path, key="texml_number")
        owned = {normalize_number(n) for n in raw.get("numbers", []) if isinstance(n, str)}
        for j, table in enumerate(per_number):
            nwhere = f"{where} texml_number[{j}]"
            if not isinstance(table, dict):
                raise ConfigError(f"{nwhere} is not a table", path=path)
            number = table.get("number")
            norm = normalize_number(number) if isinstance(number, str) else ""
            if not norm or norm not in owned:
                raise ConfigError(f"{nwhere}: number must be one of the connection's numbers", path=path,
                                  key="number")
            if norm in numbers:
                raise ConfigError(f"{nwhere}: {norm} has two TeXML applications", path=path, key="number")
            app_id = table.get("texml_application_id", f"{cid}-{norm.lstrip('+')}")
            if not isinstance(app_id, str) or not app_id:
                raise ConfigError(f"{nwhere}: texml_application_id must be a string", path=path,
                                  key="texml_application_id")
            app = _texml_app(table, cid, f"{where} number {norm}", base, path, allow_remote)
            numbers[norm] = TexmlApp(app.connection_id, app.voice_url, app.voice_method, app.status_callback,
                                     app.status_callback_method, app.fallback_url, app_id=app_id, number=norm)
    return apps, numbers


def _texml_app(raw: dict[str, Any], cid: str, where: str, base: Path, path: str, allow_remote: bool) -> TexmlApp:
    values: dict[str, str] = {}
    for key in TEXML_KEYS:
        v = raw.get(key, "")
        if not isinstance(v, str):
            raise ConfigError(f"{where}: {key} must be a string", path=path, key=key)
        values[key] = v.strip()
    if not values["texml_voice_url"]:
        raise ConfigError(f"{where}: texml_* settings need texml_voice_url", path=path, key="texml_voice_url")
    for key in ("texml_voice_method", "texml_status_callback_method"):
        values[key] = values[key].upper() or "POST"
        if values[key] not in ("GET", "POST"):
            raise ConfigError(f"{where}: {key} must be GET or POST", path=path, key=key)
    for key in ("texml_voice_url", "texml_fallback_url"):
        if values[key]:
            values[key] = _document_ref(values[key], base, where, key, path, allow_remote)
    if values["texml_status_callback"]:
        try:
            check_url(values["texml_status_callback"], allow_remote=allow_remote)
        except WebhookURLError as exc:
            raise ConfigError(f"{where}: texml_status_callback: {exc}", path=path,
                              key="texml_status_callback") from exc
    return TexmlApp(
        cid,
        values["texml_voice_url"],
        values["texml_voice_method"],
        values["texml_status_callback"],
        values["texml_status_callback_method"],
        values["texml_fallback_url"],
    )


def _document_ref(ref: str, base: Path, where: str, key: str, path: str, allow_remote: bool) -> str:
    """An http URL (checked) or a file path made absolute (and checked to exist)."""
    if ref.lower().startswith(("http://", "https://")):
        try:
            check_url(ref, allow_remote=allow_remote)
        except WebhookURLError as exc:
            raise ConfigError(f"{where}: {key}: {str(exc).replace('webhook', 'TeXML')}", path=path, key=key) from exc
        return ref
    if "://" in ref and not ref.startswith("file://"):
        raise ConfigError(f"{where}: {key} must be an http:// URL or a file path: {ref!r}", path=path, key=key)
    p = Path(ref[7:] if ref.startswith("file://") else ref).expanduser()
    if not p.is_absolute():
        p = base / p
    if not p.is_file():
        raise ConfigError(f"{where}: {key}: no such file {str(p)!r}", path=path, key=key)
    return str(p.resolve())


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
