# ruff: noqa: F811  (fixtures are imported from texmlfixtures)
"""TeXML verbs not covered elsewhere: Reject, Dial Number / an unregistered client, Leave, Redirect GET, Pause."""

from __future__ import annotations

import asyncio
import time

from test_texml_calls import pstn_hears
from test_texml_patterns import outside
from texmlfixtures import TexmlServer, tcc, texml_server  # noqa: F401

from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.pstn import PstnEndpoint


async def test_reject_busy_never_answers(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = "<Response><Reject reason='busy'/><Say>never said</Say></Response>"
    ccid, _ = await outside(tcc)
    leg = tcc.legs[ccid]
    await asyncio.wait_for(leg.ended.wait(), 10)
    assert leg.hangup_cause == "USER_BUSY" and leg.answered_at is None
    status = await texml_server.wait("/status")
    assert status.params["CallStatus"] == "busy"


async def test_dial_number_bridges_an_outside_number_then_the_action_runs(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = "<Response><Dial action='/dialed'><Number>+15559990000</Number></Dial></Response>"
    texml_server.docs["/dialed"] = "<Response><Play>tone:1200:3000</Play><Hangup/></Response>"
    _, ep = await outside(tcc, "tone:700")
    while not any(x.to == "+15559990000" for x in tcc.legs.values()):
        await asyncio.sleep(0.05)
    far = next(x for x in tcc.legs.values() if x.to == "+15559990000")
    assert isinstance(far.endpoint, PstnEndpoint)
    await pstn_hears(far.endpoint, 700)  # the dialled number hears the caller
    await tcc.hangup_leg(far, "NORMAL_CLEARING")
    hit = await texml_server.wait("/dialed")
    assert hit.params["DialCallStatus"] == "completed" and hit.params["DialCallSid"] == far.call_control_id
    await pstn_hears(ep, 1200)  # the caller stayed for the action's document


async def test_dial_an_unregistered_client_reports_failed(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = "<Response><Dial action='/dialed' timeout='5'>agent2</Dial></Response>"
    texml_server.docs["/dialed"] = "<Response><Hangup/></Response>"
    await outside(tcc)
    hit = await texml_server.wait("/dialed")
    assert hit.params["DialCallStatus"] == "failed"


async def test_leave_in_the_wait_document_continues_after_enqueue(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = (
        "<Response><Enqueue waitUrl='/wait' action='/left'>sales</Enqueue></Response>"
    )
    texml_server.docs["/wait"] = "<Response><Pause length='1'/><Leave/></Response>"
    texml_server.docs["/left"] = "<Response><Redirect method='GET'>/again</Redirect></Response>"
    texml_server.docs["/again"] = "<Response><Hangup/></Response>"
    t0 = time.monotonic()
    ccid, _ = await outside(tcc)
    hit = await texml_server.wait("/left")
    assert hit.params["QueueResult"] == "leave" and hit.params["QueueSid"] == "sales"
    assert time.monotonic() - t0 >= 1.0  # the Pause ran first
    again = await texml_server.wait("/again")
    assert again.method == "GET" and again.params["CallSid"] == ccid
    assert not tcc.queues["sales"].legs
    await asyncio.wait_for(tcc.legs[ccid].ended.wait(), 10)


async def test_dial_record_dual_send_digits_and_hangup_on_star(tcc: CallControl, texml_server: TexmlServer) -> None:
    import io
    import wave

    import numpy as np

    from softphone.media.dsp import detect_dtmf, dominant_frequency
    from softphone.switch.callcontrol.texml.fetch import request

    texml_server.docs["/voice"] = (
        "<Response><Dial action='/dialed' record='record-from-answer-dual' hangupOnStar='true' "
        "recordingStatusCallback='/dialrec'><Number sendDigits='5'>+15559990001</Number></Dial>"
        "<Hangup/></Response>"
    )
    texml_server.docs["/dialed"] = "<Response><Hangup/></Response>"
    from softphone.media.sources import ToneSource

    ccid, ep = await outside(tcc)  # silent at first, so the digits sent to the far side stand alone
    while not any(x.to == "+15559990001" and x.answered_at for x in tcc.legs.values()):
        await asyncio.sleep(0.05)
    far = next(x for x in tcc.legs.values() if x.to == "+15559990001")
    assert isinstance(far.endpoint, PstnEndpoint)
    for _ in range(50):
        if "5" in detect_dtmf(far.endpoint.heard()):
            break  # sendDigits reached the dialled party
        await asyncio.sleep(0.1)
    assert "5" in detect_dtmf(far.endpoint.heard())
    ep.set_source(ToneSource(400.0))
    await pstn_hears(far.endpoint, 400)
    await ep.send_dtmf("*")
    hit = await texml_server.wait("/dialed")
    assert not far.alive and far.hangup_cause == "NORMAL_CLEARING"  # the * ended the far side only
    assert hit.params["DialCallStatus"] == "completed" and hit.params["RecordingUrl"]
    assert hit.params["CallSid"] == ccid and hit.params["CallStatus"] == "in-progress"  # the caller stayed
    rec = await texml_server.wait("/dialrec")
    assert rec.params["RecordingChannels"] == "2" and rec.params["RecordingUrl"] == hit.params["RecordingUrl"]
    status, data = await request(hit.params["RecordingUrl"], "GET", {}, limit=20 << 20)
    assert status == 200
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 2
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
    assert abs(dominant_frequency(stereo[-24000:, 0]) - 400) < 15  # left: the caller
    assert int(np.abs(stereo[:, 1]).max()) < 500  # right: the silent dialled number


async def test_calls_api_update_redirects_a_running_call_then_hangs_it_up(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    import telnyx
    from texmlfixtures import IVR_KEY

    texml_server.docs["/voice"] = "<Response><Play loop='0'>tone:500:1000</Play></Response>"
    texml_server.docs["/next"] = "<Response><Enqueue>later</Enqueue></Response>"
    client = telnyx.AsyncTelnyx(api_key=IVR_KEY, base_url=f"{tcc.api_url}/v2")
    ccid, ep = await outside(tcc)
    await pstn_hears(ep, 500)
    call = await client.texml.accounts.calls.update(
        ccid, account_sid="AC-local", texml="<Response><Play loop='0'>tone:900:1000</Play></Response>"
    )
    assert call.status == "in-progress" and call.sid == ccid
    await pstn_hears(ep, 900)  # the inline document replaced the looping Play
    await client.texml.accounts.calls.update(ccid, account_sid="AC-local", url=texml_server.url + "/next",
                                             method="GET")
    hit = await texml_server.wait("/next")
    assert hit.method == "GET" and hit.params["CallSid"] == ccid
    while not tcc.queues.get("later") or not tcc.queues["later"].legs:
        await asyncio.sleep(0.05)
    done = await client.texml.accounts.calls.update(ccid, account_sid="AC-local", status="completed")
    assert done.status == "completed"
    assert not tcc.legs[ccid].alive and not tcc.queues["later"].legs
    await client.close()
