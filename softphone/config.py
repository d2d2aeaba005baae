"""TOML configuration with named profiles.

A file holds ``default_profile`` and one ``[profiles.<name>]`` table per account or
server; ``config.example.toml`` documents every key. :func:`load_config` picks a
profile, applies the environment (``TELNYX_SIP_USER``, ``TELNYX_SIP_PASSWORD``,
``TELNYX_LOGIN_TOKEN``, ``TELNYX_API_KEY``), runs ``password_cmd`` / ``token_cmd`` /
``api_key_cmd`` and returns a frozen
:class:`Profile`. Every mistake raises :class:`~softphone.errors.ConfigError` naming the
file, the key and the problem. A built-in ``local`` profile points at the embedded
switch on loopback with demo credentials.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import os
import shlex
import stat
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from softphone.errors import ConfigError
from softphone.log import MASK, redact, register_secret

__all__ = [
    "AUDIO_BACKENDS",
    "AUTH_MODES",
    "CODECS",
    "CONFIG_TEMPLATE",
    "DEFAULT_SERVER",
    "LOCAL_API_BASE_URL",
    "LOCAL_DEMO_PASSWORD",
    "LOCAL_DEMO_USERNAME",
    "LOCAL_SWITCH_HOST",
    "LOCAL_SWITCH_PORT",
    "LOCAL_SWITCH_URL",
    "REGIONS",
    "SECRET_CMD_TIMEOUT",
    "TELNYX_API_BASE_URL",
    "TELNYX_DEFAULT_ICE_SERVERS",
    "Config",
    "IceServer",
    "Profile",
    "default_config_path",
    "effective_ice_servers",
    "init_config",
    "is_loopback_host",
    "is_telnyx_host",
    "load_config",
    "read_config",
    "resolve_ws_url",
    "run_secret_cmd",
    "select_profile",
]

logger = logging.getLogger("softphone.config")

AuthMode = Literal["sip", "telephony", "token"]

#: Production signalling host (PROTOCOL.md §1.1).
DEFAULT_SERVER = "wss://rtc.telnyx.com"
#: Telnyx's REST API (v2): where a profile with ``api_key`` + ``credential_id`` mints its login token.
TELNYX_API_BASE_URL = "https://api.telnyx.com/v2"
#: Region host prefixes (PROTOCOL.md §1.1, JS ``Region.ts``); "" (or "auto") means anycast.
REGIONS: tuple[str, ...] = ("eu", "us-central", "us-east", "us-west", "ca-central", "apac", "south-asia")
AUTH_MODES: tuple[str, ...] = ("sip", "telephony", "token")
AUDIO_BACKENDS: tuple[str, ...] = ("auto", "pyaudio", "file", "tone", "null")
#: What a recording holds: both sides as stereo (local left, remote right), both mixed to mono, or the
#: far end alone (``--record-mode``; :class:`softphone.media.sinks.WavRecorder` reads it from here).
RECORD_MODES: tuple[str, ...] = ("stereo", "mixed", "remote")
#: Audio codecs aiortc can encode, by lower-case name -> canonical spelling.
CODECS: Mapping[str, str] = {"opus": "opus", "pcmu": "PCMU", "pcma": "PCMA", "g722": "G722"}

#: The embedded switch (``softphone switch``) and the built-in "local" profile use these.
LOCAL_SWITCH_HOST = "127.0.0.1"
LOCAL_SWITCH_PORT = 8765
LOCAL_SWITCH_URL = f"ws://{LOCAL_SWITCH_HOST}:{LOCAL_SWITCH_PORT}"
LOCAL_DEMO_USERNAME = "demo"
LOCAL_DEMO_PASSWORD = "demo-secret"  # matches softphone.switch.accounts DEMO_PASSWORD
#: The local switch's REST API (its Call Control ``api_port``, 8766 by default).
LOCAL_API_BASE_URL = f"http://{LOCAL_SWITCH_HOST}:8766/v2"

#: Seconds a ``password_cmd`` / ``token_cmd`` may run.
SECRET_CMD_TIMEOUT = 10.0


@dataclass(frozen=True)
class IceServer:
    """One STUN/TURN server, shaped like WebRTC's ``RTCIceServer``."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = field(default="", repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Return keyword arguments for ``aiortc.RTCIceServer``."""
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username:
            out["username"] = self.username
        if self.credential:
            out["credential"] = self.credential
        return out


_TURN_URLS = (
    "turn:turn.telnyx.com:3478?transport=udp",
    "turn:turn.telnyx.com:3478?transport=tcp",
    "turns:turn.telnyx.com:443",
    "turns:turn2.telnyx.com:443",
)
#: JS SDK ``DEFAULT_PROD_ICE_SERVERS`` in order (PROTOCOL.md §6.3); the TURN
#: credentials are static and public, hard-coded in every SDK.
TELNYX_DEFAULT_ICE_SERVERS: tuple[IceServer, ...] = (
    IceServer(("stun:stun.telnyx.com:3478",)),
    IceServer(("stun:stun.l.google.com:19302",)),
    *(IceServer((url,), "testuser", "testpassword") for url in _TURN_URLS),
)


@dataclass(frozen=True)
class Profile:
    """One resolved profile. ``ice_servers=None`` means "defaults for the server"."""

    name: str = "default"
    server: str = DEFAULT_SERVER
    region: str = ""
    insecure: bool = False
    auth: AuthMode = "sip"
    username: str = ""
    password: str = field(default="", repr=False)
    password_cmd: str = ""
    token: str = field(default="", repr=False)
    token_cmd: str = ""
    #: A REST API key and a telephony credential id: with no token, a JWT is minted before login
    #: (``POST {api_base_url}/telephony_credentials/{credential_id}/token``, softphone.client.tokens).
    api_key: str = field(default="", repr=False)
    api_key_cmd: str = ""
    credential_id: str = ""
    api_base_url: str = TELNYX_API_BASE_URL
    caller_id_name: str = ""
    caller_id_number: str = ""
    audio_backend: str = "auto"
    input_device: str = ""
    output_device: str = ""
    input_file: str = ""
    record_file: str = ""
    record_mode: str = "stereo"
    codecs: tuple[str, ...] = ("opus", "PCMU", "PCMA")
    ice_servers: tuple[IceServer, ...] | None = None
    ringback: bool = True
    ringtone: bool = True
    auto_hold: bool = True  #: a second call (dialled or answered) puts the active one on hold first
    gather_timeout: float = 1.0
    rate_per_minute: float = 0.002
    #: Network impairment of the call's media, as --impair takes it (softphone.media.impair): "wifi", "loss=5%".
    impair: str = ""

    def display_dict(self) -> dict[str, Any]:
        """Return every setting as plain data with secrets shown as ``***``."""
        out = dataclasses.asdict(self)
        for key in ("password", "token", "api_key"):
            out[key] = MASK if out[key] else ""
        if self.ice_servers is not None:
            out["ice_servers"] = [
                {**s.as_dict(), **({"credential": MASK} if s.credential else {})} for s in self.ice_servers
            ]
        out["codecs"] = list(self.codecs)
        return out

    def require_credentials(self) -> None:
        """Raise :class:`ConfigError` (with what to do next) unless the chosen ``auth`` has what it needs."""
        if self.auth != "token" and not (self.username or self.password or self.token):
            raise ConfigError(f"no credentials in profile {self.name!r}\n{NO_CREDENTIALS_HINT}")
        if self.auth == "token":
            if not self.token and self.credential_id:
                if not self.api_key:
                    raise ConfigError(
                        "credential_id is set but no API key to mint a token with (api_key, api_key_cmd or "
                        "TELNYX_API_KEY)", key=f"profiles.{self.name}.api_key",
                    )
                return
            if not self.token:
                raise ConfigError(
                    "auth is 'token' but no token is set (token, token_cmd or TELNYX_LOGIN_TOKEN; or credential_id "
                    "with api_key)\n"
                    + NO_CREDENTIALS_HINT, key=f"profiles.{self.name}.token",
                )
            return
        for key, env in (("username", "TELNYX_SIP_USER"), ("password", "TELNYX_SIP_PASSWORD")):
            if not getattr(self, key):
                raise ConfigError(
                    f"auth is {self.auth!r} but no {key} is set ({key}, {env}"
                    + (", password_cmd)" if key == "password" else ")") + "\n" + NO_CREDENTIALS_HINT,
                    key=f"profiles.{self.name}.{key}",
                )


#: What to do when a profile has no credentials (shown by every command that logs in).
NO_CREDENTIALS_HINT = (
    "  set them in the config file (`softphone config init`, then edit `softphone config path`) or with\n"
    "  TELNYX_SIP_USER and TELNYX_SIP_PASSWORD, or TELNYX_LOGIN_TOKEN; no account? try `softphone demo` or --local"
)


#: Built-in profiles; a file's table of the same name is laid over them.
BUILTIN_PROFILES: Mapping[str, Profile] = {
    "local": Profile(
        name="local",
        server=LOCAL_SWITCH_URL,
        username=LOCAL_DEMO_USERNAME,
        password=LOCAL_DEMO_PASSWORD,
        api_base_url=LOCAL_API_BASE_URL,
        ice_servers=(),
    ),
}


@dataclass(frozen=True)
class Config:
    """A parsed, validated configuration file (environment not applied).

    ``explicit_auth`` names the profiles whose ``auth`` was written in the file
    (otherwise it is inferred). ``warnings`` holds messages the CLI should show, such
    as a file with secrets that others can read.
    """

    profiles: Mapping[str, Profile]
    default_profile: str | None = None
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    explicit_auth: frozenset[str] = frozenset()


# --- validation helpers --------------------------------------------------------------

_PROFILE_KEYS = tuple(f.name for f in dataclasses.fields(Profile) if f.name != "name")
_TOP_KEYS = ("default_profile", "profiles")
_ICE_KEYS = ("urls", "username", "credential")
_TYPE_NAMES = {str: "a string", bool: "true or false", float: "a number", list: "an array", dict: "a table"}


def _tname(value: object) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


class _Checker:
    """Raises ConfigError with the file path and dotted key filled in."""

    def __init__(self, path: Path | None) -> None:
        self.path = str(path) if path is not None else None

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.path, key=key)

    def unknown(self, key: str, name: str, known: tuple[str, ...], hint: str = "") -> ConfigError:
        close = difflib.get_close_matches(name, known, n=1)
        tip = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        return self.fail(key, f"unknown key {name!r}{hint}{tip}")

    def typed(self, key: str, value: object, want: type) -> Any:
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise self.fail(key, f"expected {_TYPE_NAMES[want]}, got {_tname(value)} {value!r}")
        return value

    def choice(self, key: str, value: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(key, f"{value!r} is not one of: {', '.join(repr(a) for a in allowed)}")
        return value


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_telnyx_host(host: str) -> bool:
    """True for ``telnyx.com`` and its subdomains."""
    host = host.lower().rstrip(".")
    return host == "telnyx.com" or host.endswith(".telnyx.com")


def _check_server(c: _Checker, base: str, url: str, insecure: bool, region: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise c.fail(f"{base}.server", f"{url!r}: the scheme must be wss:// (or ws:// for a local switch)")
    host = parts.hostname or ""
    if not host:
        raise c.fail(f"{base}.server", f"{url!r} has no host")
    if parts.username or parts.password:
        raise c.fail(f"{base}.server", "credentials do not belong in the URL; use username/password")
    if parts.scheme == "ws" and not insecure and not is_loopback_host(host):
        raise c.fail(
            f"{base}.server",
            f"{url!r} is unencrypted ws:// to a non-loopback host; use wss:// or set insecure = true",
        )
    if region and not is_telnyx_host(host):
        raise c.fail(f"{base}.region", f"region {region!r} applies only to Telnyx servers, not {host!r}")


def _parse_ice(c: _Checker, key: str, value: object) -> tuple[IceServer, ...]:
    servers = []
    for i, entry in enumerate(c.typed(key, value, list)):
        ekey = f"{key}[{i}]"
        table = c.typed(ekey, entry, dict)
        for name in table:
            if name not in _ICE_KEYS:
                raise c.unknown(f"{ekey}.{name}", name, _ICE_KEYS)
        if "urls" not in table:
            raise c.fail(f"{ekey}.urls", "missing: each ICE server needs urls")
        raw = table["urls"]
        urls = [raw] if isinstance(raw, str) else c.typed(f"{ekey}.urls", raw, list)
        if not urls:
            raise c.fail(f"{ekey}.urls", "empty list")
        for url in urls:
            c.typed(f"{ekey}.urls", url, str)
            if url.split(":", 1)[0].lower() not in ("stun", "stuns", "turn", "turns"):
                raise c.fail(f"{ekey}.urls", f"{url!r}: the scheme must be stun:, stuns:, turn: or turns:")
        servers.append(
            IceServer(
                tuple(urls),
                c.typed(f"{ekey}.username", table.get("username", ""), str),
                c.typed(f"{ekey}.credential", table.get("credential", ""), str),
            )
        )
    return tuple(servers)


def _parse_codecs(c: _Checker, key: str, value: object) -> tuple[str, ...]:
    out: list[str] = []
    for item in c.typed(key, value, list):
        name = c.typed(key, item, str)
        canonical = CODECS.get(name.lower())
        if canonical is None:
            raise c.fail(key, f"unknown codec {name!r}; known: {', '.join(CODECS.values())}")
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise c.fail(key, "at least one codec is needed")
    return tuple(out)


def _device(c: _Checker, key: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return cast(str, c.typed(key, value, str))


_SPECIAL: dict[str, Callable[[_Checker, str, object], object]] = {
    "codecs": _parse_codecs,
    "ice_servers": _parse_ice,
    "input_device": _device,
    "output_device": _device,
}
_FIELD_TYPES: dict[str, type] = {
    f.name: {"str": str, "bool": bool, "float": float}.get(str(f.type), str) for f in dataclasses.fields(Profile)
}


def _parse_profile(c: _Checker, name: str, table: object, base_profile: Profile) -> Profile:
    base = f"profiles.{name}"
    values: dict[str, Any] = {}
    for key, value in c.typed(base, table, dict).items():
        if key not in _PROFILE_KEYS:
            raise c.unknown(f"{base}.{key}", key, _PROFILE_KEYS)
        special = _SPECIAL.get(key)
        values[key] = (
            special(c, f"{base}.{key}", value) if special else c.typed(f"{base}.{key}", value, _FIELD_TYPES[key])
        )
    if values.get("region") == "auto":  # the mobile SDKs' spelling of "no prefix"
        values["region"] = ""
    if values.get("region"):
        c.choice(f"{base}.region", values["region"], REGIONS)
    if "auth" in values:
        c.choice(f"{base}.auth", values["auth"], AUTH_MODES)
    elif values.get("token") or values.get("token_cmd") or values.get("credential_id"):
        values["auth"] = "token"
    if "audio_backend" in values:
        c.choice(f"{base}.audio_backend", values["audio_backend"], AUDIO_BACKENDS)
    if "record_mode" in values:
        c.choice(f"{base}.record_mode", values["record_mode"], RECORD_MODES)
    for secret in ("password", "token", "api_key"):
        if values.get(secret) and values.get(f"{secret}_cmd"):
            raise c.fail(f"{base}.{secret}_cmd", f"set {secret} or {secret}_cmd, not both")
    if values.get("gather_timeout", 1.0) <= 0:
        raise c.fail(f"{base}.gather_timeout", "must be greater than 0 seconds")
    if values.get("rate_per_minute", 0.0) < 0:
        raise c.fail(f"{base}.rate_per_minute", "must not be negative")
    profile = dataclasses.replace(base_profile, name=name, **values)
    _check_server(c, base, profile.server, profile.insecure, profile.region)
    _check_api_url(c, base, profile.api_base_url, profile.insecure)
    return profile


def _check_api_url(c: _Checker, base: str, url: str, insecure: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise c.fail(f"{base}.api_base_url", f"{url!r}: must be an https:// URL (http:// for a local switch)")
    if parts.username or parts.password:
        raise c.fail(f"{base}.api_base_url", "credentials do not belong in the URL; use api_key or api_key_cmd")
    if parts.scheme == "http" and not insecure and not is_loopback_host(parts.hostname):
        raise c.fail(f"{base}.api_base_url",
                     f"{url!r} is unencrypted http:// to a non-loopback host (the API key would travel in clear); "
                     "use https:// or set insecure = true")


def _permission_warning(path: Path) -> str | None:
    if os.name != "posix":  # pragma: no cover - POSIX modes only
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return None
    return (
        f"permissions {mode:04o} for '{path}' are too open; it holds a secret. Run: chmod 600 {shlex.quote(str(path))}"
    )


# --- public API ------------------------------------------------------------------------


def default_config_path() -> Path:
    """The per-user config file: ``<user config dir>/softphone/config.toml``."""
    return platformdirs.user_config_path("softphone") / "config.toml"


def _config_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    if path is not None and str(path):
        return Path(path).expanduser()
    if env.get("SOFTPHONE_CONFIG"):
        return Path(env["SOFTPHONE_CONFIG"]).expanduser()
    return default_config_path()


def read_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Parse and validate a config file (missing file: built-ins only).

    The path is ``path``, else ``$SOFTPHONE_CONFIG``, else :func:`default_config_path`.
    No commands are run and the environment's credentials are not applied here.
    """
    file = _config_path(path, env)
    c = _Checker(file)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return Config(profiles=dict(BUILTIN_PROFILES), path=file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(file)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", path=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=str(file)) from None

    for key in data:
        if key not in _TOP_KEYS:
            hint = " (profile settings go under [profiles.<name>])" if key in _PROFILE_KEYS else ""
            raise c.unknown(key, key, _TOP_KEYS, hint)
    default = data.get("default_profile")
    if default is not None:
        c.typed("default_profile", default, str)
    profiles = dict(BUILTIN_PROFILES)
    explicit: set[str] = set()
    for name, table in c.typed("profiles", data.get("profiles", {}), dict).items():
        profiles[name] = _parse_profile(c, name, table, BUILTIN_PROFILES.get(name, Profile()))
        if "auth" in table:
            explicit.add(name)
    if default is not None and default not in profiles and default != "default":
        raise c.fail("default_profile", _no_profile(default, profiles))

    warnings: list[str] = []
    has_secret = any(
        isinstance(t, dict) and (t.get("password") or t.get("token") or t.get("api_key"))
        for t in data.get("profiles", {}).values()
    )
    if has_secret:
        warning = _permission_warning(file)
        if warning:
            logger.warning("%s", warning)
            warnings.append(warning)
    return Config(profiles, default, file, tuple(warnings), frozenset(explicit))


def _no_profile(name: str, profiles: Mapping[str, Profile]) -> str:
    close = difflib.get_close_matches(name, list(profiles), n=1)
    tip = f"; did you mean {close[0]!r}?" if close else ""
    return f"no profile {name!r}; known profiles: {', '.join(sorted(profiles))}{tip}"


def _run_secret_cmd(command: str, key: str, path: Path | None) -> str:
    where = str(path) if path is not None else None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"cannot parse command: {exc}", path=where, key=key) from None
    if not argv:
        raise ConfigError("empty command", path=where, key=key)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=SECRET_CMD_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"command timed out after {SECRET_CMD_TIMEOUT:g} s", path=where, key=key) from None
    except OSError as exc:
        raise ConfigError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", path=where, key=key) from None
    # `pass show` and friends print the secret on the first line, metadata after it.
    lines = done.stdout.strip().splitlines()
    secret = lines[0].strip() if lines else ""
    if done.returncode != 0:
        errs = done.stderr.strip().splitlines()
        detail = f": {redact(errs[-1], [secret])[:200]}" if errs else ""
        raise ConfigError(f"command exited with status {done.returncode}{detail}", path=where, key=key)
    if not secret:
        raise ConfigError("command printed nothing", path=where, key=key)
    return secret


def run_secret_cmd(command: str, key: str, path: Path | None = None) -> str:
    """Run a ``*_cmd`` setting (no shell, 10 s limit) and return the first line it prints.

    Raises :class:`ConfigError` naming ``key`` (and ``path``) when it cannot run, fails or prints nothing.
    """
    return _run_secret_cmd(command, key, path)


def pick_profile(config: Config, profile: str | None = None, env: Mapping[str, str] = os.environ) -> Profile:
    """The profile named ``profile`` / ``$SOFTPHONE_PROFILE`` / ``default_profile`` / ``"default"``, as written.

    No environment overrides and no ``password_cmd``/``token_cmd``: :func:`select_profile` adds those.
    """
    name = profile or env.get("SOFTPHONE_PROFILE") or config.default_profile or "default"
    if name in config.profiles:
        return config.profiles[name]
    if name == "default":
        return Profile()
    raise ConfigError(_no_profile(name, config.profiles), path=_str(config.path))


def select_profile(config: Config, profile: str | None = None, env: Mapping[str, str] = os.environ) -> Profile:
    """Pick a profile from ``config`` and finish it with the environment.

    The name is ``profile``, else ``$SOFTPHONE_PROFILE``, else ``default_profile``, else
    ``"default"`` (all defaults when the file has no such table). ``TELNYX_SIP_USER`` /
    ``TELNYX_SIP_PASSWORD`` / ``TELNYX_LOGIN_TOKEN`` override the file; a token from the
    environment selects ``auth = "token"`` unless user and password come from it too.
    ``TELNYX_API_KEY`` overrides ``api_key``.
    ``password_cmd`` / ``token_cmd`` run only when the chosen auth needs their secret, and
    ``api_key_cmd`` only when a token is to be minted (``credential_id`` and no token).
    Secrets are registered with :func:`softphone.log.register_secret`.
    """
    chosen = pick_profile(config, profile, env)
    name = chosen.name
    user, password, token = (env.get(k, "") for k in ("TELNYX_SIP_USER", "TELNYX_SIP_PASSWORD", "TELNYX_LOGIN_TOKEN"))
    changes: dict[str, Any] = {}
    if user:
        changes["username"] = user
    if password:
        changes.update(password=password, password_cmd="")
    if token:
        changes.update(token=token, token_cmd="")
    if env.get("TELNYX_API_KEY"):
        changes.update(api_key=env["TELNYX_API_KEY"], api_key_cmd="")
    explicit = name in config.explicit_auth
    if token and not (user and password):
        changes["auth"] = "token"
    elif user and password and not explicit:
        changes["auth"] = "sip"
    chosen = dataclasses.replace(chosen, **changes)

    base = f"profiles.{name}"
    if chosen.auth == "token" and not chosen.token and chosen.token_cmd:
        chosen = dataclasses.replace(chosen, token=_run_secret_cmd(chosen.token_cmd, f"{base}.token_cmd", config.path))
    if chosen.auth != "token" and not chosen.password and chosen.password_cmd:
        chosen = dataclasses.replace(
            chosen, password=_run_secret_cmd(chosen.password_cmd, f"{base}.password_cmd", config.path)
        )
    if chosen.auth == "token" and not chosen.token and chosen.credential_id and not chosen.api_key \
            and chosen.api_key_cmd:
        chosen = dataclasses.replace(
            chosen, api_key=_run_secret_cmd(chosen.api_key_cmd, f"{base}.api_key_cmd", config.path)
        )
    register_secret(chosen.password, chosen.token, chosen.api_key)
    return chosen


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def load_config(
    path: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Profile:
    """Read the config file and return the selected, fully resolved profile.

    Shorthand for ``select_profile(read_config(path, env), profile, env)``; use those
    two when you also want :attr:`Config.warnings`.
    """
    return select_profile(read_config(path, env), profile, env)


def resolve_ws_url(profile: Profile) -> str:
    """The websocket URL to dial: ``server`` with the region host prefix applied.

    Like the mobile SDKs, ``<region>.`` is prepended to a Telnyx host
    (``wss://eu.rtc.telnyx.com``); a host that already starts with it is left alone.
    """
    parts = urlsplit(profile.server)
    region = "" if profile.region == "auto" else profile.region
    host = parts.hostname or ""
    if not region or not is_telnyx_host(host) or host.startswith(f"{region}."):
        return profile.server
    return urlunsplit(parts._replace(netloc=f"{region}.{parts.netloc}"))


def effective_ice_servers(profile: Profile, url: str | None = None) -> tuple[IceServer, ...]:
    """The ICE servers to use: the profile's own, else defaults for the server.

    Telnyx hosts get :data:`TELNYX_DEFAULT_ICE_SERVERS`; loopback and other hosts get
    none (host candidates suffice and no STUN query leaves the machine).
    """
    if profile.ice_servers is not None:
        return profile.ice_servers
    host = urlsplit(url if url is not None else resolve_ws_url(profile)).hostname or ""
    return TELNYX_DEFAULT_ICE_SERVERS if is_telnyx_host(host) else ()


def init_config(path: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Write :data:`CONFIG_TEMPLATE` to ``path`` (default :func:`default_config_path`).

    The file is created with mode 0600 and its directory with 0700. An existing file is
    kept unless ``force``. Returns the path written.
    """
    file = Path(path).expanduser() if path is not None else default_config_path()
    if file.exists() and not force:
        raise ConfigError("already exists; use --force to overwrite", path=str(file))
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(CONFIG_TEMPLATE)
        os.chmod(file, 0o600)  # O_CREAT's mode does not apply to an existing file
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror or exc}", path=str(file)) from None
    return file


CONFIG_TEMPLATE = """\
# softphone configuration (TOML).
#
# Location: $SOFTPHONE_CONFIG, else <user config dir>/softphone/config.toml
# (~/.config/softphone/config.toml on Linux). Create it with `softphone config init`.
# Keep it private (chmod 600) when it holds a password or token: softphone warns
# otherwise. Better still, leave secrets out and use password_cmd / token_cmd or the
# environment: TELNYX_SIP_USER, TELNYX_SIP_PASSWORD, TELNYX_LOGIN_TOKEN override the
# file (a token from the environment selects auth = "token" unless user and password
# come from the environment too).

# Profile used when neither --profile nor $SOFTPHONE_PROFILE names one.
# A built-in profile "local" talks to the embedded switch (`softphone switch`) on
# ws://127.0.0.1:8765 with demo credentials; a [profiles.local] table adjusts it.
default_profile = "work"

[profiles.work]
# Signalling websocket. wss:// everywhere; ws:// only to loopback unless insecure = true.
server = "wss://rtc.telnyx.com"
# Regional host prefix for Telnyx servers: "" (anycast), eu, us-central, us-east,
# us-west, ca-central, apac, south-asia  ->  wss://<region>.rtc.telnyx.com
region = ""
# Allow unencrypted ws:// to a non-loopback host (a switch on your LAN).
insecure = false

# How to log in: "sip" (SIP connection credentials), "telephony" (telephony
# credentials, also user/password) or "token" (a JWT login token).
# Omitted: "token" when token or token_cmd is set, else "sip".
# auth = "sip"
username = ""
# password = ""                        # or, better, a command that prints it:
# password_cmd = "pass show telnyx"    # first line of its output; run without a shell, 10 s limit
# token = ""                           # JWT from the Telnyx API (telephony credential token)
# token_cmd = "cat /run/user/1000/telnyx.jwt"
# Or let softphone mint the JWT itself before login (and again before it expires): a telephony
# credential id and an API key (api_key_cmd or TELNYX_API_KEY are better than api_key in the file).
# credential_id = ""                   # a telephony credential's id (`softphone token mint ID` tests it)
# api_key = ""
# api_key_cmd = "pass show telnyx-api-key"
# api_base_url = "https://api.telnyx.com/v2"   # the local switch: http://127.0.0.1:8766/v2

# Caller ID sent with outbound calls (Telnyx may override it).
caller_id_name = ""
caller_id_number = ""

# Audio: auto | pyaudio | file | tone | null
audio_backend = "auto"
# Device index or a substring of its name; "" is the system default.
input_device = ""
output_device = ""
# Play this audio file as the microphone (backend "file").
input_file = ""
# Record each call to this WAV file; "" records nothing.
record_file = ""
# stereo: your side left, the far end right; mixed: both in mono; remote: the far end only.
record_mode = "stereo"

# Codecs to offer, in order of preference: opus, PCMU, PCMA, G722.
codecs = ["opus", "PCMU", "PCMA"]

# ICE servers. Omit the key for defaults: Telnyx STUN/TURN for Telnyx servers, none
# for loopback or other hosts. An empty list means host candidates only.
# ice_servers = [
#   { urls = "stun:stun.telnyx.com:3478" },
#   { urls = ["turn:turn.telnyx.com:3478?transport=udp"], username = "testuser", credential = "testpassword" },
# ]

# Play ringback while an outbound call rings, and a ringtone for inbound calls.
ringback = true
ringtone = true
# Dialling or answering another call puts the active call on hold first, as desk phones do;
# false leaves every call active (the microphone goes to all of them).
auto_hold = true
# Seconds to gather ICE candidates before sending the SDP (Verto is non-trickle).
gather_timeout = 1.0
# Price per minute (USD) used for the call cost estimate.
rate_per_minute = 0.002
# Impair the calls' media in-process, as --impair does (README: Impairments): a preset (good,
# wifi, congested, satellite) and/or loss=5%,burst=3,delay=100ms,jitter=40ms. Empty: none.
# impair = "wifi"

# Another account, selected with --profile eu or SOFTPHONE_PROFILE=eu:
# [profiles.eu]
# region = "eu"
# token_cmd = "pass show telnyx-jwt"
"""
