"""The switch's loopback rule (switch/hosts.py) is stricter than the client's (config.is_loopback_host)."""

from __future__ import annotations

import pytest

from softphone.config import is_loopback_host as client_rule
from softphone.switch.hosts import is_loopback_host


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.9.9.9", "::1", "[::1]"])
def test_loopback(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "example.com", "", "::", "localhost.example.com"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


def test_dot_localhost_names_are_not_trusted_by_the_switch() -> None:
    """The switch allows the built-in JWT secret and plain-http audio_url only on loopback; a
    ``*.localhost`` name may resolve anywhere, so unlike the client's rule it does not count."""
    assert client_rule("app.localhost") and not is_loopback_host("app.localhost")
