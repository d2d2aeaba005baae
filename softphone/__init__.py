"""softphone: a command-line softphone for Telnyx WebRTC voice, and its Python API.

The front door: everything a script needs is importable from here, mirroring the Telnyx SDKs::

    from softphone import Client, Call, AudioConfig, Credentials, CallState, ClientState

    client = Client(url="ws://127.0.0.1:8765", credentials=Credentials(login="demo", password="..."))
    await client.connect()
    call = await client.new_call("echo")

Names are loaded on first use (:pep:`562` module ``__getattr__``), so ``import softphone`` imports
nothing but this file and ``softphone --help`` never loads aiortc or numpy. The version has one
source, ``pyproject.toml``, read through the installed metadata (:mod:`softphone.client.identity`).
See docs/python-api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "__version__": ("softphone.client.identity", "VERSION"),
    "SDK_NAME": ("softphone.client.identity", "SDK_NAME"),
    "SDK_VERSION": ("softphone.client.identity", "SDK_VERSION"),
    "USER_AGENT": ("softphone.client.identity", "USER_AGENT"),
    "Client": ("softphone.client.client", "Client"),
    "ClientEvent": ("softphone.client.client", "ClientEvent"),
    "Call": ("softphone.client.call", "Call"),
    "AudioConfig": ("softphone.media.hub", "AudioConfig"),
    "MediaStats": ("softphone.media.stats", "MediaStats"),
    "Credentials": ("softphone.protocol.session", "Credentials"),
    "CallState": ("softphone.protocol.states", "CallState"),
    "ClientState": ("softphone.protocol.states", "ClientState"),
    "GatewayState": ("softphone.protocol.states", "GatewayState"),
    "Profile": ("softphone.config", "Profile"),
    "load_config": ("softphone.config", "load_config"),
    **{name: ("softphone.errors", name) for name in (
        "SoftphoneError", "ConfigError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError", "RpcError",
        "LoginFailed", "TransportError", "ConnectionLost", "CallError", "CallRejected", "MediaError",
        "DeviceNotFound", "DeviceBusy", "CommandError")},
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS, not sorted
    "__version__", "SDK_NAME", "SDK_VERSION", "USER_AGENT",
    "Client", "ClientEvent", "Call", "AudioConfig", "MediaStats",
    "Credentials", "CallState", "ClientState", "GatewayState",
    "Profile", "load_config",
    "SoftphoneError", "ConfigError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError", "RpcError",
    "LoginFailed", "TransportError", "ConnectionLost", "CallError", "CallRejected", "MediaError",
    "DeviceNotFound", "DeviceBusy", "CommandError",
]

if TYPE_CHECKING:
    from softphone.client.call import Call
    from softphone.client.client import Client, ClientEvent
    from softphone.client.identity import SDK_NAME, SDK_VERSION, USER_AGENT
    from softphone.client.identity import VERSION as __version__
    from softphone.config import Profile, load_config
    from softphone.errors import (
        CallError,
        CallRejected,
        CommandError,
        ConfigError,
        ConnectionLost,
        DeviceBusy,
        DeviceNotFound,
        LocalProtocolError,
        LoginFailed,
        MediaError,
        ProtocolError,
        RemoteProtocolError,
        RpcError,
        SoftphoneError,
        TransportError,
    )
    from softphone.media.hub import AudioConfig
    from softphone.media.stats import MediaStats
    from softphone.protocol.session import Credentials
    from softphone.protocol.states import CallState, ClientState, GatewayState


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'softphone' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
