"""One DTLS certificate per process, shared by every ``RTCPeerConnection`` (as browsers do).

aiortc makes a fresh ECDSA key and X.509 certificate in every ``RTCPeerConnection.__init__``
(``RTCCertificate.generateCertificate()``): about a fifth of the switch's CPU per call setup.
Browsers keep one certificate per origin for weeks; WebRTC (RFC 8827 §6.5, RFC 8122) only needs
the fingerprint in the SDP to match the certificate the DTLS handshake presents, which stays
true with one certificate reused across connections.

aiortc 1.16 offers no public way to pass a certificate (``RTCConfiguration`` has no
``certificates``), so :func:`new_peer_connection` builds the connection while the name
``aiortc.rtcpeerconnection.RTCCertificate`` (the one its ``__init__`` calls) points at a factory
that hands out the process certificate, under a lock, and puts the name back at once. Nothing
else in that module uses the name. The shim is guarded: it is used only on the aiortc versions
in :data:`TESTED_AIORTC` whose ``__init__`` still makes its certificate that way; otherwise
every connection gets its own certificate as before (one warning), and
``tests/unit/switch/test_dtls_cert_unit.py`` fails loudly so the guard is looked at.

The certificate is replaced :data:`ROTATE_BEFORE_S` before it expires (aiortc's are valid 30
days); connections already made keep the one they have.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import threading

import aiortc
from aiortc import RTCCertificate, RTCConfiguration, RTCPeerConnection
from aiortc import rtcpeerconnection as _pc_module

logger = logging.getLogger(__name__)

TESTED_AIORTC = ("1.16.",)
"""aiortc version prefixes this shim was checked against (see the module docstring)."""
ROTATE_BEFORE_S = 2 * 86400.0
"""A certificate this close to expiry is replaced by a fresh one."""

_NAMESPACE = vars(_pc_module)
"""The globals ``RTCPeerConnection.__init__`` looks ``RTCCertificate`` up in."""
_lock = threading.Lock()
_current: RTCCertificate | None = None
_supported: bool | None = None
generated = 0
"""Certificates this process has made through :func:`process_certificate` (for tests and benches)."""
connections_made = 0
"""``RTCPeerConnection`` objects made through :func:`new_peer_connection`: every MediaPeer of this process
(the switch's tests count them: a rejected call must make none)."""


def reuse_supported() -> bool:
    """True when the installed aiortc is one the shim knows (version and ``__init__`` shape)."""
    global _supported
    if _supported is None:
        version = str(aiortc.__version__)
        try:
            source = inspect.getsource(RTCPeerConnection.__init__)
        except (OSError, TypeError):
            source = ""
        _supported = (
            version.startswith(TESTED_AIORTC)
            and "RTCCertificate.generateCertificate()" in source
            and _NAMESPACE.get("RTCCertificate") is RTCCertificate
        )
        if not _supported:
            logger.warning("aiortc %s: DTLS certificate reuse is off (the shim was tested on %s)", version,
                           ", ".join(TESTED_AIORTC))
    return _supported


def process_certificate(now: datetime.datetime | None = None) -> RTCCertificate:
    """This process's DTLS certificate (made on first use, replaced when close to expiry)."""
    global _current, generated
    t = now if now is not None else datetime.datetime.now(datetime.UTC)
    cert = _current
    if cert is None or (cert.expires - t).total_seconds() < ROTATE_BEFORE_S:
        cert = RTCCertificate.generateCertificate()
        generated += 1
        _current = cert
    return cert


class _SharedCertificate:
    """Stands in for ``RTCCertificate`` inside ``RTCPeerConnection.__init__`` only."""

    @staticmethod
    def generateCertificate() -> RTCCertificate:
        return process_certificate()


def new_peer_connection(configuration: RTCConfiguration | None = None) -> RTCPeerConnection:
    """``RTCPeerConnection(configuration)`` using the process certificate (see the module docstring)."""
    global connections_made
    connections_made += 1
    if not reuse_supported():
        return RTCPeerConnection(configuration=configuration)
    with _lock:
        _NAMESPACE["RTCCertificate"] = _SharedCertificate
        try:
            return RTCPeerConnection(configuration=configuration)
        finally:
            _NAMESPACE["RTCCertificate"] = RTCCertificate
