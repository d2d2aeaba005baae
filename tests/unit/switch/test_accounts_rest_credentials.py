"""Accounts changed at run time (the REST credentials): ids, add/update/remove, expiry at login,
tokens naming a credential by id (REST) or by username (``softphone switch token``)."""

from __future__ import annotations

import time
import uuid

import pytest

from softphone.switch.accounts import (
    DEFAULT_JWT_SECRET,
    GENCRED1_USER,
    Credential,
    default_accounts,
    mint_token,
)


def test_file_credentials_have_stable_uuid_ids() -> None:
    a, b = default_accounts(), default_accounts()
    ids = [c.id for c in a.all_credentials()]
    assert ids == [c.id for c in b.all_credentials()] and len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 5 for i in ids)
    cred = a.credential(GENCRED1_USER)
    assert cred is not None and a.credential_by_id(cred.id) is cred
    assert Credential("x", "p", "c", id="given").id == "given"


def test_add_update_remove_and_login_rules() -> None:
    accts = default_accounts()
    cred = accts.add_credential("john1234", name="n", tag="t")
    assert cred.username.startswith("gencred") and len(cred.password) >= 32 and cred.created_at > 0
    assert accts.check_password(cred.username, cred.password) is not None  # logs in at once
    with pytest.raises(KeyError):
        accts.add_credential("nope")
    with pytest.raises(ValueError):
        accts.add_credential("john1234", username=GENCRED1_USER)
    token = mint_token(cred.username, DEFAULT_JWT_SECRET, 60, credential_id=cred.id)
    login = accts.token_login(token)
    assert login.slot == cred.username and login.via_token
    legacy = mint_token(GENCRED1_USER, DEFAULT_JWT_SECRET, 60)  # telephony_credential_id = username
    assert accts.check_token(legacy) is not None

    moved = accts.update_credential(cred.id, connection_id="alice", name="m", now=cred.created_at + 5)
    assert moved.connection_id == "alice" and moved.name == "m" and moved.tag == "t" and moved.id == cred.id
    assert moved.updated_at == cred.created_at + 5
    login2 = accts.check_password(cred.username, cred.password)
    assert login2 is not None and login2.connection_id == "alice"
    with pytest.raises(KeyError):
        accts.update_credential(cred.id, connection_id="nope")

    accts.update_credential(cred.id, expires_at=time.time() - 1)
    assert accts.check_password(cred.username, cred.password) is None
    assert accts.check_token(token) is None
    accts.update_credential(cred.id, expires_at=None)
    assert accts.check_token(token) is not None

    gone = accts.remove_credential(cred.id)
    assert gone.id == cred.id and accts.credential_by_id(cred.id) is None
    assert accts.check_password(cred.username, cred.password) is None and accts.check_token(token) is None
    with pytest.raises(KeyError):
        accts.remove_credential(cred.id)
