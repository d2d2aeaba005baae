"""Telephony credentials over REST, as Telnyx's ``/v2/telephony_credentials`` (the SDK's
``client.telephony_credentials``)::

    POST   /v2/telephony_credentials                 create on a connection (connection_id, name, tag, expires_at)
    GET    /v2/telephony_credentials                 list (filter[name|tag|status|resource_id|sip_username],
                                                     page[number], page[size])
    GET    /v2/telephony_credentials/{id}            one
    PATCH  /v2/telephony_credentials/{id}            update (name, tag, expires_at, connection_id)
    DELETE /v2/telephony_credentials/{id}            delete (returns the deleted credential)
    POST   /v2/telephony_credentials/{id}/token      a JWT for it, as text/plain (24 h, as Telnyx)

A created credential is a credential of the switch's accounts at once: it logs in with its
``sip_username``/``sip_password`` or with a token, into the registration slot of its username
(the last one registered rings, as for every credential). An expired one (``expires_at`` past)
logs in no more. Credentials live in memory and are saved to ``<data_dir>/telephony_credentials.json``
(0600), restored when the API starts, so their ids and passwords survive a restart.

A key sees only its own connections' credentials (and those of connections without a key), as
for calls. Credentials defined in the accounts file are listed too (with stable ids, so a token can be
minted for them) but without their ``sip_password``, which stays in the file; they cannot be
updated or deleted over REST (422: change the file).

The credential object is the SDK's ``TelephonyCredential``: ``id``, ``record_type``
``"credential"``, ``resource_id`` ``"connection:<id>"``, ``sip_username``, ``sip_password``,
``name``, ``tag``, ``expired``, ``expires_at``, ``created_at``, ``updated_at``, ``user_id``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.switch.accounts import DEFAULT_TOKEN_TTL, Credential, mint_token
from softphone.switch.callcontrol.engine import CommandError
from softphone.switch.callcontrol.routes import ApiContext, RawResponse, current_request, page, register_route
from softphone.switch.callcontrol.webhooks import iso_now

if TYPE_CHECKING:
    from softphone.switch.accounts import Accounts

logger = logging.getLogger(__name__)

STORE_FILE = "telephony_credentials.json"
TOKEN_TTL_S = DEFAULT_TOKEN_TTL
"""Lifetime of a token from the REST route (24 h, as Telnyx's)."""


def credential_object(cred: Credential) -> dict[str, Any]:
    """The SDK's ``TelephonyCredential`` for ``cred``."""
    created = cred.created_at or 0.0
    return {
        "id": cred.id,
        "record_type": "credential",
        "name": cred.name or None,
        "tag": cred.tag or None,
        "resource_id": f"connection:{cred.connection_id}",
        "sip_username": cred.username,
        # The accounts file's own credentials are the operator's: their passwords stay in the file.
        "sip_password": cred.password if cred.created_at else None,
        "expired": cred.expired(),
        "expires_at": iso_now(cred.expires_at) if cred.expires_at is not None else None,
        "created_at": iso_now(created) if created else None,
        "updated_at": iso_now(cred.updated_at or created) if created else None,
        "user_id": None,
    }


def _accounts(api: ApiContext) -> Accounts:
    accounts: Accounts = api.cc.switch.accounts
    return accounts


def _bad(param: str, detail: str) -> CommandError:
    return CommandError(422, "10015", f"Invalid value for {param}", detail)


def _not_found(credential_id: str) -> CommandError:
    return CommandError(404, "10005", "Resource not found", f"no telephony credential {credential_id}"[:200])


def _string(body: dict[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad(key, f"{key} must be a string")
    if len(v) > 255:
        raise _bad(key, f"{key} is longer than 255 characters")
    return v


def _expiry(body: dict[str, Any]) -> tuple[bool, float | None]:
    """(given, unix time) of ``expires_at`` (an ISO-8601 date or date-time; naive means UTC)."""
    if "expires_at" not in body:
        return False, None
    v = body["expires_at"]
    if v is None:
        return True, None
    if not isinstance(v, str):
        raise _bad("expires_at", "expires_at must be an ISO-8601 date-time string")
    try:
        when = datetime.fromisoformat(v)
    except ValueError as exc:
        raise _bad("expires_at", f"not an ISO-8601 date-time: {v[:60]!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return True, when.timestamp()


def _mine(api: ApiContext, credential_id: str, token: str) -> Credential:
    cred = _accounts(api).credential_by_id(credential_id)
    if cred is None or not api.allowed(cred.connection_id, token):
        raise _not_found(credential_id)  # another key's credential does not exist for this one
    return cred


def _writable(cred: Credential) -> None:
    if not cred.created_at:
        raise CommandError(
            422, "10015", "Credential is read-only", "it is defined in the accounts file: change it there"
        )


def _connection(api: ApiContext, body: dict[str, Any], token: str, *, required: bool) -> str | None:
    conn_id = _string(body, "connection_id")
    if conn_id is None or conn_id == "":
        if required:
            raise _bad("connection_id", "connection_id is required")
        return None
    if _accounts(api).connection(conn_id) is None:
        raise _bad("connection_id", f"no connection {conn_id}"[:200])
    api.authorize(conn_id, token)
    return conn_id


async def create(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    conn_id = _connection(api, body, token, required=True)
    assert conn_id is not None
    _, expires = _expiry(body)
    cred = _accounts(api).add_credential(
        conn_id, name=_string(body, "name") or "", tag=_string(body, "tag") or "", expires_at=expires
    )
    save(api)
    return RawResponse.json({"data": credential_object(cred)}, status=201)


async def list_(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    keys = [a.api_key for a in api.cc.apps.values() if a.api_key]
    if token and keys and token not in keys:
        raise CommandError(401, "10009", "Authentication failed", "wrong API key")
    q = current_request().query
    filters = {k[7:-1]: v for k, v in q.items() if k.startswith("filter[") and k.endswith("]")}
    unknown = set(filters) - {"name", "tag", "status", "resource_id", "sip_username"}
    if unknown:
        raise _bad(f"filter[{sorted(unknown)[0]}]", "filter on name, tag, status, resource_id or sip_username")
    out = []
    for cred in _accounts(api).all_credentials():
        if not api.allowed(cred.connection_id, token):
            continue
        obj = credential_object(cred)
        status = "expired" if obj["expired"] else "active"
        checks = {"name": obj["name"], "tag": obj["tag"], "status": status, "resource_id": obj["resource_id"],
                  "sip_username": obj["sip_username"]}
        if all(checks[k] == v for k, v in filters.items()):
            out.append(obj)
    return page(out, q)


async def retrieve(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    return credential_object(_mine(api, params["id"], token))


async def update(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cred = _mine(api, params["id"], token)
    _writable(cred)
    changes: dict[str, Any] = {}
    for key in ("name", "tag"):
        v = _string(body, key)
        if v is not None:
            changes[key] = v
    given, expires = _expiry(body)
    if given:
        changes["expires_at"] = expires
    conn_id = _connection(api, body, token, required=False)
    if conn_id is not None:
        changes["connection_id"] = conn_id
    new = _accounts(api).update_credential(cred.id, **changes)
    save(api)
    return credential_object(new)


async def delete(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cred = _mine(api, params["id"], token)
    _writable(cred)
    _accounts(api).remove_credential(cred.id)
    save(api)
    return credential_object(cred)


async def create_token(api: ApiContext, params: dict[str, str], body: dict[str, Any], token: str) -> Any:
    cred = _mine(api, params["id"], token)
    if cred.expired():
        raise CommandError(422, "10015", "Credential expired", f"telephony credential {cred.id} has expired")
    accounts = _accounts(api)
    ttl = min(TOKEN_TTL_S, accounts.max_token_lifetime)
    return RawResponse.text(mint_token(cred.username, accounts.jwt_secret, ttl, credential_id=cred.id), status=201)


# --- persistence -----------------------------------------------------------------------------------


def store_path(api: ApiContext) -> Path:
    return Path(api.cc.options.data_dir).expanduser() / STORE_FILE


def save(api: ApiContext) -> None:
    """Write the credentials created over REST (those with a ``created_at``) to the data directory."""
    rows = [
        {
            "id": c.id,
            "connection_id": c.connection_id,
            "sip_username": c.username,
            "sip_password": c.password,
            "name": c.name,
            "tag": c.tag,
            "expires_at": c.expires_at,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
        }
        for c in _accounts(api).all_credentials()
        if c.created_at
    ]
    path = store_path(api)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, path)
    except OSError as exc:
        logger.error("telephony credentials not saved to %s: %s", path, exc)


def restore(api: ApiContext) -> int:
    """Add the saved credentials back (those whose connection still exists); returns how many."""
    path = store_path(api)
    if not path.exists():
        return 0
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.error("telephony credentials not restored from %s: %s", path, exc)
        return 0
    accounts = _accounts(api)
    n = 0
    for row in rows if isinstance(rows, list) else []:
        with contextlib.suppress(KeyError, ValueError, TypeError, AttributeError):
            if accounts.credential_by_id(row["id"]) is None:
                cred = accounts.add_credential(
                    row["connection_id"],
                    name=row.get("name") or "",
                    tag=row.get("tag") or "",
                    expires_at=row.get("expires_at"),
                    username=row["sip_username"],
                    password=row["sip_password"],
                    credential_id=row["id"],
                    now=float(row["created_at"]),
                )
                if row.get("updated_at"):
                    accounts.update_credential(cred.id, now=float(row["updated_at"]))
                n += 1
    return n


register_route("POST", "/v2/telephony_credentials", create)
register_route("GET", "/v2/telephony_credentials", list_)
register_route("GET", "/v2/telephony_credentials/{id}", retrieve)
register_route("PATCH", "/v2/telephony_credentials/{id}", update)
register_route("DELETE", "/v2/telephony_credentials/{id}", delete)
register_route("POST", "/v2/telephony_credentials/{id}/token", create_token)
