"""Login tokens minted through the REST API: ``POST {api}/telephony_credentials/{id}/token``.

A profile with an API key and a telephony credential id (and no token or password) logs in with
a JWT this module mints just before login, from Telnyx (``https://api.telnyx.com/v2``) or the
local switch (``http://127.0.0.1:PORT/v2``) alike: the request carries ``Authorization: Bearer
<api key>`` and the answer's body is the JWT as ``text/plain``. :class:`TokenMinter` does it with
httpx (its ``transport`` is the seam for in-memory tests).

Errors are mapped once, here: a refused key or an unknown/expired credential (401, 403, 404, 422)
is :class:`TokenRefused` (a :class:`~softphone.errors.LoginFailed`: exit code 7); no answer, or a
server error (5xx), is :class:`~softphone.errors.TransportError` (exit code 8); a body that is
not a JWT is a :class:`~softphone.errors.RemoteProtocolError`. The API key and every minted token
are registered with :func:`softphone.log.register_secret`, so no log line, panel or JSON output
shows them, and no message built here contains them.

Expiry: :func:`token_expiry` reads the JWT's ``exp`` (no signature check: the server verifies it)
and :func:`refresh_lead` says how long before it the client warns and mints a new one (120 s, as
the SDKs warn, or half the lifetime of a shorter token).
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from softphone.config import TELNYX_API_BASE_URL, is_loopback_host
from softphone.errors import ConfigError, LoginFailed, RemoteProtocolError, TransportError
from softphone.log import redact, register_secret
from softphone.protocol.session import token_claims

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EXPIRY_WARNING",
    "MINT_METHOD",
    "TELNYX_API_BASE_URL",
    "TokenMinter",
    "TokenRefused",
    "refresh_lead",
    "token_expiry",
    "token_lifetime",
]

#: Seconds before a token's ``exp`` when the SDKs warn (JS ``TOKEN_EXPIRING_SOON``, PROTOCOL.md §2.2).
EXPIRY_WARNING = 120.0
#: The ``method`` a minting error carries. (Messages here never put a colon right after the word
#: "token": softphone.log.redact would take the next word for a secret value.)
MINT_METHOD = "token mint"
_REFUSED = {401: "the API key was refused (401)", 403: "the API key may not mint tokens for this credential (403)"}


class TokenRefused(LoginFailed):
    """The API refused to mint a token: bad API key, or no such (or an expired) credential."""


def token_expiry(token: str) -> float | None:
    """The JWT's ``exp`` (epoch seconds), or None when it has none (or is not a JWT)."""
    exp = token_claims(token).get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def token_lifetime(token: str, now: float | None = None) -> float | None:
    """``exp - iat`` (``exp - now`` without ``iat``), or None without ``exp``."""
    claims = token_claims(token)
    exp, iat = token_expiry(token), claims.get("iat")
    if exp is None:
        return None
    start = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else (now or time.time())
    return exp - start


def refresh_lead(lifetime: float, warning: float = EXPIRY_WARNING) -> float:
    """Seconds before expiry to warn and refresh: ``warning``, or half of a lifetime shorter than twice it."""
    return max(0.0, min(warning, lifetime / 2))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi's CA bundle, verification on), built once per process:
    httpx builds a new one for every client otherwise (~30 ms, most of a mint on loopback)."""
    import httpx

    return httpx.create_ssl_context()


def _error_detail(response: httpx.Response) -> str:
    """Telnyx's ``{"errors": [{"title", "detail"}]}`` as one short line (redacted), else ''."""
    try:
        body: Any = json.loads(response.text)
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    parts = [str(first[k]) for k in ("title", "detail") if isinstance(first.get(k), str) and first[k]]
    return redact(": ".join(parts))[:200]


class TokenMinter:
    """Mints login tokens for one telephony credential with one API key.

    ``api_base_url`` is the API's v2 root (``https://api.telnyx.com/v2``, or the local switch's
    ``http://127.0.0.1:PORT/v2``); plain ``http://`` goes to loopback hosts only unless
    ``insecure`` (the key would travel in clear). ``transport`` (an ``httpx.AsyncBaseTransport``,
    e.g. ``httpx.MockTransport``) replaces the network in tests.
    """

    def __init__(
        self,
        api_base_url: str,
        api_key: str,
        credential_id: str,
        *,
        timeout: float = 10.0,
        insecure: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(api_base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"api_base_url must be an https:// URL (http:// for a local switch): {api_base_url!r}")
        if parts.scheme == "http" and not insecure and not is_loopback_host(parts.hostname):
            raise ConfigError(f"refusing to send the API key over http:// to {parts.hostname!r}: use https://")
        if not api_key:
            raise ConfigError("no API key (api_key, api_key_cmd or TELNYX_API_KEY) to mint a login token with")
        if not credential_id.strip():
            raise ConfigError("no credential_id (a telephony credential id) to mint a login token for")
        register_secret(api_key)
        self.api_base_url = api_base_url.rstrip("/")
        self.credential_id = credential_id.strip()
        self.timeout = timeout
        self._api_key = api_key
        self._transport = transport

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks
        return f"TokenMinter({self.url!r}, api_key='***')"

    @property
    def url(self) -> str:
        """Where the token is minted (no secret in it)."""
        return f"{self.api_base_url}/telephony_credentials/{quote(self.credential_id, safe='')}/token"

    async def mint(self) -> str:
        """POST for a fresh JWT and return it (registered as a secret). Raises as the module says."""
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "text/plain"}
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=self.timeout,
                                         verify=_ssl_context()) as http:
                response = await http.post(self.url, headers=headers)
        except httpx.TimeoutException:
            raise TransportError(f"{self.api_base_url} did not answer in {self.timeout:g} s "
                                 "(minting a login token)") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach {self.api_base_url} to mint a login token "
                                 f"({redact(str(exc)) or type(exc).__name__})") from None
        status = response.status_code
        if status >= 400:
            detail = _error_detail(response)
            if status in _REFUSED:
                message = _REFUSED[status]
            elif status == 404:
                message = f"no telephony credential {self.credential_id!r} for this API key (404)"
            elif status < 500:
                message = f"the API refused to mint a token for credential {self.credential_id!r} ({status})"
            else:
                raise TransportError(f"{self.api_base_url} answered {status} to the token request"
                                     + (f" ({detail})" if detail else ""))
            raise TokenRefused(status, message + (f": {detail}" if detail else ""), MINT_METHOD)
        token = response.text.strip()
        if token.count(".") != 2 or not token_claims(token) or any(c.isspace() for c in token):
            raise RemoteProtocolError(f"{self.api_base_url} answered {status} to the token request "
                                      "with something that is not a JWT")
        register_secret(token)
        return token
