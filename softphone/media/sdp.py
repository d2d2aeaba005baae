"""Small, protocol-agnostic SDP text helpers used by :mod:`softphone.media.peer`.

These work on SDP as text, line by line, and touch only what the engine needs:
candidate filtering for loopback operation, the audio transport profile
(FreeSWITCH offers ``RTP/SAVPF``), and reading the negotiated codec.
"""

from __future__ import annotations

import ipaddress
import re

_M_LINE = re.compile(r"^m=(\w+) (\d+) (\S+) (.*)$")
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/(\d+)")
# Static payload types that may appear without an rtpmap line (RFC 3551).
_STATIC_PT = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}


def _lines(sdp: str) -> list[str]:
    return sdp.replace("\r\n", "\n").strip("\n").split("\n")


def _join(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def candidate_address(line: str) -> tuple[str, str] | None:
    """Return ``(transport, address)`` of an ``a=candidate:`` line, else ``None``."""
    if not line.startswith("a=candidate:"):
        return None
    parts = line[len("a=candidate:") :].split()
    if len(parts) < 6:
        return None
    return parts[2].lower(), parts[4]


def _is_loopback(address: str, host_address: str) -> bool:
    if address == host_address:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback and ":" not in address
    except ValueError:
        return False  # a hostname, typically an mDNS ``.local`` name


def filter_candidates(sdp: str, *, loopback_only: bool, host_address: str = "127.0.0.1") -> str:
    """Drop candidates the engine must not use.

    Always drops mDNS (``*.local``) candidates when ``loopback_only`` (resolving
    them would need multicast). With ``loopback_only`` it also drops every
    candidate that is not UDP on a loopback IPv4 address.
    """
    if not loopback_only:
        return sdp
    out = []
    for line in _lines(sdp):
        cand = candidate_address(line)
        if cand is not None:
            transport, address = cand
            if transport != "udp" or not _is_loopback(address, host_address):
                continue
        out.append(line)
    return _join(out)


def audio_profile(sdp: str) -> str | None:
    """The transport profile of the first audio m-line (e.g. ``UDP/TLS/RTP/SAVPF``)."""
    for line in _lines(sdp):
        m = _M_LINE.match(line)
        if m and m.group(1) == "audio":
            return m.group(3)
    return None


def set_audio_profile(sdp: str, profile: str) -> str:
    """Rewrite the transport profile of every audio m-line."""
    out = []
    for line in _lines(sdp):
        m = _M_LINE.match(line)
        if m and m.group(1) == "audio":
            line = f"m=audio {m.group(2)} {profile} {m.group(4)}"
        out.append(line)
    return _join(out)


def first_audio_codec(sdp: str) -> tuple[str, int] | None:
    """``(name, clock_rate)`` of the first payload type of the first audio m-line.

    In an answer this is the codec both sides send (RFC 3264 §6.1).
    """
    lines = _lines(sdp)
    in_audio = False
    first_pt: int | None = None
    rtpmap: dict[int, tuple[str, int]] = {}
    for line in lines:
        m = _M_LINE.match(line)
        if m:
            if in_audio:
                break
            in_audio = m.group(1) == "audio"
            if in_audio:
                fmts = m.group(4).split()
                first_pt = int(fmts[0]) if fmts and fmts[0].isdigit() else None
            continue
        if in_audio:
            r = _RTPMAP.match(line)
            if r:
                rtpmap[int(r.group(1))] = (r.group(2), int(r.group(3)))
    if first_pt is None:
        return None
    return rtpmap.get(first_pt) or _STATIC_PT.get(first_pt)


def sdp_problem(sdp: str) -> str | None:
    """Why ``sdp`` cannot be a WebRTC audio offer/answer, or None if it looks usable.

    A cheap structural check, so bad input is refused with a clear message before it
    reaches aiortc: version line, an audio section, ICE credentials and a DTLS fingerprint.
    """
    lines = _lines(sdp)
    if not lines or lines[0].strip() != "v=0":
        return "SDP does not start with v=0"
    if not any(line.startswith("m=audio ") for line in lines):
        return "SDP has no audio section (m=audio)"
    if not any(line.startswith("a=ice-ufrag:") for line in lines) or not any(
        line.startswith("a=ice-pwd:") for line in lines
    ):
        return "SDP has no ICE credentials (a=ice-ufrag / a=ice-pwd)"
    if not any(line.startswith("a=fingerprint:") for line in lines):
        return "SDP has no DTLS fingerprint (a=fingerprint)"
    return None
