"""Bad SDP in an invite is refused with a clear -32002 codec error; the switch keeps serving."""

from __future__ import annotations

import uuid

from conftest import RawClient, dummy_offer, login

from softphone.media.sdp import sdp_problem
from softphone.switch import Switch


def test_sdp_problem_names_what_is_missing() -> None:
    assert sdp_problem("garbage") == "SDP does not start with v=0"
    assert sdp_problem("v=0\r\nm=video 9 RTP/AVP 96\r\n") == "SDP has no audio section (m=audio)"
    assert "ICE credentials" in (sdp_problem("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n") or "")
    no_fp = "v=0\r\nm=audio 9 RTP/SAVPF 0\r\na=ice-ufrag:x\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n"
    assert "fingerprint" in (sdp_problem(no_fp) or "")


async def test_invite_with_bad_sdp_gets_codec_error(switch: Switch) -> None:
    c: RawClient = await login(switch, "demo", "demo-secret")
    try:
        for sdp in ("garbage", "v=0\r\nm=video 9 RTP/AVP 96\r\n"):
            res = await c.request(
                "telnyx_rtc.invite",
                {"sessid": c.sessid, "sdp": sdp, "dialogParams": c.dialog(str(uuid.uuid4()), "echo")},
            )
            assert res["error"]["code"] == -32002, res
            assert res["error"]["message"].startswith("Codec error: SDP"), res
        assert not switch.active_calls()
        assert sdp_problem(await dummy_offer()) is None  # a real aiortc offer passes the check
        cid = await c.invite("echo", await dummy_offer())  # and the switch still takes calls
        assert any(call["call_id"] == cid for call in switch.active_calls()), switch.active_calls()
        await c.bye(cid)
    finally:
        await c.close()
