"""The softphone error tree.

Every exception the softphone raises on purpose derives from :class:`SoftphoneError`,
so a caller can catch one root. Third-party exceptions (websockets, aiortc, PyAudio)
are translated at the layer boundary that meets them.

::

    SoftphoneError
    ├── ConfigError              bad or missing configuration (names file, key, problem)
    ├── ProtocolError
    │   ├── LocalProtocolError   we tried something the state machine forbids
    │   └── RemoteProtocolError  the peer sent something malformed or out of order
    ├── RpcError                 a JSON-RPC error answer (code, message)
    │   └── LoginFailed          login rejected (-32000/-32001) or registration failed
    ├── TransportError           the websocket could not be used
    │   └── ConnectionLost       it was open and went away
    ├── CallError                a call could not be made or ended abnormally
    │   └── CallRejected         the far end refused (cause, sip_code)
    ├── MediaError               aiortc or audio trouble
    │   ├── DeviceNotFound
    │   └── DeviceBusy
    └── CommandError             a user command is malformed or cannot run now
"""

from __future__ import annotations


class SoftphoneError(Exception):
    """Root of every error the softphone raises on purpose."""


class ConfigError(SoftphoneError):
    """Configuration is missing or wrong.

    ``path`` and ``key`` name where, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ""
        if path and key:
            where = f"{path}: {key}: "
        elif path:
            where = f"{path}: "
        elif key:
            where = f"{key}: "
        super().__init__(f"{where}{message}")


class ProtocolError(SoftphoneError):
    """The signaling protocol was violated."""


class LocalProtocolError(ProtocolError):
    """We attempted a move the protocol state machine does not allow."""


class RemoteProtocolError(ProtocolError):
    """The remote side sent malformed or unexpected data."""


class RpcError(SoftphoneError):
    """A JSON-RPC error response."""

    def __init__(self, code: int, message: str, method: str | None = None) -> None:
        self.code = code
        self.rpc_message = message
        self.method = method
        prefix = f"{method}: " if method else ""
        super().__init__(f"{prefix}{message} ({code})")


class LoginFailed(RpcError):
    """Login was refused (bad credentials, bad or expired JWT) or registration failed."""


class TransportError(SoftphoneError):
    """The websocket transport failed."""


class ConnectionLost(TransportError):
    """An open websocket went away."""


class CallError(SoftphoneError):
    """A call could not be placed or ended abnormally."""


class CallRejected(CallError):
    """The far end refused the call."""

    def __init__(self, cause: str, sip_code: int | None = None, cause_code: int | None = None) -> None:
        self.cause = cause
        self.sip_code = sip_code
        self.cause_code = cause_code
        extra = f" (SIP {sip_code})" if sip_code else ""
        super().__init__(f"call rejected: {cause}{extra}")


class MediaError(SoftphoneError):
    """Media (aiortc, codecs or audio devices) failed."""


class DeviceNotFound(MediaError):
    """No audio device matches what was asked for."""


class DeviceBusy(MediaError):
    """The audio device exists but cannot be opened."""


class CommandError(SoftphoneError):
    """A user command is malformed or cannot be carried out now."""
