"""Accounts look users up in dicts (softphone.switch.accounts): rebuilt whenever the connections change,
however they change (REST credentials, or a test editing the list in place)."""

from __future__ import annotations

import dataclasses

from softphone.switch.accounts import Connection, Credential, default_accounts


def test_logins_follow_every_kind_of_change() -> None:
    accts = default_accounts()
    assert accts.check_password("demo", "demo-secret") is not None
    assert accts.check_password("demo", "demo-secreT") is None and accts.check_password("demo", "") is None
    assert accts.check_password("nobody", "x") is None
    # REST: a new credential logs in at once; removed, it does not.
    cred = accts.add_credential("john1234", username="newcred", password="pw")
    assert accts.check_password("newcred", "pw") is not None and accts.credential_by_id(cred.id) == cred
    accts.remove_credential(cred.id)
    assert accts.check_password("newcred", "pw") is None and accts.credential_by_id(cred.id) is None
    # In place: append, replace an item, replace the whole list.
    accts.connections.append(Connection("extra", "extra", "extra-pw", credentials=(Credential("c9", "p9", "extra"),)))
    assert accts.check_password("extra", "extra-pw") is not None and accts.check_password("c9", "p9") is not None
    demo = accts.by_sip_username("demo")
    assert demo is not None
    accts.connections[accts.connections.index(demo)] = dataclasses.replace(demo, password="changed")
    assert accts.check_password("demo", "demo-secret") is None and accts.check_password("demo", "changed") is not None
    accts.connections[:] = [c for c in accts.connections if c.id != "extra"]
    assert accts.check_password("c9", "p9") is None and accts.by_sip_username("extra") is None


def test_the_first_definition_of_a_name_wins_as_before() -> None:
    accts = default_accounts()
    accts.connections.append(Connection("dup", "demo", "other-pw"))
    login = accts.check_password("demo", "demo-secret")
    assert login is not None and login.connection_id == "demo"
    assert accts.check_password("demo", "other-pw") is None
