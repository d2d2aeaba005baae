# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""/v2/telephony_credentials through the official SDK: create/list/retrieve/update/delete on a
connection and create_token; created credentials log in at once (password or token) and follow
the registration rules (the last registered rings); a softphone Client logs in with a minted
token and receives a call; expired and deleted credentials log in no more; they survive a restart."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import telnyx
from phones import Phone
from sdkfixtures import APP_NUMBER, SdkEnv, sdk, sdk_env  # noqa: F401
from telnyx.types import (
    TelephonyCredential,
    TelephonyCredentialCreateResponse,
    TelephonyCredentialRetrieveResponse,
    TelephonyCredentialUpdateResponse,
)
from test_sdk_calls import strict

from softphone.client.client import Client
from softphone.media.hub import AudioConfig
from softphone.protocol import CallState, Credentials
from softphone.switch.callcontrol import credentials as rest_credentials


async def test_crud_and_token_through_the_sync_sdk(sdk: SdkEnv) -> None:
    tc = sdk.client.telephony_credentials
    created = strict(await sdk.run(tc.create, connection_id="app", name="desk-1", tag="desks"))
    assert isinstance(created, TelephonyCredentialCreateResponse) and created.data is not None
    cred = created.data
    assert cred.id and cred.record_type == "credential" and cred.resource_id == "connection:app"
    assert cred.sip_username and cred.sip_username.startswith("gencred") and cred.sip_password
    assert cred.name == "desk-1" and cred.expired is False and cred.expires_at is None and cred.created_at
    assert sdk.switch.accounts.credential(cred.sip_username) is not None

    page = await sdk.run(tc.list, filter={"tag": "desks"})
    assert [c.id for c in page.data] == [cred.id] and all(isinstance(c, TelephonyCredential) for c in page.data)
    assert page.meta is not None and page.meta.total_results == 1
    everything = await sdk.run(lambda: list(tc.list()))
    assert cred.id in [c.id for c in everything] and len(everything) == len(sdk.switch.accounts.all_credentials())
    from_file = [c for c in everything if c.id != cred.id]
    assert from_file and all(c.sip_password is None and c.sip_username for c in from_file)  # stays in the file
    with pytest.raises(telnyx.UnprocessableEntityError) as ue:
        await sdk.run(tc.delete, from_file[0].id)
    assert ue.value.response.json()["errors"][0]["title"] == "Credential is read-only"
    with pytest.raises(telnyx.UnprocessableEntityError):
        await sdk.run(tc.update, from_file[0].id, name="x")
    file_token = await sdk.run(tc.create_token, from_file[0].id)  # tokens for them are fine
    assert sdk.switch.accounts.token_login(file_token).slot == from_file[0].sip_username
    got = strict(await sdk.run(tc.retrieve, cred.id))
    assert isinstance(got, TelephonyCredentialRetrieveResponse) and got.data is not None
    assert got.data.sip_username == cred.sip_username and got.data.sip_password == cred.sip_password

    upd = strict(await sdk.run(tc.update, cred.id, name="desk-2", expires_at="2099-01-01T00:00:00Z"))
    assert isinstance(upd, TelephonyCredentialUpdateResponse) and upd.data is not None
    assert upd.data.name == "desk-2" and upd.data.expires_at == "2099-01-01T00:00:00.000000Z"
    assert upd.data.expired is False and upd.data.tag == "desks" and upd.data.id == cred.id

    token = await sdk.run(tc.create_token, cred.id)
    assert isinstance(token, str) and token.count(".") == 2
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["telephony_credential_id"] == cred.id and claims["exp"] - claims["iat"] == 24 * 3600
    login = sdk.switch.accounts.token_login(token)
    assert login.slot == cred.sip_username and login.connection_id == "app"

    deleted = strict(await sdk.run(tc.delete, cred.id))
    assert deleted.data is not None and deleted.data.id == cred.id
    with pytest.raises(telnyx.NotFoundError) as nf:
        await sdk.run(tc.retrieve, cred.id)
    assert nf.value.response.json()["errors"][0]["code"] == "10005"
    assert sdk.switch.accounts.check_token(token) is None  # a deleted credential's token logs in no more
    with pytest.raises(telnyx.NotFoundError):
        await sdk.run(tc.create_token, cred.id)


async def test_bad_input_and_keys(sdk: SdkEnv) -> None:
    tc = sdk.aclient.telephony_credentials
    with pytest.raises(telnyx.UnprocessableEntityError) as ue:
        await tc.create(connection_id="no-such-connection")
    assert ue.value.response.json()["errors"][0]["code"] == "10015"
    with pytest.raises(telnyx.UnprocessableEntityError) as ue:
        await tc.create(connection_id="app", expires_at="next tuesday")
    assert "expires_at" in ue.value.response.json()["errors"][0]["title"]
    with pytest.raises(telnyx.UnprocessableEntityError):
        await tc.list(filter={"colour": "blue"})  # type: ignore[typeddict-unknown-key]
    _, bad = sdk.clients("KEYwrong")
    with pytest.raises(telnyx.AuthenticationError):
        await bad.telephony_credentials.create(connection_id="app")
    with pytest.raises(telnyx.AuthenticationError):
        await bad.telephony_credentials.list()
    mine = (await tc.create(connection_id="app")).data
    assert mine is not None and mine.id
    # Without the app's key its credential does not exist (no probing by id).
    async with httpx.AsyncClient(base_url=sdk.base_url) as anon:
        r = await anon.get(f"/telephony_credentials/{mine.id}")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "10005"
        r = await anon.get("/telephony_credentials")
        listed = [c["id"] for c in r.json()["data"]]
        assert r.status_code == 200 and mine.id not in listed and listed  # the open connections' ones only


async def test_created_credential_logs_in_at_once_and_the_last_registered_rings(sdk: SdkEnv) -> None:
    created = (await sdk.aclient.telephony_credentials.create(connection_id="app", name="hot-desk")).data
    assert created is not None and created.sip_username and created.sip_password
    user, password = created.sip_username, created.sip_password
    url = sdk.switch.url
    async with Phone(url, user, password, 500) as first, Phone(url, user, password, 700) as second:
        res = await sdk.aclient.calls.dial(connection_id="app", to=user, from_=APP_NUMBER)
        assert res.data is not None
        inc = await second.next_incoming()  # the last registered rings
        assert inc.params["telnyx_call_control_id"] == res.data.call_control_id
        assert first.incoming.empty()
        await sdk.aclient.calls.actions.hangup(res.data.call_control_id)
    # Expired: neither the password nor a token logs in, and no new token is minted.
    token = await sdk.aclient.telephony_credentials.create_token(created.id)
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    upd = (await sdk.aclient.telephony_credentials.update(created.id, expires_at=past)).data
    assert upd is not None and upd.expired is True
    expired = await sdk.aclient.telephony_credentials.list(filter={"status": "expired"})
    assert [c.id for c in expired.data] == [created.id]
    assert sdk.switch.accounts.check_password(user, password) is None
    assert sdk.switch.accounts.check_token(token) is None
    with pytest.raises(RuntimeError, match="login"):
        async with Phone(url, user, password):
            pass
    with pytest.raises(telnyx.UnprocessableEntityError):
        await sdk.aclient.telephony_credentials.create_token(created.id)


async def test_e2e_softphone_client_logs_in_with_a_minted_token_and_receives_a_call(sdk: SdkEnv) -> None:
    cred = (await sdk.run(sdk.client.telephony_credentials.create, connection_id="app", name="e2e")).data
    assert cred is not None
    token = await sdk.run(sdk.client.telephony_credentials.create_token, cred.id)
    c = Client(url=sdk.switch.url, credentials=Credentials(token=token), audio=AudioConfig(backend="null"),
               ice_servers=[])
    got: asyncio.Queue[Any] = asyncio.Queue()
    c.on("call.incoming", lambda e: got.put_nowait(e.call_id))
    await c.connect()
    try:
        assert cred.sip_username is not None
        res = await sdk.run(sdk.client.calls.dial, connection_id="app", to=cred.sip_username, from_=APP_NUMBER)
        assert res.data is not None
        ccid = res.data.call_control_id
        call = c.calls[await asyncio.wait_for(got.get(), 10)]
        assert call.telnyx_call_control_id == ccid and call.remote_number == APP_NUMBER
        await call.answer()
        await call.wait_state(CallState.ACTIVE, timeout=10)
        await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == ccid)
        status = await sdk.run(sdk.client.calls.retrieve_status, ccid)
        assert status.data is not None and status.data.is_alive
        await sdk.run(sdk.client.calls.actions.hangup, ccid)
        await call.wait_ended(timeout=10)
    finally:
        await c.close()


async def test_credentials_survive_a_restart(tmp_path: Path) -> None:
    async with sdk_env(tmp_path) as env:
        cred = (await env.aclient.telephony_credentials.create(connection_id="app", name="kept", tag="t")).data
        assert cred is not None
        store = tmp_path / "switch-data" / rest_credentials.STORE_FILE
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
    async with sdk_env(tmp_path) as env:
        got = (await env.aclient.telephony_credentials.retrieve(cred.id)).data
        assert got is not None
        assert (got.sip_username, got.sip_password, got.name, got.tag, got.created_at) == (
            cred.sip_username, cred.sip_password, "kept", "t", cred.created_at)
        assert got.sip_username is not None and got.sip_password is not None
        async with Phone(env.switch.url, got.sip_username, got.sip_password):
            pass
