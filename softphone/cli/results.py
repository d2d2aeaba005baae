"""What one run of a case (a ``softphone test`` file, or one call of ``softphone load``) produced.

Shared by the runner (:mod:`softphone.cli.testrun`, :mod:`softphone.cli.load`) and the reports
(:mod:`softphone.cli.report_html`), which therefore never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CaseResult", "Failure"]


@dataclass
class Failure:
    """Why a case failed: where, and what was expected and heard (the check's message)."""

    line: int
    command: str
    message: str
    kind: str = "failure"  # "failure": a wait/expect did not hold; "error": anything else


@dataclass
class CaseResult:
    """One run of a case (a test, or one call of ``softphone load``)."""

    name: str
    file: str
    started: float
    duration: float = 0.0
    failure: Failure | None = None
    output: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    artifacts: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    index: int = 0
    heard: dict[str, str] = field(default_factory=dict)
    """What each call heard (recognised speech), by call name or id prefix."""

    @property
    def passed(self) -> bool:
        return self.failure is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.file, "index": self.index, "passed": self.passed,
            "started": round(self.started, 3), "duration": round(self.duration, 3),
            "failure": None if self.failure is None else {
                "line": self.failure.line, "command": self.failure.command, "message": self.failure.message,
                "kind": self.failure.kind},
            "timings": {k: round(v, 4) for k, v in self.timings.items()}, "stats": self.stats,
            "artifacts": self.artifacts, "variables": self.variables, "output": self.output, "heard": self.heard,
            "events": self.events,
        }
