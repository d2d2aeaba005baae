"""NDJSON output (``--json``): one object per event, schema ``softphone/data/events.schema.json``.

Every object carries ``"v": 1`` (the schema version), ``"type"`` (the event name) and
``"ts"`` (epoch seconds); call events add ``"call_id"``. The text of each line is
passed through :func:`softphone.log.redact` as a last guard, so a secret that reached
an event by mistake still never reaches stdout. Documented in ``docs/events.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

from softphone.app.snapshot import PhoneEvent

__all__ = ["SCHEMA_VERSION", "dumps", "load_schema", "to_object"]

SCHEMA_VERSION = 1

_RESERVED = frozenset({"v", "type", "ts", "call_id"})


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, tuples become lists, unknown objects strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return str(value)


def to_object(event: PhoneEvent) -> dict[str, Any]:
    """The JSON object for one event."""
    obj: dict[str, Any] = {"v": SCHEMA_VERSION, "type": event.type, "ts": round(event.ts, 3)}
    if event.call_id is not None:
        obj["call_id"] = event.call_id
    for key, value in event.data.items():
        if key not in _RESERVED:
            obj[key] = _clean(value)
    return obj


def dumps(event: PhoneEvent) -> str:
    """One NDJSON line (no newline), redacted."""
    from softphone.log import redact

    return redact(json.dumps(to_object(event), separators=(",", ":"), ensure_ascii=False))


def load_schema() -> dict[str, Any]:
    """The JSON Schema every line validates against."""
    text = resources.files("softphone").joinpath("data/events.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
