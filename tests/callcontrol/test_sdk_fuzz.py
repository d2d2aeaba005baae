"""Hypothesis against the routes added for the SDK (credentials and tokens, queues, active calls):
every answer is below 500, in Telnyx's shape (a JWT as text/plain for a token), and the switch keeps
serving its call; created credentials stay consistent with the accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ccfixtures import API_KEY
from httpfuzz import FuzzTarget, json_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

FIELDS = ["connection_id", "name", "tag", "expires_at", "sip_username", "sip_password", "id", "command_id"]
IDS = ["@cred0@", "@cred1@", "x", "%00", "..", "a%2Fb", "00000000-0000-0000-0000-000000000000"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    t = FuzzTarget(Path(tmp_path_factory.mktemp("fuzz-sdk"))).start()
    yield t
    t.stop()


def paths() -> st.SearchStrategy[str]:
    ids = st.sampled_from(IDS)
    names = st.sampled_from(["support", "q", "", "%20", "x" * 300])
    return st.one_of(
        st.just("/v2/telephony_credentials"),
        ids.map(lambda i: f"/v2/telephony_credentials/{i}"),
        ids.map(lambda i: f"/v2/telephony_credentials/{i}/token"),
        st.just("/v2/queues"),
        names.map(lambda n: f"/v2/queues/{n}"),
        names.map(lambda n: f"/v2/queues/{n}/calls"),
        st.tuples(names, st.sampled_from(["@leg0@", "v3:nope"])).map(lambda t: f"/v2/queues/{t[0]}/calls/{t[1]}"),
        st.sampled_from(["app", "john1234", "nope", ""]).map(lambda c: f"/v2/connections/{c}/active_calls"),
    )


queries = st.one_of(
    st.just(""),
    st.dictionaries(
        st.sampled_from(["page[number]", "page[size]", "filter[tag]", "filter[name]", "filter[status]",
                         "filter[resource_id]", "filter[sip_username]", "filter[x]", "page", "filter"]),
        st.one_of(st.text(max_size=8), st.sampled_from(["0", "-1", "1", "2", "250", "99999999999999999999"])),
        max_size=3,
    ).map(lambda d: "?" + "&".join(f"{k}={v}" for k, v in d.items()) if d else ""),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]))
    path = draw(paths()) + draw(queries)
    body = json.dumps(draw(st.dictionaries(st.sampled_from(FIELDS), st.one_of(
        json_values, st.sampled_from(["app", "john1234", "nope", "2099-01-01T00:00:00Z", "2000-01-01", "today"])),
        max_size=4))).encode()
    auth = draw(st.sampled_from([f"Authorization: Bearer {API_KEY}\r\n", "", "Authorization: Bearer KEYwrong\r\n"]))
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("utf-8", "surrogatepass") + body


creates = st.builds(
    lambda name, conn: (
        f"POST /v2/telephony_credentials HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Length: {len(b := json.dumps({'connection_id': conn, 'name': name}).encode())}\r\n\r\n"
    ).encode() + b,
    st.text(max_size=20),
    st.sampled_from(["app", "john1234"]),
)


def send(target: FuzzTarget, raw: bytes) -> tuple[int, bytes]:
    sw = target.switch
    assert sw is not None
    creds = [c.id for c in sw.accounts.all_credentials() if c.created_at][:2]
    for i, slot in enumerate(["@cred0@", "@cred1@"]):
        raw = raw.replace(slot.encode(), (creds[i % len(creds)] if creds else "gone").encode())
    return target.send(raw)


def test_sdk_routes_fuzz(target: FuzzTarget) -> None:
    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.one_of(requests(), creates))
    def one(raw: bytes) -> None:
        status, body = send(target, raw)
        assert status != 0 and status < 500, (status, body[:300])
        if 200 <= status < 300 and raw.split(b" ", 2)[1].split(b"?")[0].endswith(b"/token"):
            assert body.count(b".") == 2  # a JWT, text/plain
            return
        obj = json.loads(body)
        if status >= 400:
            assert set(obj["errors"][0]) == {"code", "title", "detail"}, obj
        else:
            assert "data" in obj, obj

    one()
    assert target.call_alive(), "the call placed before the fuzz stopped hearing its echo"
    assert not target.errors.records, [r.getMessage() for r in target.errors.records[:5]]
    sw = target.switch
    assert sw is not None
    assert any(c.created_at for c in sw.accounts.all_credentials())  # the fuzz did create some
    usernames = sw.accounts.usernames()
    assert len(usernames) == len(set(usernames))  # created credentials never collide
