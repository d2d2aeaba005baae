# ruff: noqa: F811  (fixtures are imported from texmlfixtures)
"""TeXML: both usage patterns, the TeXML Calls API through the official SDK, Record, Conference, Bins, speech."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import telnyx
from phones import Phone, api, wait_hz
from test_texml_calls import pstn_hears
from texmlfixtures import (  # noqa: F401
    AGENTS,
    IVR_KEY,
    IVR_NUMBER,
    TexmlServer,
    tcc,
    texml_server,
    texml_switch,
)

from softphone.media import tts
from softphone.media.dsp import dominant_frequency
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.pstn import PstnEndpoint
from softphone.switch.callcontrol.texml.fetch import request


async def outside(cc: CallControl, audio: str = "", from_: str = "+15557654321") -> tuple[str, PstnEndpoint]:
    body = {"from": from_, "to": IVR_NUMBER}
    if audio:
        body["audio_url"] = audio
    st, res = await api(cc.api_url, "POST", "/switch/pstn_calls", body)
    assert st == 200, res
    ccid = res["data"]["call_control_id"]
    ep = cc.legs[ccid].endpoint
    assert isinstance(ep, PstnEndpoint)
    return ccid, ep


async def test_pattern2_outside_call_enqueued_backend_dials_the_client_with_the_sdk(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = (
        "<Response><Say>Please hold</Say><Enqueue waitUrl='/wait' action='/left'>support</Enqueue></Response>"
    )
    texml_server.docs["/wait"] = "<Response><Play>tone:440:800</Play><Pause length='1'/></Response>"
    texml_server.docs["/left"] = "<Response><Hangup/></Response>"
    client = telnyx.AsyncTelnyx(api_key=IVR_KEY, base_url=f"{tcc.api_url}/v2")
    async with Phone(tcc.switch.url, "agent1", AGENTS["agent1"], 900) as agent:
        ccid, ep = await outside(tcc, "tone:700")
        wait = await texml_server.wait("/wait")
        assert wait.params["QueueSid"] == "support" and wait.params["QueuePosition"] == "1"
        await pstn_hears(ep, 440)  # the wait document plays while the caller waits
        created = await client.texml.calls.create(
            "ivr", from_="+15557654321", to="agent1",
            texml="<Response><Dial timeout='10'><Queue>support</Queue></Dial></Response>",
        )
        assert created.status == "queued" and created.to == "agent1" and created.call_sid.startswith("v3:")
        inc = await agent.next_incoming(15)
        await agent.answer(inc)
        await wait_hz(inc, 700)
        await pstn_hears(ep, 900)
        assert tcc.legs[ccid].bridged_to is tcc.legs[created.call_sid]
        await agent.hangup(inc)
        await asyncio.wait_for(tcc.legs[ccid].ended.wait(), 10)
    await client.close()


async def test_accounts_calls_api_with_the_sync_sdk_url_status_callback_and_retrieve(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/out"] = "<Response><Play>tone:800:1500</Play><Hangup/></Response>"
    client = telnyx.Telnyx(api_key=IVR_KEY, base_url=f"{tcc.api_url}/v2")
    async with Phone(tcc.switch.url, "agent2", AGENTS["agent2"]) as agent:
        resp = await asyncio.to_thread(
            client.texml.accounts.calls.calls,
            "AC-local",
            body={"application_sid": "ivr", "to": "agent2", "from_": "+15550002222",
                  "url": texml_server.url + "/out", "status_callback": texml_server.url + "/outstatus",
                  "status_callback_event": "initiated ringing answered completed"},
        )
        assert resp.status == "queued" and resp.to == "agent2" and resp.from_ == "+15550002222"
        sid = str((resp.model_extra or {})["sid"])  # beyond the SDK model: the call to follow
        inc = await agent.next_incoming(15)
        await agent.answer(inc)
        hit = await texml_server.wait("/out")
        assert hit.params["Direction"] == "outbound-api" and hit.params["CallStatus"] == "in-progress"
        assert hit.params["AccountSid"] == "AC-local" and hit.params["CallSid"] == sid
        await wait_hz(inc, 800)
        status = await texml_server.wait("/outstatus", count=4)
        assert status.params["CallStatus"] == "completed" and status.params["CallSid"] == sid
        assert status.params["HangupCause"] == "normal_clearing" and status.params["AnsweredTime"]
        progress = [(h.params["SequenceNumber"], h.params["CallStatus"]) for h in texml_server.requests("/outstatus")]
        assert progress == [("0", "initiated"), ("1", "ringing"), ("2", "in-progress"), ("3", "completed")]
        call = await asyncio.to_thread(client.texml.accounts.calls.retrieve, sid, account_sid="AC-local")
        assert call.status == "completed" and call.sid == sid and call.direction == "outbound"
        listed = await asyncio.to_thread(client.texml.accounts.calls.retrieve_calls, "AC-local", to="agent2",
                                         status="completed", page_size=10)
        assert [c.sid for c in listed.calls or []] == [sid] and listed.page == 0 and listed.next_page_uri is None
        none = await asyncio.to_thread(client.texml.accounts.calls.retrieve_calls, "AC-local", status="busy")
        assert none.calls == []
        with_key = telnyx.Telnyx(api_key="KEYwrong", base_url=f"{tcc.api_url}/v2", max_retries=0)
        try:
            await asyncio.to_thread(with_key.texml.calls.create, "ivr", from_="+1555", to="agent2",
                                    texml="<Response/>")
            raise AssertionError("a wrong API key was accepted")
        except telnyx.AuthenticationError as exc:
            assert exc.status_code == 401
    client.close()


async def test_calls_api_refuses_a_bad_document_with_telnyx_error_shape(tcc: CallControl) -> None:
    client = telnyx.AsyncTelnyx(api_key=IVR_KEY, base_url=f"{tcc.api_url}/v2", max_retries=0)
    try:
        await client.texml.calls.create("ivr", from_="+1555", to="agent1", texml="<Response><Sayy/></Response>")
        raise AssertionError("a bad Texml was accepted")
    except telnyx.UnprocessableEntityError as exc:
        err = exc.body["errors"][0] if isinstance(exc.body, dict) else exc.body[0]  # type: ignore[index]
        assert err["code"] == "10015" and "unknown verb <Sayy>" in err["detail"]
    st, body = await api(tcc.api_url, "POST", "/v2/texml/calls/nosuch", {"From": "+1", "To": "agent1"}, IVR_KEY)
    assert st == 404 and body["errors"][0]["code"] == "10005"
    st, body = await api(tcc.api_url, "POST", "/v2/texml/calls/ivr", {"To": "agent1"}, IVR_KEY)
    assert st == 422 and "From" in body["errors"][0]["title"]
    await client.close()


async def test_record_saves_what_the_caller_says_and_calls_back(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = (
        "<Response><Record maxLength='2' playBeep='false' action='/recorded' "
        "recordingStatusCallback='/recstatus'/></Response>"
    )
    texml_server.docs["/recorded"] = "<Response><Hangup/></Response>"
    ccid, _ = await outside(tcc, "tone:700")
    done = await texml_server.wait("/recstatus")
    action = await texml_server.wait("/recorded")
    url = done.params["RecordingUrl"]
    assert done.params["RecordingStatus"] == "completed" and done.params["CallSid"] == ccid
    assert action.params["RecordingUrl"] == url and action.params["RecordingDuration"] == "2"
    status, data = await request(url, "GET", {}, limit=10 << 20)
    assert status == 200
    with wave.open(io.BytesIO(data)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        assert w.getframerate() == 48000
    assert abs(dominant_frequency(samples[-48000:]) - 700) < 15


async def test_conference_noun_joins_two_outside_callers(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = "<Response><Dial><Conference>room</Conference></Dial></Response>"
    _, a = await outside(tcc, "tone:500", "+15550000001")
    _, b = await outside(tcc, "tone:800", "+15550000002")
    await pstn_hears(a, 800)
    await pstn_hears(b, 500)
    rooms = [c for c in tcc.conferences.values() if c.name == "room"]
    assert len(rooms) == 1 and len(rooms[0].participants) == 2


async def test_a_texml_bin_file_gets_request_parameters(tmp_path: Path, texml_server: TexmlServer) -> None:
    bin_file = tmp_path / "bin.xml"
    bin_file.write_text(
        f"<Response><Redirect method='GET'>{texml_server.url}/seen?sid={{{{CallSid}}}}&amp;d={{{{ Direction }}}}"
        "</Redirect></Response>"
    )
    texml_server.docs["/seen"] = "<Response><Hangup/></Response>"
    async with await texml_switch(tmp_path, texml_server, voice=str(bin_file)) as sw:
        assert sw.call_control is not None
        ccid, _ = await outside(sw.call_control, from_="+15551230000")
        hit = await texml_server.wait("/seen")
        assert hit.method == "GET" and hit.params["sid"] == ccid and hit.params["d"] == "inbound"
        assert hit.params["From"] == "+15551230000"  # GET: the request parameters ride in the query too


async def test_gather_speech_result_reaches_the_action(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = (
        "<Response><Gather input='speech' action='/spoken' timeout='6'><Say>Say something</Say></Gather></Response>"
    )
    texml_server.docs["/spoken"] = "<Response><Hangup/></Response>"
    ccid, ep = await outside(tcc)
    await texml_server.wait("/voice")
    while "Gather" not in tcc.legs[ccid].extras["texml"].verbs_run:
        await asyncio.sleep(0.05)
    ep.set_source(await asyncio.to_thread(tts.speech_source, "press one for sales"))
    hit = await texml_server.wait("/spoken", timeout=25)
    print(f"\nTeXML Gather speech: {hit.params.get('SpeechResult')!r}")
    assert "sales" in hit.params["SpeechResult"].split()
    assert float(hit.params["Confidence"]) >= 0.0


async def test_a_number_with_its_own_application(tmp_path: Path, texml_server: TexmlServer) -> None:
    from dataclasses import replace

    from texmlfixtures import texml_accounts

    from softphone.switch import Switch
    from softphone.switch.callcontrol.apps import CallControlOptions, TexmlApp

    accts = texml_accounts()
    ivr = next(c for c in accts.connections if c.id == "ivr")
    accts.connections[accts.connections.index(ivr)] = replace(ivr, numbers=(IVR_NUMBER, "+13125550161"))
    texml_server.docs["/voice"] = "<Response><Play>tone:500:3000</Play><Hangup/></Response>"
    texml_server.docs["/sales"] = "<Response><Play>tone:1100:3000</Play><Hangup/></Response>"
    options = CallControlOptions(
        api_port=0, outside_ring_s=0.3, data_dir=tmp_path / "data",
        texml_apps={"ivr": TexmlApp("ivr", texml_server.url + "/voice")},
        texml_number_apps={"+13125550161": TexmlApp("ivr", texml_server.url + "/sales", app_id="sales-app",
                                                    number="+13125550161")},
    )
    async with Switch(accounts=accts, port=0, call_control=options) as sw:
        cc = sw.call_control
        assert cc is not None
        st, res = await api(cc.api_url, "POST", "/switch/pstn_calls", {"from": "+15550000007", "to": "+13125550161"})
        assert st == 200, res
        ep = cc.legs[res["data"]["call_control_id"]].endpoint
        assert isinstance(ep, PstnEndpoint)
        await pstn_hears(ep, 1100)
        hit = await texml_server.wait("/sales")
        assert hit.params["ApplicationSid"] == "sales-app" and hit.params["To"] == "+13125550161"
        _, other = await outside(cc)  # the connection's other number keeps the connection's application
        await pstn_hears(other, 500)
        assert (await texml_server.wait("/voice")).params["ApplicationSid"] == "ivr"
        client = telnyx.AsyncTelnyx(api_key=IVR_KEY, base_url=f"{cc.api_url}/v2")
        async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as agent:
            # CamelCase keys as Telnyx documents them (the SDK sends the body as given)
            camel: Any = {"ApplicationSid": "sales-app", "To": "agent1", "From": "+13125550161"}
            await client.texml.accounts.calls.calls("AC", body=camel)
            inc = await agent.next_incoming(15)
            await agent.answer(inc)
            await wait_hz(inc, 1100)  # the Calls API ran the number's application
        await client.close()


async def test_record_transcribe_posts_what_the_caller_said(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = (
        "<Response><Say>After <break time='200ms'/> the tone, say your department</Say>"
        "<Record maxLength='6' timeout='2' transcribeCallback='/transcribed'/><Hangup/></Response>"
    )
    ccid, ep = await outside(tcc)
    while "Record" not in tcc.legs[ccid].extras["texml"].verbs_run:
        await asyncio.sleep(0.05)
    ep.set_source(await asyncio.to_thread(tts.speech_source, "press one for sales"))
    hit = await texml_server.wait("/transcribed", timeout=30)
    print(f"\nTeXML Record transcription: {hit.params['TranscriptionText']!r}")
    assert hit.params["TranscriptionStatus"] == "completed" and "sales" in hit.params["TranscriptionText"].split()
    assert hit.params["RecordingUrl"].endswith(hit.params["RecordingSid"] + ".wav")
