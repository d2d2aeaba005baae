# ruff: noqa: F811  (fixtures are imported from texmlfixtures)
"""TeXML bad input: not XML, unknown verb/attribute, unreachable voice_url (fallback, then hang up)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from phones import Phone
from test_texml_calls import pstn_hears
from test_texml_patterns import outside
from texmlfixtures import AGENTS, IVR_NUMBER, TexmlServer, tcc, texml_server, texml_switch  # noqa: F401

from softphone.switch.callcontrol.engine import CallControl

DEAD = "http://127.0.0.1:9/voice"  # the discard port: nothing listens on loopback


def texml_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.endswith(".texml") and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("doc", "line", "words"),
    [
        ("<Response>\n  <Say>Hello</Say>\n  <Speak>typo</Speak>\n</Response>", 3, "unknown verb <Speak>"),
        ("<Response>\n  <Say lang='en'>Hello</Say>\n</Response>", 2, "unknown attribute 'lang' on <Say>"),
        ("Hello, I am not XML <", 1, "not XML"),
        ("<Response>\n<Say>unclosed</Response>", 2, "not XML"),
    ],
)
async def test_a_bad_document_ends_the_call_with_one_log_line_and_a_status_callback(
    tcc: CallControl, texml_server: TexmlServer, caplog: pytest.LogCaptureFixture, doc: str, line: int, words: str
) -> None:
    caplog.set_level(logging.WARNING)
    texml_server.docs["/voice"] = doc
    ccid, _ = await outside(tcc)
    leg = tcc.legs[ccid]
    await asyncio.wait_for(leg.ended.wait(), 10)
    assert leg.hangup_cause == "NORMAL_TEMPORARY_FAILURE" and leg.sip_code == 503
    status = await texml_server.wait("/status")
    url = texml_server.url + "/voice"
    assert status.params["CallStatus"] == "failed" and status.params["ErrorCode"] == "12100"  # never answered
    assert status.params["ErrorMessage"] == f"{url} line {line}: " + status.params["ErrorMessage"].split(": ", 1)[1]
    assert words in status.params["ErrorMessage"]
    logged = texml_warnings(caplog)
    assert len(logged) == 1, logged
    assert url in logged[0] and f"line {line}" in logged[0] and words in logged[0]


async def test_a_client_calling_a_bad_document_gets_a_bye_with_the_cause(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = "<Response><Sayy/></Response>"
    async with Phone(tcc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call = await phone.dial(IVR_NUMBER)
        await phone.wait_state(call, "hangup", 10)
    assert call.bye["cause"] == "NORMAL_TEMPORARY_FAILURE" and call.bye["sipCode"] == 503


async def test_unreachable_voice_url_falls_back(tmp_path: Path, texml_server: TexmlServer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    texml_server.docs["/fallback"] = "<Response><Play>tone:600:3000</Play><Hangup/></Response>"
    async with await texml_switch(tmp_path, texml_server, voice=DEAD, fallback="/fallback") as sw:
        assert sw.call_control is not None
        ccid, ep = await outside(sw.call_control)
        hit = await texml_server.wait("/fallback")
        assert hit.params["ErrorCode"] == "11200" and hit.params["ErrorUrl"] == DEAD
        await pstn_hears(ep, 600)
        leg = sw.call_control.legs[ccid]
        await asyncio.wait_for(leg.ended.wait(), 10)
        assert leg.hangup_cause == "NORMAL_CLEARING"
        status = await texml_server.wait("/status")
        assert "ErrorCode" not in status.params
    assert any(DEAD in m and "fallback" in m for m in texml_warnings(caplog))


async def test_unreachable_voice_url_and_fallback_hang_up(tmp_path: Path, texml_server: TexmlServer,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with await texml_switch(tmp_path, texml_server, voice=DEAD, fallback="/missing") as sw:
        assert sw.call_control is not None
        ccid, _ = await outside(sw.call_control)
        leg = sw.call_control.legs[ccid]
        await asyncio.wait_for(leg.ended.wait(), 10)
        assert leg.hangup_cause == "NORMAL_TEMPORARY_FAILURE" and leg.answered_at is None
        status = await texml_server.wait("/status")
        assert status.params["ErrorCode"] == "11200" and status.params["CallStatus"] == "failed"
        assert "HTTP 404" in status.params["ErrorMessage"]
    logged = texml_warnings(caplog)
    assert len(logged) == 2 and "fallback" in logged[0] and "/missing" in logged[1], logged


async def test_an_action_document_with_an_error_names_its_own_url(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = "<Response><Redirect>/second</Redirect></Response>"
    texml_server.docs["/second"] = "<Response>\n<Gather numDigits='x'/></Response>"
    ccid, _ = await outside(tcc)
    status = await texml_server.wait("/status")
    assert status.params["ErrorMessage"].startswith(texml_server.url + "/second line 2: ")
    assert tcc.legs[ccid].hangup_cause == "NORMAL_TEMPORARY_FAILURE"


async def test_a_document_fetched_over_http_cannot_make_the_switch_read_files(
    tcc: CallControl, texml_server: TexmlServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_text("<Response><Play>tone:900:3000</Play></Response>")
    texml_server.docs["/voice"] = f"<Response><Redirect>file://{secret}</Redirect></Response>"
    ccid, _ = await outside(tcc)
    status = await texml_server.wait("/status")
    assert status.params["ErrorCode"] == "11200" and "only a TeXML Bin file may name another file" in (
        status.params["ErrorMessage"])
    assert tcc.legs[ccid].hangup_cause == "NORMAL_TEMPORARY_FAILURE"


async def test_a_bin_may_redirect_to_a_bin_beside_it(tmp_path: Path, texml_server: TexmlServer) -> None:
    (tmp_path / "first.xml").write_text("<Response><Redirect>second.xml</Redirect></Response>")
    (tmp_path / "second.xml").write_text("<Response><Play>tone:650:3000</Play><Hangup/></Response>")
    async with await texml_switch(tmp_path, texml_server, voice=str(tmp_path / "first.xml")) as sw:
        assert sw.call_control is not None
        _, ep = await outside(sw.call_control)
        await pstn_hears(ep, 650)
