"""``softphone switch pstn-call``: an outside caller, driven over the switch's commands API.

The switch owns the simulated leg (its audio clock, its recording); this command only
asks for it (``POST /switch/pstn_calls``), follows its state (``GET
/switch/pstn_calls/{id}``) and hangs it up after ``--duration`` or on Ctrl-C. Exit
codes: 0 answered, 5 never answered, 8 switch unreachable, 1 refused.

The switch reads and writes only its own directories (see
:mod:`softphone.switch.callcontrol.mediafiles`), so ``--play FILE`` is served to it from a one-file
HTTP server on 127.0.0.1 for the length of the call, and ``--record FILE`` asks the
switch to record under its data dir (as ``FILE``'s name), then copies the finished
recording to ``FILE``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
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


@contextlib.contextmanager
def serve_file(path: Path) -> Iterator[str]:
    """Serve one file at ``http://127.0.0.1:PORT/<name>`` while the block runs (yields the URL)."""
    data = path.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="pstn-call-media", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{urllib.parse.quote(path.name)}"
    finally:
        server.shutdown()
        server.server_close()


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
    play: str = "",
) -> int:
    """Place the call and follow it to the end; returns the exit code.

    ``audio`` is an ``audio_url`` for the switch (``tone:HZ``...); ``play`` a local file
    (served to the switch over loopback HTTP); ``record`` a local path the recording is
    copied to.
    """
    if play:
        with serve_file(Path(play)) as url:
            return run_pstn_call(api, from_, to, audio=url, record=record, dtmf=dtmf, dtmf_delay=dtmf_delay,
                                 duration=duration, echo=echo)
    body = {
        "from": from_,
        "to": to,
        "audio_url": audio,
        "record_path": Path(record).name if record else "",
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
                    _fetch_recording(api, ccid, status, Path(record), echo)
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


def _fetch_recording(api: str, ccid: str, status: dict[str, Any], target: Path, echo: Any) -> None:
    """Copy the switch's finished recording to ``target`` (waits a moment for it to be closed)."""
    rec = status.get("recording") or {}
    for _ in range(20):
        if rec.get("saved"):
            break
        time.sleep(0.1)
        rec = _call(api, "GET", f"/switch/pstn_calls/{ccid}").get("recording") or {}
    src = Path(str(rec.get("path", "")))
    if not rec.get("saved") or not src.is_file():
        echo(f"recording: kept by the switch at {src}")
        return
    if src.resolve() != target.resolve():
        shutil.copyfile(src, target)
    echo(f"recording: {target}")
