"""Host names the switch treats as local (switch core: the server and Call Control both use it)."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ``::1``, also in brackets).

    Stricter than :func:`softphone.config.is_loopback_host` on purpose: ``*.localhost`` names are
    not accepted, because the switch uses this to allow the built-in JWT secret and to fetch
    ``audio_url`` over plain http, and such a name may resolve anywhere.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
