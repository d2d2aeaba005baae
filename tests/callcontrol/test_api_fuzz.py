"""Property tests of the commands API (issue 10, item 6): any request gets a 4xx or 2xx answer in
Telnyx's shape, never a 500 or a traceback, and calls keep being served meanwhile.

Bounded for the suite (about 3,000 cases); ``bench/http_fuzz.py`` runs the same generators for
10,000 or more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpfuzz import FuzzTarget, check_response, raw_requests, requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The switch runs on another thread and uses `random` (ids, ICE) while hypothesis draws: harmless here.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

FUZZ = settings(max_examples=1200, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    t = FuzzTarget(Path(tmp_path_factory.mktemp("fuzz-switch"))).start()
    yield t
    t.stop()


def test_structured_requests(target: FuzzTarget) -> None:
    @FUZZ
    @given(requests())
    def one(raw: bytes) -> None:
        check_response(*target.send(raw))

    one()
    assert target.call_alive(), "the call placed before the fuzz stopped hearing its echo"
    assert not target.errors.records, [r.getMessage() for r in target.errors.records[:5]]


def test_raw_bytes(target: FuzzTarget) -> None:
    @settings(FUZZ, max_examples=600)
    @given(raw_requests)
    def one(raw: bytes) -> None:
        check_response(*target.send(raw))

    one()
    assert not target.errors.records, [r.getMessage() for r in target.errors.records[:5]]


def test_commands_on_live_legs(target: FuzzTarget) -> None:
    """Bodies aimed at real parked/answered legs (created first through the outside route)."""
    from ccfixtures import API_KEY, APP_NUMBER
    from httpfuzz import LEG_SLOTS, bodies

    for i in range(3):
        body = f'{{"from": "+1555000100{i}", "to": "{APP_NUMBER}"}}'.encode()
        status, _ = target.send(b"POST /switch/pstn_calls HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert status == 200

    actions = st.sampled_from(["answer", "bridge", "transfer", "enqueue", "leave_queue", "gather", "playback_start",
                               "playback_stop", "hangup"])

    @settings(FUZZ, max_examples=1200)
    @given(st.sampled_from(LEG_SLOTS), actions, bodies())
    def one(leg: str, action: str, body: dict[str, object]) -> None:
        if not target.live_legs():
            outside = f'{{"from": "+15550001009", "to": "{APP_NUMBER}"}}'.encode()
            target.send(b"POST /switch/pstn_calls HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(outside) + outside)
        payload = json.dumps(body).encode()
        raw = (f"POST /v2/calls/{leg}/actions/{action} HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\n"
               f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        check_response(*target.send(raw))

    one()
    assert target.new_call_works(), "a new call after the fuzz did not hear its echo"
    assert target.call_alive()
    assert not target.errors.records, [r.getMessage() for r in target.errors.records[:5]]
