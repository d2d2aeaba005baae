"""Exhaustive checks of the transition tables, and GatewayState classification."""

from __future__ import annotations

import itertools

import pytest

from softphone.errors import LocalProtocolError
from softphone.protocol.states import (
    CALL_TRANSITIONS,
    CLIENT_TRANSITIONS,
    CallState,
    ClientState,
    GatewayState,
    check_call_transition,
    check_client_transition,
)


def test_tables_cover_every_state() -> None:
    assert set(CALL_TRANSITIONS) == set(CallState)
    assert set(CLIENT_TRANSITIONS) == set(ClientState)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(CallState, CallState)))
def test_call_transition(old: CallState, new: CallState) -> None:
    if new in CALL_TRANSITIONS[old]:
        check_call_transition(old, new)
    else:
        with pytest.raises(LocalProtocolError, match=f"from {old.value} to {new.value}"):
            check_call_transition(old, new)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(ClientState, ClientState)))
def test_client_transition(old: ClientState, new: ClientState) -> None:
    if new in CLIENT_TRANSITIONS[old]:
        check_client_transition(old, new)
    else:
        with pytest.raises(LocalProtocolError, match=f"from {old.value} to {new.value}"):
            check_client_transition(old, new)


def test_call_table_invariants() -> None:
    for state in CallState:
        if not state.is_terminal:
            assert CallState.HANGUP in CALL_TRANSITIONS[state]
    assert CALL_TRANSITIONS[CallState.HANGUP] == {CallState.DESTROYED}
    assert CALL_TRANSITIONS[CallState.DESTROYED] == frozenset()
    assert CLIENT_TRANSITIONS[ClientState.CLOSED] == frozenset()
    assert {s for s in CallState if s.is_established} == {CallState.ACTIVE, CallState.HELD}


@pytest.mark.parametrize("state", list(GatewayState))
def test_gateway_state_classes(state: GatewayState) -> None:
    flags = [state.is_ready, state.is_retry, state.is_failure]
    assert sum(flags) <= 1
    assert GatewayState.parse(state.value) is state
    assert GatewayState.parse(state.value.lower()) is state


def test_gateway_parse_unknown() -> None:
    assert GatewayState.parse("nonsense") is GatewayState.UNKNOWN
    assert GatewayState.parse(None) is GatewayState.UNKNOWN
    assert GatewayState.parse(3) is GatewayState.UNKNOWN
    assert GatewayState.REGISTER.is_ready and GatewayState.REGED.is_ready
    assert GatewayState.NOREG.is_retry and GatewayState.UNREGED.is_retry
    assert GatewayState.FAILED.is_failure and GatewayState.FAIL_WAIT.is_failure
