"""Call history: one JSON object per finished call, appended to ``calls.jsonl``.

The file lives in the user data directory (``platformdirs``), or in
``$SOFTPHONE_DATA_DIR`` when set (tests). Records hold no credentials: only the
call's direction, remote party, times, cause, codec, quality and cost.
Standard library plus platformdirs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from softphone.app.billing import cost
from softphone.app.snapshot import CallSnapshot

__all__ = ["CallHistory", "Totals", "data_dir", "record_for"]

HISTORY_FILE = "calls.jsonl"


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The per-user data directory (history files live here)."""
    override = env.get("SOFTPHONE_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("softphone", appauthor=False))


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def record_for(call: CallSnapshot, now: float) -> dict[str, Any]:
    """The history record of a finished call."""
    return {
        "v": 1,
        "id": call.id,
        "direction": call.direction,
        "remote": call.remote,
        "started": _iso(call.created_at),
        "answered": _iso(call.answered_at),
        "ended": _iso(call.ended_at or now),
        "duration": round(call.duration(now), 3),
        "cause": call.cause,
        "sip_code": call.sip_code,
        "codec": call.codec,
        "mos": call.mos,
        "rate_per_minute": call.rate_per_minute,
        "cost": cost(call.duration(now), call.rate_per_minute),
    }


@dataclass(frozen=True, slots=True)
class Totals:
    calls: int
    answered: int
    duration: float
    cost: float


class CallHistory:
    """The JSONL history file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else data_dir() / HISTORY_FILE

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # private even when an older version created it world-readable
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record), separators=(",", ":")) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (damaged lines are skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for line in text.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def recent_destinations(self, limit: int = 20) -> list[str]:
        """Distinct remote parties of outbound calls, newest first."""
        seen: list[str] = []
        for r in reversed(self.records()):
            remote = str(r.get("remote") or "")
            if r.get("direction") == "outbound" and remote and remote not in seen:
                seen.append(remote)
            if len(seen) >= limit:
                break
        return seen

    @staticmethod
    def totals(records: list[dict[str, Any]]) -> Totals:
        return Totals(
            calls=len(records),
            answered=sum(1 for r in records if r.get("answered")),
            duration=sum(float(r.get("duration") or 0) for r in records),
            cost=round(sum(float(r.get("cost") or 0) for r in records), 9),
        )
