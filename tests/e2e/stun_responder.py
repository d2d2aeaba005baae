"""A STUN/TURN responder on loopback for the doctor's tests (UDP), written apart from softphone.diag.stun.

It answers the way a real server does, with its own struct/hmac code (so a bug shared with the client's
codec cannot hide): a Binding request gets ``XOR-MAPPED-ADDRESS`` of the sender; an Allocate without
``MESSAGE-INTEGRITY`` gets ``401 Unauthorized`` with ``REALM`` and ``NONCE``; one whose integrity
verifies with ``MD5(user:realm:password)`` gets ``XOR-RELAYED-ADDRESS`` (a made-up relay port),
``XOR-MAPPED-ADDRESS`` and ``LIFETIME``; a wrong credential gets 401 again; a ``Refresh`` with lifetime 0
releases the allocation. ``silent=True`` makes a port that reads and never answers. The same runs over TCP
(``tcp_url``) and, given ``tls=(cert, key)``, over TLS (``tls_url``).

    async with StunResponder(users={"alice": "s3cret"}) as s:
        s.url  # "stun:127.0.0.1:PORT"; s.turn_url: "turn:127.0.0.1:PORT"; s.tcp_url: the same over TCP
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import ssl
import struct
from pathlib import Path
from typing import Any

COOKIE = 0x2112A442
REALM = "doctor.test"


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * ((4 - len(value) % 4) % 4)


def _xor_addr(ip: str, port: int) -> bytes:
    raw = bytes(int(x) for x in ip.split("."))
    cookie = struct.pack("!I", COOKIE)
    return struct.pack("!BBH", 0, 1, port ^ (COOKIE >> 16)) + bytes(a ^ b for a, b in zip(raw, cookie, strict=True))


def _parse(data: bytes) -> tuple[int, bytes, list[tuple[int, bytes, int]]] | None:
    """(type, txid, [(attr, value, offset)]) or None for anything that is not STUN."""
    if len(data) < 20 or struct.unpack_from("!I", data, 4)[0] != COOKIE:
        return None
    kind, length = struct.unpack_from("!HH", data, 0)
    attrs, pos = [], 20
    while pos + 4 <= 20 + length:
        akind, alen = struct.unpack_from("!HH", data, pos)
        attrs.append((akind, data[pos + 4:pos + 4 + alen], pos))
        pos += 4 + alen + (4 - alen % 4) % 4
    return kind, data[8:20], attrs


def _message(kind: int, txid: bytes, attrs: list[tuple[int, bytes]], key: bytes | None = None) -> bytes:
    body = b"".join(_attr(k, v) for k, v in attrs)
    if key is not None:
        head = struct.pack("!HHI", kind, len(body) + 24, COOKIE) + txid
        body += _attr(0x0008, hmac.new(key, head + body, hashlib.sha1).digest())
    return struct.pack("!HHI", kind, len(body), COOKIE) + txid + body


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: StunResponder) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.received += 1
        if self.owner.silent or self.transport is None:
            return
        answer = self.owner.answer(data, (str(addr[0]), int(addr[1])))
        if answer is not None:
            self.transport.sendto(answer, addr)


class StunResponder:
    """See the module docstring. ``requests`` lists what came in: ``(method name, outcome)``."""

    def __init__(self, users: dict[str, str] | None = None, *, silent: bool = False,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.users = dict(users or {})
        self.silent = silent
        self.nonce = os.urandom(8).hex()
        self.received = 0
        self.requests: list[tuple[str, str]] = []
        self.allocations: dict[tuple[str, int], int] = {}
        self.port = self.tcp_port = self.tls_port = 0
        self.tls = tls
        self._tls: asyncio.Server | None = None
        self._tcp: asyncio.Server
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def url(self) -> str:
        return f"stun:127.0.0.1:{self.port}"

    @property
    def turn_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"turns:127.0.0.1:{self.tls_port}"

    @property
    def tcp_url(self) -> str:
        return f"turn:127.0.0.1:{self.tcp_port}?transport=tcp"

    async def __aenter__(self) -> StunResponder:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=("127.0.0.1", 0))
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        self._tcp = await asyncio.start_server(self._stream, "127.0.0.1", 0)
        self.tcp_port = int(self._tcp.sockets[0].getsockname()[1])
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._tls = await asyncio.start_server(self._stream, "127.0.0.1", 0, ssl=ctx)
            self.tls_port = int(self._tls.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()
        self._tcp.close()
        if self._tls is not None:
            self._tls.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """STUN over TCP: messages one after another, each framed by its own length (RFC 5389 §7.2.2)."""
        peer = writer.get_extra_info("peername")
        try:
            while True:
                head = await reader.readexactly(20)
                body = await reader.readexactly(struct.unpack_from("!H", head, 2)[0])
                self.received += 1
                answer = None if self.silent else self.answer(head + body, (str(peer[0]), int(peer[1])))
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _key_for(self, attrs: list[tuple[int, bytes, int]]) -> bytes | None:
        user = next((v for k, v, _ in attrs if k == 0x0006), b"").decode()
        password = self.users.get(user)
        return None if password is None else hashlib.md5(f"{user}:{REALM}:{password}".encode()).digest()

    @staticmethod
    def _verifies(data: bytes, attrs: list[tuple[int, bytes, int]], key: bytes | None) -> bool:
        mi = next(((v, pos) for k, v, pos in attrs if k == 0x0008), None)
        if key is None or mi is None:
            return False
        head = data[:2] + struct.pack("!H", mi[1] + 24 - 20) + data[4:20]
        return hmac.compare_digest(hmac.new(key, head + data[20:mi[1]], hashlib.sha1).digest(), mi[0])

    def answer(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        parsed = _parse(data)
        if parsed is None:
            return None
        kind, txid, attrs = parsed
        if kind == 0x0001:  # Binding request
            self.requests.append(("binding", "ok"))
            return _message(0x0101, txid, [(0x0020, _xor_addr(*addr)), (0x8022, b"stun_responder")])
        if kind not in (0x0003, 0x0004):  # Allocate, Refresh
            return None
        name = "allocate" if kind == 0x0003 else "refresh"
        has_mi = any(k == 0x0008 for k, _, _ in attrs)
        key = self._key_for(attrs)
        if not has_mi or not self._verifies(data, attrs, key):
            self.requests.append((name, "401"))
            error = struct.pack("!HBB", 0, 4, 1) + b"Unauthorized"
            return _message(kind | 0x0110, txid, [(0x0009, error), (0x0014, REALM.encode()),
                                                  (0x0015, self.nonce.encode())])
        if kind == 0x0004:
            lifetime = next((struct.unpack("!I", v)[0] for k, v, _ in attrs if k == 0x000D), 600)
            if lifetime == 0:
                self.allocations.pop(addr, None)
            self.requests.append((name, f"lifetime {lifetime}"))
            return _message(0x0104, txid, [(0x000D, struct.pack("!I", lifetime))], key)
        relay = 50000 + len(self.allocations)
        self.allocations[addr] = relay
        self.requests.append((name, "ok"))
        return _message(0x0103, txid, [(0x0016, _xor_addr("127.0.0.1", relay)), (0x0020, _xor_addr(*addr)),
                                       (0x000D, struct.pack("!I", 600))], key)
