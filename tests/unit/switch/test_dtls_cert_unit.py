"""One DTLS certificate per process (softphone.media.dtls_cert): reused, scoped, rotated, version-guarded.

No sockets: ``createOffer`` writes the fingerprint without gathering candidates.
"""

from __future__ import annotations

import datetime

import aiortc
from aiortc import RTCCertificate, RTCPeerConnection
from aiortc import rtcpeerconnection as pc_module

from softphone.media import dtls_cert


async def _fingerprint(pc: RTCPeerConnection) -> str:
    pc.addTransceiver("audio", direction="sendrecv")
    try:
        offer = await pc.createOffer()
        lines = [ln for ln in offer.sdp.splitlines() if ln.startswith("a=fingerprint:sha-256 ")]
        assert len(lines) == 1, offer.sdp
        return lines[0]
    finally:
        await pc.close()


def test_the_installed_aiortc_is_one_the_shim_knows() -> None:
    """Fails loudly when aiortc changes: check dtls_cert's shim against the new RTCPeerConnection.__init__,
    then add the version to TESTED_AIORTC."""
    assert dtls_cert.reuse_supported(), (
        f"aiortc {aiortc.__version__}: softphone.media.dtls_cert does not know this version "
        f"(tested {dtls_cert.TESTED_AIORTC}); every call would make its own DTLS certificate again"
    )


async def test_two_connections_share_the_process_certificate() -> None:
    first = await _fingerprint(dtls_cert.new_peer_connection())
    made = dtls_cert.generated
    second = await _fingerprint(dtls_cert.new_peer_connection())
    assert first == second
    assert dtls_cert.generated == made  # the second one made no certificate
    cert = dtls_cert.process_certificate()
    fp = next(f for f in cert.getFingerprints() if f.algorithm == "sha-256")
    assert first == f"a=fingerprint:sha-256 {fp.value}"


async def test_the_shim_is_scoped_to_its_own_connections() -> None:
    shared = await _fingerprint(dtls_cert.new_peer_connection())
    assert vars(pc_module)["RTCCertificate"] is RTCCertificate  # the name is put back at once
    own = await _fingerprint(RTCPeerConnection())  # a plain connection still makes its own
    assert own != shared


def test_a_certificate_close_to_expiry_is_replaced_by_a_valid_one() -> None:
    cert = dtls_cert.process_certificate()
    now = datetime.datetime.now(datetime.UTC)
    assert (cert.expires - now).total_seconds() > dtls_cert.ROTATE_BEFORE_S
    assert dtls_cert.process_certificate() is cert
    late = cert.expires - datetime.timedelta(seconds=dtls_cert.ROTATE_BEFORE_S / 2)
    fresh = dtls_cert.process_certificate(now=late)
    assert fresh is not cert
    assert fresh.getFingerprints()[0].value != cert.getFingerprints()[0].value
    assert (fresh.expires - now).total_seconds() > dtls_cert.ROTATE_BEFORE_S
    assert dtls_cert.process_certificate() is fresh
