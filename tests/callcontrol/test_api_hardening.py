# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""Issue 10, items 1, 2 and 6: the commands API's files, keys and malformed requests, attacked over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ccfixtures import API_KEY, APP_NUMBER, WebhookCatcher, app_accounts, catcher, cc  # noqa: F401
from harness import write_tone_wav
from phones import Phone, api, wait_hz

from softphone.switch import Switch
from softphone.switch.accounts import Connection
from softphone.switch.callcontrol.apps import CallControlOptions
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.pstn_cli import serve_file


async def raw_http(base: str, data: bytes) -> tuple[int, Any]:
    """Send bytes as they are; ``(status, decoded JSON)``."""
    host, port = base.split("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 15.0)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def telnyx_error(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    err = body["errors"][0]
    assert set(err) == {"code", "title", "detail"}, err
    return err  # type: ignore[no-any-return]


@contextlib.contextmanager
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING, logger="softphone.switch")
    yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def pstn(cc: CallControl, body: dict[str, Any]) -> tuple[int, Any]:
    return await api(cc.api_url, "POST", "/switch/pstn_calls", {"from": "+15557654321", "to": APP_NUMBER, **body})


# --- item 1: record_path and audio_url ------------------------------------------------------------------


async def test_record_path_cannot_leave_the_data_dir(
    cc: CallControl, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.wav"
    rec_dir = cc.options.data_dir / "recordings"
    rec_dir.mkdir(parents=True)
    (rec_dir / "link.wav").symlink_to(victim)
    with no_tracebacks(caplog):
        for bad in (str(victim), "../victim.wav", "../../outside/victim.wav", "sub/x.wav", "..", ".hidden", "link.wav",
                    "a\\b.wav", 42):
            st, body = await pstn(cc, {"record_path": bad})
            assert st == 422, (bad, body)
            assert "record_path" in telnyx_error(body)["title"]
    assert not victim.exists() and list(outside.iterdir()) == []
    assert not cc.legs  # nothing was started for a refused request
    st, body = await pstn(cc, {"record_path": "caller.wav", "audio_url": "tone:600"})
    assert st == 200, body
    assert body["data"]["recording"]["path"] == str(rec_dir / "caller.wav")
    await api(cc.api_url, "POST", f"/switch/pstn_calls/{body['data']['call_control_id']}/hangup")
    for _ in range(50):
        st, status = await api(cc.api_url, "GET", f"/switch/pstn_calls/{body['data']['call_control_id']}")
        if status["data"]["recording"]["saved"]:
            break
        await asyncio.sleep(0.05)
    assert status["data"]["recording"]["saved"] and (rec_dir / "caller.wav").stat().st_size > 44


async def test_audio_url_only_from_the_media_dir_or_loopback_http(
    cc: CallControl, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    media = cc.options.media_root
    media.mkdir(parents=True)
    secret = tmp_path / "secret.wav"
    write_tone_wav(secret, 440.0, seconds=0.5)
    (media / "escape.wav").symlink_to(secret)
    (media / "notes.txt").write_text("not audio\n")
    write_tone_wav(media / "ok.wav", 700.0, seconds=0.5)
    with no_tracebacks(caplog):
        for bad in (str(secret), f"file://{secret}", "../secret.wav", "escape.wav", "notes.txt", "/etc/passwd",
                    "https://127.0.0.1/x.wav", "ftp://127.0.0.1/x.wav", "http://10.1.2.3/x.wav",
                    "http://example.invalid/x.wav", "tone:abc", "tone:0", "tone:1:2:3", "missing.wav", "/"):
            st, body = await pstn(cc, {"audio_url": bad})
            assert st == 422, (bad, body)
            err = telnyx_error(body)
            assert "audio_url" in err["title"] and str(tmp_path) not in err["detail"], (bad, err)
        st, body = await pstn(cc, {"audio_url": "ok.wav"})
        assert st == 200, body
        st, body = await pstn(cc, {"audio_url": str(media / "ok.wav")})
        assert st == 200, body
        ccid = body["data"]["call_control_id"]
        await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY)
        for bad in ("notes.txt", str(secret), ""):
            st, body = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/playback_start",
                                 {"audio_url": bad}, API_KEY)
            assert st == 422 and "audio_url" in telnyx_error(body)["title"], (bad, body)


async def test_loopback_http_audio_is_fetched_and_heard(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "caller.wav", 700.0, seconds=2.0)
    opts = CallControlOptions(api_port=0, outside_ring_s=0.2, data_dir=tmp_path / "data")
    async with Switch(port=0, call_control=opts) as sw, Phone(sw.url, "alice", "alice-secret", 523) as alice:
        with serve_file(wav) as url:
            st, body = await api(sw.api_url, "POST", "/switch/pstn_calls",
                                 {"from": "+15557654321", "to": "+13125550111", "audio_url": url})
        assert st == 200, body
        inc = await alice.next_incoming()
        await alice.answer(inc)
        await wait_hz(inc, 700)  # decoded with PyAV from the bytes fetched over loopback
        await alice.hangup(inc)


# --- item 2: every /v2 route authenticates, a key sees only its connection ----------------------------------


async def test_conferences_are_listed_per_key(catcher: WebhookCatcher, tmp_path: Path) -> None:
    accts = app_accounts(catcher.url)
    accts.connections.append(
        Connection(id="other", sip_username="otheruser", password="other-secret", numbers=("+13125550160",),
                   webhook_url=catcher.url, api_key="KEYother")
    )
    opts = CallControlOptions(api_port=0, outside_ring_s=0.2, data_dir=tmp_path / "data")
    async with Switch(accounts=accts, port=0, call_control=opts) as sw:
        cc = sw.call_control
        assert cc is not None
        mine = await cc.outside_call("+15550000001", APP_NUMBER)
        theirs = await cc.outside_call("+15550000002", "+13125550160")
        st, body = await api(cc.api_url, "POST", "/v2/conferences",
                             {"call_control_id": mine.call_control_id, "name": "mine"}, API_KEY)
        assert st == 200, body
        conf_id = body["data"]["id"]
        st, body = await api(cc.api_url, "POST", "/v2/conferences",
                             {"call_control_id": theirs.call_control_id, "name": "theirs"}, "KEYother")
        assert st == 200, body
        st, body = await api(cc.api_url, "GET", "/v2/conferences")  # no key: nothing of keyed connections
        assert st == 200 and body["data"] == [], body
        st, body = await api(cc.api_url, "GET", "/v2/conferences", key="KEYwrong")
        assert st == 401 and telnyx_error(body)["code"] == "10009"
        st, body = await api(cc.api_url, "GET", "/v2/conferences", key=API_KEY)
        assert [c["name"] for c in body["data"]] == ["mine"]
        assert mine.call_control_id in json.dumps(body) and theirs.call_control_id not in json.dumps(body)
        # Another connection's conference and calls are out of reach with this key.
        st, body = await api(cc.api_url, "GET", f"/v2/conferences/{conf_id}", key="KEYother")
        assert st == 404
        st, body = await api(cc.api_url, "POST", f"/v2/conferences/{conf_id}/actions/join",
                             {"call_control_id": theirs.call_control_id}, "KEYother")
        assert st == 404
        st, body = await api(cc.api_url, "POST", f"/v2/calls/{mine.call_control_id}/actions/bridge",
                             {"call_control_id": theirs.call_control_id}, API_KEY)
        assert st == 401, body
        st, body = await api(cc.api_url, "GET", f"/v2/calls/{theirs.call_control_id}", key=API_KEY)
        assert st == 401


# --- item 6: malformed requests get 4xx in Telnyx's shape, no traceback ---------------------------------------


MALFORMED: list[bytes] = [
    b"POST /v2/calls HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
    b"POST /v2/calls HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
    b"POST /v2/calls HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}",
    b"POST /v2/calls HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"POST /v2/calls HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
    b"POST /v2/calls HTTP/1.1\r\nContent-Length: 4\r\n\r\n\xff\xfe{}",
    b"POST /v2/calls HTTP/1.1\r\nContent-Length: 4000\r\n\r\n" + b"[" * 2000 + b"]" * 2000,
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET http://x/ HTTP/1.1\r\n\r\n",
    b"GET /v2/calls HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    b"GET /v2/calls HTTP/1.1\r\n" + b"X: y\r\n" * 150 + b"\r\n",
]


async def test_malformed_http_gets_4xx(cc: CallControl, caplog: pytest.LogCaptureFixture) -> None:
    with no_tracebacks(caplog):
        for raw in MALFORMED:
            st, body = await raw_http(cc.api_url, raw)
            assert 400 <= st < 500, (raw[:60], st, body)
            telnyx_error(body)


async def test_bad_field_types_get_422(cc: CallControl, caplog: pytest.LogCaptureFixture) -> None:
    with no_tracebacks(caplog):
        for body in ({"dtmf_delay_secs": "x"}, {"dtmf_delay_secs": True}, {"dtmf_delay_secs": -1},
                     {"audio_url": 5}, {"dtmf": ["1"]}, {"client_state": {}}, {"from": 1}, {"to": "+19999999999"}):
            st, out = await pstn(cc, body)
            assert st == 422, (body, out)
            telnyx_error(out)
        leg = await cc.outside_call("+15550000003", APP_NUMBER)
        ccid = leg.call_control_id
        for action, body in (("playback_start", {}), ("playback_start", {"audio_url": None}),
                             ("gather", {"maximum_digits": "x"}), ("bridge", {"call_control_id": 3}),
                             ("transfer", {"to": ["x"]}), ("enqueue", {"queue_name": 7})):
            st, out = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/{action}", body, API_KEY)
            assert 400 <= st < 500, (action, body, out)
            telnyx_error(out)
