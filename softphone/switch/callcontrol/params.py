"""Reading a Voice API command's JSON body: typed fields, Telnyx's 422 on bad ones.

Shared by the command modules (:mod:`~softphone.switch.callcontrol.commands`,
:mod:`~softphone.switch.callcontrol.voice`, :mod:`~softphone.switch.callcontrol.recording`) so
that a field is checked the same way in all of them. Every error is a
:class:`~softphone.switch.callcontrol.engine.CommandError` with Telnyx's shape
(``{"errors": [{"code", "title", "detail"}]}``, 422, code 10015 "Invalid value for <field>").
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol.engine import CommandError, gone

if TYPE_CHECKING:
    from softphone.switch.callcontrol.legs import CCLeg

OK: dict[str, Any] = {"result": "ok"}
"""The ``data`` of every successful action."""


def bad(param: str, detail: str) -> CommandError:
    """Telnyx's 422 for one field."""
    return CommandError(422, "10015", f"Invalid value for {param}", detail)


def get_str(body: dict[str, Any], key: str, default: str = "") -> str:
    """A string field (``default`` when absent or null)."""
    v = body.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise bad(key, f"{key} must be a string")
    return v


def get_num(body: dict[str, Any], key: str, default: float) -> float:
    """A number field (booleans are not numbers; null is refused, as it always was here)."""
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise bad(key, f"{key} must be a number")
    return float(v)


def get_int(body: dict[str, Any], key: str, default: int, *, lo: int, hi: int) -> int:
    """An integer field within ``[lo, hi]``."""
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad(key, f"{key} must be an integer")
    if not lo <= v <= hi:
        raise bad(key, f"{key} must be between {lo} and {hi}")
    return v


def get_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    """A boolean field (the strings ``"true"``/``"false"`` too, as form bodies send them)."""
    v = body.get(key, default)
    if v is None:
        return default
    if v is True or v is False:
        return bool(v)
    if v == "true":
        return True
    if v == "false":
        return False
    raise bad(key, f"{key} must be a boolean")


def get_choice(body: dict[str, Any], key: str, choices: tuple[str, ...], default: str | None = None) -> str:
    """One of ``choices``; without a ``default`` the field is required."""
    v = body.get(key)
    if v is None or v == "":
        if default is None:
            raise bad(key, f"{key} is required (one of {', '.join(choices)})")
        return default
    if not isinstance(v, str) or v not in choices:
        raise bad(key, f"{key} must be one of {', '.join(choices)}")
    return v


def get_loop(body: dict[str, Any], key: str = "loop") -> int | None:
    """Telnyx's loop count: 1-100, or ``"infinity"`` (returned as None). Default 1."""
    v = body.get(key, 1)
    if v is None:
        return 1
    if v == "infinity":
        return None
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100:
        raise bad(key, f"{key} must be an integer from 1 to 100 or \"infinity\"")
    return v


def check_base64(value: str, key: str = "client_state") -> str:
    """``value`` if it is valid base64 (Telnyx: "It must be a valid Base-64 encoded string")."""
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad(key, f"{key} must be a valid Base-64 encoded string") from exc
    return value


def alive(leg: CCLeg) -> None:
    """422 "Call has already ended" unless the leg is up."""
    if not leg.alive:
        raise gone(leg)


def answered(leg: CCLeg, what: str) -> None:
    """422 "Call not answered yet" (Telnyx: answer before media commands)."""
    if leg.answered_at is None:
        raise CommandError(422, "90034", "Call not answered yet", f"answer before {what}")


def take_state(leg: CCLeg, body: dict[str, Any]) -> None:
    """A command's ``client_state`` rides on the leg's later webhooks."""
    cs = body.get("client_state")
    if isinstance(cs, str) and cs:
        leg.client_state = cs
