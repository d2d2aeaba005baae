"""The sans-I/O signaling core: Telnyx's Verto dialect of JSON-RPC 2.0.

Standard library only. No sockets, no asyncio, no clock and no randomness of its own:
ids and time are injected. The client side is :class:`~softphone.protocol.session.VertoSession`;
the message builders and parsers in :mod:`~softphone.protocol.verto` serve the local switch too.
"""

from __future__ import annotations

from softphone.protocol.events import Event
from softphone.protocol.jsonrpc import ErrorResponse, Message, Request, Response, parse_message
from softphone.protocol.session import Credentials, VertoSession
from softphone.protocol.states import CallState, ClientState, GatewayState, Trigger

__all__ = [
    "CallState",
    "ClientState",
    "Credentials",
    "ErrorResponse",
    "Event",
    "GatewayState",
    "Message",
    "Request",
    "Response",
    "Trigger",
    "VertoSession",
    "parse_message",
]
