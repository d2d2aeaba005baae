"""Webhook delivery for Call Control applications (Telnyx's event envelope, stdlib HTTP).

Every event is POSTed as JSON in Telnyx's shape::

    {"data": {"event_type": "call.initiated", "id": "<uuid>", "occurred_at": "<ISO 8601>",
              "record_type": "event", "payload": {"call_control_id": ..., ...}},
     "meta": {"attempt": 1, "delivered_to": "http://127.0.0.1:9000/webhooks"}}

Delivery: one ordered queue per connection (a backend sees a call's events in the order
they happened), up to :data:`TRIES` attempts with exponential backoff on a connection
error or a non-2xx status, then the same on the failover URL; an event that still fails
is logged and dropped (recorded in :attr:`WebhookSender.deliveries`).

Only loopback URLs are allowed unless the sender was built with ``allow_remote=True``:
the local switch must not be turned into a way to POST to arbitrary hosts.

Signatures: with a :class:`SigningKey` (the engine loads it from its data directory at start),
every POST carries Telnyx's ``telnyx-signature-ed25519`` (base64 ed25519 signature of
``f"{timestamp}|{body}"``) and ``telnyx-timestamp`` (Unix seconds) headers, so a backend
verifies them as it does Telnyx's (the SDK's ``client.webhooks.unwrap(body, headers=..., key=...)``
with :attr:`SigningKey.public_key_b64`). Each attempt is signed afresh (its ``meta.attempt``
differs, and so does its timestamp).

HTTP is a few lines on asyncio streams (HTTP/1.1, ``Connection: close``), so no client
library is needed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from softphone.switch.hosts import is_loopback_host

logger = logging.getLogger(__name__)

TRIES = 3
"""Attempts per URL before giving up on it (then the failover URL gets as many)."""
BACKOFF_S = 0.25
"""Delay before the 2nd attempt; doubled for each further one."""
KEEP_EVENTS = 10_000
"""Events and deliveries kept in memory for inspection (the oldest are dropped past this)."""
POST_TIMEOUT_S = 5.0
"""Time allowed for one POST (connect, send, read the status line)."""


SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
KEY_FILE = "webhook_signing_key.pem"
"""The switch's ed25519 private key (PKCS#8 PEM, mode 0600) in its data directory."""


class SigningKey:
    """The switch's webhook-signing key (ed25519), as Telnyx signs its webhooks."""

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = private_key
        self.path = path
        """Where the key is stored (None: in memory only)."""
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key_b64 = base64.b64encode(raw).decode()
        """The public key, base64 of its 32 raw bytes (the form Telnyx's portal shows and the SDKs take)."""

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key kept in memory only."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, data_dir: str | Path) -> SigningKey:
        """The key in ``<data_dir>/webhook_signing_key.pem``, generated (mode 0600) the first time.

        A key file readable by others is tightened to 0600; an unreadable or corrupt one raises
        ``ValueError``/``OSError`` (the file is never overwritten: backends trust its public key).
        """
        path = Path(data_dir).expanduser() / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it meanwhile: use theirs
                return cls.load_or_create(data_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            logger.info("webhook signing key generated in %s", path)
            return cls(key, path)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an ed25519 private key")
        return cls(loaded, path)

    @classmethod
    def for_switch(cls, data_dir: str | Path) -> SigningKey | None:
        """:meth:`load_or_create`, or None (logged) when the key file cannot be read or written:
        the switch then sends unsigned webhooks rather than not starting."""
        try:
            return cls.load_or_create(data_dir)
        except (OSError, ValueError) as exc:
            logger.error("webhook signing key unavailable in %s (webhooks go unsigned): %s", data_dir, exc)
            return None

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two signature headers for ``body`` sent at ``timestamp`` (default: now)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._key.sign(ts.encode() + b"|" + body)
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: ts}


def verify_signature(
    public_key_b64: str, body: bytes, headers: Mapping[str, str], *, tolerance_s: float = 300.0
) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` by ``public_key_b64``, made within
    ``tolerance_s`` of now (what a backend checks; the SDK does the same with PyNaCl)."""
    low = {k.lower(): v for k, v in headers.items()}
    ts, sig = low.get(TIMESTAMP_HEADER, ""), low.get(SIGNATURE_HEADER, "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(sig, validate=True), ts.encode() + b"|" + body)
    except Exception:  # bad base64, wrong length, bad signature
        return False
    return True


class WebhookURLError(ValueError):
    """A webhook URL the switch refuses to call (bad scheme, or not loopback)."""


def check_url(url: str, *, allow_remote: bool = False) -> tuple[str, int, str]:
    """``(host, port, path)`` of an ``http://`` URL; loopback hosts only unless ``allow_remote``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise WebhookURLError(f"webhook URL must be http://host[:port]/path: {url!r}")
    host = parts.hostname
    if not allow_remote and not is_loopback_host(host):
        raise WebhookURLError(f"webhook host {host!r} is not loopback (allow_remote_webhooks to permit it)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, parts.port or 80, path


def iso_now(ts: float | None = None) -> str:
    """An ISO 8601 UTC timestamp with microseconds, as Telnyx's ``occurred_at``."""
    when = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_event(event_type: str, payload: dict[str, Any], *, event_id: str, occurred_at: str) -> dict[str, Any]:
    """The ``data`` part of a webhook (``meta`` is added per delivery attempt)."""
    return {
        "event_type": event_type,
        "id": event_id,
        "occurred_at": occurred_at,
        "record_type": "event",
        "payload": payload,
    }


async def post_json(
    url: str,
    body: dict[str, Any],
    *,
    allow_remote: bool = False,
    timeout: float = POST_TIMEOUT_S,
    signing_key: SigningKey | None = None,
) -> int:
    """POST ``body`` as JSON (signed when a ``signing_key`` is given); returns the HTTP status
    (raises ``OSError``/``TimeoutError``)."""
    host, port, path = check_url(url, allow_remote=allow_remote)
    data = json.dumps(body).encode()
    signed = "".join(f"{k}: {v}\r\n" for k, v in signing_key.sign(data).items()) if signing_key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"User-Agent: softphone-switch\r\n{signed}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()

    async def run() -> int:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head + data)
            await writer.drain()
            status_line = await reader.readline()
            fields = status_line.decode("latin-1").split()
            if len(fields) < 2 or not fields[1].isdigit():
                raise ConnectionError(f"bad HTTP status line: {status_line!r}")
            # Read the headers and the (small) body, so the server's write completes; a
            # keep-alive server that ignores "Connection: close" must not stall us.
            length = 0
            with contextlib.suppress(Exception):
                while True:
                    line = await asyncio.wait_for(reader.readline(), 1.0)
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        length = int(value.strip())
                if 0 < length <= 65536:
                    await asyncio.wait_for(reader.readexactly(length), 1.0)
            return int(fields[1])
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.wait_for(run(), timeout)


@dataclass
class Delivery:
    """What happened to one event (for inspection and tests)."""

    event_type: str
    event_id: str
    url: str = ""
    attempts: int = 0
    status: int | None = None
    delivered: bool = False
    error: str = ""


@dataclass
class _Target:
    url: str
    failover_url: str
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None


class WebhookSender:
    """Ordered, retried webhook delivery, one queue per (url, failover) pair."""

    def __init__(
        self,
        *,
        allow_remote: bool = False,
        tries: int = TRIES,
        backoff_s: float = BACKOFF_S,
        new_id: Callable[[], str] | None = None,
        clock: Callable[[], str] | None = None,
    ) -> None:
        self.allow_remote = allow_remote
        self.tries = max(1, tries)
        self.backoff_s = backoff_s
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._clock = clock or iso_now
        self._targets: dict[tuple[str, str], _Target] = {}
        self.signing_key: SigningKey | None = None
        """Signs every POST (set by the engine at start; None: unsigned)."""
        self.deliveries: list[Delivery] = []
        """Events sent (oldest first, the last :data:`KEEP_EVENTS`), with their outcome once known."""
        self.events: list[dict[str, Any]] = []
        """Events' ``data`` objects in the order they were queued (the last :data:`KEEP_EVENTS`)."""

    def send(self, url: str, failover_url: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an event for ``url`` (no-op when ``url`` is empty); returns its ``data``."""
        data = build_event(event_type, payload, event_id=self._new_id(), occurred_at=self._clock())
        self.events.append(data)
        _trim(self.events)
        if not url:
            return data
        key = (url, failover_url)
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = _Target(url, failover_url)
        if target.worker is None or target.worker.done():
            target.worker = asyncio.get_running_loop().create_task(self._work(target), name=f"webhooks {url}")
        target.queue.put_nowait(data)
        return data

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued event has been delivered or given up on."""

        async def wait_all() -> None:
            for target in list(self._targets.values()):
                await target.queue.join()

        await asyncio.wait_for(wait_all(), timeout)

    async def close(self) -> None:
        """Stop the delivery workers (undelivered events are dropped)."""
        workers = [t.worker for t in self._targets.values() if t.worker is not None]
        for w in workers:
            w.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        self._targets.clear()

    async def _work(self, target: _Target) -> None:
        while True:
            data = await target.queue.get()
            try:
                await self._deliver(target, data)
            except Exception:  # a broken event must not stop the queue
                logger.exception("webhook delivery failed")
            finally:
                target.queue.task_done()
            # Python 3.11's wait_for can swallow a cancel that lands as its inner call completes (in
            # post_json): a cancelled worker must still stop here instead of waiting on the queue forever,
            # which hung Switch.stop() after undeliverable webhooks.
            _stop_if_cancelled()

    async def _deliver(self, target: _Target, data: dict[str, Any]) -> None:
        record = Delivery(data["event_type"], data["id"])
        self.deliveries.append(record)
        _trim(self.deliveries)
        for url in (target.url, target.failover_url):
            if not url:
                continue
            record.url = url
            delay = self.backoff_s
            for attempt in range(1, self.tries + 1):
                _stop_if_cancelled()  # a swallowed cancel (see _work) must not run the remaining retries
                record.attempts += 1
                body = {"data": data, "meta": {"attempt": attempt, "delivered_to": url}}
                try:
                    status = await post_json(url, body, allow_remote=self.allow_remote, signing_key=self.signing_key)
                except WebhookURLError as exc:
                    record.error = str(exc)
                    logger.warning("webhook %s not sent: %s", data["event_type"], exc)
                    break
                except (OSError, TimeoutError, ConnectionError) as exc:
                    record.error = f"{type(exc).__name__}: {exc}"
                    status = None
                record.status = status
                if status is not None and 200 <= status < 300:
                    record.delivered = True
                    record.error = ""
                    return
                if status is not None:
                    record.error = f"HTTP {status}"
                if attempt < self.tries:
                    await asyncio.sleep(delay)
                    delay *= 2
        logger.warning("webhook %s %s undelivered: %s", data["event_type"], data["id"], record.error)


def _stop_if_cancelled() -> None:
    """Raise CancelledError when the current task was asked to stop (``cancelling()``), even if the
    cancel itself got swallowed on the way (Python 3.11's ``wait_for`` can drop it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _trim(items: list[Any]) -> None:
    """Keep the last :data:`KEEP_EVENTS` (trimmed in chunks, so appends stay cheap)."""
    if len(items) > KEEP_EVENTS + KEEP_EVENTS // 10:
        del items[: len(items) - KEEP_EVENTS]
