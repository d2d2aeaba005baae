# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""Signed webhooks: every webhook the switch sends carries Telnyx's ed25519 signature headers, the
official SDK's verification accepts them (sync and async clients, and telnyx.lib's verifier) and
rejects a tampered body, a stale timestamp and a moved timestamp; every body is valid against the
SDK's model of its event type. The key lives 0600 in the data directory and survives a restart."""

from __future__ import annotations

import inspect
import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import telnyx
from sdkfixtures import APP_NUMBER, SdkEnv, sdk, sdk_env, validate_webhook  # noqa: F401
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from softphone.switch.callcontrol.webhooks import KEY_FILE, SigningKey, verify_signature

REJECTED = (ValueError, WebhookVerificationError)
"""What the SDK's unwrap raises on a bad signature (WebhookVerificationError once telnyx.lib, which
patches unwrap to its ed25519 verifier, is imported; ValueError from the generated one)."""


async def run_flow(sdk: SdkEnv) -> str:
    """An outside call through answer, playback, a pressed digit with gather, queue, conference, hangup."""
    leg = await sdk.cc.outside_call("+15550000042", APP_NUMBER, dtmf="5", dtmf_delay=0.8, client_state="b3V0")
    ccid = leg.call_control_id
    await sdk.hooks.wait("call.initiated", lambda p: p["call_control_id"] == ccid)
    actions = sdk.aclient.calls.actions
    await actions.answer(ccid)
    await actions.start_playback(ccid, audio_url="tone:500:200")
    await actions.gather(ccid, maximum_digits=1, timeout_millis=5000)
    await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
    await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == ccid)
    await actions.enqueue(ccid, queue_name="q1")
    await actions.leave_queue(ccid)
    conf = await sdk.aclient.conferences.create(call_control_id=ccid, name="room")
    assert conf.data is not None
    await sdk.aclient.conferences.actions.leave(conf.data.id, call_control_id=ccid)
    await sdk.hooks.wait("conference.ended", lambda p: p["conference_id"] == conf.data.id)
    await actions.hangup(ccid)
    await sdk.hooks.wait("call.hangup", lambda p: p["call_control_id"] == ccid)
    return ccid


async def test_every_webhook_is_signed_verified_by_the_sdk_and_typed(sdk: SdkEnv) -> None:
    await run_flow(sdk)
    key = sdk.public_key
    assert key and len(key) == 44
    seen = set()
    for raw in sdk.hooks.raw:
        assert raw.headers["telnyx-timestamp"].isdigit()
        assert abs(int(raw.headers["telnyx-timestamp"]) - time.time()) < 60
        event = sdk.client.webhooks.unwrap(raw.body, headers=raw.headers, key=key)  # raises if not verified
        event2: Any = sdk.aclient.webhooks.unwrap(raw.body, headers=raw.headers)  # the client's public_key
        if inspect.isawaitable(event2):  # telnyx.lib makes the async client's unwrap a coroutine
            event2 = await event2
        verify_webhook_signature(raw.body, raw.headers, key)  # telnyx.lib's verifier agrees
        assert verify_signature(key, raw.body.encode(), raw.headers)
        doc = json.loads(raw.body)
        typed = validate_webhook(doc)  # strict: the SDK's model of this event type
        assert getattr(event, "data", None) is not None and getattr(event2, "data", None) is not None
        assert typed.data.event_type == doc["data"]["event_type"]  # type: ignore[attr-defined]
        assert typed.data.payload is not None  # type: ignore[attr-defined]
        seen.add(doc["data"]["event_type"])
    want = {"call.initiated", "call.answered", "call.playback.started", "call.playback.ended", "call.dtmf.received",
            "call.gather.ended", "call.enqueued", "call.dequeued", "conference.created",
            "conference.participant.joined", "conference.participant.left", "conference.ended", "call.hangup"}
    assert want <= seen, want - seen
    gathered = [json.loads(r.body) for r in sdk.hooks.raw_for("call.gather.ended")]
    assert gathered[0]["data"]["payload"]["digits"] == "5"
    assert gathered[0]["data"]["payload"]["client_state"] == "b3V0"


async def test_tampered_stale_and_moved_webhooks_are_rejected(sdk: SdkEnv) -> None:
    leg = await sdk.cc.outside_call("+15550000043", APP_NUMBER)
    await sdk.hooks.wait("call.initiated", lambda p: p["call_control_id"] == leg.call_control_id)
    raw = sdk.hooks.raw_for("call.initiated")[0]
    key = sdk.public_key
    sdk.client.webhooks.unwrap(raw.body, headers=raw.headers, key=key)

    tampered = raw.body.replace("+15550000043", "+15550000044")
    assert tampered != raw.body
    with pytest.raises(REJECTED, match="Signature verification failed"):
        sdk.client.webhooks.unwrap(tampered, headers=raw.headers, key=key)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(tampered, raw.headers, key)
    assert not verify_signature(key, tampered.encode(), raw.headers)

    # Correctly signed by the switch's own key, but 10 minutes ago: a replay.
    signing_key = sdk.cc.webhooks.signing_key
    assert signing_key is not None
    stale = signing_key.sign(raw.body.encode(), int(time.time()) - 600)
    with pytest.raises(REJECTED, match="too old"):
        sdk.client.webhooks.unwrap(raw.body, headers=stale, key=key)
    assert not verify_signature(key, raw.body.encode(), stale)

    # The signature of one moment, with the timestamp header moved: the signature covers the timestamp.
    moved = {**raw.headers, "telnyx-timestamp": str(int(raw.headers["telnyx-timestamp"]) + 1)}
    with pytest.raises(REJECTED, match="Signature verification failed"):
        sdk.client.webhooks.unwrap(raw.body, headers=moved, key=key)

    # Another key (say, Telnyx's own) does not verify the switch's webhooks.
    with pytest.raises(REJECTED, match="Signature verification failed"):
        sdk.client.webhooks.unwrap(raw.body, headers=raw.headers, key=SigningKey.generate().public_key_b64)
    with pytest.raises(REJECTED, match="Missing required header"):
        sdk.client.webhooks.unwrap(raw.body, headers={"content-type": "application/json"}, key=key)


async def test_key_is_generated_once_stored_0600_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "switch-data"
    async with sdk_env(tmp_path) as env:
        first = env.public_key
        path = data / KEY_FILE
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "PRIVATE KEY" in path.read_text()
    path.chmod(0o644)
    async with sdk_env(tmp_path) as env:
        assert env.public_key == first  # the same key after a restart: backends keep trusting it
        leg = await env.cc.outside_call("+15550000045", APP_NUMBER)
        await env.hooks.wait("call.initiated", lambda p: p["call_control_id"] == leg.call_control_id)
        raw = env.hooks.raw[0]
        env.client.webhooks.unwrap(raw.body, headers=raw.headers, key=first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a too-open key file is tightened


def test_signing_key_unit(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "d")
    again = SigningKey.load_or_create(tmp_path / "d")
    assert key.public_key_b64 == again.public_key_b64
    headers = key.sign(b'{"a":1}', 1_700_000_000)
    assert headers["telnyx-timestamp"] == "1700000000" and len(headers["telnyx-signature-ed25519"]) == 88
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / KEY_FILE).write_text("not a key")
    assert SigningKey.for_switch(tmp_path / "bad") is None  # logged; the switch sends unsigned
    client = telnyx.Telnyx(api_key="x", base_url="http://127.0.0.1:9/v2", public_key=key.public_key_b64)
    now = int(time.time())
    client.webhooks.unwrap('{"data": {"event_type": "call.hangup"}}', headers=key.sign(
        b'{"data": {"event_type": "call.hangup"}}', now))
    client.close()


async def test_a_retried_webhook_is_signed_afresh(sdk: SdkEnv) -> None:
    sdk.hooks.fail_first = sdk.hooks.hits + 1  # the next POST gets a 500: the switch retries
    leg = await sdk.cc.outside_call("+15550000046", APP_NUMBER)
    await sdk.hooks.wait("call.initiated", lambda p: p["call_control_id"] == leg.call_control_id)
    raw = sdk.hooks.raw_for("call.initiated")[-1]
    assert json.loads(raw.body)["meta"]["attempt"] == 2
    sdk.client.webhooks.unwrap(raw.body, headers=raw.headers, key=sdk.public_key)
