"""A small STUN/TURN client for ``softphone doctor``: Binding (RFC 5389) and Allocate (RFC 5766).

Two halves. The message codec is pure (bytes in, :class:`StunMessage` out and back): the 20-byte
header (type, length, magic cookie ``0x2112A442``, 96-bit transaction id), TLV attributes padded to
4 bytes, ``XOR-MAPPED-ADDRESS``/``XOR-RELAYED-ADDRESS`` (RFC 5389 §15.2), ``ERROR-CODE`` (§15.6),
``MESSAGE-INTEGRITY`` (HMAC-SHA1, §15.4; long-term key ``MD5(username:realm:password)``, §15.4 and
§10.2) and ``FINGERPRINT`` (CRC-32 xor ``0x5354554E``, §15.5). The I/O half runs one transaction
over UDP (retransmitted at 0.5 s, 1 s, 2 s ..., RFC 5389 §7.2.1), TCP or TLS (messages framed by
their own length, §7.2.2), and :func:`binding` / :func:`turn_allocate` build on it.

:func:`turn_allocate` follows the long-term credential dance: an unauthenticated Allocate is
answered ``401 Unauthorized`` with ``REALM`` and ``NONCE``; the same request again with
``USERNAME``, ``REALM``, ``NONCE`` and ``MESSAGE-INTEGRITY`` gets ``XOR-RELAYED-ADDRESS`` and
``LIFETIME`` (a ``438 Stale Nonce`` is retried once with the new nonce). The allocation is then
released with a ``Refresh`` of lifetime 0 (RFC 5766 §7). Passwords never appear in results or errors.
Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import os
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

__all__ = [
    "ALLOCATE",
    "BINDING",
    "MAGIC_COOKIE",
    "REFRESH",
    "AllocateResult",
    "Attr",
    "BindingResult",
    "Channel",
    "Exchange",
    "IceUrl",
    "StunError",
    "StunMessage",
    "StunTimeout",
    "binding",
    "check_fingerprint",
    "check_integrity",
    "decode",
    "encode",
    "encode_xor_address",
    "long_term_key",
    "message_length",
    "new_txid",
    "parse_ice_url",
    "transact",
    "turn_allocate",
    "xor_address",
]

MAGIC_COOKIE = 0x2112A442
_COOKIE = struct.pack("!I", MAGIC_COOKIE)
HEADER = 20

# Methods (RFC 5389 §18.1, RFC 5766 §13) and classes (the C1/C0 bits of the type, §6).
BINDING = 0x001
ALLOCATE = 0x003
REFRESH = 0x004
REQUEST, INDICATION, SUCCESS, ERROR = 0b00, 0b01, 0b10, 0b11


class Attr:
    """Attribute types (RFC 5389 §18.2, RFC 5766 §14)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    LIFETIME = 0x000D
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_TRANSPORT = 0x0019
    XOR_MAPPED_ADDRESS = 0x0020
    SOFTWARE = 0x8022
    FINGERPRINT = 0x8028


_FINGERPRINT_XOR = 0x5354554E
SOFTWARE = "softphone doctor"


class StunError(Exception):
    """A malformed STUN message, an error response, or a transport failure (never holds a password)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StunTimeout(StunError):
    """No answer within the timeout."""


@dataclass(frozen=True)
class StunMessage:
    """One STUN message: method, class, 12-byte transaction id and attributes in order."""

    method: int
    cls: int
    txid: bytes
    attrs: tuple[tuple[int, bytes], ...] = ()

    def get(self, attr: int) -> bytes | None:
        """The first value of ``attr``, or ``None``."""
        for kind, value in self.attrs:
            if kind == attr:
                return value
        return None

    def error(self) -> tuple[int, str] | None:
        """``(code, reason)`` of an ``ERROR-CODE`` attribute (RFC 5389 §15.6), else ``None``."""
        raw = self.get(Attr.ERROR_CODE)
        if raw is None or len(raw) < 4:
            return None
        return (raw[2] & 0x7) * 100 + raw[3], raw[4:].decode("utf-8", "replace")

    def text(self, attr: int) -> str:
        raw = self.get(attr)
        return raw.decode("utf-8", "replace") if raw is not None else ""

    def address(self, attr: int = Attr.XOR_MAPPED_ADDRESS) -> tuple[str, int] | None:
        """A decoded (XOR-)address attribute, or ``None``."""
        raw = self.get(attr)
        if raw is None:
            return None
        if attr == Attr.MAPPED_ADDRESS:
            return _plain_address(raw)
        return xor_address(raw, self.txid)


def _type(method: int, cls: int) -> int:
    # The class bits sit between method bits (RFC 5389 §6): M11..M7 C1 M6..M4 C0 M3..M0.
    return (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | ((cls & 1) << 4) | (
        (cls & 2) << 7)


def _untype(value: int) -> tuple[int, int]:
    method = (value & 0x000F) | ((value & 0x00E0) >> 1) | ((value & 0x3E00) >> 2)
    cls = ((value >> 4) & 1) | ((value >> 7) & 2)
    return method, cls


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * _pad(len(value))


def encode(msg: StunMessage, *, integrity_key: bytes | None = None, fingerprint: bool = False) -> bytes:
    """The wire form of ``msg``, with ``MESSAGE-INTEGRITY`` (keyed) and ``FINGERPRINT`` appended when asked."""
    if len(msg.txid) != 12:
        raise StunError("a transaction id is 12 bytes")
    body = b"".join(_attr(k, v) for k, v in msg.attrs)
    kind = _type(msg.method, msg.cls)
    if integrity_key is not None:
        # The length covers the MESSAGE-INTEGRITY attribute itself while the HMAC is computed (§15.4).
        head = struct.pack("!HH", kind, len(body) + 24) + _COOKIE + msg.txid
        mac = hmac.new(integrity_key, head + body, hashlib.sha1).digest()
        body += _attr(Attr.MESSAGE_INTEGRITY, mac)
    if fingerprint:
        head = struct.pack("!HH", kind, len(body) + 8) + _COOKIE + msg.txid
        crc = (zlib.crc32(head + body) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
        body += _attr(Attr.FINGERPRINT, struct.pack("!I", crc))
    return struct.pack("!HH", kind, len(body)) + _COOKIE + msg.txid + body


def message_length(header: bytes) -> int:
    """The total size of a message from its first 20 bytes (stream framing, RFC 5389 §7.2.2)."""
    if len(header) < HEADER or header[0] & 0xC0 or header[4:8] != _COOKIE:
        raise StunError("not a STUN message")
    (length,) = struct.unpack_from("!H", header, 2)
    return HEADER + int(length)


def decode(data: bytes) -> StunMessage:
    """Parse one message; :class:`StunError` when it is not a well-formed STUN message."""
    if len(data) < HEADER:
        raise StunError(f"short STUN message ({len(data)} bytes)")
    kind, length = struct.unpack_from("!HH", data, 0)
    if kind & 0xC000 or data[4:8] != _COOKIE:
        raise StunError("not a STUN message (no magic cookie)")
    if length % 4 or HEADER + length > len(data):
        raise StunError("bad STUN message length")
    method, cls = _untype(kind)
    attrs: list[tuple[int, bytes]] = []
    pos, end = HEADER, HEADER + length
    while pos < end:
        if pos + 4 > end:
            raise StunError("truncated STUN attribute")
        akind, alen = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + alen > end:
            raise StunError("truncated STUN attribute")
        attrs.append((akind, bytes(data[pos:pos + alen])))
        pos += alen + _pad(alen)
    return StunMessage(method, cls, bytes(data[8:20]), tuple(attrs))


def check_integrity(data: bytes, key: bytes) -> bool:
    """Whether the ``MESSAGE-INTEGRITY`` of the raw message ``data`` verifies with ``key``."""
    pos, end = HEADER, HEADER + struct.unpack_from("!H", data, 2)[0]
    while pos + 4 <= end:
        akind, alen = struct.unpack_from("!HH", data, pos)
        if akind == Attr.MESSAGE_INTEGRITY and alen == 20:
            head = data[:2] + struct.pack("!H", pos + 24 - HEADER) + data[4:HEADER]
            mac = hmac.new(key, head + data[HEADER:pos], hashlib.sha1).digest()
            return hmac.compare_digest(mac, data[pos + 4:pos + 24])
        pos += 4 + alen + _pad(alen)
    return False


def check_fingerprint(data: bytes) -> bool | None:
    """Whether the ``FINGERPRINT`` of ``data`` is right; ``None`` when it has none."""
    length = struct.unpack_from("!H", data, 2)[0]
    pos = HEADER + length - 8
    if length < 8 or struct.unpack_from("!HH", data, pos) != (Attr.FINGERPRINT, 4):
        return None
    crc = (zlib.crc32(data[:pos]) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
    return bool(struct.unpack_from("!I", data, pos + 4)[0] == crc)


def xor_address(raw: bytes, txid: bytes) -> tuple[str, int]:
    """Decode an ``XOR-MAPPED-ADDRESS``-shaped value (RFC 5389 §15.2) to ``(ip, port)``."""
    if len(raw) < 8:
        raise StunError("short XOR address")
    family = raw[1]
    port = struct.unpack_from("!H", raw, 2)[0] ^ (MAGIC_COOKIE >> 16)
    if family == 0x01:
        addr = bytes(a ^ b for a, b in zip(raw[4:8], _COOKIE, strict=True))
        return str(ipaddress.IPv4Address(addr)), port
    if family == 0x02 and len(raw) >= 20:
        addr = bytes(a ^ b for a, b in zip(raw[4:20], _COOKIE + txid, strict=True))
        return str(ipaddress.IPv6Address(addr)), port
    raise StunError(f"unknown address family {family}")


def encode_xor_address(ip: str, port: int, txid: bytes) -> bytes:
    """The ``XOR-MAPPED-ADDRESS`` value of ``(ip, port)`` (the inverse of :func:`xor_address`)."""
    addr = ipaddress.ip_address(ip)
    packed = addr.packed
    mask = _COOKIE if addr.version == 4 else _COOKIE + txid
    xored = bytes(a ^ b for a, b in zip(packed, mask, strict=True))
    return struct.pack("!BBH", 0, 1 if addr.version == 4 else 2, port ^ (MAGIC_COOKIE >> 16)) + xored


def _plain_address(raw: bytes) -> tuple[str, int]:
    if len(raw) < 8:
        raise StunError("short MAPPED-ADDRESS")
    port = struct.unpack_from("!H", raw, 2)[0]
    if raw[1] == 0x01:
        return str(ipaddress.IPv4Address(raw[4:8])), port
    return str(ipaddress.IPv6Address(raw[4:20])), port


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """The long-term credential key: ``MD5(username ":" realm ":" password)`` (RFC 5389 §15.4).

    SASLprep is not applied: ASCII credentials (every TURN service we know) are unchanged by it.
    """
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()


def new_txid() -> bytes:
    return os.urandom(12)


# --- URLs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IceUrl:
    """A ``stun:``/``stuns:``/``turn:``/``turns:`` URL (RFC 7064, RFC 7065)."""

    scheme: str
    host: str
    port: int
    transport: str  #: udp | tcp | tls

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = "" if self.transport == ("tls" if self.scheme.endswith("s") else "udp") else \
            f"?transport={self.transport}"
        return f"{self.scheme}:{host}:{self.port}{tail}"


def parse_ice_url(url: str) -> IceUrl:
    """Parse an ICE server URL; :class:`StunError` when it is not one."""
    scheme, sep, rest = url.strip().partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("stun", "stuns", "turn", "turns"):
        raise StunError(f"{url!r}: not a stun:, stuns:, turn: or turns: URL")
    rest, _, query = rest.partition("?")
    rest = rest.lstrip("/")
    secure = scheme.endswith("s")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = rest.partition(":")
    if not host:
        raise StunError(f"{url!r} has no host")
    try:
        port = int(port_text) if port_text else (5349 if secure else 3478)
    except ValueError:
        raise StunError(f"{url!r}: bad port {port_text!r}") from None
    transport = "tls" if secure else "udp"
    wanted = parse_qs(query).get("transport", [""])[0].lower()
    if wanted == "tcp":
        transport = "tls" if secure else "tcp"
    elif wanted and wanted != "udp":
        raise StunError(f"{url!r}: unknown transport {wanted!r}")
    return IceUrl(scheme, host, port, transport)


# --- I/O ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One answered transaction: the raw answer, the parsed one, the round trip and what it went over."""

    raw: bytes
    message: StunMessage
    rtt_ms: float
    server: tuple[str, int]
    local: tuple[str, int]
    retransmits: int = 0


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.error: Exception | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.error = exc
        self.queue.put_nowait(b"")


async def _resolve(host: str, port: int, transport: str) -> tuple[str, int]:
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        infos = await loop.getaddrinfo(host, port, type=kind)
    except OSError as exc:
        raise StunError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    if not infos:
        raise StunError(f"cannot resolve {host}")
    sockaddr = infos[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


class Channel:
    """One transport to one STUN/TURN server, kept for several transactions (a TURN allocation lives on
    its 5-tuple, RFC 5766 §2.2, so the Allocate and its Refresh must share it). Use ``async with``."""

    def __init__(self, url: IceUrl, *, timeout: float = 3.0, rto: float = 0.5,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.url, self.timeout, self.rto, self.ssl_context = url, timeout, rto, ssl_context
        self.server: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self._udp: tuple[asyncio.DatagramTransport, _UdpClient] | None = None
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @property
    def what(self) -> str:
        return f"{self.server[0]}:{self.server[1]} ({self.url.transport.upper()})"

    async def __aenter__(self) -> Channel:
        host, port = await _resolve(self.url.host, self.url.port, self.url.transport)
        self.server = (host, port)
        loop = asyncio.get_running_loop()
        if self.url.transport == "udp":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                transport, proto = await loop.create_datagram_endpoint(_UdpClient, remote_addr=(host, port),
                                                                       family=family)
            except OSError as exc:
                raise StunError(f"cannot send to {self.what}: {exc.strerror or exc}") from None
            self._udp = (transport, proto)
            sockname = transport.get_extra_info("sockname")
        else:
            ctx = (self.ssl_context or ssl.create_default_context()) if self.url.transport == "tls" else None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    host, port, ssl=ctx, server_hostname=self.url.host if ctx else None), self.timeout)
            except TimeoutError:
                raise StunTimeout(f"no connection to {self.what} in {self.timeout:g} s") from None
            except (OSError, ssl.SSLError) as exc:
                raise StunError(f"cannot connect to {self.what}: {getattr(exc, 'strerror', None) or exc}") from None
            self._stream = (reader, writer)
            sockname = writer.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1]))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._udp is not None:
            self._udp[0].close()
            self._udp = None
        if self._stream is not None:
            writer = self._stream[1]
            self._stream = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def request(self, request: bytes) -> Exchange:
        """Send ``request`` and wait for the answer with its transaction id.

        UDP retransmits at ``rto``, doubling (RFC 5389 §7.2.1) until ``timeout``; TCP/TLS send once.
        The round trip is measured from the last transmission (Karn: an answer to an earlier copy
        looks fast, never slow). :class:`StunTimeout` when nothing answers, :class:`StunError` otherwise.
        """
        txid = request[8:20]
        if self._udp is not None:
            return await self._udp_request(request, txid)
        if self._stream is None:
            raise StunError("the channel is not open")
        reader, writer = self._stream
        sent_at = time.perf_counter()
        try:
            writer.write(request)
            await writer.drain()
        except OSError as exc:
            raise StunError(f"cannot send to {self.what}: {exc.strerror or exc}") from None
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(HEADER), self.timeout)
                body = await asyncio.wait_for(reader.readexactly(message_length(head) - HEADER), self.timeout)
            except TimeoutError:
                raise StunTimeout(f"no answer from {self.what} in {self.timeout:g} s") from None
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise StunError(f"{self.what} closed the connection ({type(exc).__name__})") from None
            msg = decode(head + body)
            if msg.txid == txid:
                return Exchange(head + body, msg, (time.perf_counter() - sent_at) * 1000, self.server, self.local)

    async def _udp_request(self, request: bytes, txid: bytes) -> Exchange:
        assert self._udp is not None
        transport, proto = self._udp
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        wait, sends = self.rto, 0
        while True:
            sent_at = time.perf_counter()
            transport.sendto(request)
            sends += 1
            until = min(deadline, loop.time() + wait)
            while (left := until - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(proto.queue.get(), left)
                except TimeoutError:
                    break
                if not data:
                    err = proto.error
                    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                    raise StunError(f"UDP to {self.what}: {text}")
                with contextlib.suppress(StunError):
                    msg = decode(data)
                    if msg.txid == txid:
                        return Exchange(data, msg, (time.perf_counter() - sent_at) * 1000, self.server, self.local,
                                        sends - 1)
            if loop.time() >= deadline:
                raise StunTimeout(f"no answer from {self.what} in {self.timeout:g} s ({sends} sends)")
            wait *= 2


async def transact(url: IceUrl, request: bytes, *, timeout: float = 3.0, rto: float = 0.5) -> Exchange:
    """One transaction on a fresh :class:`Channel`."""
    async with Channel(url, timeout=timeout, rto=rto) as channel:
        return await channel.request(request)


# --- Binding and Allocate -------------------------------------------------------------------------


@dataclass(frozen=True)
class BindingResult:
    """A Binding answer: the round trip and the reflexive (server-reflexive) transport address."""

    url: str
    server: tuple[str, int]
    local: tuple[str, int]
    mapped: tuple[str, int]
    rtt_ms: float
    retransmits: int = 0
    software: str = ""


async def binding(url: str | IceUrl, *, timeout: float = 3.0, rto: float = 0.5) -> BindingResult:
    """One Binding request to a STUN (or TURN) server: the mapped address and the round trip."""
    ice = parse_ice_url(url) if isinstance(url, str) else url
    request = encode(StunMessage(BINDING, REQUEST, new_txid(), ((Attr.SOFTWARE, SOFTWARE.encode()),)),
                     fingerprint=True)
    ex = await transact(ice, request, timeout=timeout, rto=rto)
    if ex.message.cls == ERROR:
        code, reason = ex.message.error() or (0, "")
        raise StunError(f"Binding refused: {code} {reason}".strip(), code)
    mapped = ex.message.address(Attr.XOR_MAPPED_ADDRESS) or ex.message.address(Attr.MAPPED_ADDRESS)
    if ex.message.cls != SUCCESS or mapped is None:
        raise StunError("the Binding answer has no mapped address")
    return BindingResult(str(ice), ex.server, ex.local, mapped, ex.rtt_ms, ex.retransmits,
                         ex.message.text(Attr.SOFTWARE))


@dataclass(frozen=True)
class AllocateResult:
    """How a TURN allocation went, step by step (``steps``: one line per request/answer)."""

    url: str
    server: tuple[str, int]
    relayed: tuple[str, int]
    mapped: tuple[str, int] | None
    lifetime: int
    realm: str
    rtt_ms: float  #: the authenticated Allocate's round trip
    steps: tuple[str, ...] = field(default=())


def _allocate(txid: bytes, extra: Sequence[tuple[int, bytes]] = ()) -> StunMessage:
    # REQUESTED-TRANSPORT: UDP (17), then 3 bytes RFFU (RFC 5766 §14.7).
    return StunMessage(ALLOCATE, REQUEST, txid, ((Attr.REQUESTED_TRANSPORT, b"\x11\x00\x00\x00"),
                                                (Attr.SOFTWARE, SOFTWARE.encode()), *extra))


async def turn_allocate(url: str | IceUrl, username: str, password: str, *, timeout: float = 3.0,
                        rto: float = 0.5) -> AllocateResult:
    """Allocate a relay on a TURN server with long-term credentials, then release it.

    :class:`StunError` (with ``code``: 401 when the credentials are refused) says which step failed.
    """
    ice = parse_ice_url(url) if isinstance(url, str) else url
    async with Channel(ice, timeout=timeout, rto=rto) as channel:
        return await _allocate_on(channel, username, password)


async def _allocate_on(channel: Channel, username: str, password: str) -> AllocateResult:
    steps: list[str] = []
    first = await channel.request(encode(_allocate(new_txid()), fingerprint=True))
    err = first.message.error()
    if first.message.cls == SUCCESS:
        raise StunError("the server allocated without asking for credentials (not a TURN server we can judge)")
    if err is None or err[0] != 401:
        code, reason = err or (0, "no ERROR-CODE")
        raise StunError(f"unauthenticated Allocate: expected 401, got {code} {reason}".strip(), code)
    realm, nonce = first.message.text(Attr.REALM), first.message.get(Attr.NONCE)
    if not realm or nonce is None:
        raise StunError("the 401 answer has no REALM/NONCE (long-term credentials impossible)", 401)
    steps.append(f"Allocate -> 401 {err[1]} (realm {realm!r}) in {first.rtt_ms:.1f} ms")
    key = long_term_key(username, realm, password)
    for attempt in range(2):
        auth = ((Attr.USERNAME, username.encode()), (Attr.REALM, realm.encode()), (Attr.NONCE, nonce))
        ex = await channel.request(encode(_allocate(new_txid(), auth), integrity_key=key, fingerprint=True))
        err = ex.message.error()
        if ex.message.cls == SUCCESS:
            break
        if err is not None and err[0] == 438 and attempt == 0 and ex.message.get(Attr.NONCE) is not None:
            nonce = ex.message.get(Attr.NONCE) or nonce
            steps.append("Allocate -> 438 Stale Nonce: again with the new nonce")
            continue
        code, reason = err or (0, "no ERROR-CODE")
        hint = " (username or credential refused)" if code == 401 else ""
        raise StunError(f"authenticated Allocate refused: {code} {reason}{hint}".strip(), code)
    if not check_integrity(ex.raw, key):
        steps.append("warning: the success answer's MESSAGE-INTEGRITY does not verify")
    relayed = ex.message.address(Attr.XOR_RELAYED_ADDRESS)
    if relayed is None:
        raise StunError("the Allocate success has no XOR-RELAYED-ADDRESS")
    lifetime_raw = ex.message.get(Attr.LIFETIME)
    lifetime = struct.unpack("!I", lifetime_raw[:4])[0] if lifetime_raw and len(lifetime_raw) >= 4 else 0
    steps.append(f"Allocate (authenticated) -> relay {relayed[0]}:{relayed[1]}, lifetime {lifetime} s "
                 f"in {ex.rtt_ms:.1f} ms")
    release = StunMessage(REFRESH, REQUEST, new_txid(), ((Attr.LIFETIME, b"\x00\x00\x00\x00"),
                                                        (Attr.USERNAME, username.encode()),
                                                        (Attr.REALM, realm.encode()), (Attr.NONCE, nonce)))
    try:
        done = await channel.request(encode(release, integrity_key=key, fingerprint=True))
        steps.append("Refresh lifetime 0 -> " + ("released" if done.message.cls == SUCCESS else
                                                 f"{(done.message.error() or (0, '?'))[0]}"))
    except StunError as exc:
        steps.append(f"Refresh lifetime 0 -> {exc}")
    return AllocateResult(str(channel.url), ex.server, relayed, ex.message.address(Attr.XOR_MAPPED_ADDRESS), lifetime,
                          realm, ex.rtt_ms, tuple(steps))
