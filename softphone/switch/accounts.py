"""Accounts of the local switch: SIP connections, telephony credentials, JWTs.

The model follows Telnyx's portal: a **SIP connection** has one SIP username and
password, owns phone numbers, and says how inbound calls to those numbers reach the
WebRTC client (``inbound_format``: ``sip_username`` delivers them to the client
registered with the connection's SIP username; ``e164`` does not, since a real
connection would then send them to a SIP URI). **Telephony credentials** hang off a
connection; each can log in with its own username/password or with any JWT minted
from it (``login_token``).

TOML format (see ``accounts.example.toml``)::

    jwt_secret = "change-me"

    [[connection]]
    id = "john1234"
    sip_username = "john1234"
    password = "john-secret"
    numbers = ["+13125550133"]
    inbound_format = "sip_username"      # or "e164"
    webhook_url = "http://127.0.0.1:9000/hook"   # optional: a Call Control application
    webhook_failover_url = "http://127.0.0.1:9001/hook"   # optional
    api_key = "KEYlocal"                         # optional: bearer token for the commands API

    [[connection.credential]]
    username = "gencred1"
    password = "gencred1-secret"

    # max_token_lifetime_secs = 86400    # optional: longest JWT lifetime accepted (default 24 h)

Every credential has an ``id`` (Telnyx's telephony credential id: a UUID, derived from the
connection and username for credentials of the file, random for those created over REST with
:meth:`Accounts.add_credential`, see :mod:`softphone.switch.callcontrol.credentials`), and may have
an ``expires_at``: an expired credential logs in neither with its password nor with a token.

JWTs are HS256, signed with ``jwt_secret``; claims ``sub`` (the credential username),
``telephony_credential_id`` (its username from ``softphone switch token``, its id from the REST
token route; both are accepted), ``exp``, ``iat``, ``jti``. A token
without ``exp``, expired, or living longer than ``max_token_lifetime_secs`` (``exp - iat``,
or ``exp - now`` without ``iat``) is refused with ``token has no expiry (exp)`` / ``token
expired`` / ``token lifetime too long``. The built-in ``jwt_secret`` is public: the switch
refuses to listen beyond loopback with it (tokens would be forgeable).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import string
import time
import tomllib
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softphone.errors import ConfigError

DEFAULT_JWT_SECRET = "softphone-local-switch-jwt-secret"
"""JWT signing secret of the built-in accounts (local testing only)."""
DEFAULT_TOKEN_TTL = 24 * 3600
"""Default lifetime of a minted JWT (s)."""
DEFAULT_MAX_TOKEN_LIFETIME = 24 * 3600
"""Longest JWT lifetime the switch accepts (``exp - iat``, or ``exp - now`` without ``iat``), as Telnyx."""
TOKEN_FAILED = "JWT token authentication failed"
TOKEN_EXPIRED = "token expired"
TOKEN_TOO_LONG = "token lifetime too long"
TOKEN_NO_EXP = "token has no expiry (exp)"


class TokenRefused(Exception):
    """A JWT the switch will not accept; the message is what the client is told."""

INBOUND_FORMATS = ("sip_username", "e164")

# Built-in accounts (used by the demo and the tests).
DEMO_USER, DEMO_PASSWORD, DEMO_NUMBER = "demo", "demo-secret", "+13125550100"
ALICE_USER, ALICE_PASSWORD, ALICE_NUMBER = "alice", "alice-secret", "+13125550111"
BOB_USER, BOB_PASSWORD, BOB_NUMBER = "bob", "bob-secret", "+13125550122"
JOHN_USER, JOHN_PASSWORD = "john1234", "john-secret"
GENCRED1_USER, GENCRED1_PASSWORD = "gencred1", "gencred1-secret"
GENCRED2_USER, GENCRED2_PASSWORD = "gencred2", "gencred2-secret"


CREDENTIAL_NAMESPACE = uuid.UUID("5b0f4a36-6a3e-4c43-9b7e-4f0d3c1f7e21")
"""Namespace of the ids of credentials defined in the accounts file (uuid5 of ``connection/username``)."""


@dataclass(frozen=True)
class Credential:
    """A telephony credential attached to a connection."""

    username: str
    password: str
    connection_id: str
    id: str = ""
    """Telnyx's telephony credential id (a UUID; derived from connection and username when not given)."""
    name: str = ""
    tag: str = ""
    expires_at: float | None = None
    """Unix time after which it no longer logs in (None: never)."""
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.id:
            derived = uuid.uuid5(CREDENTIAL_NAMESPACE, f"{self.connection_id}/{self.username}")
            object.__setattr__(self, "id", str(derived))

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (time.time() if now is None else now)


@dataclass(frozen=True)
class Connection:
    """A SIP connection."""

    id: str
    sip_username: str
    password: str
    numbers: tuple[str, ...] = ()
    inbound_format: str = "sip_username"
    webhook_url: str = ""
    credentials: tuple[Credential, ...] = ()
    webhook_failover_url: str = ""
    """Call Control: where webhooks go when ``webhook_url`` keeps failing."""
    api_key: str = ""
    """Call Control: the bearer token the commands API wants for this connection's calls."""


@dataclass(frozen=True)
class Login:
    """Who a successful login is: the registration slot and its connection."""

    slot: str
    """The registration slot: a SIP username or a credential username."""
    connection_id: str
    display: str
    """What logged in (the username, or ``<credential> (jwt)``)."""
    via_token: bool = False


@dataclass
class Accounts:
    """Everything the switch knows about users."""

    connections: list[Connection] = field(default_factory=list)
    jwt_secret: str = DEFAULT_JWT_SECRET
    max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME
    """Longest JWT lifetime accepted (s)."""

    @property
    def default_secret(self) -> bool:
        """The JWT secret is the built-in (public) one: anyone can forge tokens."""
        return self.jwt_secret == DEFAULT_JWT_SECRET

    _index: _Index | None = field(default=None, init=False, repr=False, compare=False)

    def _lookup(self) -> _Index:
        """Dicts by SIP username, credential username and credential id, rebuilt when ``connections``
        changes (connections are frozen: every change replaces one in the list, or the list's items)."""
        index = self._index
        if index is None or not index.matches(self.connections):
            index = self._index = _Index(self.connections)
        return index

    def connection(self, conn_id: str) -> Connection | None:
        return next((c for c in self.connections if c.id == conn_id), None)

    def by_sip_username(self, username: str) -> Connection | None:
        return self._lookup().by_sip.get(username)

    def credential(self, username: str) -> Credential | None:
        return self._lookup().by_cred.get(username)

    def credential_by_id(self, credential_id: str) -> Credential | None:
        return self._lookup().by_cred_id.get(credential_id)

    def all_credentials(self) -> list[Credential]:
        return [cred for conn in self.connections for cred in conn.credentials]

    # --- credentials over REST (the switch's accounts change at run time) ---------------------

    def add_credential(
        self,
        connection_id: str,
        *,
        name: str = "",
        tag: str = "",
        expires_at: float | None = None,
        username: str = "",
        password: str = "",
        credential_id: str = "",
        now: float | None = None,
    ) -> Credential:
        """A new credential on ``connection_id`` (a random ``gencred...`` username and password unless
        given, as Telnyx generates them); it can log in at once. Raises ``KeyError`` for an unknown
        connection, ``ValueError`` for a username already taken."""
        conn = self.connection(connection_id)
        if conn is None:
            raise KeyError(connection_id)
        taken = set(self.usernames())
        if username and username in taken:
            raise ValueError(f"username {username!r} is taken")
        while not username or username in taken:
            username = "gencred" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20))
        t = time.time() if now is None else now
        cred = Credential(
            username,
            password or secrets.token_hex(16),
            connection_id,
            id=credential_id or str(uuid.uuid4()),
            name=name,
            tag=tag,
            expires_at=expires_at,
            created_at=t,
            updated_at=t,
        )
        self._replace(conn, dataclasses.replace(conn, credentials=(*conn.credentials, cred)))
        return cred

    def update_credential(self, credential_id: str, *, now: float | None = None, **changes: Any) -> Credential:
        """Change ``name``, ``tag``, ``expires_at`` or ``connection_id`` (moves it); raises ``KeyError``."""
        old = self.credential_by_id(credential_id)
        if old is None:
            raise KeyError(credential_id)
        target = changes.get("connection_id", old.connection_id)
        if self.connection(target) is None:
            raise KeyError(target)
        new = dataclasses.replace(old, updated_at=time.time() if now is None else now, **changes)
        self.remove_credential(credential_id)
        conn = self.connection(target)
        assert conn is not None
        self._replace(conn, dataclasses.replace(conn, credentials=(*conn.credentials, new)))
        return new

    def remove_credential(self, credential_id: str) -> Credential:
        """Delete a credential (it logs in no more; sessions already logged in stay); raises ``KeyError``."""
        for conn in self.connections:
            for cred in conn.credentials:
                if cred.id == credential_id:
                    rest = tuple(c for c in conn.credentials if c.id != credential_id)
                    self._replace(conn, dataclasses.replace(conn, credentials=rest))
                    return cred
        raise KeyError(credential_id)

    def _replace(self, old: Connection, new: Connection) -> None:
        self.connections[self.connections.index(old)] = new

    def by_number(self, number: str) -> Connection | None:
        norm = normalize_number(number)
        return next((c for c in self.connections if norm in {normalize_number(n) for n in c.numbers}), None)

    def usernames(self) -> list[str]:
        """Every username that can log in (SIP usernames and credentials)."""
        out: list[str] = []
        for conn in self.connections:
            out.append(conn.sip_username)
            out.extend(cred.username for cred in conn.credentials)
        return out

    def check_password(self, username: str, password: str) -> Login | None:
        """The login for a username/password pair, or None (dict look-ups, constant-time compares)."""
        conn = self.by_sip_username(username)
        if conn is not None and _same_secret(conn.password, password):
            return Login(slot=conn.sip_username, connection_id=conn.id, display=username)
        cred = self.credential(username)
        if cred is not None and _same_secret(cred.password, password) and not cred.expired():
            return Login(slot=cred.username, connection_id=cred.connection_id, display=username)
        return None

    def check_token(self, token: str, *, now: float | None = None) -> Login | None:
        """The login for a JWT, or None if the signature, expiry, lifetime or credential is bad."""
        try:
            return self.token_login(token, now=now)
        except TokenRefused:
            return None

    def token_login(self, token: str, *, now: float | None = None) -> Login:
        """The login for a JWT; raises :class:`TokenRefused` saying why not (see the module docstring)."""
        claims = token_claims(token, self.jwt_secret, now=now, max_lifetime=self.max_token_lifetime)
        cred_id, sub = claims.get("telephony_credential_id"), claims.get("sub")
        cred = None
        if isinstance(cred_id, str):
            cred = self.credential_by_id(cred_id) or self.credential(cred_id)
        if cred is None and isinstance(sub, str):
            cred = self.credential(sub)
        if cred is None or cred.expired(now):
            raise TokenRefused(TOKEN_FAILED)
        name = cred.username
        return Login(slot=cred.username, connection_id=cred.connection_id, display=f"{name} (jwt)", via_token=True)

    def redacted(self) -> list[dict[str, Any]]:
        """Rows for display, secrets replaced by ``***``."""
        rows: list[dict[str, Any]] = []
        for conn in self.connections:
            rows.append(
                {
                    "connection": conn.id,
                    "username": conn.sip_username,
                    "kind": "sip",
                    "password": "***",
                    "numbers": list(conn.numbers),
                    "inbound_format": conn.inbound_format,
                    "webhook_url": conn.webhook_url,
                    "api_key": "***" if conn.api_key else "",
                }
            )
            for cred in conn.credentials:
                rows.append(
                    {
                        "connection": conn.id,
                        "username": cred.username,
                        "kind": "credential",
                        "password": "***",
                        "numbers": [],
                        "inbound_format": "",
                        "webhook_url": "",
                        "api_key": "",
                    }
                )
        return rows


def _same_secret(expected: str, given: str) -> bool:
    """Compare secrets in constant time (a plain ``==`` returns sooner the earlier they differ)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


class _Index:
    """Look-up dicts over a list of connections, and the connections they were built from."""

    __slots__ = ("by_cred", "by_cred_id", "by_sip", "source")

    def __init__(self, connections: list[Connection]) -> None:
        self.source = tuple(connections)  # strong references: an id() could be reused, an object cannot
        self.by_sip: dict[str, Connection] = {}
        self.by_cred: dict[str, Credential] = {}
        self.by_cred_id: dict[str, Credential] = {}
        for conn in connections:  # the first one wins, as the scans it replaces did
            self.by_sip.setdefault(conn.sip_username, conn)
            for cred in conn.credentials:
                self.by_cred.setdefault(cred.username, cred)
                self.by_cred_id.setdefault(cred.id, cred)

    def matches(self, connections: list[Connection]) -> bool:
        src = self.source
        return len(src) == len(connections) and all(a is b for a, b in zip(src, connections, strict=True))


def normalize_number(number: str) -> str:
    """Digits of a phone number with a leading ``+`` (``+1 (312) 555-0100`` -> ``+13125550100``)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "+" + digits if digits else ""


def _make_connection(
    conn_id: str,
    password: str,
    numbers: tuple[str, ...] = (),
    inbound_format: str = "sip_username",
    creds: tuple[tuple[str, str], ...] = (),
) -> Connection:
    return Connection(
        id=conn_id,
        sip_username=conn_id,
        password=password,
        numbers=numbers,
        inbound_format=inbound_format,
        credentials=tuple(Credential(u, p, conn_id) for u, p in creds),
    )


def default_accounts() -> Accounts:
    """The built-in accounts: demo, alice, bob (e164) and john1234 with gencred1/gencred2."""
    return Accounts(
        connections=[
            _make_connection(DEMO_USER, DEMO_PASSWORD, (DEMO_NUMBER,)),
            _make_connection(ALICE_USER, ALICE_PASSWORD, (ALICE_NUMBER,)),
            _make_connection(BOB_USER, BOB_PASSWORD, (BOB_NUMBER,), "e164"),
            _make_connection(
                JOHN_USER,
                JOHN_PASSWORD,
                creds=((GENCRED1_USER, GENCRED1_PASSWORD), (GENCRED2_USER, GENCRED2_PASSWORD)),
            ),
        ],
        jwt_secret=DEFAULT_JWT_SECRET,
    )


def _need_str(table: dict[str, Any], key: str, path: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ConfigError(f"{where}: '{key}' must be a non-empty string", path=path, key=key)
    return value


def accounts_from_dict(data: dict[str, Any], *, path: str = "<accounts>") -> Accounts:
    """Build :class:`Accounts` from decoded TOML; raises :class:`ConfigError` on mistakes."""
    secret = data.get("jwt_secret", DEFAULT_JWT_SECRET)
    if not isinstance(secret, str) or not secret:
        raise ConfigError("jwt_secret must be a non-empty string", path=path, key="jwt_secret")
    raw_conns = data.get("connection", [])
    if not isinstance(raw_conns, list):
        raise ConfigError("use [[connection]] tables", path=path, key="connection")
    conns: list[Connection] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_conns):
        where = f"connection[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} is not a table", path=path)
        conn_id = _need_str(raw, "id", path, where)
        user = _need_str(raw, "sip_username", path, where, default=conn_id) or conn_id
        password = _need_str(raw, "password", path, where)
        numbers = raw.get("numbers", [])
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            raise ConfigError(f"{where}: numbers must be a list of strings", path=path, key="numbers")
        fmt = _need_str(raw, "inbound_format", path, where, default="sip_username")
        if fmt not in INBOUND_FORMATS:
            raise ConfigError(f"{where}: inbound_format must be one of {INBOUND_FORMATS}", path=path)
        webhook = _need_str(raw, "webhook_url", path, where, default="")
        failover = _need_str(raw, "webhook_failover_url", path, where, default="")
        api_key = _need_str(raw, "api_key", path, where, default="")
        creds: list[Credential] = []
        raw_creds = raw.get("credential", [])
        if not isinstance(raw_creds, list):
            raise ConfigError(f"{where}: use [[connection.credential]] tables", path=path)
        for j, rc in enumerate(raw_creds):
            cwhere = f"{where}.credential[{j}]"
            if not isinstance(rc, dict):
                raise ConfigError(f"{cwhere} is not a table", path=path)
            creds.append(
                Credential(_need_str(rc, "username", path, cwhere), _need_str(rc, "password", path, cwhere), conn_id)
            )
        for name in [user, *(c.username for c in creds)]:
            if name in seen:
                raise ConfigError(f"username {name!r} is defined twice", path=path)
            seen.add(name)
        conns.append(Connection(conn_id, user, password, tuple(numbers), fmt, webhook, tuple(creds), failover, api_key))
    lifetime = data.get("max_token_lifetime_secs", DEFAULT_MAX_TOKEN_LIFETIME)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise ConfigError("max_token_lifetime_secs must be a positive number", path=path, key="max_token_lifetime_secs")
    return Accounts(connections=conns, jwt_secret=secret, max_token_lifetime=float(lifetime))


def load_accounts(path: str | Path | None = None) -> Accounts:
    """Load accounts from a TOML file; ``None`` gives :func:`default_accounts`."""
    if path is None:
        return default_accounts()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read accounts file: {exc}", path=str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(p)) from exc
    return accounts_from_dict(data, path=str(p))


# --- JWT ------------------------------------------------------------------------------


def mint_token(
    credential_username: str,
    secret: str,
    ttl: float = DEFAULT_TOKEN_TTL,
    *,
    now: float | None = None,
    credential_id: str = "",
) -> str:
    """A HS256 JWT for a telephony credential (claims sub, telephony_credential_id, iat, exp, jti);
    ``telephony_credential_id`` is ``credential_id`` when given (as Telnyx's), else the username."""
    import jwt

    issued = int(now if now is not None else time.time())
    claims = {
        "sub": credential_username,
        "telephony_credential_id": credential_id or credential_username,
        "iat": issued,
        "exp": issued + int(ttl),
        "jti": str(uuid.uuid4()),
        "iss": "softphone-switch",
    }
    token: str = jwt.encode(claims, secret, algorithm="HS256")
    return token


def verify_token(
    token: str, secret: str, *, now: float | None = None, max_lifetime: float | None = None
) -> dict[str, Any] | None:
    """The claims of a valid token (signature, ``exp`` and, if given, the lifetime checked), else None."""
    try:
        return token_claims(token, secret, now=now, max_lifetime=max_lifetime)
    except TokenRefused:
        return None


def token_claims(
    token: str, secret: str, *, now: float | None = None, max_lifetime: float | None = None
) -> dict[str, Any]:
    """The claims of a valid token; raises :class:`TokenRefused` (expired, no exp, too long, bad)."""
    claims = _verified_claims(token, secret)
    t = time.time() if now is None else now
    exp = claims.get("exp")
    if exp is None:
        raise TokenRefused(TOKEN_NO_EXP)
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise TokenRefused(TOKEN_FAILED)
    if exp <= t:
        raise TokenRefused(TOKEN_EXPIRED)
    iat = claims.get("iat")
    if iat is not None and (isinstance(iat, bool) or not isinstance(iat, int | float) or iat > t + 60):
        raise TokenRefused(TOKEN_FAILED)  # a malformed or future issue time
    if max_lifetime is not None:
        lifetime = exp - (iat if iat is not None else t)
        if lifetime > max_lifetime + 1:
            raise TokenRefused(TOKEN_TOO_LONG)
    return claims


VERIFIED_TOKENS_KEPT = 20_000
"""Signature-checked JWTs remembered (by a SHA-256 of secret and token), so a reconnect skips PyJWT."""
_verified: OrderedDict[bytes, dict[str, Any]] = OrderedDict()


def _verified_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token whose HS256 signature is good (raises :class:`TokenRefused`).

    PyJWT takes ~0.2 ms per token (it validates the base64 alphabet character by character and
    re-checks the key); a client that reconnects presents the same token again. The cache key is a
    SHA-256 of the secret and the token, so a changed secret or a token differing in any byte misses
    and goes through PyJWT, and no token is kept in the clear. Expiry and lifetime are checked
    by the caller on every login, cached or not.
    """
    key = hashlib.sha256(secret.encode("utf-8") + b"\0" + token.encode("utf-8", "surrogatepass")).digest()
    claims = _verified.get(key)
    if claims is None:
        import jwt

        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise TokenRefused(TOKEN_FAILED) from exc
        _verified[key] = claims
        while len(_verified) > VERIFIED_TOKENS_KEPT:
            _verified.popitem(last=False)
    return dict(claims)


def token_for(credential: str, accounts: Accounts | None = None, ttl: float = DEFAULT_TOKEN_TTL) -> str:
    """Mint a JWT for ``credential`` of ``accounts`` (``softphone switch token``).

    Raises :class:`ConfigError` if the credential does not exist.
    """
    accts = accounts if accounts is not None else default_accounts()
    if ttl <= 0 or ttl > accts.max_token_lifetime:
        raise ConfigError(f"ttl must be 1-{accts.max_token_lifetime:g} s (max_token_lifetime_secs)")
    if accts.credential(credential) is None:
        known = ", ".join(c.username for conn in accts.connections for c in conn.credentials) or "none"
        raise ConfigError(f"no telephony credential {credential!r} (known: {known})")
    return mint_token(credential, accts.jwt_secret, ttl)
