"""``softphone bundle [CALL]``: one zip for a support ticket, every secret redacted.

The material comes from the per-call diagnostics every run leaves behind
(:mod:`softphone.app.callrecord`, ``<data dir>/diag/<run>/``). ``CALL`` is a call id, a unique
prefix of one, or ``last`` (the call that ended most recently). The zip holds::

    README.txt            what is in it
    call/call.json        the call's record (direction, remote, times, cause, codec, MOS, cost)
    call/events.jsonl     every event of the call, as --json prints them
    call/stats.jsonl      the stats timeline, one line a second
    call/local.sdp        the last SDP sent, and remote.sdp the last received (sdp.jsonl: when)
    run/run.json          the run: command line, profile (secrets ***), versions
    run/debug.log         the run's log at -vv (debug) level
    run/events.jsonl      the run's events outside calls (socket, login, gateway)
    environment.json      platform, Python, versions, the profile now, audio/locale variables
    doctor.json           `softphone doctor --json` run now, in-process (doctor.txt: its table)
    recording/NAME.wav    only with --with-recording, when the run recorded (--record)

Every text file passes :func:`softphone.log.redact` again on the way in (the recorder redacted it
when writing), with the current profile's password, token and API key as known secrets; the
variables ``TELNYX_*`` are listed by name only.
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softphone.app.callrecord import diag_root
from softphone.errors import CommandError
from softphone.log import redact

if TYPE_CHECKING:
    from softphone.config import Profile
    from softphone.diag.doctor import Options

__all__ = ["Bundle", "RecordedCall", "find_call", "make_bundle", "recorded_calls"]

#: Variables copied into environment.json (values); ``TELNYX_*`` are named, never copied.
ENV_KEYS = ("PULSE_SERVER", "PIPEWIRE_RUNTIME_DIR", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE", "LANG", "LC_ALL", "TERM",
            "SOFTPHONE_PROFILE", "SOFTPHONE_CONFIG", "SOFTPHONE_DATA_DIR", "SOFTPHONE_DIAG", "SSL_CERT_FILE",
            "SSL_CERT_DIR", "HTTPS_PROXY", "NO_PROXY")


@dataclass(frozen=True)
class RecordedCall:
    """One call's directory and the run it belongs to."""

    id: str
    dir: Path
    run: Path
    mtime: float


def recorded_calls(root: Path | None = None) -> list[RecordedCall]:
    """Every recorded call, most recent first (by the last write to its directory)."""
    base = root if root is not None else diag_root()
    out: list[RecordedCall] = []
    try:
        runs = [p for p in base.iterdir() if p.is_dir()]
    except OSError:
        return []
    for run in runs:
        try:
            calls = [p for p in (run / "calls").iterdir() if p.is_dir()]
        except OSError:
            continue
        for call in calls:
            try:
                mtime = max(f.stat().st_mtime for f in call.iterdir()) if any(call.iterdir()) else call.stat().st_mtime
            except (OSError, ValueError):
                continue
            out.append(RecordedCall(call.name, call, run, mtime))
    return sorted(out, key=lambda c: c.mtime, reverse=True)


def find_call(ref: str = "last", root: Path | None = None) -> RecordedCall:
    """The call ``ref`` names (``last``, an id or a unique id prefix); :class:`CommandError` if none or several."""
    calls = recorded_calls(root)
    where = root if root is not None else diag_root()
    if not calls:
        raise CommandError(f"no recorded calls in {where} (dial, answer, run and the shell record them; "
                           "SOFTPHONE_DIAG=0 turns that off)")
    ref = ref.strip()
    if not ref or ref.lower() == "last":
        return calls[0]
    hits = [c for c in calls if c.id.lower().startswith(ref.lower())]
    if not hits:
        recent = ", ".join(c.id[:8] for c in calls[:5])
        raise CommandError(f"no recorded call {ref!r} (recent: {recent}; or 'last')")
    if len({c.id for c in hits}) > 1:
        raise CommandError(f"{ref!r} matches {len(hits)} calls ({', '.join(c.id[:12] for c in hits[:5])}): "
                           "give more of the id")
    return hits[0]


@dataclass(frozen=True)
class Bundle:
    """What :func:`make_bundle` wrote."""

    path: Path
    call_id: str
    files: tuple[str, ...]
    doctor_exit: int | None

    @property
    def title(self) -> str:
        return f"softphone bundle: call {self.call_id}"

    @property
    def exit_code(self) -> int:
        return 0

    def rows(self) -> Sequence[tuple[str, str]]:
        return [("bundle", str(self.path)), ("call", self.call_id),
                *((f"file {i + 1}", name) for i, name in enumerate(self.files))]

    def as_dict(self) -> dict[str, Any]:
        return {"v": 1, "type": "bundle", "ts": round(time.time(), 3), "path": str(self.path),
                "call_id": self.call_id, "files": list(self.files), "doctor_exit_code": self.doctor_exit}


def _environment(profile: Profile | None, env: Mapping[str, str]) -> dict[str, Any]:
    from softphone.diag.probes import version_checks

    return {
        "v": 1,
        "platform": platform.platform(), "python": sys.version.split()[0], "executable": sys.executable,
        "versions": {c.name: c.detail for c in version_checks()},
        "env": {k: env[k] for k in ENV_KEYS if k in env},
        "env_names_only": sorted(k for k in env if k.startswith("TELNYX_")),
        "profile": profile.display_dict() if profile is not None else None,
    }


def _readme(call: RecordedCall, names: Sequence[str]) -> str:
    return ("softphone support bundle\n"
            f"call {call.id}, run {call.run.name}, made {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n"
            "Every text file was redacted (passwords, tokens, API keys, TURN credentials).\n\n"
            + "".join(f"  {n}\n" for n in names))


async def make_bundle(ref: str = "last", *, profile: Profile | None = None, output: Path | None = None,
                      with_recording: bool = False, doctor: Options | None = None, run_doctor: bool = True,
                      root: Path | None = None, env: Mapping[str, str] = os.environ) -> Bundle:
    """Write the zip for call ``ref`` (see the module docstring) and return what went in.

    ``profile`` is the profile the doctor checks (``None``: no doctor) and whose secrets are
    redacted besides the registered ones.
    """
    import asyncio

    call = find_call(ref, root)
    secrets = [s for s in ((profile.password, profile.token, profile.api_key) if profile else ()) if s]
    if profile is not None and profile.ice_servers:
        secrets += [s.credential for s in profile.ice_servers if s.credential]
    entries: list[tuple[str, bytes]] = []

    def text(name: str, content: str) -> None:
        entries.append((name, redact(content, secrets).encode("utf-8")))

    for folder, base, names in (
            ("call", call.dir, ("call.json", "events.jsonl", "stats.jsonl", "local.sdp", "remote.sdp", "sdp.jsonl")),
            ("run", call.run, ("run.json", "debug.log", "events.jsonl"))):
        for name in names:
            path = base / name
            if path.is_file():
                text(f"{folder}/{name}", path.read_text(encoding="utf-8", errors="replace"))
    text("environment.json", json.dumps(await asyncio.to_thread(_environment, profile, env), indent=2) + "\n")
    doctor_exit: int | None = None
    if profile is not None and run_doctor:
        from softphone.diag.doctor import Options
        from softphone.diag.doctor import run as doctor_run

        report = await doctor_run(profile, doctor or Options(timeout=3.0))
        doctor_exit = report.exit_code
        text("doctor.json", json.dumps(report.as_dict(), indent=2) + "\n")
        text("doctor.txt", "".join(f"{a}\t{b}\n" for a, b in report.rows()))
    if with_recording:
        try:
            info = json.loads((call.dir / "call.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        wav = Path(str(info.get("recording") or ""))
        if not str(info.get("recording") or "") or not wav.is_file():
            raise CommandError(f"--with-recording: call {call.id[:8]} has no recording"
                               + (f" ({wav} is gone)" if info.get("recording") else " (it was not made with --record)"))
        entries.append((f"recording/{wav.name}", wav.read_bytes()))
    listing = ["README.txt", *(n for n, _ in entries)]
    entries.insert(0, ("README.txt", _readme(call, listing).encode("utf-8")))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = output if output is not None else Path(f"softphone-bundle-{call.id[:8]}-{stamp}.zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, time.localtime()[:6]), data, zipfile.ZIP_DEFLATED)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.getvalue())
    return Bundle(target, call.id, tuple(listing), doctor_exit)
