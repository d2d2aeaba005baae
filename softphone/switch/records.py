"""Call detail records: one per WebRTC leg, in memory and appended to a JSONL file.

Billing: each WebRTC leg costs ``rate_per_minute`` (default $0.002) for the time it
was **answered** (answer to end), billed **per started second**: 61.2 s is billed as
62 s, i.e. ``ceil(duration) * rate / 60``. Unanswered legs cost nothing. Costs are
rounded to 9 decimals.

Default file: ``<platformdirs user data dir>/softphone/switch-calls.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from softphone.app.billing import cost as billing_cost

DEFAULT_RATE_PER_MINUTE = 0.002
KEEP_RECORDS = 10_000
"""Records kept in memory (the JSONL file keeps them all)."""


def default_records_path() -> Path:
    """``<user data dir>/softphone/switch-calls.jsonl``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("softphone")) / "switch-calls.jsonl"


def billed_cost(duration_s: float, rate_per_minute: float) -> float:
    """Cost of an answered leg: per started second at ``rate_per_minute`` (:func:`softphone.app.billing.cost`)."""
    return billing_cost(duration_s, rate_per_minute)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass
class CallRecord:
    """One leg of a call as the switch saw it (times are Unix seconds)."""

    call_id: str
    leg: str
    """``a`` (the caller's leg) or ``b`` (the callee's leg)."""
    direction: str
    """``inbound`` (the client called the switch) or ``outbound`` (the switch called it)."""
    sessid: str
    login: str
    from_party: str
    to_party: str
    start: float
    answer: float | None = None
    end: float | None = None
    cause: str = ""
    cause_code: int = 0
    sip_code: int | None = None
    codec: str = ""
    service: str = ""
    rate_per_minute: float = DEFAULT_RATE_PER_MINUTE

    @property
    def duration_s(self) -> float:
        """Answered time (0 if never answered; up to now while running)."""
        if self.answer is None:
            return 0.0
        end = self.end if self.end is not None else datetime.now(UTC).timestamp()
        return max(0.0, end - self.answer)

    @property
    def cost(self) -> float:
        return billed_cost(self.duration_s, self.rate_per_minute)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_s"] = round(self.duration_s, 3)
        data["cost_usd"] = self.cost
        data["start_iso"] = _iso(self.start)
        data["answer_iso"] = _iso(self.answer)
        data["end_iso"] = _iso(self.end)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        fields = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in fields})


class RecordStore:
    """Finished records in memory (the last :data:`KEEP_RECORDS`), each also appended to ``path`` (if given)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        self.records.append(record)
        if len(self.records) > KEEP_RECORDS + KEEP_RECORDS // 10:
            del self.records[: len(self.records) - KEEP_RECORDS]
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
        except OSError:
            # A full disk must not take calls down; the in-memory copy stays.
            pass


def read_records(path: Path | None = None) -> list[CallRecord]:
    """Records from a JSONL file (bad lines are skipped)."""
    p = path if path is not None else default_records_path()
    out: list[CallRecord] = []
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            data = json.loads(line)
            if isinstance(data, dict):
                out.append(CallRecord.from_json(data))
        except (ValueError, TypeError):
            continue
    return out


def render_records(records: list[CallRecord], *, as_json: bool = False) -> str:
    """A fixed-width table (or a JSON array) for ``softphone switch calls [--json]``."""
    if as_json:
        return json.dumps([r.to_json() for r in records], indent=2)
    # The codec column is as wide as its longest value: "opus/48000/2" must not read "opus/4".
    cw = max([5, *(len(r.codec) for r in records)])
    header = (
        f"{'start (UTC)':<19}  {'leg':<3} {'from':<16} {'to':<16} {'dur s':>7} {'cause':<20} "
        f"{'codec':<{cw}} {'cost $':>9}"
    )
    lines = [header, "-" * len(header)]
    total = 0.0
    for r in records:
        start = datetime.fromtimestamp(r.start, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{start:<19}  {r.leg:<3} {r.from_party[:16]:<16} {r.to_party[:16]:<16} "
            f"{r.duration_s:>7.1f} {r.cause[:20]:<20} {r.codec:<{cw}} {r.cost:>9.6f}"
        )
        total += r.cost
    lines.append(f"{len(records)} leg(s), total ${total:.6f}")
    return "\n".join(lines)
