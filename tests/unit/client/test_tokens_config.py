"""Profile keys for minted login tokens: api_key / api_key_cmd / TELNYX_API_KEY, credential_id,
api_base_url; redacted by ``config show``'s display_dict; Client.from_profile builds a minter."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone.client.client import Client
from softphone.config import (
    BUILTIN_PROFILES,
    LOCAL_API_BASE_URL,
    TELNYX_API_BASE_URL,
    Profile,
    load_config,
    read_config,
    select_profile,
)
from softphone.errors import ConfigError
from softphone.log import MASK, redact

KEY = "KEYfile-api-key-abcdef"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_credential_id_selects_token_auth_and_the_key_is_masked(tmp_path: Path) -> None:
    path = write(tmp_path, f'[profiles.default]\ncredential_id = "cred-1"\napi_key = "{KEY}"\n')
    profile = load_config(path, env={})
    assert profile.auth == "token" and profile.credential_id == "cred-1" and profile.api_key == KEY
    assert profile.api_base_url == TELNYX_API_BASE_URL
    profile.require_credentials()  # a key and a credential id are enough: no token, no password
    shown = profile.display_dict()
    assert shown["api_key"] == MASK and KEY not in str(shown)
    assert KEY not in repr(profile) and KEY not in redact(f"the key is {KEY}")


def test_the_environment_key_wins_and_no_command_runs(tmp_path: Path) -> None:
    # api_key_cmd would start a subprocess (the unit walls forbid it): the environment's key means it never runs
    path = write(tmp_path, '[profiles.default]\ncredential_id = "cred-1"\napi_key_cmd = "pass show key"\n')
    profile = load_config(path, env={"TELNYX_API_KEY": "KEYfrom-env-123"})
    assert profile.api_key == "KEYfrom-env-123" and profile.api_key_cmd == ""
    # with a token the key is not needed: api_key_cmd does not run either
    with_token = write(tmp_path, '[profiles.default]\ncredential_id = "c"\ntoken = "a.b.c"\napi_key_cmd = "x"\n')
    assert select_profile(read_config(with_token, env={}), env={}).api_key == ""


def test_a_credential_id_without_a_key_says_what_to_set(tmp_path: Path) -> None:
    profile = load_config(write(tmp_path, '[profiles.default]\ncredential_id = "cred-1"\n'), env={})
    with pytest.raises(ConfigError, match="api_key, api_key_cmd or TELNYX_API_KEY"):
        profile.require_credentials()


@pytest.mark.parametrize(("text", "needle"), [
    ('api_base_url = "http://api.example.com/v2"', "unencrypted http://"),
    ('api_base_url = "ftp://api.example.com"', "https:// URL"),
    ('api_base_url = "https://u:p@api.example.com/v2"', "credentials do not belong"),
    ('api_key = "k1234"\napi_key_cmd = "x"', "not both"),
])
def test_bad_api_settings_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        read_config(write(tmp_path, f"[profiles.w]\n{text}\n"), env={})
    assert "profiles.w." in str(err.value) and "k1234" not in str(err.value)


def test_http_api_is_fine_on_loopback_and_the_local_profile_points_at_the_switch(tmp_path: Path) -> None:
    cfg = read_config(write(tmp_path, '[profiles.w]\napi_base_url = "http://127.0.0.1:9999/v2"\n'), env={})
    assert cfg.profiles["w"].api_base_url == "http://127.0.0.1:9999/v2"
    assert BUILTIN_PROFILES["local"].api_base_url == LOCAL_API_BASE_URL == "http://127.0.0.1:8766/v2"


def test_from_profile_mints_only_without_a_token() -> None:
    minting = Client.from_profile(Profile(auth="token", credential_id="cred-1", api_key=KEY,
                                          api_base_url="http://127.0.0.1:8766/v2", audio_backend="null"))
    assert minting.credentials is None and minting.token_minter is not None
    assert minting.token_minter.url == "http://127.0.0.1:8766/v2/telephony_credentials/cred-1/token"
    given = Client.from_profile(Profile(auth="token", token="a.b.c", credential_id="cred-1", api_key=KEY,
                                        audio_backend="null"))
    assert given.token_minter is None and given.credentials is not None and given.credentials.token == "a.b.c"
