"""Verto (``telnyx_rtc.*``) methods, causes, and message builders/parsers for both sides.

Client builders follow the official JS SDK 2.27.10 captures (tests/fixtures/traces):
same field names and JSON types. Server builders follow PROTOCOL.md §3-§4 and are used
by the local switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from softphone.errors import LocalProtocolError, RemoteProtocolError
from softphone.protocol.dtmf import DTMF_DIGITS
from softphone.protocol.jsonrpc import build_request, build_result

# --- methods (PROTOCOL.md §4.0) ---------------------------------------------------------
LOGIN = "login"
ANONYMOUS_LOGIN = "anonymous_login"
CLIENT_READY = "telnyx_rtc.clientReady"
GATEWAY_STATE = "telnyx_rtc.gatewayState"
PING = "telnyx_rtc.ping"
INVITE = "telnyx_rtc.invite"
RINGING = "telnyx_rtc.ringing"
MEDIA = "telnyx_rtc.media"
ANSWER = "telnyx_rtc.answer"
ATTACH = "telnyx_rtc.attach"
BYE = "telnyx_rtc.bye"
MODIFY = "telnyx_rtc.modify"
INFO = "telnyx_rtc.info"
CANDIDATE = "telnyx_rtc.candidate"
END_OF_CANDIDATES = "telnyx_rtc.endOfCandidates"
DISPLAY = "telnyx_rtc.display"
EVENT = "telnyx_rtc.event"
PUNT = "telnyx_rtc.punt"

PARKED_HEADER = "X-Telnyx-Parked"
"""Local-switch marker: ``dialogParams.custom_headers`` of the ringing/media sent for a parked call
(Telnyx itself sends nothing that tells a parked call from one ringing elsewhere)."""

# --- JSON-RPC error codes (PROTOCOL.md §2.6) --------------------------------------------
AUTH_REQUIRED = -32000
LOGIN_INCORRECT = -32001
CODEC_ERROR = -32002
GATEWAY_TIMEOUT = -32003
GATEWAY_FAILURE = -32004
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

# --- hangup causes (PROTOCOL.md §5.5) ----------------------------------------------------
CAUSES: dict[str, int] = {
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "INCOMPATIBLE_DESTINATION": 88,
    "MANDATORY_IE_MISSING": 96,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "USER_NOT_REGISTERED": 606,
    "ORIGINATOR_CANCEL": 487,
    "ALLOTTED_TIMEOUT": 602,
    "INVALID_GATEWAY": 608,
    "PURGE": 0,
}

#: SIP status and reason a switch reports with each cause.
CAUSE_SIP: dict[str, tuple[int, str]] = {
    "NORMAL_CLEARING": (200, "OK"),
    "USER_BUSY": (486, "Busy Here"),
    "CALL_REJECTED": (603, "Decline"),
    "UNALLOCATED_NUMBER": (404, "Not Found"),
    "USER_NOT_REGISTERED": (480, "Temporarily Unavailable"),
    "NO_ANSWER": (480, "Temporarily Unavailable"),
    "NO_USER_RESPONSE": (408, "Request Timeout"),
    "ORIGINATOR_CANCEL": (487, "Request Terminated"),
    "NORMAL_TEMPORARY_FAILURE": (503, "Service Unavailable"),
    "INCOMPATIBLE_DESTINATION": (488, "Not Acceptable Here"),
    "RECOVERY_ON_TIMER_EXPIRE": (408, "Request Timeout"),
    "ALLOTTED_TIMEOUT": (408, "Request Timeout"),
}


#: The dialogParams keys the JS SDK sends on every call message besides the call's own.
JS_DIALOG_DEFAULTS: dict[str, Any] = {
    "audio": True,
    "video": False,
    "useStereo": False,
    "attach": False,
    "screenShare": False,
    "userVariables": {},
}


#: ``RTCRtpCodecCapability`` of each codec our media engine (aiortc) offers, by the names a profile's
#: ``codecs`` uses. ``preferred_codecs`` carries these as the JS SDK carries the browser's capabilities
#: (``{channels, clockRate, mimeType, sdpFmtpLine?}``: Chromium leaves out an empty ``sdpFmtpLine``, as for
#: PCMU; aiortc puts no fmtp on its Opus offer, so ours has none either).
CODEC_CAPABILITIES: dict[str, dict[str, Any]] = {
    "opus": {"channels": 2, "clockRate": 48000, "mimeType": "audio/opus"},
    "G722": {"channels": 1, "clockRate": 8000, "mimeType": "audio/G722"},
    "PCMU": {"channels": 1, "clockRate": 8000, "mimeType": "audio/PCMU"},
    "PCMA": {"channels": 1, "clockRate": 8000, "mimeType": "audio/PCMA"},
}


def codec_capability(name: str) -> dict[str, Any]:
    """The ``RTCRtpCodecCapability`` (as JSON) for a codec name, matched case-insensitively."""
    for known, cap in CODEC_CAPABILITIES.items():
        if known.lower() == name.lower():
            return dict(cap)
    raise LocalProtocolError(f"unknown codec {name!r} (known: {', '.join(CODEC_CAPABILITIES)})")


def call_user_agent(sdk_name: str, sdk_version: str) -> str:
    """The string ``User-Agent`` of invite/answer/attach: ``<name>-<version>`` (JS ``Web-2.27.10``)."""
    return f"{sdk_name}-{sdk_version}"


def cause_code(cause: str) -> int:
    """The Q.850 code for a cause name (0 when unknown)."""
    return CAUSES.get(cause, 0)


def valid_dtmf(digits: str) -> bool:
    """True if ``digits`` holds only 0-9, *, #, A-D (upper case): the digit set of :mod:`.dtmf`."""
    return bool(digits) and all(d in DTMF_DIGITS for d in digits)


# --- typed views of incoming params -------------------------------------------------------


def _str(params: dict[str, Any], key: str, default: str = "") -> str:
    value = params.get(key, default)
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RemoteProtocolError(f"{key} is {type(value).__name__}, expected a string")


def _opt_int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RemoteProtocolError(f"{key} is a boolean, expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise RemoteProtocolError(f"{key} is {type(value).__name__}, expected an integer")


def headers_from(value: Any) -> tuple[tuple[str, str], ...]:
    """Parse ``custom_headers`` ([{name, value}]) tolerantly."""
    if not isinstance(value, list):
        return ()
    out: list[tuple[str, str]] = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            val = item.get("value", "")
            out.append((item["name"], val if isinstance(val, str) else str(val)))
    return tuple(out)


def headers_to(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in headers]


def call_id_of(params: dict[str, Any]) -> str:
    """Find the call id: top-level ``callID`` or ``dialogParams.callID``/``callId``."""
    cid = params.get("callID")
    if not isinstance(cid, str) or not cid:
        dialog = params.get("dialogParams")
        if isinstance(dialog, dict):
            cid = dialog.get("callID") or dialog.get("callId")
    if not isinstance(cid, str) or not cid:
        raise RemoteProtocolError("message has no callID")
    return cid


@dataclass(frozen=True)
class TelnyxIds:
    """Correlation ids the server puts on call messages."""

    call_control_id: str = ""
    session_id: str = ""
    leg_id: str = ""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TelnyxIds:
        return cls(
            call_control_id=_str(params, "telnyx_call_control_id"),
            session_id=_str(params, "telnyx_session_id"),
            leg_id=_str(params, "telnyx_leg_id"),
        )

    def merge(self, other: TelnyxIds) -> TelnyxIds:
        return TelnyxIds(
            other.call_control_id or self.call_control_id,
            other.session_id or self.session_id,
            other.leg_id or self.leg_id,
        )


@dataclass(frozen=True)
class InviteParams:
    """A server ``telnyx_rtc.invite`` or ``telnyx_rtc.attach`` (PROTOCOL.md §4.3, §4.6)."""

    call_id: str
    sdp: str
    caller_name: str = ""
    caller_number: str = ""
    callee_name: str = ""
    callee_number: str = ""
    ids: TelnyxIds = field(default_factory=TelnyxIds)
    custom_headers: tuple[tuple[str, str], ...] = ()
    client_state: str = ""

    @classmethod
    def parse(cls, params: dict[str, Any]) -> InviteParams:
        sdp = params.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise RemoteProtocolError("invite without an SDP offer")
        dialog = params.get("dialogParams")
        headers = headers_from(dialog.get("custom_headers")) if isinstance(dialog, dict) else ()
        return cls(
            call_id=call_id_of(params),
            sdp=sdp,
            caller_name=_str(params, "caller_id_name"),
            caller_number=_str(params, "caller_id_number"),
            callee_name=_str(params, "callee_id_name"),
            callee_number=_str(params, "callee_id_number"),
            ids=TelnyxIds.from_params(params),
            custom_headers=headers,
            client_state=_str(params, "client_state") or _str(params, "clientState"),
        )


@dataclass(frozen=True)
class ByeParams:
    """Hangup details, from a server BYE or a client BYE (PROTOCOL.md §4.7-4.8)."""

    call_id: str
    cause: str = "NORMAL_CLEARING"
    cause_code: int = 16
    sip_code: int | None = None
    sip_reason: str = ""
    client_state: str = ""

    @classmethod
    def parse(cls, params: dict[str, Any]) -> ByeParams:
        cause = _str(params, "cause") or "NORMAL_CLEARING"
        code = _opt_int(params, "causeCode")
        return cls(
            call_id=call_id_of(params),
            cause=cause,
            cause_code=code if code is not None else cause_code(cause),
            sip_code=_opt_int(params, "sipCode"),
            sip_reason=_str(params, "sipReason"),
            client_state=_str(params, "client_state") or _str(params, "clientState"),
        )


@dataclass(frozen=True)
class DialogParams:
    """The useful part of a client's ``dialogParams`` (PROTOCOL.md §4.1), as the switch reads it."""

    call_id: str
    destination: str = ""
    caller_name: str = ""
    caller_number: str = ""
    custom_headers: tuple[tuple[str, str], ...] = ()
    client_state: str = ""
    attach: bool = False

    @classmethod
    def parse(cls, params: dict[str, Any]) -> DialogParams:
        dialog = params.get("dialogParams")
        if not isinstance(dialog, dict):
            raise RemoteProtocolError("message has no dialogParams object")
        cid = dialog.get("callID") or dialog.get("callId")
        if not isinstance(cid, str) or not cid:
            raise RemoteProtocolError("dialogParams has no callID")
        return cls(
            call_id=cid,
            destination=_str(dialog, "destination_number"),
            caller_name=_str(dialog, "caller_id_name"),
            caller_number=_str(dialog, "caller_id_number"),
            custom_headers=headers_from(dialog.get("custom_headers")),
            client_state=_str(dialog, "clientState") or _str(dialog, "client_state"),
            attach=dialog.get("attach") is True,
        )


# --- client -> server builders ------------------------------------------------------------


def login_params(
    *,
    login: str | None,
    passwd: str | None,
    login_token: str | None,
    sessid: str | None,
    reconnection: bool,
    sdk_version: str,
    user_agent: str,
) -> dict[str, Any]:
    """``login`` params as the JS SDK sends them (PROTOCOL.md §2.1-2.3).

    ``User-Agent`` is the JS object: ``sdkVersion`` the bare version (JS ``"2.27.10"``), ``data`` the
    full user-agent string (JS ``navigator.userAgent``).
    """
    params: dict[str, Any] = {}
    if login_token:
        params["login_token"] = login_token
    else:
        params["login"] = login or ""
        params["passwd"] = passwd or ""
    params["userVariables"] = {"push_when_active": False, "pn_late_fanout": False}
    params["reconnection"] = reconnection
    params["loginParams"] = {"early_sdp_answer": False}
    params["User-Agent"] = {"sdkVersion": sdk_version, "data": user_agent}
    if sessid:
        params["sessid"] = sessid
    return params


@dataclass
class CallDialog:
    """What we put in ``dialogParams`` for our calls (built like the JS SDK)."""

    call_id: str
    destination: str = ""
    caller_name: str = ""
    caller_number: str = ""
    remote_caller_name: str = "Outbound Call"
    remote_caller_number: str = ""
    custom_headers: list[tuple[str, str]] = field(default_factory=list)
    client_state: str = ""
    ids: TelnyxIds = field(default_factory=TelnyxIds)
    preferred_codecs: list[str] = field(default_factory=list)

    def to_wire(self, *, attach: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = dict(JS_DIALOG_DEFAULTS)
        out["userVariables"] = {}
        out["attach"] = attach
        if self.ids.call_control_id:
            out["telnyxCallControlId"] = self.ids.call_control_id
        if self.ids.session_id:
            out["telnyxSessionId"] = self.ids.session_id
        if self.ids.leg_id:
            out["telnyxLegId"] = self.ids.leg_id
        out["callID"] = self.call_id
        out["destination_number"] = self.destination
        out["remote_caller_id_name"] = self.remote_caller_name
        out["remote_caller_id_number"] = self.remote_caller_number or self.destination
        out["caller_id_name"] = self.caller_name
        out["caller_id_number"] = self.caller_number
        if self.custom_headers:  # JS 2.27.10 omits custom_headers when there are none (bye adds [])
            out["custom_headers"] = headers_to(self.custom_headers)
        if self.client_state:
            out["clientState"] = self.client_state
        if self.preferred_codecs:  # JS sends it only when the application chose codecs
            out["preferred_codecs"] = [codec_capability(c) for c in self.preferred_codecs]
        return out


def invite_params(sessid: str, sdp: str, dialog: CallDialog, ua: str) -> dict[str, Any]:
    return {"sessid": sessid, "sdp": sdp, "User-Agent": ua, "dialogParams": dialog.to_wire()}


def answer_params(sessid: str, sdp: str, dialog: CallDialog, ua: str, *, attach: bool = False) -> dict[str, Any]:
    wire = dialog.to_wire(attach=attach)
    wire.pop("video", None)  # JS 2.27.10 sends no "video" in an answer's dialogParams
    return {"sessid": sessid, "sdp": sdp, "User-Agent": ua, "dialogParams": wire}


def bye_params(sessid: str, dialog: CallDialog, cause: str, code: int) -> dict[str, Any]:
    wire = dialog.to_wire()
    wire.setdefault("custom_headers", [])  # JS 2.27.10 always has custom_headers on a BYE
    return {
        "sipCode": None,
        "sip_call_id": None,
        "sessid": sessid,
        "dialogParams": wire,
        "cause": cause,
        "causeCode": code,
    }


def modify_params(sessid: str, dialog: CallDialog, action: str) -> dict[str, Any]:
    return {"sessid": sessid, "action": action, "dialogParams": dialog.to_wire()}


def info_params(sessid: str, dialog: CallDialog, digits: str) -> dict[str, Any]:
    return {"sessid": sessid, "dtmf": digits, "dialogParams": dialog.to_wire()}


def ack(msg_id: str | int | None, method: str) -> str:
    """The JS-style acknowledgement of a server request (PROTOCOL.md §12.3)."""
    return build_result(msg_id, {"method": method})


# --- server -> client builders (used by the local switch) ------------------------------------


def server_request(msg_id: int, method: str, params: dict[str, Any], voice_sdk_id: str | None = None) -> str:
    return build_request(msg_id, method, params, voice_sdk_id=voice_sdk_id)


def login_result(sessid: str) -> dict[str, Any]:
    return {"message": "logged in", "sessid": sessid}


def gateway_result(state: str, sessid: str, *, dc: str = "", region: str = "") -> dict[str, Any]:
    params: dict[str, Any] = {"state": state}
    if dc:
        params["dc"] = dc
    if region:
        params["region"] = region
    return {"params": params, "sessid": sessid}


def server_invite_params(
    call_id: str,
    sdp: str,
    *,
    caller_name: str,
    caller_number: str,
    callee_name: str,
    callee_number: str,
    ids: TelnyxIds,
    custom_headers: tuple[tuple[str, str], ...] = (),
    client_state: str = "",
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "callID": call_id,
        "sdp": sdp,
        "caller_id_name": caller_name,
        "caller_id_number": caller_number,
        "callee_id_name": callee_name,
        "callee_id_number": callee_number,
        "display_direction": "outbound",
        "telnyx_call_control_id": ids.call_control_id,
        "telnyx_session_id": ids.session_id,
        "telnyx_leg_id": ids.leg_id,
        "dialogParams": {"custom_headers": headers_to(custom_headers)},
    }
    if client_state:
        params["client_state"] = client_state
    return params


def server_bye_params(call_id: str, cause: str, *, sip_code: int | None = None, sip_reason: str = "") -> dict[str, Any]:
    code, reason = CAUSE_SIP.get(cause, (None, ""))
    return {
        "callID": call_id,
        "cause": cause,
        "causeCode": cause_code(cause),
        "sipCode": sip_code if sip_code is not None else code,
        "sipReason": sip_reason or reason,
    }
