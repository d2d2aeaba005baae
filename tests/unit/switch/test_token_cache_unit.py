"""Verified JWTs are remembered safely (softphone.switch.accounts): a reconnect with the same token skips
PyJWT, but expiry is still checked, a token changed in any byte or signed with another secret still fails,
and the cache is bounded."""

from __future__ import annotations

import time

import pytest

from softphone.switch import accounts as acc
from softphone.switch.accounts import GENCRED1_USER, TokenRefused, default_accounts, mint_token


def test_a_reused_token_skips_pyjwt_and_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    accts = default_accounts()
    now = time.time()
    token = mint_token(GENCRED1_USER, accts.jwt_secret, ttl=60, now=now)
    first = accts.token_login(token, now=now)
    import jwt

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("PyJWT was asked again")

    monkeypatch.setattr(jwt, "decode", refuse)
    assert accts.token_login(token, now=now + 1) == first  # cached: no second PyJWT call
    with pytest.raises(TokenRefused, match=acc.TOKEN_EXPIRED):
        accts.token_login(token, now=now + 61)  # the cached claims still expire


def test_tampered_tokens_and_other_secrets_are_not_taken_from_the_cache() -> None:
    accts = default_accounts()
    token = mint_token(GENCRED1_USER, accts.jwt_secret, ttl=60)
    accts.token_login(token)
    head, payload, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(TokenRefused, match=acc.TOKEN_FAILED):
        accts.token_login(f"{head}.{payload}.{flipped}")
    accts.jwt_secret = "another-secret-of-at-least-32-bytes"  # a changed accounts file: the cache does not apply
    with pytest.raises(TokenRefused, match=acc.TOKEN_FAILED):
        accts.token_login(token)


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "VERIFIED_TOKENS_KEPT", 3)
    accts = default_accounts()
    now = time.time()
    for i in range(6):
        accts.token_login(mint_token(GENCRED1_USER, accts.jwt_secret, ttl=60 + i, now=now), now=now)
    assert len(acc._verified) <= 3
