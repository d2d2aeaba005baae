"""Per-call diagnostics left behind by every one-shot and shell run, for ``softphone bundle``.

:class:`CallRecorder` is attached to a :class:`~softphone.app.phone.Phone` for the length of one run
(``softphone dial/answer/check/demo/run/shell``: :func:`softphone.cli.runtime.open_phone`). It writes,
under ``<data dir>/diag/<run>/`` (directories 0700, files 0600):

- ``run.json``: when, the command line (redacted), the profile (secrets as ``***``), versions;
- ``debug.log``: the run's log at ``-vv`` (debug) level whatever the console shows, redacted by
  :class:`softphone.log.RedactingFilter` (the console keeps its own level);
- ``events.jsonl``: the run's events that belong to no call (socket, login, gateway);
- ``calls/<call id>/``: ``events.jsonl`` (every event of the call, as ``--json`` prints them),
  ``stats.jsonl`` (the ``call.stats`` timeline, one line a second), ``local.sdp`` / ``remote.sdp``
  (the last SDP each way, taken from the signalling frames of the debug log) and ``call.json``
  (the call's history record and the recording's path, written when it ends).

Retention: the runs holding the newest :data:`KEEP_CALLS` calls are kept, and the newest
:data:`KEEP_RUNS` runs without calls; older ones are deleted when a run starts.
``SOFTPHONE_DIAG=0`` turns recording off. Recording never fails a call: a write error is logged
once and recording stops.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from softphone.app.events_json import dumps
from softphone.app.history import data_dir, record_for
from softphone.app.snapshot import PhoneEvent
from softphone.log import RedactingFilter, redact

if TYPE_CHECKING:
    from softphone.app.phone import Phone

__all__ = ["DIAG_DIR", "KEEP_CALLS", "KEEP_RUNS", "CallRecorder", "diag_root", "prune"]

logger = logging.getLogger("softphone.app.callrecord")

DIAG_DIR = "diag"
KEEP_CALLS = 20
KEEP_RUNS = 20
_FRAME_LOGGER = "softphone.client.client"  # where softphone.client.connection logs each frame ("-> ", "<- ")
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def diag_root(env: Mapping[str, str] = os.environ) -> Path:
    """``<data dir>/diag``: one directory per run."""
    return data_dir(env) / DIAG_DIR


def _calls_in(run: Path) -> int:
    try:
        return sum(1 for p in (run / "calls").iterdir() if p.is_dir())
    except OSError:
        return 0


def _running(run: Path) -> bool:
    """Whether the process that named ``run`` (``<stamp>-<pid>``) still runs: a long shell is never pruned."""
    _, dash, pid = run.name.rpartition("-")
    if not dash or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def prune(root: Path, keep_calls: int = KEEP_CALLS, keep_runs: int = KEEP_RUNS) -> list[Path]:
    """Delete old runs (see the module docstring), never one whose process still runs; returns them."""
    try:
        runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    except OSError:
        return []
    calls = empty = 0
    gone: list[Path] = []
    for run in runs:
        n = _calls_in(run)
        if n and calls < keep_calls:
            calls += n
            continue
        if not n and empty < keep_runs:
            empty += 1
            continue
        if _running(run):
            continue
        shutil.rmtree(run, ignore_errors=True)
        gone.append(run)
    return gone


def _private_file(path: Path) -> IO[str]:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


class _SdpTap(logging.Handler):
    """Takes each SDP out of the signalling frames the client logs at debug level."""

    def __init__(self, recorder: CallRecorder) -> None:
        super().__init__(logging.DEBUG)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            return
        if not text.startswith(("-> ", "<- ")) or '"sdp"' not in text:
            return
        try:
            frame = json.loads(text[3:])
        except ValueError:
            return
        params = frame.get("params") if isinstance(frame, dict) else None
        if not isinstance(params, dict) or not isinstance(params.get("sdp"), str):
            return
        from softphone.errors import RemoteProtocolError
        from softphone.protocol.verto import call_id_of

        try:
            call_id = call_id_of(params)
        except RemoteProtocolError:
            return
        self.recorder.sdp(call_id, "local" if text.startswith("-> ") else "remote", str(frame.get("method", "")),
                          params["sdp"])


_level_lock = threading.Lock()
_attached = 0
_saved: list[tuple[logging.Handler, int]] = []
_saved_level = logging.NOTSET


def _debug_on() -> None:
    """Let ``softphone.*`` debug records reach our file while the console handler keeps its level."""
    global _attached, _saved_level
    with _level_lock:
        _attached += 1
        if _attached > 1:
            return
        log = logging.getLogger("softphone")
        _saved_level = log.level
        console_level = log.getEffectiveLevel()
        for handler in logging.getLogger().handlers:
            # The console handler of softphone.log.setup_logging carries a RedactingFilter.
            if handler.level == logging.NOTSET and any(isinstance(f, RedactingFilter) for f in handler.filters):
                _saved.append((handler, handler.level))
                handler.setLevel(console_level)
        log.setLevel(logging.DEBUG)


def _debug_off() -> None:
    global _attached
    with _level_lock:
        _attached -= 1
        if _attached > 0:
            return
        logging.getLogger("softphone").setLevel(_saved_level)
        for handler, level in _saved:
            handler.setLevel(level)
        _saved.clear()


def _stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class CallRecorder:
    """Records one run of a :class:`Phone` (see the module docstring). A context manager."""

    def __init__(self, phone: Phone, root: Path | None = None, *, argv: list[str] | None = None,
                 env: Mapping[str, str] = os.environ) -> None:
        self.phone = phone
        self.enabled = env.get("SOFTPHONE_DIAG", "1").strip().lower() not in ("0", "no", "off", "false")
        self.root = root if root is not None else diag_root(env)
        self.started = time.time()
        self.dir = self.root / f"{_stamp(self.started)}-{os.getpid()}"
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self._files: dict[tuple[str, str], IO[str]] = {}
        self._lock = threading.Lock()
        self._handlers: list[tuple[logging.Logger, logging.Handler]] = []
        self._unsubscribe: Any = None
        self._failed = False
        self._debug = False

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> CallRecorder:
        if not self.enabled:
            return self
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            prune(self.root, KEEP_CALLS, KEEP_RUNS - 1)
            self.dir.mkdir(mode=0o700)
            self._write_json(self.dir / "run.json", self._run_info())
            log_file = logging.FileHandler(self.dir / "debug.log", encoding="utf-8", delay=False)
            os.chmod(self.dir / "debug.log", 0o600)
        except OSError as exc:
            self._fail(exc)
            return self
        log_file.setLevel(logging.DEBUG)
        log_file.setFormatter(logging.Formatter(_FORMAT))
        log_file.addFilter(RedactingFilter())
        self._attach(logging.getLogger("softphone"), log_file)
        self._attach(logging.getLogger(_FRAME_LOGGER), _SdpTap(self))
        _debug_on()
        self._debug = True
        self._unsubscribe = self.phone.on_event(self.event)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop recording: unsubscribe, detach the log handlers, close the files."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for call in self.phone.snapshot.calls:  # calls still up when the run ends (Ctrl-C)
            if (self.dir / "calls" / call.id).is_dir() and not (self.dir / "calls" / call.id / "call.json").exists():
                self._finish_call(call.id)
        for log, handler in self._handlers:
            log.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        if self._debug:
            _debug_off()
            self._debug = False
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()

    def _attach(self, log: logging.Logger, handler: logging.Handler) -> None:
        log.addHandler(handler)
        self._handlers.append((log, handler))

    def _fail(self, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            logger.warning("call diagnostics not recorded (%s): %s", self.root, exc)

    def _run_info(self) -> dict[str, Any]:
        import platform
        from importlib import metadata

        profile = self.phone.profile
        return {"v": 1, "started": dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(timespec="seconds"),
                "pid": os.getpid(), "argv": [redact(a) for a in self.argv], "profile": profile.name,
                "server": profile.server, "settings": profile.display_dict(),
                "softphone": metadata.version("softphone"),
                "python": platform.python_version(),
                "platform": f"{platform.system()} {platform.release()} {platform.machine()}"}

    # -- writing ---------------------------------------------------------------------------------
    def _write_json(self, path: Path, obj: Mapping[str, Any]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(redact(json.dumps(obj, indent=2, default=str)) + "\n")

    def _call_dir(self, call_id: str) -> Path:
        safe = "".join(ch for ch in call_id if ch.isalnum() or ch in "-_.")[:80] or "call"
        path = self.dir / "calls" / safe
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def _append(self, call_id: str | None, name: str, line: str) -> None:
        if self._failed or not self.enabled:
            return
        with self._lock:
            key = (call_id or "", name)
            try:
                fh = self._files.get(key)
                if fh is None:
                    fh = _private_file((self._call_dir(call_id) if call_id else self.dir) / name)
                    self._files[key] = fh
                fh.write(line + "\n")
            except OSError as exc:
                self._fail(exc)

    def event(self, event: PhoneEvent) -> None:
        """One Phone event: into the call's (or the run's) events.jsonl; call.stats also into stats.jsonl."""
        line = dumps(event)
        self._append(event.call_id, "events.jsonl", line)
        if event.call_id and event.type == "call.stats":
            self._append(event.call_id, "stats.jsonl", line)
        if event.call_id and event.type == "call.hangup":
            self._finish_call(event.call_id)

    def sdp(self, call_id: str, side: str, method: str, sdp: str) -> None:
        """The latest SDP of one side of a call (``local``: what we sent)."""
        if self._failed or not self.enabled:
            return
        try:
            path = self._call_dir(call_id) / f"{side}.sdp"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(redact(sdp))
        except OSError as exc:
            self._fail(exc)
            return
        self._append(call_id, "sdp.jsonl", json.dumps({"ts": round(time.time(), 3), "side": side,
                                                        "method": method, "bytes": len(sdp)}))

    def _finish_call(self, call_id: str) -> None:
        if self._failed or not self.enabled:
            return
        call = self.phone.snapshot.call(call_id)
        info: dict[str, Any] = {"v": 1, "run": self.dir.name, "id": call_id}
        if call is not None:
            info.update(record_for(call, time.time()))
        record = self.phone.profile.record_file
        info["recording"] = str(Path(record).expanduser().resolve()) if record else ""
        try:
            self._write_json(self._call_dir(call_id) / "call.json", info)
        except OSError as exc:
            self._fail(exc)
