"""Accounts, JWT, routing, records and the CLI sub-app, without sockets (plus one TLS check)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softphone.errors import ConfigError
from softphone.switch import default_accounts, load_accounts, mint_token, verify_token
from softphone.switch.accounts import DEFAULT_JWT_SECRET, accounts_from_dict
from softphone.switch.cli import app
from softphone.switch.records import CallRecord, RecordStore, billed_cost, read_records, render_records
from softphone.switch.registry import Registry
from softphone.switch.routing import NoRoute, ServiceRoute, SlotRoute, destination_user, route

EXAMPLE = Path(__file__).parents[3] / "softphone" / "switch" / "accounts.example.toml"


def test_example_toml_loads() -> None:
    accts = load_accounts(EXAMPLE)
    assert accts.jwt_secret == "change-me"
    assert accts.credential("gencred2") is not None
    assert accts.by_number("+13125550122") is not None
    assert accts.check_password("gencred1", "gencred1-secret") is not None


@pytest.mark.parametrize(
    "data",
    [
        {"connection": [{"id": "x"}]},
        {"connection": [{"id": "x", "password": "p", "inbound_format": "weird"}]},
        {"connection": [{"id": "x", "password": "p"}, {"id": "x", "password": "q"}]},
        {"jwt_secret": 3},
    ],
)
def test_bad_accounts_raise_config_error(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        accounts_from_dict(data)


def test_jwt_round_trip_and_expiry() -> None:
    tok = mint_token("gencred1", DEFAULT_JWT_SECRET, 60)
    claims = verify_token(tok, DEFAULT_JWT_SECRET)
    assert claims is not None
    assert claims["sub"] == claims["telephony_credential_id"] == "gencred1"
    assert {"exp", "iat", "jti"} <= set(claims)
    assert verify_token(tok, DEFAULT_JWT_SECRET, now=time.time() + 120) is None
    assert verify_token(tok, "x" * 40) is None
    login = default_accounts().check_token(tok)
    assert login is not None and login.slot == "gencred1" and login.via_token


def test_routing_table() -> None:
    a = default_accounts()
    assert destination_user("sip:alice@example.com;transport=ws") == "alice"
    assert route("echo", a) == route("+13128889999", a) == route("15550001001", a)
    assert isinstance(route("sip:tone@x", a), ServiceRoute)
    assert route("alice", a) == SlotRoute("alice", "alice")
    assert route("+13125550111", a) == SlotRoute("alice", "alice")
    assert route("gencred1", a) == SlotRoute("gencred1", "john1234")
    r = route("+13125550122", a)
    assert isinstance(r, NoRoute) and r.cause == "USER_NOT_REGISTERED"
    r = route("zzz", a)
    assert isinstance(r, NoRoute) and r.cause == "UNALLOCATED_NUMBER"


def test_registry_stack() -> None:
    reg: Registry[str] = Registry()
    reg.register("s", "1", "one")
    reg.register("s", "2", "two")
    reg.register("t", "3", "three")
    assert reg.lookup("s") == "two"
    reg.unregister("2")
    assert reg.lookup("s") == "one"
    reg.unregister("1")
    assert reg.lookup("s") is None and reg.lookup("t") == "three"


def test_billing_and_records(tmp_path: Path) -> None:
    assert billed_cost(0, 0.002) == 0.0
    assert billed_cost(60.0, 0.002) == pytest.approx(0.002)
    assert billed_cost(60.2, 0.002) == pytest.approx(61 * 0.002 / 60)
    store = RecordStore(tmp_path / "sub" / "calls.jsonl")
    rec = CallRecord("c1", "a", "inbound", "s1", "demo", "demo", "echo", start=1000.0, answer=1001.0, end=1031.5)
    rec.cause, rec.codec = "NORMAL_CLEARING", "opus/48000"
    store.add(rec)
    back = read_records(store.path)
    assert back[0].cost == pytest.approx(31 * 0.002 / 60)
    table = render_records(back)
    assert "echo" in table and "1 leg(s)" in table
    assert json.loads(render_records(back, as_json=True))[0]["duration_s"] == 30.5


def test_cli_token_accounts_calls(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["token", "gencred1", "--ttl", "30"])
    assert res.exit_code == 0
    assert verify_token(res.output.strip(), DEFAULT_JWT_SECRET) is not None
    assert runner.invoke(app, ["token", "nobody"]).exit_code == 2
    res = runner.invoke(app, ["accounts"])
    assert res.exit_code == 0 and "gencred2" in res.output
    assert "secret" not in res.output
    res = runner.invoke(app, ["calls", "--json", "--records", str(tmp_path / "none.jsonl")])
    assert res.exit_code == 0 and json.loads(res.output) == []
