"""The measurements behind ``softphone doctor``: each probe returns :class:`Check` rows, never raises.

Groups: ``audio`` (sound server, PortAudio devices, the profile's devices opened for a moment),
``server`` (DNS, TCP, TLS and its certificate, the websocket upgrade, a real login, the gateway),
``ice`` (a STUN Binding to each STUN server, a TURN allocation where credentials are set),
``clock`` (the server's ``Date`` against the local clock, a login JWT's ``iat``/``exp``) and
``versions``; the server group lives in :mod:`softphone.diag.server_probe`. The verdicts and
hints are documented in README "Diagnostics".
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from softphone.config import Profile, effective_ice_servers
from softphone.diag import stun
from softphone.errors import MediaError
from softphone.log import redact

__all__ = ["Check", "ServerFacts", "Verdict", "audio_checks", "clock_checks", "elapsed_ms", "error_text", "ice_checks",
           "version_checks"]


class Verdict(StrEnum):
    """How one check came out, best first; the worst decides the exit code."""

    OK = "ok"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return {"ok": 0, "skip": 0, "warn": 1, "fail": 2}[self.value]


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    group: str
    name: str
    verdict: Verdict
    detail: str
    hint: str = ""
    ms: float | None = None  #: how long the measured step took, where one was timed
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "name": self.name, "verdict": self.verdict.value, "detail": redact(self.detail),
                "hint": redact(self.hint), "ms": None if self.ms is None else round(self.ms, 1), "data": self.data}


def elapsed_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - t0) * 1000.0


def error_text(exc: BaseException) -> str:
    """A short reason for ``exc`` (an OSError by its own text)."""
    if isinstance(exc, OSError):
        # asyncio's "Connect call failed (...)" says less than ECONNREFUSED's own text; getaddrinfo's
        # errors (negative EAI_* numbers) have only their strerror.
        if exc.strerror and not exc.strerror.startswith("Connect call failed"):
            return exc.strerror
        if exc.errno and exc.errno > 0:
            return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


# --- audio ------------------------------------------------------------------------------------------


def _sound_server() -> Check:
    server = os.environ.get("PULSE_SERVER", "")
    pactl = shutil.which("pactl")
    if pactl is None:
        if server:
            return Check("audio", "sound server", Verdict.WARN, f"PULSE_SERVER={server}, but no pactl to ask it",
                         "install pulseaudio-utils (Debian) to let doctor query the server")
        return Check("audio", "sound server", Verdict.WARN, "no PulseAudio/PipeWire found (no pactl, no PULSE_SERVER)",
                     "PortAudio then talks to ALSA directly; install pipewire-pulse or pulseaudio for device sharing")
    t0 = time.perf_counter()
    try:
        done = subprocess.run([pactl, "info"], capture_output=True, text=True, timeout=5, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("audio", "sound server", Verdict.WARN, f"pactl info: {error_text(exc)}",
                     "is the sound server running? (systemctl --user status pipewire-pulse / pulseaudio)")
    info = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no answer"])[0]
        return Check("audio", "sound server", Verdict.WARN, f"pactl info failed: {why}",
                     "start PulseAudio/PipeWire (systemctl --user start pipewire-pulse) or check PULSE_SERVER",
                     elapsed_ms(t0), {"pulse_server": server})
    name = info.get("Server Name", "?")
    detail = f"{name} {info.get('Server Version', '')}".strip()
    if server:
        detail += f" at {server}"
    return Check("audio", "sound server", Verdict.OK, detail, "", elapsed_ms(t0),
                 {"server_name": name, "server_version": info.get("Server Version", ""), "pulse_server": server,
                  "default_sink": info.get("Default Sink", ""), "default_source": info.get("Default Source", "")})


def _level_dbfs(samples: Any) -> tuple[float, float]:
    import numpy as np

    data = np.asarray(samples, dtype=np.float64) / 32768.0
    if data.size == 0:
        return -math.inf, -math.inf
    rms = float(np.sqrt(np.mean(data * data)))
    peak = float(np.max(np.abs(data)))
    return (20 * math.log10(rms) if rms > 0 else -math.inf), (20 * math.log10(peak) if peak > 0 else -math.inf)


def _db(value: float) -> str:
    return "-inf" if not math.isfinite(value) else f"{value:.1f}"


def _open_device(pa: Any, index: int, *, output: bool, seconds: float) -> tuple[float, float, float]:
    """Open a device at 48 kHz mono for ``seconds``: (open ms, rms dBFS, peak dBFS) (output: 0.0 levels)."""
    import numpy as np
    import pyaudio

    from softphone.media.devices import quiet_stderr

    frames = 960
    t0 = time.perf_counter()
    with quiet_stderr():
        stream = pa.open(format=pyaudio.paInt16, channels=1, rate=48000, frames_per_buffer=frames,
                         input=not output, output=output,
                         **({"output_device_index": index} if output else {"input_device_index": index}))
    opened = elapsed_ms(t0)
    try:
        chunks = max(1, int(seconds * 48000 / frames))
        if output:
            silence = b"\x00\x00" * frames
            for _ in range(chunks):
                stream.write(silence)
            return opened, 0.0, 0.0
        data = [np.frombuffer(stream.read(frames, exception_on_overflow=False), dtype=np.int16)
                for _ in range(chunks)]
        # The first 100 ms may hold the device's start-up click or ramp: judge the rest.
        rms, peak = _level_dbfs(np.concatenate(data[max(0, min(len(data) - 1, 5)):]))
        return opened, rms, peak
    finally:
        with quiet_stderr(), contextlib.suppress(Exception):
            stream.close()


def _audio_blocking(profile: Profile, seconds: float) -> list[Check]:
    from softphone.media.devices import devices_of, match_device, open_pyaudio, quiet_stderr

    backend = profile.audio_backend
    if backend not in ("auto", "pyaudio"):
        reason = f"audio_backend = {backend!r}: no device is used"
        return [Check("audio", "sound server", Verdict.SKIP, reason),
                Check("audio", "portaudio devices", Verdict.SKIP, reason),
                 Check("audio", "input device", Verdict.SKIP, reason),
                Check("audio", "output device", Verdict.SKIP, reason)]
    rows = [_sound_server()]
    t0 = time.perf_counter()
    try:
        pa = open_pyaudio()
    except MediaError as exc:
        return [*rows, Check("audio", "portaudio devices", Verdict.FAIL, str(exc),
                             "reinstall PortAudio (libportaudio2) and PyAudio")]
    try:
        with quiet_stderr():
            devices = devices_of(pa)
        ins = [d for d in devices if d.is_input]
        outs = [d for d in devices if d.is_output]
        bad = Verdict.FAIL if backend == "pyaudio" else Verdict.WARN
        fallback = "" if backend == "pyaudio" else " (audio_backend auto: calls send a tone instead)"
        if not devices:
            rows.append(Check("audio", "portaudio devices", bad, "PortAudio lists no devices" + fallback,
                              "no sound card or sound server: start PulseAudio/PipeWire, or use --no-audio/--play",
                              elapsed_ms(t0)))
        else:
            rows.append(Check("audio", "portaudio devices", Verdict.OK if ins and outs else bad,
                              f"{len(devices)} devices: {len(ins)} can record, {len(outs)} can play", "",
                              elapsed_ms(t0),
                              {"devices": [{"index": d.index, "name": d.name, "host_api": d.host_api,
                                            "inputs": d.max_input_channels, "outputs": d.max_output_channels}
                                           for d in devices]}))
        for output, spec, name in ((False, profile.input_device, "input device"),
                                   (True, profile.output_device, "output device")):
            what = spec or "the default"
            try:
                dev = match_device(spec or None, devices, output=output)
            except MediaError as exc:
                rows.append(Check("audio", name, bad, f"{what}: {exc}",
                                  "pick one from `softphone devices` (input_device/output_device or "
                                  "--input/--output)"))
                continue
            try:
                opened, rms, peak = _open_device(pa, dev.index, output=output, seconds=seconds)
            except Exception as exc:
                why = error_text(exc)
                rows.append(Check("audio", name, Verdict.FAIL, f"{dev.index}: {dev.name}: cannot open: {why}",
                                  "the device is busy or gone; close other audio programs or pick another"))
                continue
            data: dict[str, Any] = {"index": dev.index, "name": dev.name, "open_ms": round(opened, 1)}
            if output:
                rows.append(Check("audio", name, Verdict.OK,
                                  f"{dev.index}: {dev.name}: opened, played {seconds:g} s of silence", "", opened,
                                  data))
                continue
            data.update(rms_dbfs=None if not math.isfinite(rms) else round(rms, 1),
                        peak_dbfs=None if not math.isfinite(peak) else round(peak, 1))
            level = f"level {_db(rms)} dBFS rms, {_db(peak)} dBFS peak over {seconds:g} s"
            if not math.isfinite(peak) or peak < -90:
                rows.append(Check("audio", name, Verdict.WARN, f"{dev.index}: {dev.name}: {level}: digital silence",
                                  "the microphone is muted or not connected (pavucontrol / alsamixer)", opened, data))
            elif peak > -0.5:
                rows.append(Check("audio", name, Verdict.WARN, f"{dev.index}: {dev.name}: {level}: clipping",
                                  "lower the input gain", opened, data))
            else:
                rows.append(Check("audio", name, Verdict.OK, f"{dev.index}: {dev.name}: {level}", "", opened, data))
    finally:
        with quiet_stderr(), contextlib.suppress(Exception):
            pa.terminate()
    return rows


async def audio_checks(profile: Profile, seconds: float = 0.5) -> list[Check]:
    """Sound server, PortAudio devices and the profile's devices, each opened for ``seconds``."""
    try:
        return await asyncio.to_thread(_audio_blocking, profile, seconds)
    except Exception as exc:  # a probe never takes the report down
        return [Check("audio", "audio", Verdict.FAIL, f"probe failed: {error_text(exc)}")]


# --- what the server checks learn ---------------------------------------------------------------


@dataclass
class ServerFacts:
    """What the server checks learnt that later checks use (the server's clock)."""

    date: str = ""
    local_at_date: float = 0.0
    rtt_s: float = 0.0


# --- ICE ----------------------------------------------------------------------------------------------


async def _ice_url(url: str, username: str, credential: str, timeout: float) -> list[Check]:
    try:
        ice = stun.parse_ice_url(url)
    except stun.StunError as exc:
        return [Check("ice", url, Verdict.FAIL, str(exc), "fix ice_servers in the profile")]
    rows: list[Check] = []
    if not ice.is_turn:
        try:
            b = await stun.binding(ice, timeout=timeout)
        except stun.StunTimeout as exc:
            return [Check("ice", str(ice), Verdict.FAIL, str(exc),
                          "UDP to this port is blocked or the server is down; calls then need TURN over TCP/TLS")]
        except stun.StunError as exc:
            return [Check("ice", str(ice), Verdict.FAIL, str(exc), "check the STUN server's name and port")]
        return [Check("ice", str(ice), Verdict.OK,
                      f"reflexive address {b.mapped[0]}:{b.mapped[1]} in {b.rtt_ms:.1f} ms"
                      + (f" ({b.retransmits} retransmits)" if b.retransmits else ""), "", b.rtt_ms,
                      {"server": f"{b.server[0]}:{b.server[1]}", "reflexive": f"{b.mapped[0]}:{b.mapped[1]}",
                       "local": f"{b.local[0]}:{b.local[1]}", "retransmits": b.retransmits,
                       "nat": b.mapped != b.local})]
    if not (username and credential):
        return [Check("ice", str(ice), Verdict.SKIP, "TURN server without username/credential: no allocation tried",
                      "add username and credential to this ice_servers entry")]
    try:
        a = await stun.turn_allocate(ice, username, credential, timeout=timeout)
    except stun.StunTimeout as exc:
        return [Check("ice", str(ice), Verdict.FAIL, str(exc), "the TURN server does not answer on this transport")]
    except stun.StunError as exc:
        hint = "the username/credential of this ice_servers entry were refused" if exc.code == 401 else \
            "check the TURN server's address and transport"
        return [Check("ice", str(ice), Verdict.FAIL, redact(str(exc), [credential]), hint)]
    rows.append(Check("ice", str(ice), Verdict.OK,
                      f"relay {a.relayed[0]}:{a.relayed[1]} (lifetime {a.lifetime} s) in {a.rtt_ms:.1f} ms", "",
                      a.rtt_ms, {"server": f"{a.server[0]}:{a.server[1]}", "relayed": f"{a.relayed[0]}:{a.relayed[1]}",
                                 "reflexive": f"{a.mapped[0]}:{a.mapped[1]}" if a.mapped else None,
                                 "realm": a.realm, "lifetime": a.lifetime,
                                 "steps": [redact(s, [credential]) for s in a.steps]}))
    return rows


async def ice_checks(profile: Profile, timeout: float) -> list[Check]:
    """A STUN Binding to every STUN URL and a TURN allocation on every TURN URL with credentials (concurrently)."""
    servers = effective_ice_servers(profile)
    if not servers:
        return [Check("ice", "ice servers", Verdict.SKIP, "none configured: host candidates only",
                      "fine on loopback or a LAN; behind NAT add STUN/TURN servers (ice_servers)")]
    jobs = [_ice_url(url, s.username, s.credential, timeout) for s in servers for url in s.urls]
    results = await asyncio.gather(*jobs)
    return [row for rows in results for row in rows]


# --- clock ------------------------------------------------------------------------------------------


def clock_checks(profile: Profile, facts: ServerFacts, now: float | None = None) -> list[Check]:
    """The server's ``Date`` header against the local clock, and the login JWT's ``iat``/``exp``."""
    from softphone.protocol.session import token_claims

    now = time.time() if now is None else now
    rows: list[Check] = []
    if facts.date:
        try:
            server = email.utils.parsedate_to_datetime(facts.date).timestamp()
        except (TypeError, ValueError):
            server = None
        if server is None:
            rows.append(Check("clock", "server time", Verdict.SKIP, f"unreadable Date header {facts.date!r}"))
        else:
            # Date has whole seconds (truncated): the server's clock read server .. server + 1 at that moment.
            skew = server + 0.5 - facts.local_at_date
            slack = 1.0 + facts.rtt_s
            data = {"skew_s": round(skew, 2), "uncertainty_s": round(slack, 2), "server_date": facts.date}
            text = f"local clock {'ahead of' if skew < 0 else 'behind'} the server by {abs(skew):.1f} s " \
                   f"(±{slack:.1f} s, from its Date header)"
            if abs(skew) <= 2 + slack:
                rows.append(Check("clock", "server time", Verdict.OK, text, "", None, data))
            else:
                rows.append(Check("clock", "server time", Verdict.WARN if abs(skew) <= 60 else Verdict.FAIL, text,
                                  "sync the clock (timedatectl set-ntp true / chrony): tokens and certificates "
                                  "are judged by it", None, data))
    else:
        rows.append(Check("clock", "server time", Verdict.SKIP, "no server time (the websocket did not open)"))
    if profile.auth != "token" or not profile.token:
        rows.append(Check("clock", "login token", Verdict.SKIP, "the profile logs in without a JWT"
                          if profile.auth != "token" else "no token yet (minted at login from credential_id)"))
        return rows
    claims = token_claims(profile.token)
    if not claims:
        rows.append(Check("clock", "login token", Verdict.WARN, "the token is not a readable JWT",
                          "use a telephony credential token (softphone token mint)"))
        return rows
    exp, iat = claims.get("exp"), claims.get("iat")
    data = {"exp": exp, "iat": iat}
    parts: list[str] = []
    verdict, hint = Verdict.OK, ""
    if isinstance(iat, int | float):
        ahead = float(iat) - now
        parts.append(f"issued {abs(ahead):.0f} s {'in the future' if ahead > 0 else 'ago'}")
        if ahead > 60:
            verdict, hint = Verdict.WARN, "the token was issued in the future: the local clock is behind (sync it)"
    if isinstance(exp, int | float):
        left = float(exp) - now
        data["expires_in_s"] = round(left)
        if left <= 0:
            parts.append(f"expired {-left:.0f} s ago")
            verdict, hint = Verdict.FAIL, "mint a new one (softphone token mint, or credential_id + api_key)"
        else:
            parts.append(f"expires in {left:.0f} s")
            if left < 120 and verdict != Verdict.FAIL:
                verdict, hint = Verdict.WARN, "34001: it expires soon; credential_id + api_key mint fresh ones"
    else:
        parts.append("no exp claim")
    rows.append(Check("clock", "login token", verdict, "JWT " + ", ".join(parts), hint, None, data))
    return rows


# --- versions -----------------------------------------------------------------------------------------


def _libopus_versions() -> dict[str, str]:
    """libopus' own version string (``opus_get_version_string``) of each copy loaded, by user.

    PyAV bundles one (``av.libs``: what aiortc encodes with); another module may have loaded the
    system's (named by its file).
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "libopus" in line and "/" in line}
    except OSError:
        paths = set()
    out: dict[str, str] = {}
    for path in sorted(paths):
        with contextlib.suppress(OSError, AttributeError):
            lib = ctypes.CDLL(path)
            lib.opus_get_version_string.restype = ctypes.c_char_p
            raw = lib.opus_get_version_string()
            if raw:
                who = "PyAV" if "/av.libs/" in path or "/av/" in path else os.path.basename(path)
                out.setdefault(who, str(raw.decode()))
    return out


def version_checks() -> list[Check]:
    """Python, softphone, aiortc, PyAV (+ FFmpeg), libopus and PortAudio."""
    from importlib import metadata

    rows = [Check("versions", "python", Verdict.OK, f"{platform.python_version()} ({platform.python_implementation()}"
                  f", {platform.system()} {platform.machine()})", "", None,
                  {"version": platform.python_version()})]
    for dist, name in (("softphone", "softphone"), ("aiortc", "aiortc"), ("websockets", "websockets")):
        try:
            rows.append(Check("versions", name, Verdict.OK, metadata.version(dist), "", None,
                              {"version": metadata.version(dist)}))
        except metadata.PackageNotFoundError:
            rows.append(Check("versions", name, Verdict.FAIL, "not installed", f"pip install {dist}"))
    try:
        import av
        import av.codec

        ffmpeg = ".".join(str(x) for x in av.library_versions.get("libavcodec", ()))
        rows.append(Check("versions", "pyav", Verdict.OK, f"{av.__version__} (libavcodec {ffmpeg})", "", None,
                          {"version": av.__version__, "libavcodec": ffmpeg}))
        try:
            av.codec.Codec("libopus", "w")
            opus = _libopus_versions()
            text = ", ".join(f"{v} ({who})" for who, v in opus.items())
            rows.append(Check("versions", "libopus", Verdict.OK, text or "present (version not readable)", "", None,
                              {"versions": opus}))
        except Exception:
            rows.append(Check("versions", "libopus", Verdict.WARN, "PyAV has no libopus encoder",
                              "calls fall back to PCMU/PCMA; install a PyAV build with libopus"))
    except ImportError as exc:
        rows.append(Check("versions", "pyav", Verdict.FAIL, f"cannot import av: {exc}", "pip install av"))
    try:
        import pyaudio

        text = str(pyaudio.get_portaudio_version_text())
        rows.append(Check("versions", "portaudio", Verdict.OK, f"{text} (PyAudio {pyaudio.__version__})", "", None,
                          {"version": text, "pyaudio": pyaudio.__version__}))
    except Exception as exc:
        rows.append(Check("versions", "portaudio", Verdict.FAIL, f"cannot load PyAudio/PortAudio: {error_text(exc)}",
                          "install libportaudio2 and pip install pyaudio"))
    return rows
