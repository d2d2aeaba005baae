# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""The media actions' webhooks validate strictly against the official SDK's event models, carry every
field those models declare, and are signed (the SDK's unwrap accepts them)."""

from __future__ import annotations

import asyncio

from phones import Phone, wait_hz
from sdkfixtures import AGENTS, SdkEnv, sdk, validate_webhook, webhook_models  # noqa: F401
from voicekit import answered_call

EXPECTED = {
    "call.speak.started", "call.speak.ended", "call.playback.started", "call.playback.ended",
    "call.gather.ended", "call.dtmf.received", "call.recording.saved",
}
# Fields of the SDK's payload models the switch leaves out on purpose (nothing to report here).
OPTIONAL = {"media_name", "status_detail"}


async def test_media_webhooks_match_the_sdk_models(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=600) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        await a.start_recording(ccid, format="wav", channels="single", client_state="d2g=")
        await a.speak(ccid, payload="Hello", voice="female")
        await sdk.hooks.wait("call.speak.ended")
        await a.start_playback(ccid, audio_url="tone:900:300")
        await sdk.hooks.wait("call.playback.ended")
        await a.gather_using_audio(ccid, audio_url="tone:700:2000", maximum_digits=1)
        await wait_hz(call, 700)
        await phone.dtmf(call, "3")
        await sdk.hooks.wait("call.gather.ended")
        await a.stop_recording(ccid)
        await sdk.hooks.wait("call.recording.saved")
        await asyncio.sleep(0.2)
    models = webhook_models()
    seen = set()
    for raw in sdk.hooks.raw:
        event = sdk.client.webhooks.unwrap(raw.body, headers=raw.headers)  # signature checked
        assert event is not None
        typed = validate_webhook(raw.body)
        event_type = typed.data.event_type  # type: ignore[attr-defined]
        if event_type not in EXPECTED:
            continue
        seen.add(event_type)
        payload_model = type(typed.data.payload)  # type: ignore[attr-defined]
        declared = set(payload_model.model_fields) - OPTIONAL
        sent = set(typed.data.payload.model_dump(by_alias=False, exclude_unset=True))  # type: ignore[attr-defined]
        assert declared <= sent, (event_type, declared - sent)
        assert models[event_type] is type(typed)
    assert seen == EXPECTED, EXPECTED - seen
