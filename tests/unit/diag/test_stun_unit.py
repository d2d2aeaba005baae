"""The STUN codec of softphone doctor against the RFC 5769 test vectors, and the URL parser."""

from __future__ import annotations

import pytest

from softphone.diag import stun
from softphone.diag.stun import Attr, StunError, StunMessage

TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
# RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY
# (short-term password "VOkJxbRl1RmTxUk/WvJxBt") and FINGERPRINT.
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e20746573742063"
    "6c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
# RFC 5769 §2.2: the IPv4 Binding response (192.0.2.1:32853) with SOFTWARE "test vector".
SAMPLE_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"


def test_the_rfc5769_request_decodes_and_verifies() -> None:
    msg = stun.decode(SAMPLE_REQUEST)
    assert (msg.method, msg.cls, msg.txid) == (stun.BINDING, stun.REQUEST, TXID)
    assert msg.text(Attr.SOFTWARE) == "STUN test client"
    assert msg.text(Attr.USERNAME) == "evtj:h6vY"
    assert stun.check_integrity(SAMPLE_REQUEST, PASSWORD)
    assert not stun.check_integrity(SAMPLE_REQUEST, b"wrong")
    assert stun.check_fingerprint(SAMPLE_REQUEST) is True
    damaged = SAMPLE_REQUEST[:-1] + bytes([SAMPLE_REQUEST[-1] ^ 1])
    assert stun.check_fingerprint(damaged) is False


def test_the_rfc5769_response_gives_the_mapped_address() -> None:
    msg = stun.decode(SAMPLE_RESPONSE)
    assert (msg.method, msg.cls) == (stun.BINDING, stun.SUCCESS)
    assert msg.address() == ("192.0.2.1", 32853)
    assert msg.text(Attr.SOFTWARE) == "test vector"
    assert stun.check_integrity(SAMPLE_RESPONSE, PASSWORD)
    assert stun.check_fingerprint(SAMPLE_RESPONSE) is True


def test_encode_rebuilds_the_rfc5769_response_byte_for_byte() -> None:
    """Padding, the length trick of MESSAGE-INTEGRITY and FINGERPRINT, all as the RFC has them."""
    attrs = ((Attr.SOFTWARE, b"test vector"),
             (Attr.XOR_MAPPED_ADDRESS, stun.encode_xor_address("192.0.2.1", 32853, TXID)))
    # The RFC pads SOFTWARE with a space (0x20); we pad with zeros, so compare after the same padding.
    ours = stun.encode(StunMessage(stun.BINDING, stun.SUCCESS, TXID, attrs), integrity_key=PASSWORD,
                       fingerprint=True)
    assert len(ours) == len(SAMPLE_RESPONSE)
    assert stun.decode(ours).attrs[:2] == stun.decode(SAMPLE_RESPONSE).attrs[:2]
    assert stun.check_integrity(ours, PASSWORD) and stun.check_fingerprint(ours) is True


def test_the_ipv6_xor_address_uses_the_transaction_id() -> None:
    # RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    raw = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")
    assert stun.xor_address(raw, TXID) == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert stun.encode_xor_address("2001:db8:1234:5678:11:2233:4455:6677", 32853, TXID) == raw


def test_message_types_put_the_class_bits_between_the_method_bits() -> None:
    for method in (stun.BINDING, stun.ALLOCATE, stun.REFRESH):
        for cls in (stun.REQUEST, stun.INDICATION, stun.SUCCESS, stun.ERROR):
            msg = stun.decode(stun.encode(StunMessage(method, cls, TXID)))
            assert (msg.method, msg.cls) == (method, cls)
    assert stun.encode(StunMessage(stun.ALLOCATE, stun.ERROR, TXID))[:2] == b"\x01\x13"
    assert stun.encode(StunMessage(stun.REFRESH, stun.SUCCESS, TXID))[:2] == b"\x01\x04"


def test_error_code_and_long_term_key() -> None:
    value = b"\x00\x00\x04\x01Unauthorized"
    msg = StunMessage(stun.ALLOCATE, stun.ERROR, TXID, ((Attr.ERROR_CODE, value),))
    assert stun.decode(stun.encode(msg)).error() == (401, "Unauthorized")
    # RFC 5389 §15.4: key = MD5("user:realm:pass").
    assert stun.long_term_key("user", "realm", "pass").hex() == "8493fbc53ba582fb4c044c456bdc40eb"


@pytest.mark.parametrize("data", [b"", b"\x00" * 19, b"\xc0" + b"\x00" * 19,
                                  bytes.fromhex("0001000400000000") + TXID + b"\x00\x06"])
def test_garbage_is_a_stun_error(data: bytes) -> None:
    with pytest.raises(StunError):
        stun.decode(data)


@pytest.mark.parametrize("url, parsed", [
    ("stun:stun.telnyx.com:3478", ("stun", "stun.telnyx.com", 3478, "udp")),
    ("stun:stun.l.google.com:19302", ("stun", "stun.l.google.com", 19302, "udp")),
    ("turn:turn.telnyx.com:3478?transport=tcp", ("turn", "turn.telnyx.com", 3478, "tcp")),
    ("turns:turn.telnyx.com:443", ("turns", "turn.telnyx.com", 443, "tls")),
    ("turn:[::1]", ("turn", "::1", 3478, "udp")),
    ("stuns:example.org", ("stuns", "example.org", 5349, "tls")),
])
def test_ice_urls(url: str, parsed: tuple[str, str, int, str]) -> None:
    ice = stun.parse_ice_url(url)
    assert (ice.scheme, ice.host, ice.port, ice.transport) == parsed
    assert stun.parse_ice_url(str(ice)) == ice


@pytest.mark.parametrize("url", ["http://x", "stun:", "stun:host:port", "turn:host?transport=sctp"])
def test_bad_ice_urls(url: str) -> None:
    with pytest.raises(StunError):
        stun.parse_ice_url(url)
