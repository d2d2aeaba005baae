"""Where a dialled destination goes: a service, a registration slot, or nowhere.

Destinations are a bare SIP username, ``sip:user@anydomain`` (the domain is ignored),
or a phone number (E.164, with or without ``+``, punctuation ignored). Pure functions
over :class:`~softphone.switch.accounts.Accounts`; whether a slot has a live client is
the caller's business (:mod:`softphone.switch.registry`).

Order: services by name, then services by number, then SIP usernames / credential
usernames, then connection numbers. Anything else is "no route", which is where Call
Control parking will hook in (:data:`NoRouteHook`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from softphone.switch.accounts import Accounts, normalize_number


@dataclass(frozen=True)
class Service:
    """A built-in test service."""

    name: str
    numbers: tuple[str, ...]
    summary: str


SERVICES: tuple[Service, ...] = (
    Service("echo", ("+15550001001", "+13128889999"), "your audio back with minimal delay"),
    Service("tone", ("+15550001002",), "a steady 1004 Hz test tone"),
    Service("dtmf", ("+15550001003",), "plays back each DTMF digit in-band and as telnyx_rtc.info"),
    Service("busy", ("+15550001004",), "rings briefly, then bye USER_BUSY / 486"),
    Service("noanswer", ("+15550001005",), "rings until the caller gives up (or the max ring time: NO_ANSWER / 480)"),
    Service("early", ("+15550001006",), "ringback as early media (telnyx_rtc.media) ~2 s, answer without SDP, echo"),
    Service("reject", ("+15550001007",), "bye CALL_REJECTED / 603"),
    Service("ivr", ("+15550001008",), "speaks a menu, gathers one digit, speaks the choice, hangs up"),
)


@dataclass(frozen=True)
class ServiceRoute:
    service: Service


@dataclass(frozen=True)
class SlotRoute:
    """A registration slot (SIP username or credential username)."""

    slot: str
    connection_id: str


@dataclass(frozen=True)
class NoRoute:
    """Nothing to ring: bye with ``cause``."""

    cause: str
    reason: str = ""


Route = ServiceRoute | SlotRoute | NoRoute
#: Called when routing finds nothing; may return a route of its own (Call Control parking).
NoRouteHook = Callable[[str, str], Awaitable[Route | None]]

_NUMBER_RE = re.compile(r"^\+?[0-9][0-9 ()\-.]{4,}$")


def destination_user(destination: str) -> str:
    """The user part of a destination: ``sip:alice@example.com;transport=ws`` -> ``alice``."""
    dest = destination.strip()
    lowered = dest.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lowered.startswith(scheme):
            dest = dest[len(scheme) :]
            break
    dest = dest.split(";", 1)[0].split("?", 1)[0]
    if "@" in dest:
        dest = dest.split("@", 1)[0]
    return dest


def is_number(text: str) -> bool:
    """True for things that look like phone numbers (digits, optional +, punctuation)."""
    return bool(_NUMBER_RE.match(text))


def service_by_name(name: str) -> Service | None:
    return next((s for s in SERVICES if s.name == name.lower()), None)


def service_by_number(number: str) -> Service | None:
    norm = normalize_number(number)
    return next((s for s in SERVICES if norm in {normalize_number(n) for n in s.numbers}), None)


def route(destination: str, accounts: Accounts) -> Route:
    """Resolve a destination to a route (never raises)."""
    user = destination_user(destination)
    if not user:
        return NoRoute("UNALLOCATED_NUMBER", "empty destination")
    svc = service_by_name(user)
    if svc is not None:
        return ServiceRoute(svc)
    conn = accounts.by_sip_username(user)
    if conn is not None:
        return SlotRoute(conn.sip_username, conn.id)
    cred = accounts.credential(user)
    if cred is not None:
        return SlotRoute(cred.username, cred.connection_id)
    if is_number(user):
        svc = service_by_number(user)
        if svc is not None:
            return ServiceRoute(svc)
        conn = accounts.by_number(user)
        if conn is not None:
            if conn.inbound_format == "sip_username":
                return SlotRoute(conn.sip_username, conn.id)
            # e164 format: Telnyx would send the call to a SIP URI, not to the WebRTC
            # client, so nothing registered here can take it.
            return NoRoute("USER_NOT_REGISTERED", f"{conn.id} delivers numbers in e164 format")
    return NoRoute("UNALLOCATED_NUMBER", f"no such user or number: {user}")

