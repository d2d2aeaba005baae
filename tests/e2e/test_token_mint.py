"""The softphone mints its own login JWT through the REST API (issue 12 item 6), against the real switch.

A telephony credential is created through the official ``telnyx`` SDK; a profile holding only the
API key and that credential's id (no password, no token) logs in and receives a call with audio
both ways; with short tokens (the accounts option ``max_token_lifetime_secs``, which caps what the
token route mints) it warns before each expiry, mints a new token and logs in again on the same
socket while the call stays up and its audio keeps flowing. ``softphone token mint`` prints one
token on stdout (exit 7 on a refused key, 8 on network errors), from a profile, the environment
or ``--api-key-cmd``; no output shows the key or a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import telnyx

from softphone.client import events as ce
from softphone.client.client import AudioConfig, Client
from softphone.config import Profile
from softphone.errors import LoginFailed
from softphone.media.dsp import dominant_frequency
from softphone.media.sinks import BufferSink
from softphone.protocol import CallState, ClientState, Credentials
from softphone.switch import Switch, default_accounts
from softphone.switch.accounts import Accounts, Connection, Credential
from softphone.switch.callcontrol.apps import CallControlOptions

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

API_KEY = "KEYtoken-e2e-0123456789"
LIFETIME = 12.0  #: the switch's max_token_lifetime_secs in the short-token test: a refresh every 6 s


@dataclass
class Env:
    switch: Switch
    api: str  #: the REST API's v2 root
    sdk: telnyx.AsyncTelnyx

    def accounts(self) -> Accounts:
        return self.switch.accounts


def accounts(max_lifetime: float | None = None) -> Accounts:
    accts = default_accounts()
    accts.connections.append(Connection(id="app", sip_username="appuser", password="app-secret",
                                        numbers=("+13125550150",), api_key=API_KEY,
                                        credentials=(Credential("agent1", "agent1-secret", "app"),)))
    if max_lifetime is not None:
        accts.max_token_lifetime = max_lifetime  # the accounts file's max_token_lifetime_secs
    return accts


MakeEnv = Callable[..., contextlib.AbstractAsyncContextManager[Env]]


@pytest.fixture
def make_env(tmp_path: Path) -> MakeEnv:
    """A switch with its REST API (the ``app`` connection wants ``API_KEY``) and the async SDK on it."""

    @contextlib.asynccontextmanager
    async def make(max_lifetime: float | None = None) -> AsyncIterator[Env]:
        opts = CallControlOptions(api_port=0, data_dir=tmp_path / "switch-data")
        async with Switch(accounts=accounts(max_lifetime), port=0, call_control=opts) as sw:
            assert sw.call_control is not None
            api = f"{sw.call_control.api_url}/v2"
            sdk = telnyx.AsyncTelnyx(api_key=API_KEY, base_url=api, max_retries=0, timeout=10.0)
            try:
                yield Env(sw, api, sdk)
            finally:
                await sdk.close()

    return make


async def new_credential(env: Env, name: str = "desk") -> tuple[str, str]:
    cred = (await env.sdk.telephony_credentials.create(connection_id="app", name=name)).data
    assert cred is not None and cred.id and cred.sip_username
    return cred.id, cred.sip_username


def profile_for(env: Env, credential_id: str) -> Profile:
    """What a user writes: server, api_key (here; api_key_cmd or TELNYX_API_KEY in real use), credential_id."""
    return Profile(name="minted", server=env.switch.url, auth="token", credential_id=credential_id,
                   api_key=API_KEY, api_base_url=env.api, ice_servers=())


def freq(buf: BufferSink, seconds: float = 0.5) -> float:
    return dominant_frequency(buf.samples(seconds))


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def hears(buf: BufferSink, hz: float, timeout: float = 4.0) -> None:
    """``buf`` hears ``hz`` in fresh audio: what arrives after now, not what it heard before."""
    start = buf.frames_written
    await wait_for(lambda: (buf.frames_written - start) * 0.02 >= 0.6 and abs(freq(buf) - hz) <= 15, timeout)


def tone_share(buf: BufferSink, hz: float, seconds: float) -> float:
    """The share of 100 ms pieces of the last ``seconds`` whose dominant frequency is ``hz``."""
    samples = buf.samples(seconds)
    step = 4800  # 100 ms at 48 kHz
    pieces = [samples[i:i + step] for i in range(0, len(samples) - step + 1, step)]
    return sum(abs(dominant_frequency(p) - hz) <= 15 for p in pieces) / max(len(pieces), 1)


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_a_minted_token_logs_in_receives_a_call_and_is_refreshed_while_the_call_stays_up(
    make_env: MakeEnv, records: pytest.LogCaptureFixture,
) -> None:
    async with make_env(LIFETIME) as env:
        cred_id, sip_user = await new_credential(env)
        profile = profile_for(env, cred_id)
        profile.require_credentials()  # a key and a credential id are all it needs
        phone = Client.from_profile(profile, audio=AudioConfig(backend="tone", tone_hz=660.0))
        caller = Client(env.switch.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="tone", tone_hz=880.0), ice_servers=[])
        seen: list[ce.Event] = []
        tokens: list[str] = []  # every token the client logged in with
        phone.subscribe(seen.append)
        phone.subscribe(lambda e: tokens.append(phone.credentials.token or "") if phone.credentials and isinstance(
            e, ce.LoggedIn | ce.TokenRefreshed) else None)
        try:
            assert phone.credentials is None and phone.token_minter is not None
            await phone.connect()
            assert phone.state == ClientState.READY and phone.credentials is not None
            first = phone.credentials.token or ""
            claims = jwt.decode(first, options={"verify_signature": False})
            assert claims["telephony_credential_id"] == cred_id and claims["exp"] - claims["iat"] == LIFETIME
            assert phone.user == cred_id
            sessid = phone.sessid
            ready_at = time.time()

            await caller.connect()
            out = await caller.new_call(sip_user)
            await wait_for(lambda: any(c.state == CallState.RINGING for c in phone.calls.values()), 10)
            inbound = next(iter(phone.calls.values()))
            p_buf, c_buf = BufferSink(), BufferSink()
            inbound.set_output(p_buf)
            out.set_output(c_buf)
            await inbound.answer()
            await inbound.wait_state(CallState.ACTIVE, timeout=10)
            await out.wait_state(CallState.ACTIVE, timeout=10)
            await hears(p_buf, 880.0)
            await hears(c_buf, 660.0)

            # two refreshes: ~6 s and ~12 s after login (half of the 12 s lifetime), past the first exp
            await wait_for(lambda: sum(isinstance(e, ce.TokenRefreshed) for e in seen) >= 2, 30)
            expiring = [e for e in seen if isinstance(e, ce.TokenExpiring)]
            assert len(expiring) >= 2 and all(e.refresh for e in expiring)
            assert all(LIFETIME / 2 - 1.5 <= e.expires_in <= LIFETIME / 2 + 0.5 for e in expiring), expiring
            assert time.time() > claims["exp"]  # the first token has expired: the session did not need it
            assert phone.credentials.token != first and phone.sessid == sessid
            assert not [e for e in seen if isinstance(e, ce.ClientStateChanged) and e.ts > ready_at + 0.5]
            assert not [e for e in seen if isinstance(e, ce.SocketClosed | ce.SocketReconnecting)]
            # the call never noticed: still active on both sides and on the switch, audio both ways
            assert inbound.state == CallState.ACTIVE and out.state == CallState.ACTIVE
            assert any(inbound.id in (c["call_id"], c["b_call_id"]) for c in env.switch.active_calls())
            await hears(p_buf, 880.0)
            await hears(c_buf, 660.0)
            # and it flowed through the last refresh (within the buffers' last 10 s): no gap, no other sound
            refreshed_at = [e.ts for e in seen if isinstance(e, ce.TokenRefreshed)][-1]
            await asyncio.sleep(max(0.0, refreshed_at + 2.0 - time.time()))
            assert time.time() - refreshed_at < 9.0
            assert tone_share(p_buf, 880.0, 9.0) >= 0.9 and tone_share(c_buf, 660.0, 9.0) >= 0.9
            # one registration, in the same session
            regs = [r for r in env.switch.registrations() if r.sessid == sessid]
            assert len(regs) == 1

            await out.hangup()
            await inbound.wait_ended(5)
            assert inbound.cause == "NORMAL_CLEARING"
        finally:
            await caller.close()
            await phone.close()
        assert len(set(tokens)) >= 3 and first in tokens  # the first and two refreshed ones
        for secret in (API_KEY, *tokens):
            assert secret not in records.text


async def test_a_refused_key_is_a_login_failure_and_a_deleted_credential_too(
    make_env: MakeEnv,
) -> None:
    async with make_env() as env:
        cred_id, _ = await new_credential(env)
        from dataclasses import replace

        bad = Client.from_profile(replace(profile_for(env, cred_id), api_key="KEYwrong-key-999"),
                                  audio=AudioConfig(backend="null"))
        # the switch answers another key's credential with 404 (it does not exist for that key)
        with pytest.raises(LoginFailed, match=r"no telephony credential|API key was refused"):
            await bad.connect()
        await bad.close()
        await env.sdk.telephony_credentials.delete(cred_id)
        gone = Client.from_profile(profile_for(env, cred_id), audio=AudioConfig(backend="null"))
        with pytest.raises(LoginFailed, match="no telephony credential"):
            await gone.connect()
        await gone.close()


# --- softphone token mint -------------------------------------------------------------------------


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "softphone", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_token_mint_prints_one_token_and_exits_7_or_8(
    make_env: MakeEnv, tmp_path: Path,
) -> None:
    clean = {"TELNYX_API_KEY": "", "SOFTPHONE_CONFIG": str(tmp_path / "none.toml"), "SOFTPHONE_PROFILE": ""}
    async with make_env() as env:
        cred_id, sip_user = await new_credential(env)
        # the environment's key
        code, out, err = await cli("token", "mint", cred_id, "--api-base-url", env.api,
                                   env={**clean, "TELNYX_API_KEY": API_KEY})
        assert code == 0, err
        assert out.count("\n") == 1 and out.strip().count(".") == 2 and err == ""
        token = out.strip()
        assert env.accounts().token_login(token).slot == sip_user  # the switch takes it for login
        # --api-key-cmd
        code, out, err = await cli("token", "mint", cred_id, "--api-base-url", env.api,
                                   "--api-key-cmd", f"printf {API_KEY}", env=clean)
        assert code == 0 and out.strip().count(".") == 2, err
        # a profile: credential_id + api_key_cmd + api_base_url; `config show` masks the key it holds
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[profiles.default]\nserver = "{env.switch.url}"\ncredential_id = "{cred_id}"\n'
                       f'api_key_cmd = "printf {API_KEY}"\napi_base_url = "{env.api}"\n'
                       f'[profiles.filekey]\ncredential_id = "{cred_id}"\napi_key = "{API_KEY}"\n'
                       f'api_base_url = "{env.api}"\n', encoding="utf-8")
        cfg.chmod(0o600)
        code, out, err = await cli("-c", str(cfg), "token", "mint", env=clean)
        assert code == 0 and out.strip().count(".") == 2, err
        code, out, err = await cli("-c", str(cfg), "-p", "filekey", "--json", "config", "show", env=clean)
        assert code == 0, err
        shown = json.loads(out)["profile"]
        assert shown["api_key"] == "***" and shown["credential_id"] == cred_id and API_KEY not in out + err
        # the one-shots log in with it: `check` mints, logs in and reports; no key or token in its output
        code, out, err = await cli("-c", str(cfg), "-v", "--json", "check", env=clean)
        assert code == 0, err
        assert any(json.loads(line).get("type") == "client.ready" for line in out.splitlines())
        assert API_KEY not in out + err and "eyJ" not in out + err
        # a one-shot whose key is refused exits 7 before anything reaches the signalling server
        code, out, err = await cli("-c", str(cfg), "check", env={**clean, "TELNYX_API_KEY": "KEYwrong-key-999"})
        assert code == 7 and "KEYwrong-key-999" not in out + err, err
        # refused key: exit 7, the key nowhere in the output
        code, out, err = await cli("token", "mint", cred_id, "--api-base-url", env.api,
                                   env={**clean, "TELNYX_API_KEY": "KEYwrong-key-999"})
        assert code == 7 and out == "" and "KEYwrong-key-999" not in err
        assert "no telephony credential" in err or "API key was refused" in err
        code, out, err = await cli("token", "mint", "no-such-credential", "--api-base-url", env.api,
                                   env={**clean, "TELNYX_API_KEY": API_KEY})
        assert code == 7 and "no telephony credential" in err and out == ""
    # network: exit 8
    code, out, err = await cli("token", "mint", "x", "--api-base-url", f"http://127.0.0.1:{closed_port()}/v2",
                               env={**clean, "TELNYX_API_KEY": API_KEY})
    assert code == 8 and out == "" and "cannot reach" in err and API_KEY not in err
    # no key at all: a usage error
    code, out, err = await cli("token", "mint", "x", env=clean)
    assert code == 2 and "no API key" in err


async def test_token_mint_local_mints_for_the_built_in_switch() -> None:
    code, out, err = await cli("token", "mint", "--local", env={"TELNYX_API_KEY": ""})
    assert code == 0, err
    token = out.strip()
    assert out.count("\n") == 1 and err == ""
    login = default_accounts().token_login(token)  # the built-in accounts' secret: any local switch takes it
    assert login.slot == "gencred1" and jwt.decode(token, options={"verify_signature": False})["exp"] > time.time()
    code, out, err = await cli("token", "mint", "--local", "no-such")
    assert code == 7 and out == ""


async def test_mints_reuse_one_tls_context(make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx builds a TLS context per client unless given one (~30 ms: most of a mint on loopback)."""
    import ssl

    from softphone.client.tokens import TokenMinter

    async with make_env() as env:
        cred_id, _ = await new_credential(env)
        made: list[int] = []
        real = ssl.create_default_context

        def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
            made.append(1)
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(ssl, "create_default_context", counting)
        for minter in (TokenMinter(env.api, API_KEY, cred_id), TokenMinter(env.api, API_KEY, cred_id)):
            for _ in range(2):
                assert (await minter.mint()).count(".") == 2
        assert len(made) <= 1
