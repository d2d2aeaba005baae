"""Getting TeXML documents: over HTTP on loopback, or from a local file (a TeXML Bin).

Telnyx requests a document with the call's parameters (``CallSid``, ``From``, ``To``,
``CallStatus``...): form-encoded in the body for ``POST``, in the query string for ``GET``.
A local file works like a TeXML Bin: ``{{Name}}`` placeholders are replaced by the request
parameter of that name (XML-escaped; unknown names become empty).

HTTP is a few lines on asyncio streams (HTTP/1.1, ``Connection: close``, no redirects), as
the webhook sender does; only loopback hosts are allowed unless ``allow_remote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit
from xml.sax.saxutils import escape

from softphone.switch.callcontrol.texml.document import MAX_DOCUMENT_BYTES
from softphone.switch.callcontrol.webhooks import WebhookURLError, check_url

FETCH_TIMEOUT_S = 5.0
"""Time allowed for one document request (connect, send, read)."""


class FetchError(Exception):
    """A document that could not be fetched (unreachable, non-2xx, too big, unreadable file)."""


@dataclass(frozen=True)
class Fetched:
    """A document and where it came from."""

    url: str
    text: str


def is_http(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


def file_path(ref: str) -> Path:
    """The path a ``file://`` URL or a plain path names."""
    return Path(ref[7:] if ref.startswith("file://") else ref).expanduser()


def resolve(base: str, ref: str) -> str:
    """A verb's URL relative to the document it came from (Telnyx/Twilio allow relative ``action``)."""
    if is_http(ref) or ref.startswith("file://") or not base:
        return ref
    if is_http(base):
        return urljoin(base, ref)
    if ref.startswith("/"):
        return ref
    return str(file_path(base).parent / ref)


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def substitute(template: str, params: dict[str, str]) -> str:
    """A TeXML Bin's ``{{Name}}`` placeholders replaced by request parameters (XML-escaped)."""
    return _PLACEHOLDER.sub(lambda m: escape(params.get(m.group(1), ""), {'"': "&quot;"}), template)


async def fetch(ref: str, method: str, params: dict[str, str], *, allow_remote: bool = False) -> Fetched:
    """The document at ``ref`` (an http URL or a file), requested with ``params``; raises :class:`FetchError`."""
    if not is_http(ref):
        try:
            raw = await asyncio.to_thread(_read_file, file_path(ref))
        except OSError as exc:
            raise FetchError(f"cannot read {ref}: {exc.strerror or exc}") from exc
        return Fetched(ref, substitute(raw, params))
    status, body = await request(ref, method, params, allow_remote=allow_remote)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise FetchError(f"{ref}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    if not 200 <= status < 300:
        raise FetchError(f"{method} {ref} answered HTTP {status}")
    try:
        return Fetched(ref, body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FetchError(f"{ref} did not answer UTF-8 text") from exc


def _read_file(path: Path) -> str:
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise OSError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
    return path.read_text(encoding="utf-8")


async def request(
    url: str,
    method: str,
    params: dict[str, str],
    *,
    allow_remote: bool = False,
    timeout: float = FETCH_TIMEOUT_S,
    limit: int = MAX_DOCUMENT_BYTES + 65536,
) -> tuple[int, bytes]:
    """One HTTP request with form parameters; ``(status, body)`` (at most ``limit`` bytes read).
    Raises :class:`FetchError`."""
    if url.lower().startswith("https://"):
        raise FetchError(f"https is not available on the local switch: {url}")
    try:
        host, port, path = check_url(url, allow_remote=allow_remote)
    except WebhookURLError as exc:
        raise FetchError(str(exc).replace("webhook", "TeXML")) from exc
    form = urlencode(params).encode()
    method = method.upper()
    if method == "GET":
        sep = "&" if urlsplit(url).query else "?"
        target = path + (sep + form.decode() if form else "")
        body = b""
        extra = ""
    else:
        target, body = path, form
        extra = f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: softphone-switch TeXML\r\n"
        f"Accept: application/xml, text/xml\r\n{extra}Connection: close\r\n\r\n"
    ).encode()

    async def run() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head + body)
            await writer.drain()
            raw = b""
            while len(raw) <= limit:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                raw += chunk
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return _response(raw)

    try:
        return await asyncio.wait_for(run(), timeout)
    except (OSError, TimeoutError) as exc:
        raise FetchError(f"{method} {url} failed: {type(exc).__name__}: {exc}".rstrip(": ")) from exc


def _response(raw: bytes) -> tuple[int, bytes]:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise FetchError("incomplete HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split()
    if len(fields) < 2 or not fields[1].isdigit():
        raise FetchError(f"bad HTTP status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    length = headers.get("content-length", "")
    if length.isdigit():
        rest = rest[: int(length)]
    return int(fields[1]), rest


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError as exc:
            raise FetchError("bad chunked encoding") from exc
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
