"""What the softphone puts on the wire where a real Telnyx server might read it (issue 9 items 17, 18):
``preferred_codecs`` only when codecs were chosen, as full codec capabilities; a ``softphone-<version>``
user agent in the JS SDK's forms; the name a JWT logs in as, from its claims.

The end-to-end tests run the real Client against the real switch over real websockets and look at
the frames the switch received.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from unit.support.proto_util import load_trace

import softphone
from softphone.client.client import AudioConfig, Client
from softphone.config import Profile
from softphone.errors import LocalProtocolError
from softphone.protocol import CallState, Credentials
from softphone.protocol import verto as v
from softphone.protocol.session import token_claims, token_credential_name
from softphone.switch import Switch, default_accounts, mint_token

ROOT = Path(__file__).resolve().parents[2]


def b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_with(claims: Any) -> str:
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2ln"


# --- codec capabilities ----------------------------------------------------------------------


def test_codec_capabilities_are_what_aiortc_offers() -> None:
    """Each capability we announce is the one our media engine offers: clock rate, channels, no fmtp."""
    from aiortc import RTCRtpSender

    engine = {c.mimeType: c for c in RTCRtpSender.getCapabilities("audio").codecs}
    assert set(engine) == {cap["mimeType"] for cap in v.CODEC_CAPABILITIES.values()}
    for cap in v.CODEC_CAPABILITIES.values():
        c = engine[cap["mimeType"]]
        assert (cap["clockRate"], cap["channels"]) == (c.clockRate, c.channels), cap
        assert "sdpFmtpLine" not in cap and not c.parameters, cap


def test_codec_capabilities_in_the_sdk_shape() -> None:
    """Chromium's RTCRtpCodecCapability keys, as the SDK capture shows them; PCMU identical."""
    invite = next(r["msg"] for r in load_trace("preferred_codecs") if r["msg"].get("method") == v.INVITE)
    sdk = {c["mimeType"]: c for c in invite["params"]["dialogParams"]["preferred_codecs"]}
    assert v.codec_capability("pcmu") == sdk["audio/PCMU"]
    opus = v.codec_capability("OPUS")
    assert opus == {k: val for k, val in sdk["audio/opus"].items() if k != "sdpFmtpLine"}
    with pytest.raises(LocalProtocolError, match="unknown codec"):
        v.codec_capability("speex")
    dialog = v.CallDialog("K", "+1", preferred_codecs=["PCMA", "G722"])
    assert dialog.to_wire()["preferred_codecs"] == [
        {"channels": 1, "clockRate": 8000, "mimeType": "audio/PCMA"},
        {"channels": 1, "clockRate": 8000, "mimeType": "audio/G722"},
    ]


def test_client_default_codecs_are_the_profile_default() -> None:
    """'No codecs chosen' is the profile default: the same list as the client's."""
    from softphone.client.client import DEFAULT_CODECS

    assert list(Profile().codecs) == DEFAULT_CODECS


# --- version and user agent ------------------------------------------------------------------


def test_version_is_the_package_version() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert softphone.__version__ == meta["project"]["version"]
    assert softphone.SDK_VERSION == f"softphone-{softphone.__version__}"
    assert re.fullmatch(r"softphone-\d+\.\d+\.\d+ \(Python \d+\.\d+\.\d+\S*; .+\)", softphone.USER_AGENT)


# --- JWT credential name (item 17) -------------------------------------------------------------


def test_token_user_is_the_credential_named_in_its_claims() -> None:
    switch_token = mint_token("gencred2", default_accounts().jwt_secret)
    assert Credentials(token=switch_token).user == "gencred2"
    # Telnyx's own tokens name the telephony credential's id in "sub" (and carry tel_token, never shown)
    telnyx = jwt_with({"aud": "telnyx_telephony", "iss": "telnyx_telephony", "typ": "access",
                       "sub": "5c7ac7d0-db65-4f11-98e1-eec0d1d5c6ae", "tel_token": "SECRET-tel-token"})
    assert Credentials(token=telnyx).user == "5c7ac7d0-db65-4f11-98e1-eec0d1d5c6ae"
    assert Credentials(token=jwt_with({"telephony_credential_id": "cred-a", "sub": "x"})).user == "cred-a"
    assert Credentials(login="alice", password="pw", token=switch_token).user == "alice"


BAD_PAYLOADS: list[Any] = [[1, 2], {"sub": 5}, {"sub": "bad\x1bname"}, {"sub": "   "}, {"sub": "x" * 500},
                            {"other": "claim"}, b"\xff\xfe", b"not json"]


@pytest.mark.parametrize("token", [
    "jwt.secret", "a.b.c", "...", "x", "h.!!!!.s", "h." + "A" * 20000 + ".s",
    *("h." + b64(p) + ".s" for p in BAD_PAYLOADS),
])
def test_token_without_a_usable_name_shows_token(token: str) -> None:
    assert Credentials(token=token).user == "(token)"
    assert token_credential_name(token) == ""


def test_token_claims_decodes_payload_only() -> None:
    assert token_claims(jwt_with({"sub": "a", "exp": 5})) == {"sub": "a", "exp": 5}
    assert token_claims("no-dots") == {}


# --- end to end: the real Client against the real switch -----------------------------------------

Frames = list[dict[str, Any]]


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Switch, Frames]]:
    """The switch, and every frame it received (recorded on the way in, then handled as usual)."""
    frames: Frames = []
    async with Switch(accounts=default_accounts(), port=0) as sw:
        handle = sw._on_frame

        async def spy(ws: Any, raw: str | bytes, *args: Any) -> None:
            try:
                frames.append(json.loads(raw))
            except ValueError:
                pass
            await handle(ws, raw, *args)

        sw._on_frame = spy  # type: ignore[method-assign]
        yield sw, frames


async def echo_call(sw: Switch, creds: Credentials, **kw: Any) -> Client:
    client = Client(sw.url, creds, audio=AudioConfig(backend="tone", tone_hz=440.0), random=lambda: 0.0, **kw)
    await client.connect()
    try:
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE)
        await call.hangup()
        await call.wait_ended(5)
    finally:
        await client.close()
    return client


def sent(frames: Frames, method: str) -> list[dict[str, Any]]:
    return [f["params"] for f in frames if f.get("method") == method]


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_client_wire_default_codecs_and_user_agent(wire: tuple[Switch, Frames]) -> None:
    """Default codecs: no preferred_codecs; user agents softphone-<version> in the SDK's forms."""
    sw, frames = wire
    await echo_call(sw, Credentials(login="demo", password="demo-secret"))
    (login,) = sent(frames, v.LOGIN)
    assert login["User-Agent"] == {"sdkVersion": softphone.__version__, "data": softphone.USER_AGENT}
    assert softphone.USER_AGENT.startswith(f"softphone-{softphone.__version__} (")
    (invite,) = sent(frames, v.INVITE)
    assert invite["User-Agent"] == f"softphone-{softphone.__version__}"
    assert "preferred_codecs" not in invite["dialogParams"]
    assert all("preferred_codecs" not in p["dialogParams"] for p in sent(frames, v.BYE))


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_client_wire_chosen_codecs_as_capabilities(wire: tuple[Switch, Frames]) -> None:
    """A profile that chooses codecs (PCMU only) sends them as full capabilities; the switch accepts it."""
    sw, frames = wire
    profile = Profile(server=sw.url, username="demo", password="demo-secret", codecs=("PCMU",))
    client = Client.from_profile(profile, audio=AudioConfig(backend="tone", tone_hz=440.0), random=lambda: 0.0)
    await client.connect()
    try:
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE)
        await call.hangup()
        await call.wait_ended(5)
    finally:
        await client.close()
    (invite,) = sent(frames, v.INVITE)
    assert invite["dialogParams"]["preferred_codecs"] == [{"channels": 1, "clockRate": 8000, "mimeType": "audio/PCMU"}]
    assert "m=audio" in invite["sdp"] and " opus/" not in invite["sdp"]
    assert call.stats is None or call.stats.codec.startswith("PCMU")
    legs = [r for r in sw.records if r.call_id == call.id]
    assert legs and all(r.cause == "NORMAL_CLEARING" and r.codec.upper().startswith("PCMU") for r in legs), legs


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_client_jwt_login_shows_credential_name(wire: tuple[Switch, Frames]) -> None:
    """After a JWT login the client names the credential the token is for, not "(token)"."""
    sw, frames = wire
    client = Client(sw.url, Credentials(token=mint_token("gencred1", sw.accounts.jwt_secret)),
                    audio=AudioConfig(backend="tone"), random=lambda: 0.0)
    await client.connect()
    try:
        assert client.user == "gencred1"
    finally:
        await client.close()
    assert "login_token" in sent(frames, v.LOGIN)[0]


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_login_command_with_jwt_says_credential_name() -> None:
    """``login <JWT>`` (shell and command files) says "logged in as gencred2", not "(token)"; the
    snapshot (panel, --json) names it too; the token itself is never shown."""
    from dataclasses import replace

    from softphone.app.commands import CommandContext, run_line
    from softphone.app.phone import Phone
    from softphone.config import BUILTIN_PROFILES

    said: list[str] = []
    async with Switch(accounts=default_accounts(), port=0) as sw:
        token = mint_token("gencred2", sw.accounts.jwt_secret)
        profile = replace(BUILTIN_PROFILES["local"], server=sw.url, audio_backend="null")
        async with Phone(profile) as phone:
            ctx = CommandContext(phone=phone, say=said.append, table=lambda *a: None)
            await run_line(ctx, f"login {token}")
            assert phone.snapshot.client.user == "gencred2"
    assert [s for s in said if s.startswith("logged in as")] == [said[-1]]
    assert said[-1].startswith("logged in as gencred2"), said
    assert not [s for s in said if token in s]
