"""Login throttling: failed logins slow down, then close the socket or lock the user out for a while.

Two counters, both reset by a successful login and forgotten ``window_secs`` after their
last failure:

* **per credential** (the username tried, whether it exists or not): after
  ``free_failures`` failures, each further attempt on that username (from any socket)
  waits until ``base_delay_secs * 2**(n - free_failures)`` (at most ``max_delay_secs``)
  after the previous failure. At ``max_failures_per_credential`` the username is locked
  for ``lockout_secs``: attempts get ``-32001 too many failed logins for USER; locked
  for N s`` and the socket is closed. A correct password after that works again.
* **per connection** (one websocket): the same growing delay before each answer after
  ``free_failures`` failures; at ``max_failures_per_connection`` the answer is ``-32001
  too many failed logins on this connection`` and the socket is closed (code 4003).

Token logins count on the connection only (a token names its credential only once the
signature is checked). Each throttled username and each closed connection is logged once.

Settings (accounts TOML, all optional; defaults shown)::

    [login_throttle]
    free_failures = 3
    base_delay_secs = 0.5
    max_delay_secs = 8
    max_failures_per_connection = 10
    max_failures_per_credential = 20
    lockout_secs = 60
    window_secs = 900
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from softphone.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_TRACKED = 10_000
"""Usernames tracked at once (the oldest are forgotten first)."""
CLOSE_CODE = 4003
"""Websocket close code after too many failed logins."""


@dataclass
class ThrottleOptions:
    """See the module docstring."""

    free_failures: int = 3
    base_delay_secs: float = 0.5
    max_delay_secs: float = 8.0
    max_failures_per_connection: int = 10
    max_failures_per_credential: int = 20
    lockout_secs: float = 60.0
    window_secs: float = 900.0

    def delay_for(self, failures: int) -> float:
        """The wait before answering the attempt that follows ``failures`` failures."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return float(min(self.max_delay_secs, self.base_delay_secs * (2**min(over, 30))))


def options_from_dict(data: dict[str, Any], *, path: str = "<accounts>") -> ThrottleOptions:
    """The ``[login_throttle]`` table (:class:`ConfigError` for unknown keys or bad values)."""
    table = data.get("login_throttle", {})
    if not isinstance(table, dict):
        raise ConfigError("[login_throttle] must be a table", path=path)
    opts = ThrottleOptions()
    known = {f.name: f for f in fields(ThrottleOptions)}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"login_throttle: unknown key {key!r} (known: {', '.join(known)})", path=path, key=key)
        is_int = known[key].type in (int, "int")
        ok = not isinstance(value, bool) and (isinstance(value, int) if is_int else isinstance(value, int | float))
        if not ok or value < 0 or (key.startswith("max_failures") and value < 1):
            raise ConfigError(f"login_throttle.{key} must be a {'whole ' if is_int else ''}number >= "
                              f"{1 if key.startswith('max_failures') else 0}", path=path, key=key)
        setattr(opts, key, int(value) if is_int else float(value))
    return opts


def load_throttle(path: str | Path | None) -> ThrottleOptions:
    """The ``[login_throttle]`` options of an accounts TOML file (defaults without a file)."""
    if path is None:
        return ThrottleOptions()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read accounts file: {exc}", path=str(path)) from exc
    return options_from_dict(data, path=str(path))


@dataclass(slots=True)
class _Record:
    failures: int = 0
    pending: int = 0
    """Attempts checked or waiting right now (counted as failures for the delay, so a burst of parallel
    attempts queues up instead of all passing at once)."""
    last_slot: float = 0.0
    last_seen: float = 0.0
    locked_until: float = 0.0
    logged: bool = False


class Refused(Exception):
    """Stop answering this socket: send -32001 with this message and close it."""


class LoginThrottle:
    """The per-credential state of a switch (per-connection state is a :class:`ConnectionThrottle`).

    Per attempt: :meth:`begin` (how long to wait; raises :class:`Refused` while locked), wait,
    :meth:`check` (locked meanwhile?), check the password, :meth:`end`.
    """

    def __init__(self, options: ThrottleOptions | None = None) -> None:
        self.options = options or ThrottleOptions()
        self._creds: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._creds)

    def _get(self, user: str, now: float) -> _Record | None:
        rec = self._creds.get(user)
        if (rec is not None and not rec.pending and now >= rec.locked_until
                and (rec.locked_until or now - rec.last_seen > self.options.window_secs)):
            del self._creds[user]  # forgotten, or the lockout is over: start afresh
            return None
        return rec

    def check(self, user: str, now: float | None = None) -> None:
        """Raise :class:`Refused` while ``user`` is locked out."""
        t = time.monotonic() if now is None else now
        rec = self._creds.get(user)
        if rec is not None and t < rec.locked_until:
            raise Refused(f"too many failed logins for {user}; locked for {rec.locked_until - t:.0f} s")

    def begin(self, user: str, now: float | None = None) -> float:
        """An attempt for ``user`` starts: seconds to wait before checking it (raises Refused while locked)."""
        t = time.monotonic() if now is None else now
        self.check(user, t)
        rec = self._get(user, t)
        if rec is None:
            rec = self._creds[user] = _Record()
            while len(self._creds) > MAX_TRACKED:
                self._creds.popitem(last=False)
        self._creds.move_to_end(user)
        slot = max(t, rec.last_slot + self.options.delay_for(rec.failures + rec.pending))
        rec.pending += 1
        rec.last_slot = rec.last_seen = slot
        return slot - t

    def end(self, user: str, ok: bool, now: float | None = None) -> None:
        """The attempt that :meth:`begin` started is over (``ok``: the password was right)."""
        t = time.monotonic() if now is None else now
        rec = self._creds.get(user)
        if rec is None:
            return
        rec.pending = max(0, rec.pending - 1)
        if ok:
            del self._creds[user]
            return
        rec.failures += 1
        rec.last_seen = max(rec.last_seen, t)
        if rec.failures > self.options.free_failures and not rec.logged:
            rec.logged = True
            logger.warning("login throttling for %r after %d failed logins", user, rec.failures)
        if rec.failures >= self.options.max_failures_per_credential and t >= rec.locked_until:
            rec.locked_until = t + self.options.lockout_secs
            logger.warning("login %r locked for %.0f s after %d failed logins", user, self.options.lockout_secs,
                           rec.failures)


class ConnectionThrottle:
    """Failed logins on one websocket (made on a socket's first login attempt)."""

    __slots__ = ("failures", "last_failure", "options")

    def __init__(self, options: ThrottleOptions) -> None:
        self.options = options
        self.failures = 0
        self.last_failure = 0.0

    def wait_for(self, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        if self.failures and t - self.last_failure > self.options.window_secs:
            self.failures = 0
        return max(0.0, self.last_failure + self.options.delay_for(self.failures) - t) if self.failures else 0.0

    def failed(self, peer: str, now: float | None = None) -> None:
        """Count a failure; raises :class:`Refused` when the connection must be closed."""
        self.failures += 1
        self.last_failure = time.monotonic() if now is None else now
        if self.failures >= self.options.max_failures_per_connection:
            logger.warning("closing %s after %d failed logins", peer, self.failures)
            raise Refused("too many failed logins on this connection")

    def succeeded(self) -> None:
        self.failures = 0
