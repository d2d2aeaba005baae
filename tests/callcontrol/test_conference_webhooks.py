# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""Conferences (three parties, mixed audio), transfer, webhook retries and failover, config."""

from __future__ import annotations

import asyncio

import pytest
from ccfixtures import AGENTS, API_KEY, WebhookCatcher, catcher, cc  # noqa: F401
from phones import Phone, PhoneCall, api, heard_hz

from softphone.errors import ConfigError
from softphone.media.sinks import BufferSink
from softphone.switch.accounts import accounts_from_dict
from softphone.switch.callcontrol.apps import apps_from_accounts, options_from_dict
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.webhooks import WebhookSender, WebhookURLError, check_url


def spectrum_peaks(sink: BufferSink, freqs: list[float], seconds: float = 1.0) -> dict[float, float]:
    """Relative magnitude of each frequency in the last ``seconds`` heard."""
    import numpy as np

    x = sink.samples(seconds).astype(np.float64)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    bins = np.fft.rfftfreq(len(x), 1 / 48000)
    top = float(mag.max()) or 1.0
    return {f: float(mag[np.abs(bins - f) < 8].max()) / top for f in freqs}


async def answered_client_leg(
    cc: CallControl, phone: Phone, dest: str, catcher: WebhookCatcher
) -> tuple[str, PhoneCall]:
    call = await phone.dial(dest)
    init = await catcher.wait("call.initiated", lambda p: p["to"] == dest)
    ccid = init["payload"]["call_control_id"]
    assert (await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY))[0] == 200
    await phone.wait_state(call, "active")
    return ccid, call


async def test_conference_of_three_mixes_audio(cc: CallControl, catcher: WebhookCatcher) -> None:
    url = cc.switch.url
    tones = {"agent1": 500.0, "agent2": 800.0, "agent3": 1300.0}
    async with (
        Phone(url, "agent1", AGENTS["agent1"], tones["agent1"]) as p1,
        Phone(url, "agent2", AGENTS["agent2"], tones["agent2"]) as p2,
        Phone(url, "agent3", AGENTS["agent3"], tones["agent3"]) as p3,
    ):
        legs = {}
        for i, ph in enumerate((p1, p2, p3)):
            legs[ph.user] = await answered_client_leg(cc, ph, f"+1800555010{i}", catcher)
        st, body = await api(
            cc.api_url, "POST", "/v2/conferences", {"call_control_id": legs["agent1"][0], "name": "standup"}, API_KEY
        )
        assert st == 200, body
        conf_id = body["data"]["id"]
        for user in ("agent2", "agent3"):
            st, _ = await api(
                cc.api_url,
                "POST",
                f"/v2/conferences/{conf_id}/actions/join",
                {"call_control_id": legs[user][0]},
                API_KEY,
            )
            assert st == 200
        await catcher.wait("conference.participant.joined", lambda p: p["call_control_id"] == legs["agent3"][0])
        assert len(catcher.events("conference.participant.joined")) == 3
        await asyncio.sleep(2.0)
        for user, (_, call) in legs.items():
            peaks = spectrum_peaks(call.sink, list(tones.values()))
            others = [f for u, f in tones.items() if u != user]
            assert all(peaks[f] > 0.3 for f in others), (user, peaks)
            assert peaks[tones[user]] < 0.1, (user, peaks)  # never hears itself
        st, _ = await api(
            cc.api_url,
            "POST",
            f"/v2/conferences/{conf_id}/actions/leave",
            {"call_control_id": legs["agent3"][0]},
            API_KEY,
        )
        assert st == 200
        await catcher.wait("conference.participant.left")
        await asyncio.sleep(1.2)
        peaks = spectrum_peaks(legs["agent1"][1].sink, list(tones.values()), 0.6)
        assert peaks[800.0] > 0.3 and peaks[1300.0] < 0.1, peaks


async def test_transfer_bridges_on_answer(cc: CallControl, catcher: WebhookCatcher) -> None:
    url = cc.switch.url
    async with Phone(url, "agent1", AGENTS["agent1"], 600) as p1, Phone(url, "agent2", AGENTS["agent2"], 750) as p2:
        ccid, call = await answered_client_leg(cc, p1, "+18005550111", catcher)
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/transfer", {"to": "agent2"}, API_KEY)
        assert st == 200
        inc = await p2.next_incoming()
        await p2.answer(inc)
        await catcher.wait("call.bridged", lambda p: p["call_control_id"] == ccid)
        for _ in range(40):
            await asyncio.sleep(0.2)
            if abs(heard_hz(call, 0.6) - 750) < 15 and abs(heard_hz(inc, 0.6) - 600) < 15:
                break
        else:
            raise AssertionError((heard_hz(call), heard_hz(inc)))


async def test_webhook_retries_then_failover() -> None:
    bad = await WebhookCatcher(fail_first=10).start()
    good = await WebhookCatcher().start()
    try:
        sender = WebhookSender(tries=3, backoff_s=0.01)
        sender.send(bad.url, good.url, "call.initiated", {"call_control_id": "v3:x"})
        await sender.drain(5)
        assert bad.hits == 3 and len(good.bodies) == 1
        body = good.bodies[0]
        assert body["meta"] == {"attempt": 1, "delivered_to": good.url}
        assert body["data"]["event_type"] == "call.initiated" and body["data"]["record_type"] == "event"
        d = sender.deliveries[0]
        assert d.delivered and d.attempts == 4 and d.url == good.url
        # A failing first try is retried on the same URL.
        flaky = await WebhookCatcher(fail_first=1).start()
        sender.send(flaky.url, "", "call.hangup", {})
        await sender.drain(5)
        assert flaky.hits == 2 and flaky.bodies[0]["meta"]["attempt"] == 2
        await flaky.stop()
        await sender.close()
    finally:
        await bad.stop()
        await good.stop()


def test_webhook_urls_loopback_only() -> None:
    assert check_url("http://127.0.0.1:9000/hook") == ("127.0.0.1", 9000, "/hook")
    assert check_url("http://localhost/x?y=1") == ("localhost", 80, "/x?y=1")
    with pytest.raises(WebhookURLError):
        check_url("http://example.com/hook")
    with pytest.raises(WebhookURLError):
        check_url("https://127.0.0.1/hook")
    assert check_url("http://example.com/hook", allow_remote=True)[0] == "example.com"


def test_accounts_call_control_fields() -> None:
    data = {
        "call_control": {"api_port": 9999, "park_timeout_secs": 5, "ringback": "ringing"},
        "connection": [
            {
                "id": "app",
                "password": "p",
                "webhook_url": "http://127.0.0.1:9000/w",
                "webhook_failover_url": "http://127.0.0.1:9001/w",
                "api_key": "K",
            },
            {"id": "plain", "password": "p"},
        ],
    }
    apps = apps_from_accounts(accounts_from_dict(data))
    assert list(apps) == ["app"] and apps["app"].api_key == "K"
    assert apps["app"].webhook_failover_url == "http://127.0.0.1:9001/w"
    opts = options_from_dict(data)
    assert (opts.api_port, opts.park_timeout, opts.ringback) == (9999, 5.0, "ringing")
    with pytest.raises(ConfigError):
        options_from_dict({"call_control": {"ringback": "loud"}})
