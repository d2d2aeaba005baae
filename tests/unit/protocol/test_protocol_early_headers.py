"""Custom headers on ringing/media: an outbound call's replace the ones known (as an answer's do)."""

from __future__ import annotations

import json
from typing import Any

from trace_replay import Replay, load_trace


def _server(name: str, method: str) -> dict[str, Any]:
    return next(r["msg"] for r in load_trace(name) if r["dir"] == "server->sdk" and r["msg"].get("method") == method)


def test_ringing_and_media_headers_of_an_outbound_call_are_taken() -> None:
    # replay up to the invite result, then feed ringing and media with headers
    replay = Replay("early_media")
    records = replay.records
    cut = next(i for i, r in enumerate(records) if r["msg"].get("method") == "telnyx_rtc.ringing")
    replay.run(until=cut)
    sess, cid = replay.sess, replay.call_id
    assert cid is not None
    ringing = _server("early_media", "telnyx_rtc.ringing")
    ringing["params"]["dialogParams"] = {"custom_headers": [{"name": "X-Ring", "value": "1"}]}
    sess.receive_text(json.dumps(ringing))
    assert sess.calls[cid].remote_headers == (("X-Ring", "1"),)
    media = _server("early_media", "telnyx_rtc.media")
    media["params"]["dialogParams"] = {"custom_headers": [{"name": "X-Media", "value": "2"}]}
    sess.receive_text(json.dumps(media))
    assert sess.calls[cid].remote_headers == (("X-Media", "2"),)
    media["params"]["dialogParams"] = {"custom_headers": []}  # none given: the known ones stay
    sess.receive_text(json.dumps(media))
    assert sess.calls[cid].remote_headers == (("X-Media", "2"),)


def test_ringing_headers_do_not_replace_an_inbound_calls() -> None:
    replay = Replay("inbound")
    cut = next(i for i, r in enumerate(replay.records) if r["msg"].get("method") == "telnyx_rtc.invite") + 1
    replay.run(until=cut)
    sess, cid = replay.sess, replay.call_id
    assert cid is not None
    before = sess.calls[cid].remote_headers
    ringing = _server("early_media", "telnyx_rtc.ringing")
    ringing["params"]["callID"] = cid
    ringing["params"]["dialogParams"] = {"custom_headers": [{"name": "X-Ring", "value": "1"}]}
    sess.receive_text(json.dumps(ringing))
    assert sess.calls[cid].remote_headers == before
