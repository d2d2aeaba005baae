# ruff: noqa: F811  (fixtures are imported from texmlfixtures)
"""The TeXML Calls API under random bad input: always Telnyx's error shape with a 4xx (or a 2xx), never 5xx.

A seeded generator (so a failure reproduces) mixes the API's keys, in CamelCase and snake_case,
with values of every JSON type, loopback and remote URLs, good and broken documents.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest
from phones import api
from texmlfixtures import IVR_KEY, TexmlServer, tcc, texml_server  # noqa: F401

from softphone.switch.callcontrol.engine import CallControl

KEYS = ["From", "To", "Url", "Method", "Texml", "StatusCallback", "StatusCallbackMethod", "StatusCallbackEvent",
        "FallbackUrl", "Timeout", "ApplicationSid", "Status", "UrlMethod", "from_", "to", "url", "texml",
        "application_sid", "status_callback_event", "timeout", "status"]
VALUES: list[Any] = [
    None, "", " ", 0, -1, 3.5, 1e308, True, False, [], {}, ["initiated", 3], {"a": 1}, "x" * 5000,
    "GET", "POST", "PUT", "completed", "canceled", "busy", "initiated ringing", "answered, completed", "bogus",
    "agent1", "+15550009999", "sip:agent2@x", "ivr", "nosuch", "\u00e9\u4e2d\U0001f600", "\x00",
    "http://127.0.0.1:9/voice", "http://8.8.8.8/voice", "https://127.0.0.1/x", "ftp://127.0.0.1/x", "file:///etc/passwd",
    "<Response><Hangup/></Response>", "<Response><Sayy/></Response>", "<!DOCTYPE x [<!ENTITY a 'b'>]><Response/>",
    "<Response>" + "<Pause length='0'/>" * 2000 + "</Response>", "not xml <",
]


def bodies(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        body = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 6))}
        if rng.random() < 0.5:  # often a plausible call, so deeper checks run
            body.setdefault("From", "+15550001111")
            body.setdefault("To", rng.choice(["+15550009999", "agent1", ""]))
        out.append(body)
    return out


async def test_random_bodies_never_5xx(
    tcc: CallControl, texml_server: TexmlServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    texml_server.docs["/voice"] = "<Response><Hangup/></Response>"
    rng = random.Random(12)
    seen: dict[int, int] = {}
    sids: list[str] = ["v3:nosuch", "%00", ".."]
    for i, body in enumerate(bodies(rng, 240)):
        route = i % 6
        if route == 0:
            path = f"/v2/texml/calls/{rng.choice(['ivr', 'nosuch', 'demo', '%2e%2e'])}"
        elif route == 1:
            path = "/v2/texml/Accounts/AC-fuzz/Calls"
        elif route == 2:
            path = f"/v2/texml/Accounts/AC-fuzz/Calls/{rng.choice(sids)}"
        elif route == 3:
            st, res = await api(tcc.api_url, "GET", f"/v2/texml/Accounts/AC/Calls/{rng.choice(sids)}", None, IVR_KEY)
            assert st in (200, 404), res
            continue
        elif route == 4:
            name = rng.choice(["RE" + "0" * 32 + ".wav", "../x.wav", "%2e%2e%2fx", "RE.wav"])
            st, _ = await api(tcc.api_url, "GET", f"/v2/texml/recordings/{name}", None, IVR_KEY)
            assert st == 404
            continue
        else:
            path = "/v2/texml/calls/ivr"
        key = rng.choice([IVR_KEY, IVR_KEY, "", "KEYwrong"])
        st, res = await api(tcc.api_url, "POST", path, body, key)
        seen[st] = seen.get(st, 0) + 1
        assert st < 500, (path, body, res)
        if st >= 400:
            err = res["errors"][0]
            assert set(err) == {"code", "title", "detail"} and err["code"], res
        else:
            sid = res.get("call_sid") or res.get("sid")
            if isinstance(sid, str):
                sids.append(sid)
    assert seen.get(200, 0) >= 1 and seen.get(422, 0) >= 20 and seen.get(401, 0) >= 5, seen
    for leg in list(tcc.legs.values()):
        if leg.alive:
            await tcc.hangup_leg(leg, "NORMAL_CLEARING")
    await asyncio.sleep(0.3)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
