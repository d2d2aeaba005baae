"""Drive the official Telnyx JS SDK (``@telnyx/webrtc``) in headless Chromium from async tests.

The SDK bundle pinned in ``tests/conformance/package.json`` (installed by ``make deps``, i.e.
``npm ci`` in this folder) is served with a small page from a static HTTP server on 127.0.0.1;
Debian's ``/usr/bin/chromium`` is launched through the PyPI ``playwright`` package (never
``playwright install``: its own browser download cannot work here) with the flags from
``shared/CONFORMANCE.md``, a fresh user-data-dir and everything on loopback. The page half lives in
``web/harness.js`` and reports every SDK event back to Python as it happens.

Usage::

    from harness import BrowserClient, write_tone_wav

    async with BrowserClient(fake_audio_wav=write_tone_wav(tmp_path / "mic.wav", 1000)) as b:
        await b.connect("ws://127.0.0.1:8765/ws", login="alice", password="secret")
        await b.wait_event("telnyx.ready", timeout=5)
        call_id = await b.new_call("+15550100", callerName="Alice")
        await b.wait_call_state(call_id, "active", timeout=10)
        tone = await b.dominant_frequency(call_id, seconds=1.0)    # Tone(freq=..., level_db=...)
        stats = await b.rtp_stats(call_id)                          # stats["inbound"]["packetsReceived"]
        await b.dtmf(call_id, "1234#")
        await b.hangup(call_id)
        await b.wait_call_state(call_id, "destroy")

``tests/conftest.py`` puts this folder on ``sys.path``, so ``from harness import ...`` works from
any test directory (``tests/e2e`` too).

API of :class:`BrowserClient` (all methods are coroutines unless marked):

``BrowserClient(fake_audio_wav=None, *, chromium=CHROMIUM, extra_args=(), timeout=10.0)``
    ``fake_audio_wav``: a 16-bit PCM WAV the browser's microphone plays in a loop
    (``--use-file-for-fake-audio-capture``); ``None`` keeps Chromium's default fake mic, a beep
    of about 400 Hz. ``timeout`` is the default for the ``wait_*`` methods.
``connect(host_ws_url, *, login=None, password=None, login_token=None, **options)``
    ``new TelnyxWebRTC.TelnyxRTC({host, login, password | login_token, iceServers: [],
    enableCallReports: false, ...options}).connect()``. Options are passed verbatim (camelCase,
    e.g. ``debug=True``, ``keepConnectionAliveOnSocketClose=True``). Returns at once: wait for
    ``telnyx.ready`` or ``telnyx.error``.
``wait_event(name, timeout=None, *, match=None, since=0) -> Event``
    The earliest recorded event called ``name`` (and for which ``match(event.data)`` is true,
    and whose ``seq > since``) that no earlier ``wait_*`` call returned. Events that fired
    before the call count, so there is no race. Raises :class:`HarnessError` on timeout, with
    the recent events and console lines in the message.
``wait_call_state(call_id, state, timeout=None) -> Event``
    ``wait_event("telnyx.notification")`` for a ``callUpdate`` of that call reaching ``state``
    (``new requesting trying recovering ringing answering early active held hangup destroy
    purge``).
``wait_incoming_call(timeout=None) -> str``
    The id of the next inbound call that reached ``ringing``.
``new_call(destination, **opts) -> str``
    ``client.newCall({destinationNumber, audio: true, video: false, ...opts})``; returns the
    call id. Options verbatim, e.g. ``callerName``, ``callerNumber``, ``trickleIce=True``,
    ``customHeaders=[...]``, ``preferred_codecs=[...]``.
``answer(call_id, **params)``, ``hangup(call_id)``, ``dtmf(call_id, digits)``, ``hold(call_id)``,
``unhold(call_id)``, ``mute(call_id)``, ``unmute(call_id)``
    The SDK's ``Call`` methods. ``hold``/``unhold`` return the server's result.
``call_state(call_id) -> dict`` / ``calls() -> list[dict]``
    ``{id, state, prevState, direction, cause, causeCode, sipCode, sipReason,
    destinationNumber, remoteCallerName, remoteCallerNumber, pc: {connectionState,
    iceConnectionState, signalingState, iceGatheringState} | None}``.
``dominant_frequency(call_id, seconds=1.0, *, min_hz=50.0) -> Tone``
    WebAudio ``AnalyserNode`` (FFT 8192 at 48 kHz, averaged over ``seconds``) on the call's
    remote audio: ``Tone(freq, level_db, rms_dbfs, frames)``; silence gives ``rms_dbfs``
    of ``-inf``.
``rtp_stats(call_id) -> dict``
    From ``RTCPeerConnection.getStats()``: ``connectionState``, ``iceConnectionState``,
    ``inbound`` (``packetsReceived bytesReceived packetsLost jitter audioLevel totalAudioEnergy
    totalSamplesReceived concealedSamples ssrc``), ``outbound`` (``packetsSent bytesSent ssrc``),
    ``codec`` (``mimeType clockRate payloadType``), ``candidatePair``.
``close_socket(code=4000, reason=...) -> bool``
    Close the SDK's current websocket from the page (to test reconnect/recovery).
``disconnect()``
    ``client.disconnect()``.
``frames(direction="send"|"recv", method=None) -> list[dict]`` (plain method)
    Every JSON-RPC frame the page sent or received on its websockets, in order.
``events`` (list of :class:`Event`), ``console`` (list of ``"type: text"``), ``log_text()``,
``launch_seconds`` (Chromium start to page loaded), ``evaluate(js, arg)`` (escape hatch; the
page's object is ``window.H``).

Event names: the SDK's own ``telnyx.ready``, ``telnyx.error``, ``telnyx.warning``,
``telnyx.socket.open``, ``telnyx.socket.close``, ``telnyx.socket.error``, ``telnyx.notification``
(data: ``type`` = ``callUpdate`` with the call fields listed under ``call_state``, or ``generic``
for server ``telnyx_rtc.info``/``event`` frames with their params, e.g. ``dtmf``); and the page's
``page.loaded``, ``page.newCall``, ``page.disconnected``, ``page.error``, ``ws.create``, ``ws.open``,
``ws.close`` (``code``, ``reason``), ``ws.send``/``ws.recv`` (the parsed frame).

:func:`write_tone_wav` writes the sine WAV for the fake microphone (stdlib only).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WEB_DIR = HERE / "web"
SDK_BUNDLE = HERE / "node_modules" / "@telnyx" / "webrtc" / "lib" / "bundle.js"
CHROMIUM = os.environ.get("SOFTPHONE_CHROMIUM", "/usr/bin/chromium")

# shared/CONFORMANCE.md "Chromium flags that work". Playwright adds --headless itself, and its own
# temporary profile is replaced by our fresh user-data-dir. The resolver rule keeps any stray
# name lookup off the network: the page and the SDK only ever talk to 127.0.0.1.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

CALL_STATES = (
    "new", "requesting", "trying", "recovering", "ringing", "answering",
    "early", "active", "held", "hangup", "destroy", "purge",
)


class HarnessError(AssertionError):
    """The browser or the SDK did not do what a test waited for (or could not be started)."""


@dataclass(frozen=True)
class Event:
    """One thing the page reported: ``seq`` orders all events, ``t`` is page time in seconds."""

    seq: int
    name: str
    t: float
    data: Any


@dataclass(frozen=True)
class Tone:
    """Result of :meth:`BrowserClient.dominant_frequency`."""

    freq: float
    level_db: float
    rms_dbfs: float
    frames: int


def write_tone_wav(
    path: str | os.PathLike[str],
    freq: float,
    *,
    seconds: float = 2.0,
    rate: int = 48000,
    amplitude: float = 0.5,
    channels: int = 1,
) -> Path:
    """Write a 16-bit PCM sine tone WAV and return its path.

    With ``seconds * freq`` a whole number the file loops without a click (Chromium's fake
    capture loops the file).
    """
    path = Path(path)
    n = round(seconds * rate)
    peak = max(0.0, min(1.0, amplitude)) * 32767
    step = 2 * math.pi * freq / rate
    frame = struct.Struct("<" + "h" * channels)
    data = b"".join(frame.pack(*([round(peak * math.sin(step * i))] * channels)) for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    return path


class StaticServer:
    """Serves ``/sdk.html``, ``/harness.js`` and the SDK's ``/bundle.js`` on 127.0.0.1 (a thread)."""

    def __init__(self) -> None:
        if not SDK_BUNDLE.is_file():
            raise HarnessError(
                f"the Telnyx SDK bundle is missing ({SDK_BUNDLE}): run `make deps` "
                "(npm ci in tests/conformance)"
            )
        routes = {
            "/sdk.html": (WEB_DIR / "sdk.html", "text/html; charset=utf-8"),
            "/harness.js": (WEB_DIR / "harness.js", "text/javascript; charset=utf-8"),
            "/bundle.js": (SDK_BUNDLE, "text/javascript; charset=utf-8"),
        }
        routes["/"] = routes["/sdk.html"]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None and self.path == "/favicon.ico":
                    self.send_response(204)
                    self.end_headers()
                    return
                if route is None:
                    self.send_error(404)
                    return
                body = route[0].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", route[1])
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sdk-http", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StaticServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class BrowserClient:
    """Headless Chromium running the official SDK; see the module docstring for the API."""

    def __init__(
        self,
        fake_audio_wav: str | os.PathLike[str] | None = None,
        *,
        chromium: str = CHROMIUM,
        extra_args: Sequence[str] = (),
        timeout: float = 10.0,
    ) -> None:
        self.fake_audio_wav = Path(fake_audio_wav) if fake_audio_wav is not None else None
        self.chromium = chromium
        self.extra_args = tuple(extra_args)
        self.timeout = timeout
        self.events: list[Event] = []
        self.console: list[str] = []
        self.launch_seconds: float | None = None
        self._returned: set[int] = set()
        self._changed = asyncio.Event()
        self._server: StaticServer | None = None
        self._profile: str | None = None
        self._pw: Any = None
        self._context: Any = None
        self._page: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> BrowserClient:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None:
            print(f"--- BrowserClient log at failure ---\n{self.log_text()}", file=sys.stderr)
        await self._stop()

    async def _start(self) -> None:
        if not (os.path.isfile(self.chromium) and os.access(self.chromium, os.X_OK)):
            raise HarnessError(f"Chromium not found at {self.chromium}: run `make deps` (apt package chromium)")
        if self.fake_audio_wav is not None and not self.fake_audio_wav.is_file():
            raise HarnessError(f"fake microphone file {self.fake_audio_wav} does not exist")
        try:
            from playwright.async_api import async_playwright
        except ImportError as e:  # pragma: no cover - a broken install
            raise HarnessError("the playwright package is missing: run `make deps`") from e

        started = time.monotonic()
        self._server = StaticServer().start()
        self._profile = tempfile.mkdtemp(prefix="softphone-chromium-")
        args = list(CHROMIUM_FLAGS)
        if self.fake_audio_wav is not None:
            args.append(f"--use-file-for-fake-audio-capture={self.fake_audio_wav.resolve()}")
        args.extend(self.extra_args)
        self._pw = await async_playwright().start()
        self._context = await self._pw.chromium.launch_persistent_context(
            self._profile, executable_path=self.chromium, headless=True, args=args
        )
        self._page = self._context.pages[0] if self._context.pages else await self._context.new_page()
        self._page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self._page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        await self._page.expose_function("harnessEmit", self._on_event)
        await self._page.goto(f"{self._server.base_url}/sdk.html")
        loaded = await self.wait_event("page.loaded", timeout=15)
        if not loaded.data or not loaded.data.get("sdk"):
            raise HarnessError("the page loaded but the SDK bundle did not define TelnyxWebRTC")
        self.launch_seconds = time.monotonic() - started

    async def _stop(self) -> None:
        for step in (
            lambda: self._context.close() if self._context else None,
            lambda: self._pw.stop() if self._pw else None,
        ):
            with contextlib.suppress(Exception):
                aw = step()
                if aw is not None:
                    await asyncio.wait_for(aw, 15)
        self._context = self._pw = self._page = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, ev: dict[str, Any]) -> None:
        self.events.append(Event(len(self.events) + 1, str(ev["name"]), float(ev["t"]), ev.get("data")))
        self._changed.set()

    async def wait_event(
        self,
        name: str,
        timeout: float | None = None,
        *,
        match: Callable[[Any], bool] | None = None,
        since: int = 0,
    ) -> Event:
        """Return the earliest not yet returned event ``name`` (see the module docstring)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for ev in self.events:
                if (
                    ev.seq > since
                    and ev.name == name
                    and ev.seq not in self._returned
                    and (match is None or match(ev.data))
                ):
                    self._returned.add(ev.seq)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"timed out waiting for {name!r}\n{self.log_text(tail=40)}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def wait_call_state(self, call_id: str, state: str, timeout: float | None = None) -> Event:
        if state not in CALL_STATES:
            raise ValueError(f"unknown call state {state!r}; one of {', '.join(CALL_STATES)}")
        return await self.wait_event(
            "telnyx.notification",
            timeout,
            match=lambda d: d.get("type") == "callUpdate" and d.get("id") == call_id and d.get("state") == state,
        )

    async def wait_incoming_call(self, timeout: float | None = None) -> str:
        ev = await self.wait_event(
            "telnyx.notification",
            timeout,
            match=lambda d: d.get("type") == "callUpdate"
            and d.get("direction") == "inbound"
            and d.get("state") == "ringing",
        )
        return str(ev.data["id"])

    def frames(self, direction: str = "send", method: str | None = None) -> list[dict[str, Any]]:
        """JSON-RPC frames the page sent (``send``) or received (``recv``), oldest first."""
        if direction not in ("send", "recv"):
            raise ValueError("direction is 'send' or 'recv'")
        out = [e.data for e in self.events if e.name == f"ws.{direction}" and isinstance(e.data, dict)]
        return [f for f in out if method is None or f.get("method") == method]

    def log_text(self, tail: int | None = None) -> str:
        lines = [
            f"{e.t:9.3f} #{e.seq} {e.name} {json.dumps(e.data, default=str)[:300]}" for e in self.events
        ]
        cons = [f"console {c[:300]}" for c in self.console]
        if tail is not None:
            lines, cons = lines[-tail:], cons[-tail:]
        return "events:\n  " + "\n  ".join(lines) + "\nconsole:\n  " + "\n  ".join(cons)

    # -- SDK calls -------------------------------------------------------------------------

    async def evaluate(self, js: str, arg: Any = None) -> Any:
        if self._page is None:
            raise HarnessError("the browser is not running (use `async with BrowserClient(...)`)")
        return await self._page.evaluate(js, arg)

    async def connect(
        self,
        host_ws_url: str,
        *,
        login: str | None = None,
        password: str | None = None,
        login_token: str | None = None,
        **options: Any,
    ) -> None:
        opts: dict[str, Any] = {"host": host_ws_url, "iceServers": [], "enableCallReports": False}
        if login is not None:
            opts["login"] = login
        if password is not None:
            opts["password"] = password
        if login_token is not None:
            opts["login_token"] = login_token
        opts.update(options)
        await self.evaluate("o => H.connect(o)", opts)

    async def disconnect(self) -> None:
        await self.evaluate("() => H.disconnect()")

    async def new_call(self, destination: str, **opts: Any) -> str:
        return str(await self.evaluate("o => H.newCall(o)", {"destinationNumber": destination, **opts}))

    async def answer(self, call_id: str, **params: Any) -> dict[str, Any]:
        return dict(await self.evaluate("([id, p]) => H.answer(id, p)", [call_id, params]))

    async def hangup(self, call_id: str) -> dict[str, Any]:
        return dict(await self.evaluate("id => H.hangup(id)", call_id))

    async def dtmf(self, call_id: str, digits: str) -> None:
        await self.evaluate("([id, d]) => H.dtmf(id, d)", [call_id, digits])

    async def hold(self, call_id: str) -> Any:
        return await self.evaluate("id => H.hold(id)", call_id)

    async def unhold(self, call_id: str) -> Any:
        return await self.evaluate("id => H.unhold(id)", call_id)

    async def mute(self, call_id: str) -> None:
        await self.evaluate("id => H.mute(id)", call_id)

    async def unmute(self, call_id: str) -> None:
        await self.evaluate("id => H.unmute(id)", call_id)

    async def call_state(self, call_id: str) -> dict[str, Any]:
        return dict(await self.evaluate("id => H.callInfo(id)", call_id))

    async def calls(self) -> list[dict[str, Any]]:
        return list(await self.evaluate("() => H.calls()"))

    async def dominant_frequency(self, call_id: str, seconds: float = 1.0, *, min_hz: float = 50.0) -> Tone:
        r = await self.evaluate(
            "([id, s, m]) => H.dominantFrequency(id, s, m)", [call_id, seconds, min_hz]
        )
        return Tone(float(r["freq"]), float(r["levelDb"]), float(r["rmsDbfs"]), int(r["frames"]))

    async def rtp_stats(self, call_id: str) -> dict[str, Any]:
        return dict(await self.evaluate("id => H.rtpStats(id)", call_id))

    async def close_socket(self, code: int = 4000, reason: str = "harness close_socket") -> bool:
        return bool(await self.evaluate("([c, r]) => H.closeSocket(c, r)", [code, reason]))
