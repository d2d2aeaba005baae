"""Logging set-up and secret redaction.

Everything the softphone logs goes through the standard library :mod:`logging`.
:func:`setup_logging` installs one stderr handler (plain text or NDJSON) carrying a
:class:`RedactingFilter`, so passwords, login tokens (JWTs), TURN credentials and
``Authorization`` headers never reach a terminal or a log file, even at debug level
where whole Verto messages (``login`` carries ``passwd`` / ``login_token``, PROTOCOL.md
§2.3) are logged.

:func:`redact` is the pure function behind the filter; use it on any text that leaves
the process (error messages, ``config show``). Secrets whose exact values are known
(loaded from configuration or a ``password_cmd``) are added with
:func:`register_secret` and are then removed wherever they appear.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

__all__ = [
    "MASK",
    "SECRET_KEYS",
    "JsonFormatter",
    "RedactingFilter",
    "clear_secrets",
    "redact",
    "register_secret",
    "setup_logging",
]

#: What a removed secret is replaced with.
MASK = "***"

#: Keys whose values are secrets wherever they appear (JSON, dict reprs, ``k=v``).
#: ``passwd`` and ``login_token`` are the Verto ``login`` params (PROTOCOL.md §2.3);
#: ``credential`` is the TURN credential of an ICE server.
SECRET_KEYS: tuple[str, ...] = (
    "passwd",
    "password",
    "login_token",
    "token",
    "access_token",
    "refresh_token",
    "credential",
    "credentials",
    "secret",
    "api_key",
)

#: Secrets shorter than this are not registered: masking "ab" everywhere would
#: shred ordinary text and hides nothing worth hiding.
MIN_SECRET_LENGTH = 4

_KEYS = "|".join(re.escape(k) for k in sorted(SECRET_KEYS, key=len, reverse=True))
# Key start: not preceded by a letter or digit, so "TELNYX_SIP_PASSWORD" matches but
# "mytoken" does not.
_KS = r"(?<![A-Za-z0-9])"

# Order matters: quoted forms first, so the bare ``key=value`` rule sees "***".
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON text embedded in a JSON string: {\"passwd\":\"s3cret\"}
    (re.compile(rf'(\\+"{_KS}(?:{_KEYS})\\+"\s*:\s*\\+")(.*?)(\\+")', re.I), rf"\1{MASK}\3"),
    # JSON or Python repr with a double-quoted value: "passwd": "s3cret" / 'password': "it's"
    (re.compile(rf'(["\']{_KS}(?:{_KEYS})["\']\s*:\s*")((?:\\.|[^"\\])*)(")', re.I), rf"\1{MASK}\3"),
    # Python repr with a single-quoted value: {'password': 's3cret'}
    (re.compile(rf"([\"']{_KS}(?:{_KEYS})[\"']\s*:\s*')((?:\\.|[^'\\])*)(')", re.I), rf"\1{MASK}\3"),
    # Quoted key, unquoted scalar value: "password": 123456
    (re.compile(rf"([\"']{_KS}(?:{_KEYS})[\"']\s*:\s*)([^\s\"'{{\[,}}\]][^\s,}}\]]*)", re.I), rf"\1{MASK}"),
    # Authorization header, with or without a scheme word.
    (
        re.compile(
            r"(authorization[\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|digest|token)\s+)?([^\s\"',;}]+)",
            re.I,
        ),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"(\bbearer\s+)([A-Za-z0-9\-._~+/]+=*)", re.I), rf"\1{MASK}"),
    # Anything that looks like a JWT: three base64url segments, the header starting eyJ.
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    # Bare key="quoted value" / key: 'quoted value'.
    (re.compile(rf"({_KS}(?:{_KEYS})\s*[=:]\s*)([\"'])(?!\*\*\*)(?:\\.|(?!\2).)*\2", re.I), rf"\1\2{MASK}\2"),
    # Bare key=value / key: value (env dumps, URLs, plain messages).
    (
        re.compile(rf"({_KS}(?:{_KEYS})\s*[=:]\s*)(?!\*\*\*)(?![\"'{{\[])([^\s,;&\"'}}\])]+)", re.I),
        rf"\1{MASK}",
    ),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secret(*secrets: str) -> None:
    """Remember exact secret values so :func:`redact` removes them anywhere.

    Values shorter than ``MIN_SECRET_LENGTH`` characters (and non-strings) are ignored.
    The JSON-escaped and ``repr`` forms of each value are registered too, so the secret
    is caught inside logged JSON text and dict reprs.
    """
    global _secret_re
    with _lock:
        for secret in secrets:
            if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
                continue
            _secrets.add(secret)
            _secrets.add(_json.dumps(secret)[1:-1])
            _secrets.add(repr(secret)[1:-1])
        _secret_re = None


def clear_secrets() -> None:
    """Forget every registered secret (tests and profile switches)."""
    global _secret_re
    with _lock:
        _secrets.clear()
        _secret_re = None


def _known_secrets_re() -> re.Pattern[str] | None:
    global _secret_re
    with _lock:
        if _secret_re is None and _secrets:
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            _secret_re = re.compile("|".join(re.escape(s) for s in ordered))
        return _secret_re


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with secrets replaced by ``***``.

    Removes values of secret keys (``passwd``, ``password``, ``login_token``, ``token``,
    ``credential`` ...) in JSON, dict reprs and ``key=value`` text; ``Authorization``
    header values and ``Bearer`` tokens; anything shaped like a JWT; every registered
    secret (:func:`register_secret`) and every value in ``extra_secrets`` that is at
    least ``MIN_SECRET_LENGTH`` characters long.
    """
    if not isinstance(text, str):
        text = str(text)
    extras = sorted(
        (s for s in extra_secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True
    )
    for secret in extras:
        text = text.replace(secret, MASK)
    known = _known_secrets_re()
    if known is not None:
        text = known.sub(MASK, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: object) -> object:
    """Redact one ``record.args`` item, keeping numbers and such as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(repr(value) if isinstance(value, Mapping | list | tuple) else str(value))


def _redact_mapping(args: Mapping[Any, object]) -> dict[Any, object]:
    keys = {k.lower() for k in SECRET_KEYS}
    return {k: (MASK if isinstance(k, str) and k.lower() in keys else _redact_value(v)) for k, v in args.items()}


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs secrets from a record in place.

    It merges ``msg`` and ``args`` into one redacted message (so ``"passwd=%s"`` with
    a secret argument is caught as a whole), redacts the formatted traceback into
    ``exc_text`` and drops ``exc_info`` so no later handler re-renders the raw
    exception, and redacts ``stack_info``. It never raises and never drops a record: if
    anything goes wrong the message is replaced by a placeholder.

    Attach it to handlers (``handler.addFilter(RedactingFilter())``), not loggers:
    logger filters do not see records propagated from child loggers.
    """

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.extra_secrets = tuple(extra_secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record``; always returns True."""
        try:
            self._scrub(record)
        except Exception:  # the filter must never break logging
            record.msg = "<log message withheld: redaction failed>"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True

    def _scrub(self, record: logging.LogRecord) -> None:
        extra = self.extra_secrets
        if isinstance(record.args, Mapping):
            # "%(password)s" style: the key says which values are secret.
            record.args = _redact_mapping(record.args)
        try:
            message = record.getMessage()
        except Exception:
            # Bad format arguments: keep the pieces apart, but redact each.
            record.msg = redact(str(record.msg), extra)
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_value(a) for a in record.args)
        else:
            record.msg = redact(message, extra)
            record.args = ()
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, extra)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, extra)
        if hasattr(record, "message"):
            record.message = record.msg if isinstance(record.msg, str) else str(record.msg)


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object per line (NDJSON).

    Fields: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``msg``, and ``exc`` when an
    exception was logged.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single JSON line."""
        out: dict[str, object] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return _json.dumps(out, ensure_ascii=False)


_HANDLER_MARK = "_softphone_handler"
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _level_for(verbosity: int) -> int:
    if verbosity < 0:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def setup_logging(verbosity: int, json: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Send log records to ``stream`` (default ``sys.stderr``), redacted.

    ``verbosity``: below 0 errors only, 0 warnings, 1 info, 2 debug for ``softphone.*``;
    3 or more also shows debug output of libraries (websockets, aiortc, aioice), which
    is otherwise held at warning. ``json=True`` writes NDJSON (:class:`JsonFormatter`).
    Calling it again replaces the handler it installed before. Returns the handler.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    level = _level_for(verbosity)
    root.setLevel(logging.DEBUG if verbosity >= 3 else max(level, logging.WARNING))
    logging.getLogger("softphone").setLevel(level)
    return handler
