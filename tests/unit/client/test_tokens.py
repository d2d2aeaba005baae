"""softphone.client.tokens: minting login tokens through the REST API (an in-memory HTTP fake,
httpx.MockTransport), expiry parsing, error mapping and redaction; the Client minting before login
and again before the token expires, logging in on the same socket without leaving ``ready``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from unit.support.duplex import FakeVertoServer

from softphone.app.events_json import dumps, load_schema
from softphone.app.snapshot import PhoneEvent
from softphone.client import events as ce
from softphone.client.client import Client
from softphone.client.tokens import (
    MINT_METHOD,
    TokenMinter,
    TokenRefused,
    refresh_lead,
    token_expiry,
    token_lifetime,
)
from softphone.errors import ConfigError, LoginFailed, RemoteProtocolError, TransportError
from softphone.log import redact
from softphone.media.hub import AudioConfig
from softphone.protocol.states import ClientState

API = "https://api.example.test/v2"
KEY = "KEYsecret-api-key-0123456789"
CRED = "5b9e0d1c-cred"


def make_jwt(lifetime: float = 3600.0, *, now: float | None = None, **claims: Any) -> str:
    t = time.time() if now is None else now
    body = {"iat": t, "exp": t + lifetime, "telephony_credential_id": CRED, **claims}
    return jwt.encode(body, "not-checked-client-side-0123456789abcdef", algorithm="HS256")


class FakeApi:
    """POST /telephony_credentials/{id}/token: records requests, answers from ``answer``."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.requests: list[httpx.Request] = []
        self.minted: list[str] = []
        self.answer: Callable[[httpx.Request], httpx.Response] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answer is not None:
            return self.answer(request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"errors": [{"code": "10009", "title": "Authentication failed",
                                                         "detail": "The API key is invalid"}]})
        token = make_jwt(self.lifetime)
        self.minted.append(token)
        return httpx.Response(201, text=token, headers={"content-type": "text/plain"})

    def minter(self, key: str = KEY, cred: str = CRED, base: str = API) -> TokenMinter:
        return TokenMinter(base, key, cred, transport=httpx.MockTransport(self))


# --- expiry -----------------------------------------------------------------------------------


def test_expiry_and_lifetime_are_read_from_the_claims() -> None:
    token = make_jwt(300.0, now=1000.0)
    assert token_expiry(token) == 1300.0
    assert token_lifetime(token) == 300.0
    no_iat = jwt.encode({"exp": 5000}, "k" * 32, algorithm="HS256")
    assert token_lifetime(no_iat, now=4000.0) == 1000.0
    assert token_expiry("not.a.jwt") is None and token_expiry("") is None
    assert token_expiry(jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256")) is None
    assert token_expiry(jwt.encode({"exp": True}, "k" * 32, algorithm="HS256")) is None


def test_refresh_lead_is_120_s_or_half_a_short_lifetime() -> None:
    assert refresh_lead(86400.0) == 120.0
    assert refresh_lead(240.0) == 120.0
    assert refresh_lead(20.0) == 10.0
    assert refresh_lead(2.0, warning=120.0) == 1.0
    assert refresh_lead(-5.0) == 0.0


# --- minting -----------------------------------------------------------------------------------


async def test_mint_posts_with_the_bearer_key_and_returns_the_jwt() -> None:
    api = FakeApi()
    token = await api.minter().mint()
    assert token == api.minted[0]
    req = api.requests[0]
    assert req.method == "POST" and str(req.url) == f"{API}/telephony_credentials/{CRED}/token"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    # both secrets are registered: no log line, panel or JSON output shows them
    assert KEY not in redact(f"key={KEY}") and token not in redact(f"minted {token}")


async def test_the_credential_id_is_quoted_into_one_path_segment() -> None:
    api = FakeApi()
    await api.minter(cred="a/b c").mint()
    assert api.requests[0].url.raw_path == b"/v2/telephony_credentials/a%2Fb%20c/token"


@pytest.mark.parametrize(("status", "needle"), [(401, "API key was refused"), (403, "may not mint"),
                                                (404, "no telephony credential"), (422, "refused to mint")])
async def test_refusals_are_login_failures_without_the_key(status: int, needle: str) -> None:
    api = FakeApi()
    api.answer = lambda r: httpx.Response(status, json={"errors": [{"title": "Nope", "detail": f"key {KEY}"}]})
    with pytest.raises(TokenRefused) as err:
        await api.minter().mint()
    assert isinstance(err.value, LoginFailed) and err.value.code == status and err.value.method == MINT_METHOD
    assert needle in str(err.value) and "Nope" in str(err.value) and KEY not in str(err.value)


async def test_a_wrong_key_is_refused_with_the_apis_reason() -> None:
    with pytest.raises(TokenRefused, match="Authentication failed: The API key is invalid"):
        await FakeApi().minter(key="KEYwrong-key").mint()


async def test_server_errors_and_network_failures_are_transport_errors() -> None:
    api = FakeApi()
    api.answer = lambda r: httpx.Response(503, text="busy")
    with pytest.raises(TransportError, match="answered 503"):
        await api.minter().mint()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    api.answer = down
    with pytest.raises(TransportError, match="cannot reach"):
        await api.minter().mint()

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    api.answer = slow
    with pytest.raises(TransportError, match="did not answer"):
        await api.minter().mint()


async def test_a_body_that_is_not_a_jwt_is_a_protocol_error() -> None:
    api = FakeApi()
    api.answer = lambda r: httpx.Response(201, text="<html>hello</html>")
    with pytest.raises(RemoteProtocolError, match="not a JWT"):
        await api.minter().mint()


def test_the_key_never_travels_in_clear_and_never_shows_in_a_repr() -> None:
    with pytest.raises(ConfigError, match="http://"):
        TokenMinter("http://api.example.test/v2", KEY, CRED)
    TokenMinter("http://api.example.test/v2", KEY, CRED, insecure=True)
    minter = TokenMinter("http://127.0.0.1:8766/v2", KEY, CRED)
    assert KEY not in repr(minter) and minter.url == f"http://127.0.0.1:8766/v2/telephony_credentials/{CRED}/token"
    with pytest.raises(ConfigError, match="API key"):
        TokenMinter(API, "", CRED)
    with pytest.raises(ConfigError, match="credential_id"):
        TokenMinter(API, KEY, " ")
    with pytest.raises(ConfigError):
        TokenMinter("ftp://api.example.test", KEY, CRED)


# --- the client: mint before login, refresh before expiry on the same socket -----------------------


def client_for(server: FakeVertoServer, minter: TokenMinter, warning: float = 120.0) -> Client:
    return Client("ws://127.0.0.1:1", None, audio=AudioConfig(backend="null"), connect=server.connect,
                  token_minter=minter, token_warning=warning, reconnect=False)


def record(client: Client) -> list[ce.Event]:
    seen: list[ce.Event] = []
    client.subscribe(seen.append)
    return seen


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(loop(), timeout)


async def test_the_client_mints_before_login_and_refreshes_on_the_same_socket() -> None:
    api, server = FakeApi(lifetime=1.6), FakeVertoServer(sessid="S-keep")
    client = client_for(server, api.minter())
    seen = record(client)
    try:
        await client.connect()
        first = server.requests("login")[0]["params"]
        assert first["login_token"] == api.minted[0] and "sessid" not in first and "passwd" not in first
        assert client.state == ClientState.READY and client.user == CRED
        states_before = [e for e in seen if isinstance(e, ce.ClientStateChanged)]
        # lifetime 1.6 s -> warn and refresh 0.8 s before expiry
        await wait_for(lambda: any(isinstance(e, ce.TokenRefreshed) for e in seen))
        expiring = [e for e in seen if isinstance(e, ce.TokenExpiring)]
        assert len(expiring) >= 1 and expiring[0].refresh and 0.5 <= expiring[0].expires_in <= 0.9
        again = server.requests("login")[1]["params"]
        assert again["login_token"] == api.minted[1] != api.minted[0]
        assert again["sessid"] == "S-keep" and again["reconnection"] is False
        assert server.connections == 1  # the same socket
        # the client never left ready: no state change after the first login
        assert [e for e in seen if isinstance(e, ce.ClientStateChanged)] == states_before
        assert client.state == ClientState.READY and client.sessid == "S-keep"
        assert client.credentials is not None and client.credentials.token == api.minted[1]
        # and the next one follows the new token
        await wait_for(lambda: len(server.requests("login")) >= 3)
        assert server.requests("login")[2]["params"]["login_token"] == api.minted[2]
    finally:
        await client.close()


async def test_a_failed_mint_keeps_the_session_warns_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    api, server = FakeApi(lifetime=2.0), FakeVertoServer()
    client = client_for(server, api.minter())
    seen = record(client)
    try:
        await client.connect()
        api.answer = lambda r: httpx.Response(500, text="oops")
        with caplog.at_level(logging.WARNING, logger="softphone.client.client"):
            await wait_for(lambda: any(isinstance(e, ce.ClientError) for e in seen), timeout=5)
        err = next(e for e in seen if isinstance(e, ce.ClientError))
        assert err.method == "token_refresh" and "token refresh failed" in err.message
        assert "could not mint a new login token" in caplog.text and "the session goes on" in caplog.text
        assert client.state == ClientState.READY and len(server.requests("login")) == 1
        api.answer = None  # the API is back: the retry (1 s later) mints and logs in again
        await wait_for(lambda: len(server.requests("login")) == 2, timeout=5)
        await wait_for(lambda: any(isinstance(e, ce.TokenRefreshed) for e in seen))
        assert client.state == ClientState.READY
        assert KEY not in caplog.text and all(t not in caplog.text for t in api.minted)
    finally:
        await client.close()


async def test_a_refused_refresh_login_keeps_the_session() -> None:
    api, server = FakeApi(lifetime=1.2), FakeVertoServer()
    client = client_for(server, api.minter())
    seen = record(client)
    logins = 0

    def login_reply(msg: dict[str, Any]) -> dict[str, Any]:
        nonlocal logins
        logins += 1
        if logins == 1:
            return {"result": {"message": "logged in", "sessid": "S1"}}
        return {"error": {"code": -32001, "message": "Login Incorrect"}}

    server.replies["login"] = login_reply
    try:
        await client.connect()
        await wait_for(lambda: any(isinstance(e, ce.ClientError) and e.method == "login" for e in seen))
        await asyncio.sleep(0.05)
        assert client.state == ClientState.READY and server.connections == 1
        assert not any(isinstance(e, ce.LoginRefused | ce.TokenRefreshed) for e in seen)
    finally:
        await client.close()


async def test_a_refused_key_fails_connect_as_a_login_failure() -> None:
    server = FakeVertoServer()
    client = client_for(server, FakeApi().minter(key="KEYnot-the-key"))
    try:
        with pytest.raises(TokenRefused):
            await client.connect()
        assert server.connections == 0  # nothing was sent to the signalling server
    finally:
        await client.close()


async def test_a_token_without_a_minter_only_warns() -> None:
    server = FakeVertoServer()
    token = make_jwt(1.0)
    from softphone.protocol import Credentials

    client = Client("ws://127.0.0.1:1", Credentials(token=token), audio=AudioConfig(backend="null"),
                    connect=server.connect, reconnect=False)
    seen = record(client)
    try:
        await client.connect()
        await wait_for(lambda: any(isinstance(e, ce.TokenExpiring) for e in seen))
        event = next(e for e in seen if isinstance(e, ce.TokenExpiring))
        assert event.refresh is False and event.expires_in <= 0.6
        await asyncio.sleep(0.7)
        assert len(server.requests("login")) == 1 and client.state == ClientState.READY
    finally:
        await client.close()


def test_token_events_are_json_lines_of_the_schema_without_secrets() -> None:
    import jsonschema

    schema = load_schema()
    for event in (ce.TokenExpiring(expires_in=119.5, refresh=True), ce.TokenRefreshed(expires_in=86400.0)):
        line = dumps(PhoneEvent(event.name, event.ts, None, event.data()))
        obj = json.loads(line)
        jsonschema.validate(obj, schema)
        assert obj["type"] == event.name


def test_refresh_login_needs_a_ready_session() -> None:
    import itertools

    from softphone.errors import LocalProtocolError
    from softphone.protocol import Credentials
    from softphone.protocol.session import VertoSession

    ids = itertools.count(1)
    session = VertoSession(new_id=lambda: str(next(ids)), clock=lambda: 0.0)
    with pytest.raises(LocalProtocolError, match="ready session"):
        session.refresh_login(Credentials(token=make_jwt()))
    assert session.data_to_send() == []


async def test_a_reconnect_after_the_token_went_stale_logs_in_with_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, server = FakeApi(lifetime=600.0), FakeVertoServer(sessid="S9")
    client = Client("ws://127.0.0.1:1", None, audio=AudioConfig(backend="null"), connect=server.connect,
                    token_minter=api.minter(), random=lambda: 0.0)  # backoff 0.75 s
    try:
        await client.connect()
        assert server.requests("login")[0]["params"]["login_token"] == api.minted[0]
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 590.0)  # the machine slept: 10 s left (lead 120 s)
        server.drop()
        await server.wait_for("login", 2, timeout=5)
        again = server.requests("login")[1]["params"]
        assert len(api.minted) >= 2 and again["login_token"] == api.minted[1]
        assert again["sessid"] == "S9" and again["reconnection"] is True
        await client.wait_ready(5)
    finally:
        await client.close()


async def test_the_phone_shows_the_expiry_and_the_refresh_as_notices() -> None:
    from softphone.app.phone import Phone
    from softphone.config import Profile

    api, server = FakeApi(lifetime=1.0), FakeVertoServer()
    profile = Profile(server="ws://127.0.0.1:1", credential_id=CRED, api_key=KEY, auth="token",
                      api_base_url=API, audio_backend="null")

    def factory(p: Profile) -> Client:
        return Client.from_profile(p, connect=server.connect, token_minter=api.minter())

    notices: list[str] = []
    types: list[str] = []
    async with Phone(profile, client_factory=factory) as phone:
        phone.on_snapshot(lambda s: notices.append(s.notice) if s.notice and s.notice not in notices else None)
        phone.on_event(lambda e: types.append(e.type))
        await phone.login()
        await wait_for(lambda: "client.token_refreshed" in types)
    assert any(n.startswith("login token expires in") and n.endswith("minting a new one") for n in notices)
    assert "logged in again with a fresh token" in notices
    assert types.index("client.token_expiring") < types.index("client.token_refreshed")
    assert not any(KEY in n or any(t in n for t in api.minted) for n in notices)

