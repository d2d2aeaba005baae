"""Tests for softphone.config: profiles, validation, environment, secrets, helpers."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softphone import config as cfg
from softphone.config import (
    CONFIG_TEMPLATE,
    DEFAULT_SERVER,
    LOCAL_DEMO_PASSWORD,
    LOCAL_DEMO_USERNAME,
    LOCAL_SWITCH_PORT,
    LOCAL_SWITCH_URL,
    TELNYX_DEFAULT_ICE_SERVERS,
    Config,
    IceServer,
    Profile,
    default_config_path,
    effective_ice_servers,
    init_config,
    is_loopback_host,
    is_telnyx_host,
    load_config,
    read_config,
    resolve_ws_url,
    select_profile,
)
from softphone.errors import ConfigError
from softphone.log import clear_secrets, redact

ROOT = Path(__file__).resolve().parents[2]
PY = shlex.quote(sys.executable)


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def error(tmp_path: Path, text: str, profile: str | None = None, env: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, profile, env or {})
    assert info.value.path == str(path)
    return info.value


# --- template and defaults ----------------------------------------------------------------


def test_example_file_is_the_template() -> None:
    assert (ROOT / "config.example.toml").read_text(encoding="utf-8") == CONFIG_TEMPLATE


def test_template_documents_every_key() -> None:
    for name in cfg._PROFILE_KEYS:
        assert f"\n{name} =" in CONFIG_TEMPLATE or f"# {name} =" in CONFIG_TEMPLATE, name


def test_template_loads(tmp_path: Path) -> None:
    profile = load_config(write(tmp_path, CONFIG_TEMPLATE), env={})
    assert profile == Profile(name="work")


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    profile = load_config(tmp_path / "nope.toml", env={})
    assert profile == Profile()
    assert profile.name == "default" and profile.server == DEFAULT_SERVER and profile.auth == "sip"


def test_default_config_path() -> None:
    assert default_config_path().parts[-2:] == ("softphone", "config.toml")


def test_path_from_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[profiles.x]\nusername = "envpath"\n')
    assert load_config(None, "x", {"SOFTPHONE_CONFIG": str(path)}).username == "envpath"
    monkeypatch.setattr(cfg, "default_config_path", lambda: path)
    assert load_config(None, "x", {}).username == "envpath"
    assert read_config(env={}).path == path


def test_builtin_local_profile(tmp_path: Path) -> None:
    profile = load_config(tmp_path / "none.toml", "local", {})
    assert profile.server == LOCAL_SWITCH_URL == f"ws://127.0.0.1:{LOCAL_SWITCH_PORT}"
    assert (profile.username, profile.password) == (LOCAL_DEMO_USERNAME, LOCAL_DEMO_PASSWORD)
    assert effective_ice_servers(profile) == ()
    profile.require_credentials()


def test_local_profile_overlay(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.local]\ncaller_id_name = "Dev"\n')
    profile = load_config(path, "local", {})
    assert profile.caller_id_name == "Dev" and profile.server == LOCAL_SWITCH_URL


# --- profile selection ----------------------------------------------------------------------

TWO = """
default_profile = "work"
[profiles.work]
username = "w"
[profiles.home]
username = "h"
"""


def test_profile_selection(tmp_path: Path) -> None:
    path = write(tmp_path, TWO)
    assert load_config(path, env={}).username == "w"
    assert load_config(path, "home", {}).username == "h"
    assert load_config(path, None, {"SOFTPHONE_PROFILE": "home"}).username == "h"
    assert load_config(path, "work", {"SOFTPHONE_PROFILE": "home"}).username == "w"


def test_default_profile_named_default_without_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.work]\nusername = "w"\n')
    assert load_config(path, env={}) == Profile()


def test_unknown_profile(tmp_path: Path) -> None:
    exc = error(tmp_path, TWO, profile="hom")
    assert "no profile 'hom'" in str(exc) and "home, local, work" in str(exc) and "did you mean 'home'" in str(exc)


def test_unknown_default_profile(tmp_path: Path) -> None:
    exc = error(tmp_path, 'default_profile = "nowhere"\n')
    assert exc.key == "default_profile" and "known profiles: local" in str(exc)


# --- validation -----------------------------------------------------------------------------


def test_bad_toml_names_line_and_column(tmp_path: Path) -> None:
    exc = error(tmp_path, '[profiles.work]\nusername = "a"\nserver = \n')
    assert "invalid TOML" in str(exc) and "line 3" in str(exc) and "column" in str(exc)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'default_profile = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_config(path, {})


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as info:
        read_config(tmp_path, {})  # a directory
    assert info.value.path == str(tmp_path)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('[profiles.w]\nusernme = "x"\n', "profiles.w.usernme", "did you mean 'username'"),
        ('[profiles.w]\nzzzzzz = "x"\n', "profiles.w.zzzzzz", "known keys: server"),
        ('default_profil = "x"\n', "default_profil", "did you mean 'default_profile'"),
        ('server = "wss://x"\n', "server", "profile settings go under [profiles.<name>]"),
        ("default_profile = 3\n", "default_profile", "expected a string, got integer 3"),
        ('profiles = "x"\n', "profiles", "expected a table, got string"),
        ("[profiles]\nw = 1\n", "profiles.w", "expected a table, got integer"),
        ("[profiles.w]\nusername = 5\n", "profiles.w.username", "expected a string, got integer 5"),
        ('[profiles.w]\ninsecure = "yes"\n', "profiles.w.insecure", "expected true or false"),
        ("[profiles.w]\ngather_timeout = true\n", "profiles.w.gather_timeout", "expected a number, got boolean"),
        ("[profiles.w]\ngather_timeout = 0\n", "profiles.w.gather_timeout", "greater than 0"),
        ("[profiles.w]\nrate_per_minute = -1\n", "profiles.w.rate_per_minute", "must not be negative"),
        ('[profiles.w]\ncodecs = ["opus", "g729"]\n', "profiles.w.codecs", "unknown codec 'g729'; known: opus"),
        ("[profiles.w]\ncodecs = []\n", "profiles.w.codecs", "at least one codec"),
        ('[profiles.w]\ncodecs = "opus"\n', "profiles.w.codecs", "expected an array"),
        ("[profiles.w]\ncodecs = [1]\n", "profiles.w.codecs", "expected a string"),
        ('[profiles.w]\nregion = "mars"\n', "profiles.w.region", "'mars' is not one of: 'eu'"),
        ('[profiles.w]\nauth = "oauth"\n', "profiles.w.auth", "'oauth' is not one of: 'sip'"),
        ('[profiles.w]\naudio_backend = "alsa"\n', "profiles.w.audio_backend", "is not one of"),
        ("[profiles.w]\ninput_device = true\n", "profiles.w.input_device", "expected a string"),
        ('[profiles.w]\nserver = "https://rtc.telnyx.com"\n', "profiles.w.server", "scheme must be wss://"),
        ('[profiles.w]\nserver = "wss://"\n', "profiles.w.server", "has no host"),
        ('[profiles.w]\nserver = "wss://u:p@rtc.telnyx.com"\n', "profiles.w.server", "credentials do not belong"),
        ('[profiles.w]\nserver = "ws://rtc.example.com"\n', "profiles.w.server", "set insecure = true"),
        ('[profiles.w]\nserver = "ws://127.0.0.1:9"\nregion = "eu"\n', "profiles.w.region", "only to Telnyx"),
        ('[profiles.w]\npassword = "a"\npassword_cmd = "b"\n', "profiles.w.password_cmd", "not both"),
        ('[profiles.w]\ntoken = "a"\ntoken_cmd = "b"\n', "profiles.w.token_cmd", "not both"),
        ('[profiles.w]\nice_servers = "stun:x"\n', "profiles.w.ice_servers", "expected an array"),
        ("[profiles.w]\nice_servers = [1]\n", "profiles.w.ice_servers[0]", "expected a table"),
        ('[profiles.w]\nice_servers = [{url = "stun:x"}]\n', "profiles.w.ice_servers[0].url", "did you mean 'urls'"),
        ('[profiles.w]\nice_servers = [{username = "u"}]\n', "profiles.w.ice_servers[0].urls", "needs urls"),
        ("[profiles.w]\nice_servers = [{urls = []}]\n", "profiles.w.ice_servers[0].urls", "empty list"),
        ("[profiles.w]\nice_servers = [{urls = [3]}]\n", "profiles.w.ice_servers[0].urls", "expected a string"),
        ('[profiles.w]\nice_servers = [{urls = "http://x"}]\n', "profiles.w.ice_servers[0].urls", "stun:, stuns:"),
        (
            '[profiles.w]\nice_servers = [{urls = "turn:x", credential = 1}]\n',
            "profiles.w.ice_servers[0].credential",
            "expected a string",
        ),
    ],
)
def test_validation_errors(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    exc = error(tmp_path, text)
    assert exc.key == key
    assert fragment in str(exc)
    assert str(exc).startswith(f"{tmp_path / 'config.toml'}: {key}: ")


def test_valid_values_are_normalised(tmp_path: Path) -> None:
    text = """
[profiles.w]
server = "ws://rtc.lan.example:8080"
insecure = true
region = "auto"
codecs = ["PCMU", "OPUS", "pcmu", "g722"]
input_device = 3
output_device = "USB"
gather_timeout = 2
ice_servers = [{urls = "stun:s:3478"}, {urls = ["turn:t:3478", "turns:t:443"], username = "u", credential = "c"}]
"""
    profile = load_config(write(tmp_path, text), "w", {})
    assert profile.region == "" and profile.insecure
    assert profile.codecs == ("PCMU", "opus", "G722")
    assert (profile.input_device, profile.output_device) == ("3", "USB")
    assert profile.gather_timeout == 2.0 and isinstance(profile.gather_timeout, float)
    assert profile.ice_servers == (
        IceServer(("stun:s:3478",)),
        IceServer(("turn:t:3478", "turns:t:443"), "u", "c"),
    )
    assert effective_ice_servers(profile) == profile.ice_servers


def test_ws_to_loopback_allowed(tmp_path: Path) -> None:
    for server in ("ws://localhost:1", "ws://127.0.0.2", "ws://[::1]:8765", "ws://sw.localhost"):
        load_config(write(tmp_path, f'[profiles.w]\nserver = "{server}"\n'), "w", {})


# --- auth inference and environment ------------------------------------------------------


def test_auth_inferred_from_token(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.w]\ntoken = "tok-value"\n[profiles.s]\nusername = "u"\n')
    assert load_config(path, "w", {}).auth == "token"
    assert load_config(path, "s", {}).auth == "sip"


def test_env_overrides_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.w]\nusername = "file"\npassword_cmd = "false"\n')
    profile = load_config(path, "w", {"TELNYX_SIP_USER": "envuser", "TELNYX_SIP_PASSWORD": "envpass"})
    assert (profile.username, profile.password, profile.password_cmd) == ("envuser", "envpass", "")
    assert profile.auth == "sip"
    assert "envpass" not in redact("x envpass y")  # registered for log redaction


def test_env_token_forces_token_auth(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.w]\nusername = "u"\npassword = "p"\n')
    profile = load_config(path, "w", {"TELNYX_LOGIN_TOKEN": "jwt-value"})
    assert profile.auth == "token" and profile.token == "jwt-value"
    # With only a user from the environment, the token still wins.
    assert load_config(path, "w", {"TELNYX_LOGIN_TOKEN": "jwt-value", "TELNYX_SIP_USER": "x"}).auth == "token"


def test_env_token_with_user_and_password(tmp_path: Path) -> None:
    env = {"TELNYX_LOGIN_TOKEN": "jwt-value", "TELNYX_SIP_USER": "u", "TELNYX_SIP_PASSWORD": "pass"}
    path = write(tmp_path, '[profiles.w]\ntoken = "file-token"\n[profiles.t]\nauth = "telephony"\n')
    assert load_config(path, "w", env).auth == "sip"  # inferred auth yields to explicit env credentials
    assert load_config(path, "t", env).auth == "telephony"  # explicit auth in the file is kept


def test_env_on_default_profile_without_file(tmp_path: Path) -> None:
    profile = load_config(tmp_path / "none.toml", env={"TELNYX_LOGIN_TOKEN": "jwt-value"})
    assert profile.name == "default" and profile.auth == "token"
    profile.require_credentials()


def test_require_credentials() -> None:
    with pytest.raises(ConfigError, match="no token is set") as info:
        Profile(name="w", auth="token").require_credentials()
    assert info.value.key == "profiles.w.token"
    with pytest.raises(ConfigError, match="no username is set"):
        Profile(password="p").require_credentials()
    with pytest.raises(ConfigError, match="no credentials in profile 'default'") as info:
        Profile().require_credentials()
    for hint in ("softphone config init", "TELNYX_SIP_USER", "TELNYX_LOGIN_TOKEN", "softphone demo", "--local"):
        assert hint in str(info.value)
    with pytest.raises(ConfigError, match=r"no password is set .*password_cmd"):
        Profile(username="u", auth="telephony").require_credentials()
    Profile(username="u", password="p").require_credentials()


# --- permissions -----------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_permissions_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, '[profiles.w]\npassword = "s3cret-pw"\n', mode=0o644)
    with caplog.at_level(logging.WARNING, logger="softphone.config"):
        config = read_config(path, {})
    assert len(config.warnings) == 1
    warning = config.warnings[0]
    assert f"permissions 0644 for '{path}' are too open" in warning and f"chmod 600 {path}" in warning
    assert [r.getMessage() for r in caplog.records if r.name == "softphone.config"] == [warning]
    assert "s3cret-pw" not in caplog.text


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_no_permissions_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="softphone.config"):
        assert read_config(write(tmp_path, '[profiles.w]\ntoken = "tok-value"\n', 0o600), {}).warnings == ()
        # Readable by others, but nothing secret in it.
        assert read_config(write(tmp_path, '[profiles.w]\nusername = "u"\n', 0o644), {}).warnings == ()
    assert not caplog.records


# --- display, URLs, ICE --------------------------------------------------------------------


def test_display_dict_redacts() -> None:
    profile = Profile(
        password="pw-secret",
        token="",
        ice_servers=(IceServer(("turn:t",), "u", "cred-secret"), IceServer(("stun:s",))),
    )
    shown = profile.display_dict()
    assert shown["password"] == "***" and shown["token"] == ""
    assert shown["ice_servers"] == [
        {"urls": ["turn:t"], "username": "u", "credential": "***"},
        {"urls": ["stun:s"]},
    ]
    assert shown["codecs"] == ["opus", "PCMU", "PCMA"]
    assert "secret" not in repr(shown) and "secret" not in repr(profile)
    assert Profile().display_dict()["ice_servers"] is None


@pytest.mark.parametrize(
    ("server", "region", "url"),
    [
        ("wss://rtc.telnyx.com", "", "wss://rtc.telnyx.com"),
        ("wss://rtc.telnyx.com", "eu", "wss://eu.rtc.telnyx.com"),
        ("wss://rtcdev.telnyx.com:443/", "us-east", "wss://us-east.rtcdev.telnyx.com:443/"),
        ("wss://eu.rtc.telnyx.com", "eu", "wss://eu.rtc.telnyx.com"),
        ("wss://rtc.telnyx.com", "auto", "wss://rtc.telnyx.com"),
        ("ws://127.0.0.1:8765", "eu", "ws://127.0.0.1:8765"),
    ],
)
def test_resolve_ws_url(server: str, region: str, url: str) -> None:
    assert resolve_ws_url(Profile(server=server, region=region)) == url


def test_region_from_file(tmp_path: Path) -> None:
    profile = load_config(write(tmp_path, '[profiles.w]\nregion = "south-asia"\n'), "w", {})
    assert resolve_ws_url(profile) == "wss://south-asia.rtc.telnyx.com"


def test_effective_ice_servers() -> None:
    assert effective_ice_servers(Profile()) == TELNYX_DEFAULT_ICE_SERVERS
    assert effective_ice_servers(Profile(), "ws://127.0.0.1:8765") == ()
    assert effective_ice_servers(Profile(server="wss://switch.example.org")) == ()
    assert effective_ice_servers(Profile(ice_servers=())) == ()
    urls = [u for s in TELNYX_DEFAULT_ICE_SERVERS for u in s.urls]
    assert urls[:2] == ["stun:stun.telnyx.com:3478", "stun:stun.l.google.com:19302"]
    assert urls[-1] == "turns:turn2.telnyx.com:443" and len(urls) == 6
    assert TELNYX_DEFAULT_ICE_SERVERS[2].as_dict() == {
        "urls": ["turn:turn.telnyx.com:3478?transport=udp"],
        "username": "testuser",
        "credential": "testpassword",
    }
    assert TELNYX_DEFAULT_ICE_SERVERS[0].as_dict() == {"urls": ["stun:stun.telnyx.com:3478"]}


def test_host_predicates() -> None:
    assert is_loopback_host("LOCALHOST") and is_loopback_host("[::1]") and is_loopback_host("127.9.9.9")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("example.com")
    assert is_telnyx_host("telnyx.com") and is_telnyx_host("eu.rtc.telnyx.com.")
    assert not is_telnyx_host("nottelnyx.com") and not is_telnyx_host("telnyx.com.evil.org")


# --- init_config -------------------------------------------------------------------------------


def test_init_config(tmp_path: Path) -> None:
    path = init_config(tmp_path / "sub" / "config.toml")
    assert path.read_text(encoding="utf-8") == CONFIG_TEMPLATE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    with pytest.raises(ConfigError, match="already exists"):
        init_config(path)
    path.write_text("junk")
    path.chmod(0o644)
    assert init_config(path, force=True) == path
    assert path.read_text(encoding="utf-8") == CONFIG_TEMPLATE and path.stat().st_mode & 0o777 == 0o600


def test_init_config_default_path_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "d" / "config.toml"
    monkeypatch.setattr(cfg, "default_config_path", lambda: target)
    assert init_config() == target
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        init_config(blocker / "config.toml")


# --- select_profile with a hand-made Config -----------------------------------------------


def test_select_profile_direct() -> None:
    config = Config(profiles={"a": Profile(name="a", username="ua")}, default_profile="a")
    assert select_profile(config, env={}).username == "ua"
    with pytest.raises(ConfigError, match="known profiles: a") as info:
        select_profile(config, "b", {})
    assert info.value.path is None
