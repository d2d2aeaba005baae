"""Login conformance: the official SDK logs in to the switch by password (a SIP user and a
telephony credential) and by JWT (``login_token`` minted by the switch), fires ``telnyx.ready``;
a wrong password or a forged token gets the SDK's login error (``telnyx.error`` LOGIN_FAILED)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import BrowserClient
from test_sdk_support import browser, login, switch  # noqa: F401  (switch is a fixture)

from softphone.switch import Switch, mint_token

pytestmark = pytest.mark.conformance


def registered(sw: Switch, sessid: str) -> list[tuple[str, str]]:
    return [(r.slot, r.login) for r in sw.registrations() if r.sessid == sessid]


async def logged_in(b: BrowserClient, sw: Switch, **creds: str) -> str:
    """Log in, wait for telnyx.ready, return the sessid the switch gave (checked on the wire)."""
    since = len(b.events)
    await login(b, sw, **creds)
    res = [
        e.data
        for e in b.events[since:]
        if e.name == "ws.recv"
        and isinstance(e.data.get("result"), dict)
        and "sessid" in e.data["result"]
        and e.data["result"].get("message") == "logged in"
    ]
    assert res, f"no 'logged in' result seen\n{b.log_text(tail=20)}"
    assert b.frames("recv", "telnyx_rtc.clientReady"), "the SDK got ready without clientReady?"
    return str(res[-1]["result"]["sessid"])


async def expect_login_error(b: BrowserClient, sw: Switch, **creds: str) -> None:
    since = len(b.events)
    await b.connect(sw.url, **creds)
    err = await b.wait_event("telnyx.error", timeout=10)
    assert err.data["error"]["code"] == 46001 and err.data["error"]["name"] == "LOGIN_FAILED", err
    wire = [e.data for e in b.events[since:] if e.name == "ws.recv" and "error" in e.data]
    assert wire and wire[0]["error"]["code"] == -32001, wire
    assert not [e for e in b.events[since:] if e.name == "telnyx.ready"]
    await b.disconnect()


async def test_login_password_jwt_and_errors(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with browser(tmp_path, None) as b:
        # A SIP user by password.
        sessid = await logged_in(b, sw, login="demo", password="demo-secret")
        frame = b.frames("send", "login")[-1]["params"]
        assert (frame["login"], frame["passwd"]) == ("demo", "demo-secret")
        assert registered(sw, sessid) == [("demo", "demo")], sw.registrations()
        await b.disconnect()

        # A telephony credential by password.
        sessid = await logged_in(b, sw, login="gencred1", password="gencred1-secret")
        assert [login for _, login in registered(sw, sessid)] == ["gencred1"], sw.registrations()
        await b.disconnect()

        # A JWT minted by the switch for a telephony credential: login_token, no password.
        token = mint_token("gencred2", sw.accounts.jwt_secret)
        sessid = await logged_in(b, sw, login_token=token)
        frame = b.frames("send", "login")[-1]["params"]
        assert frame["login_token"] == token and "passwd" not in frame
        assert any("gencred2" in slot + login for slot, login in registered(sw, sessid)), sw.registrations()
        await b.disconnect()

        # Wrong password, then a token signed with the wrong secret: LOGIN_FAILED, never ready.
        await expect_login_error(b, sw, login="alice", password="wrong")
        await expect_login_error(b, sw, login_token=mint_token("gencred1", "not-the-switch-secret-but-32-bytes-long"))
        assert not [r for r in sw.registrations() if r.login == "alice"]
