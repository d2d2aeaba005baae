"""The registration rule with three official SDK clients (three Chromiums).

john1234's telephony credential gencred1 is one slot, shared by password logins and by
every JWT minted for it. Client 1 logs in as gencred1 by password, client 2 with a JWT of
gencred1 (later); alice (client 3) dials ``gencred1``: the client that registered LAST rings
(and only that one). Client 2 then logs out (``client.disconnect()``); alice dials again and
client 1 rings. Each answered call is checked by ear (each microphone has its own tone).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from harness import BrowserClient
from test_sdk_support import assert_hears, browser, login, switch, wait_until  # noqa: F401

from softphone.switch import Switch, mint_token

pytestmark = pytest.mark.conformance

CRED1_PW_HZ = 600.0
CRED1_JWT_HZ = 800.0
ALICE_HZ = 500.0


def invites(b: BrowserClient) -> list[dict[str, object]]:
    return b.frames("recv", "telnyx_rtc.invite")


async def call_and_check(alice: BrowserClient, callee: BrowserClient, callee_hz: float) -> None:
    """alice dials gencred1; ``callee`` must ring, answer, and be heard; alice hangs up."""
    out = await alice.new_call("gencred1", callerName="Alice", callerNumber="+13125550111")
    inc = await callee.wait_incoming_call(timeout=10)
    await callee.answer(inc)
    await asyncio.gather(alice.wait_call_state(out, "active"), callee.wait_call_state(inc, "active"))
    await asyncio.gather(
        assert_hears(alice, out, callee_hz, what="alice (caller)"),
        assert_hears(callee, inc, ALICE_HZ, what="the gencred1 client that rang"),
    )
    await alice.hangup(out)
    await callee.wait_call_state(inc, "destroy", timeout=5)
    info = await callee.call_state(inc)
    assert (info["cause"], info["causeCode"]) == ("NORMAL_CLEARING", 16), info


async def test_last_registered_rings_then_fallback(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with (
        browser(tmp_path, CRED1_PW_HZ, "cred1-password") as c1,
        browser(tmp_path, CRED1_JWT_HZ, "cred1-jwt") as c2,
        browser(tmp_path, ALICE_HZ, "alice") as alice,
    ):
        await login(c1, sw, login="gencred1", password="gencred1-secret")
        await login(alice, sw, login="alice", password="alice-secret")
        await login(c2, sw, login_token=mint_token("gencred1", sw.accounts.jwt_secret))  # registers last
        slots = [r for r in sw.registrations() if r.slot == "gencred1"]
        assert len(slots) == 2 and slots[-1].order > slots[0].order, sw.registrations()

        # The JWT client registered last: it rings, the password client does not.
        await call_and_check(alice, c2, CRED1_JWT_HZ)
        assert len(invites(c2)) == 1 and not invites(c1), (invites(c1), invites(c2))

        # The JWT client logs out; the earlier (password) client rings now.
        await c2.disconnect()
        await c2.wait_event("ws.close", timeout=5)
        await wait_until(
            lambda: len([r for r in sw.registrations() if r.slot == "gencred1"]) == 1,
            what=lambda: f"the switch to unregister the JWT client: {sw.registrations()}",
        )
        await call_and_check(alice, c1, CRED1_PW_HZ)
        assert len(invites(c1)) == 1 and len(invites(c2)) == 1, (invites(c1), invites(c2))
    assert not sw.active_calls(), sw.active_calls()
