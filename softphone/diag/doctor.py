"""``softphone doctor``: one table of checks, each with a verdict and a fix hint.

:data:`CHECKS` is the table: a group name and the probe that fills it (softphone.diag.probes).
Groups run concurrently (audio, server, ICE and versions), then the clock is judged from what the
server told. Verdicts: ``ok``, ``warn``, ``fail`` and ``skip`` (with the reason); the worst one
decides the exit code (:data:`VERDICT_EXIT`): 0 when nothing is worse than ``skip``, 10 for a
warning, 11 for a failure.

The JSON document (``--json``, README "softphone doctor"): ``{"v": 1, "type": "doctor", "ts",
"profile", "server", "verdict", "exit_code", "counts": {ok, warn, fail, skip}, "checks": [{"group",
"name", "verdict", "detail", "hint", "ms", "data"}]}``. Secrets never appear: every text passes
:func:`softphone.log.redact` and no probe puts a password, token or TURN credential in its data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from softphone.config import Profile, resolve_ws_url
from softphone.diag.probes import (
    Check,
    ServerFacts,
    Verdict,
    audio_checks,
    clock_checks,
    ice_checks,
    version_checks,
)
from softphone.diag.server_probe import server_checks

__all__ = ["CHECKS", "ORDER", "VERDICT_EXIT", "Check", "DoctorReport", "Options", "Verdict", "run"]

#: Process exit code by the worst verdict.
VERDICT_EXIT: dict[Verdict, int] = {Verdict.OK: 0, Verdict.SKIP: 0, Verdict.WARN: 10, Verdict.FAIL: 11}


@dataclass(frozen=True)
class Options:
    """What to check and how long to wait."""

    timeout: float = 5.0  #: seconds for each network step (DNS, TCP, TLS, upgrade, login, each STUN transaction)
    audio: bool = True  #: open the profile's devices (off: the audio rows are skipped)
    audio_seconds: float = 0.5  #: how long each device is opened
    login: bool = True  #: log in with the profile's credentials
    ice: bool = True


Probe = Callable[[Profile, Options, ServerFacts], Awaitable[list[Check]]]


async def _audio(profile: Profile, opts: Options, facts: ServerFacts) -> list[Check]:
    if not opts.audio:
        return [Check("audio", "audio", Verdict.SKIP, "--no-audio")]
    return await audio_checks(profile, opts.audio_seconds)


async def _server(profile: Profile, opts: Options, facts: ServerFacts) -> list[Check]:
    return await server_checks(profile, opts.timeout, facts, login=opts.login)


async def _ice(profile: Profile, opts: Options, facts: ServerFacts) -> list[Check]:
    if not opts.ice:
        return [Check("ice", "ice servers", Verdict.SKIP, "--no-ice")]
    return await ice_checks(profile, min(opts.timeout, 3.0))


async def _versions(profile: Profile, opts: Options, facts: ServerFacts) -> list[Check]:
    return await asyncio.to_thread(version_checks)


#: The checks, in the order of the table. ``clock`` runs last: it reads the server's ``Date``.
CHECKS: tuple[tuple[str, Probe], ...] = (
    ("versions", _versions),
    ("audio", _audio),
    ("server", _server),
    ("ice", _ice),
)
#: The order of the groups in the table.
ORDER = ("audio", "server", "ice", "clock", "versions")


@dataclass(frozen=True)
class DoctorReport:
    """Every check's row; the worst verdict decides :attr:`exit_code`."""

    profile: str
    server: str
    checks: tuple[Check, ...]
    ts: float = field(default_factory=time.time)
    took_ms: float = 0.0

    @property
    def title(self) -> str:
        return f"softphone doctor: profile {self.profile}, {self.server}"

    @property
    def verdict(self) -> Verdict:
        worst = Verdict.OK
        for check in self.checks:
            if check.verdict.rank > worst.rank:
                worst = check.verdict
        return worst

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for c in self.checks if c.verdict == v) for v in Verdict}

    def rows(self) -> Sequence[tuple[str, str]]:
        """``(group name, "VERDICT detail [hint]")`` per check, for a two-column table / ``name<TAB>value``."""
        out = []
        for c in self.checks:
            text = f"{c.verdict.value.upper():4}  {c.detail}"
            if c.hint and c.verdict != Verdict.OK:
                text += f"  -> {c.hint}"
            out.append((f"{c.group} {c.name}", text))
        n = self.counts()
        out.append(("result", f"{self.verdict.value.upper()}: {n['ok']} ok, {n['warn']} warn, {n['fail']} fail, "
                              f"{n['skip']} skipped in {self.took_ms / 1000:.1f} s (exit {self.exit_code})"))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"v": 1, "type": "doctor", "ts": round(self.ts, 3), "profile": self.profile, "server": self.server,
                "verdict": self.verdict.value, "exit_code": self.exit_code, "counts": self.counts(),
                "took_ms": round(self.took_ms, 1), "checks": [c.as_dict() for c in self.checks]}


async def run(profile: Profile, options: Options | None = None) -> DoctorReport:
    """Run :data:`CHECKS` against ``profile`` (the groups at once) and return the report."""
    opts = options or Options()
    facts = ServerFacts()
    t0 = time.perf_counter()
    # Versions and audio first, one after the other: their imports and PortAudio's start-up hold the
    # interpreter for a while and would inflate the network timings measured beside them.
    # The server and ICE groups then run at once.
    results: list[list[Check] | BaseException] = []
    for _, probe in CHECKS[:2]:
        results.extend(await asyncio.gather(probe(profile, opts, facts), return_exceptions=True))
    results.extend(await asyncio.gather(*(probe(profile, opts, facts) for _, probe in CHECKS[2:]),
                                        return_exceptions=True))
    rows: list[Check] = []
    for (group, _), result in zip(CHECKS, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            rows.append(Check(group, group, Verdict.FAIL, f"the probe failed: {type(result).__name__}: {result}"))
        else:
            rows.extend(result)
    rows.extend(clock_checks(profile, facts))
    rows.sort(key=lambda c: ORDER.index(c.group) if c.group in ORDER else len(ORDER))  # stable: keeps each group's
    took = (time.perf_counter() - t0) * 1000
    return DoctorReport(profile.name, resolve_ws_url(profile), tuple(rows), took_ms=took)
