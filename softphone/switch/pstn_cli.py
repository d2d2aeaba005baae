"""``softphone switch pstn-call``: an outside caller, driven over the switch's commands API.

The switch owns the simulated leg (its audio clock, its recording); this command only
asks for it (``POST /switch/pstn_calls``), follows its state (``GET
/switch/pstn_calls/{id}``) and hangs it up after ``--duration`` or on Ctrl-C. Exit
codes: 0 answered, 5 never answered, 8 switch unreachable, 1 refused.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

POLL_S = 0.25


def _call(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        api.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read()).get("data", {})
        return out


def run_pstn_call(
    api: str,
    from_: str,
    to: str,
    *,
    audio: str = "",
    record: str = "",
    dtmf: str = "",
    dtmf_delay: float = 3.0,
    duration: float | None = None,
    echo: Any = print,
) -> int:
    """Place the call and follow it to the end; returns the exit code."""
    body = {
        "from": from_,
        "to": to,
        "audio_url": audio,
        "record_path": record,
        "dtmf": dtmf,
        "dtmf_delay_secs": dtmf_delay,
    }
    try:
        leg = _call(api, "POST", "/switch/pstn_calls", body)
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())["errors"][0]
            echo(f"error: {err['title']}: {err.get('detail', '')}")
        except (ValueError, KeyError, IndexError):
            echo(f"error: HTTP {exc.code}")
        return 1
    except OSError as exc:
        echo(f"error: cannot reach the switch's commands API at {api}: {exc}")
        return 8
    ccid = leg["call_control_id"]
    echo(f"calling {to} from {from_} ({ccid})")
    state, answered_at = "", None
    try:
        while True:
            status = _call(api, "GET", f"/switch/pstn_calls/{ccid}")
            if status["state"] != state:
                state = status["state"]
                echo(f"{time.strftime('%H:%M:%S')} {state}")
            if state not in ("parked", "bridging", "hangup") and answered_at is None:
                answered_at = time.monotonic()
            if not status["is_alive"]:
                echo(f"ended: {status.get('hangup_cause')} after {status.get('call_duration', 0)} s answered")
                if record:
                    echo(f"recording: {record}")
                return 0 if answered_at is not None else 5
            if duration is not None and answered_at is not None and time.monotonic() - answered_at >= duration:
                _call(api, "POST", f"/switch/pstn_calls/{ccid}/hangup", {})
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        _call(api, "POST", f"/switch/pstn_calls/{ccid}/hangup", {})
        echo("hung up")
        return 130 if answered_at is None else 0
    except OSError as exc:
        echo(f"error: lost the switch: {exc}")
        return 8
