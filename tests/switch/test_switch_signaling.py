"""Server side of the protocol, spoken by raw websocket clients against a real Switch."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from conftest import RawClient, dummy_offer, login
from websockets.asyncio.client import connect

from softphone.switch import Switch, default_accounts, mint_token
from softphone.switch.accounts import DEFAULT_JWT_SECRET


async def _raw(sw: Switch) -> RawClient:
    return RawClient(await connect(sw.url))


async def test_login_ok_clientready_and_reged(switch: Switch) -> None:
    c = await login(switch, "demo", "demo-secret")
    assert c.sessid
    assert c.client_ready["params"] == {"reattached_sessions": []}
    assert c.client_ready["voice_sdk_id"].startswith("VSDK1")
    assert isinstance(c.client_ready["id"], int)
    assert [r.slot for r in switch.registrations()] == ["demo"]
    await c.close()


async def test_login_bad_password(switch: Switch) -> None:
    c = await _raw(switch)
    res = await c.request("login", {"login": "demo", "passwd": "nope"})
    assert res["error"] == {"code": -32001, "message": "Login Incorrect"}
    # Not logged in: call methods are refused.
    res = await c.request("telnyx_rtc.gatewayState", {})
    assert res["error"]["code"] == -32000
    await c.close()


async def test_login_jwt_good_bad_expired(switch: Switch) -> None:
    good = mint_token("gencred1", DEFAULT_JWT_SECRET, 60)
    c = await login(switch, token=good)
    assert switch.registrations()[0].slot == "gencred1"
    await c.close()
    for bad, message in (
        (mint_token("gencred1", "a-wrong-secret-that-is-long-enough-for-hs256", 60), "JWT token authentication failed"),
        (mint_token("gencred1", DEFAULT_JWT_SECRET, 60, now=time.time() - 3600), "token expired"),
        (mint_token("nosuchcred", DEFAULT_JWT_SECRET, 60), "JWT token authentication failed"),
        ("not.a.jwt", "JWT token authentication failed"),
    ):
        c = await _raw(switch)
        res = await c.request("login", {"login_token": bad})
        assert res["error"] == {"code": -32001, "message": message}, bad
        await c.close()


async def test_gateway_state_injection(switch: Switch) -> None:
    switch.set_gateway_state("alice", "UNREGED")
    c = await login(switch, "alice", "alice-secret", gateway=False)
    res = await c.request("telnyx_rtc.gatewayState", {})
    assert res["result"]["params"]["state"] == "UNREGED"
    assert res["result"]["sessid"] == c.sessid
    switch.set_gateway_state("alice", "REGED")
    pushed = await c.method("telnyx_rtc.gatewayState")
    assert pushed["params"] == {"state": "REGED"}
    await c.close()


async def test_pings_both_ways_and_silent_client_dropped() -> None:
    async with Switch(accounts=default_accounts(), port=0, ping_interval=0.2, ping_timeout=0.8) as sw:
        c = await login(sw, "demo", "demo-secret")
        ping = await c.wait_for(lambda f: f.get("method") == "telnyx_rtc.ping", 2.0)
        assert isinstance(ping["id"], int)
        # JS style answer: a fresh ping request, which the server answers.
        res = await c.request("telnyx_rtc.ping", {}, voice_sdk_id=c.client_ready["voice_sdk_id"])
        assert "result" in res
        # AND style: echo the server frame verbatim.
        await c.send(ping)
        # Now go silent: the switch drops us after ping_timeout.
        await asyncio.wait_for(c.closed.wait(), 3.0)
        assert sw.registrations() == []


async def test_debug_report_gets_empty_result(switch: Switch) -> None:
    c = await login(switch, "demo", "demo-secret")
    await c.send({"jsonrpc": "2.0", "id": "dbg-1", "type": "debug_report_start", "debug_report_id": "x"})
    res = await c.wait_for(lambda f: f.get("id") == "dbg-1")
    assert res["result"] == {}
    await c.close()


async def test_malformed_frames_survive(switch: Switch) -> None:
    c = await _raw(switch)
    await c.send("this is not json{")
    err = await c.wait_for(lambda f: "error" in f)
    assert err["error"]["code"] == -32700 and err["id"] is None
    for bad in ("[1,2,3]", '{"jsonrpc":"2.0","id":{"x":1},"method":"login"}', '"str"', "{}"):
        await c.send(bad)
        err = await c.wait_for(lambda f: "error" in f)
        assert err["error"]["code"] == -32600, bad
    await c.send(b"\xff\xfe")
    err = await c.wait_for(lambda f: "error" in f)
    assert err["error"]["code"] == -32700
    await c.close()
    c = await login(switch, "demo", "demo-secret")
    res = await c.request("telnyx_rtc.noSuchMethod", {})
    assert res["error"]["code"] == -32601
    res = await c.request("telnyx_rtc.invite", {"sdp": "x"})  # no dialogParams
    assert res["error"]["code"] == -32602
    res = await c.request("telnyx_rtc.bye", {"dialogParams": {}})
    assert res["error"]["code"] == -32602
    res = await c.request("telnyx_rtc.gatewayState", {})
    assert res["result"]["params"]["state"] == "REGED"
    await c.close()


async def test_last_registrant_rings_with_fallback(switch: Switch) -> None:
    secret = DEFAULT_JWT_SECRET
    token1_1 = mint_token("gencred1", secret, 600)
    token2_1 = mint_token("gencred2", secret, 600)
    token2_2 = mint_token("gencred2", secret, 600)
    g1 = await login(switch, "gencred1", "gencred1-secret")
    t11 = await login(switch, token=token1_1)
    g2 = await login(switch, "gencred2", "gencred2-secret")
    t21 = await login(switch, token=token2_1)
    t22 = await login(switch, token=token2_2)
    caller = await login(switch, "demo", "demo-secret")
    offer = await dummy_offer()

    async def who_rings(dest: str, candidates: list[RawClient]) -> RawClient:
        cid = await caller.invite(dest, offer)
        await caller.method("telnyx_rtc.ringing")

        async def got(c: RawClient) -> RawClient:
            await c.wait_for(lambda f: f.get("method") == "telnyx_rtc.invite", 3.0)
            return c

        done, pending = await asyncio.wait(
            [asyncio.create_task(got(c)) for c in candidates], timeout=3.0, return_when=asyncio.FIRST_COMPLETED
        )
        for p in pending:
            p.cancel()
        await caller.bye(cid, "USER_BUSY", 17)
        await asyncio.sleep(0.1)
        assert len(done) == 1
        winner = done.pop().result()
        await winner.method("telnyx_rtc.bye")
        return winner

    assert await who_rings("gencred1", [g1, t11, g2, t21, t22]) is t11
    assert await who_rings("gencred2", [g1, t11, g2, t21, t22]) is t22
    assert await who_rings("sip:gencred2@sip.telnyx.com", [g1, t11, g2, t21, t22]) is t22
    await t22.close()
    await asyncio.sleep(0.1)
    assert await who_rings("gencred2", [g1, t11, g2, t21]) is t21
    await t11.close()
    await asyncio.sleep(0.1)
    assert await who_rings("gencred1", [g1, g2, t21]) is g1
    for c in (g1, g2, t21, caller):
        await c.close()


async def _bye_cause(caller: RawClient, dest: str) -> dict[str, object]:
    await caller.invite(dest, await dummy_offer())
    bye = await caller.method("telnyx_rtc.bye")
    params: dict[str, object] = bye["params"]
    return params


async def test_number_routing_and_failure_causes(switch: Switch) -> None:
    caller = await login(switch, "demo", "demo-secret")
    alice = await login(switch, "alice", "alice-secret")
    bob = await login(switch, "bob", "bob-secret")
    # alice's number is sip_username format: rings alice.
    cid = await caller.invite("+1 (312) 555-0111", await dummy_offer())
    inv = await alice.method("telnyx_rtc.invite")
    assert inv["params"]["callee_id_number"] == "+1 (312) 555-0111"
    assert inv["params"]["sdp"].startswith("v=0")
    await caller.bye(cid, "USER_BUSY", 17)
    bye = await alice.method("telnyx_rtc.bye")
    assert bye["params"]["cause"] == "ORIGINATOR_CANCEL"
    # bob's number is e164 format: not delivered to the WebRTC client.
    p = await _bye_cause(caller, "+13125550122")
    assert (p["cause"], p["sipCode"]) == ("USER_NOT_REGISTERED", 480)
    assert bob.pending("telnyx_rtc.invite") == []
    # ...but his SIP username is.
    cid = await caller.invite("bob", await dummy_offer())
    await bob.method("telnyx_rtc.invite")
    await caller.bye(cid)
    # Unknown destination, and known-but-unregistered.
    p = await _bye_cause(caller, "nobody-here")
    assert (p["cause"], p["causeCode"], p["sipCode"]) == ("UNALLOCATED_NUMBER", 1, 404)
    p = await _bye_cause(caller, "+19995550000")
    assert p["cause"] == "UNALLOCATED_NUMBER"
    p = await _bye_cause(caller, "john1234")
    assert (p["cause"], p["sipCode"]) == ("USER_NOT_REGISTERED", 480)
    for c in (caller, alice, bob):
        await c.close()


async def test_callee_rejects(switch: Switch) -> None:
    caller = await login(switch, "demo", "demo-secret")
    alice = await login(switch, "alice", "alice-secret")
    await caller.invite("alice", await dummy_offer())
    inv = await alice.method("telnyx_rtc.invite")
    await alice.bye(inv["params"]["callID"], "USER_BUSY", 17)
    bye = await caller.method("telnyx_rtc.bye")
    assert (bye["params"]["cause"], bye["params"]["causeCode"], bye["params"]["sipCode"]) == ("USER_BUSY", 17, 486)
    await caller.close()
    await alice.close()


async def test_busy_reject_noanswer_services(switch: Switch) -> None:
    caller = await login(switch, "demo", "demo-secret")
    t0 = time.monotonic()
    await caller.invite("busy", await dummy_offer())
    await caller.method("telnyx_rtc.ringing")
    bye = await caller.method("telnyx_rtc.bye")
    assert (bye["params"]["cause"], bye["params"]["sipCode"], bye["params"]["sipReason"]) == (
        "USER_BUSY",
        486,
        "Busy Here",
    )
    assert time.monotonic() - t0 >= 0.9
    p = await _bye_cause(caller, "+15550001007")
    assert (p["cause"], p["causeCode"], p["sipCode"]) == ("CALL_REJECTED", 21, 603)
    cid = await caller.invite("noanswer", await dummy_offer())
    await caller.method("telnyx_rtc.ringing")
    await asyncio.sleep(0.5)
    assert caller.pending("telnyx_rtc.bye") == [] and caller.pending("telnyx_rtc.answer") == []
    await caller.bye(cid, "USER_BUSY", 17)
    switch.noanswer_timeout = 0.3
    p = await _bye_cause(caller, "noanswer")
    assert (p["cause"], p["sipCode"]) == ("NO_ANSWER", 480)
    await asyncio.sleep(0.1)
    assert switch.active_calls() == []
    await caller.close()


async def test_early_media_then_answer_without_sdp(switch: Switch) -> None:
    caller = await login(switch, "demo", "demo-secret")
    t0 = time.monotonic()
    cid = await caller.invite("early", await dummy_offer())
    await caller.method("telnyx_rtc.ringing")
    media = await caller.method("telnyx_rtc.media")
    assert media["params"]["callID"] == cid and media["params"]["sdp"].startswith("v=0")
    ans = await caller.method("telnyx_rtc.answer", timeout=5.0)
    assert "sdp" not in ans["params"]
    assert time.monotonic() - t0 >= 1.9
    await caller.bye(cid)
    await caller.close()


async def test_unknown_call_and_duplicate(switch: Switch) -> None:
    caller = await login(switch, "demo", "demo-secret")
    cid = str(uuid.uuid4())
    res = await caller.request("telnyx_rtc.modify", {"action": "hold", "dialogParams": {"callID": cid}})
    assert res["error"]["code"] == -32602
    res = await caller.bye(cid)  # bye for an unknown call is still acknowledged
    assert res["result"]["message"] == "CALL ENDED"
    await caller.invite("noanswer", await dummy_offer(), call_id=cid)
    res = await caller.request(
        "telnyx_rtc.invite", {"sdp": await dummy_offer(), "dialogParams": caller.dialog(cid, "echo")}
    )
    assert res["error"]["code"] == -32602
    assert json.dumps(switch.active_calls())
    await caller.close()
