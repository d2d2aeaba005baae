"""HTTP fuzzing of the commands API (issue 10, item 6): hypothesis strategies and a switch in a thread.

Shared by ``test_api_fuzz.py`` (bounded, in the suite) and ``bench/http_fuzz.py`` (>= 10,000 cases).
A :class:`FuzzTarget` runs a real :class:`~softphone.switch.Switch` with Call Control on its
own event loop thread, with a WebRTC client (``agent1``) in an echo call the whole time, so a
fuzz run can check the switch kept serving calls: :meth:`FuzzTarget.call_alive` asks whether that
call still hears its own tone, :meth:`FuzzTarget.new_call_works` places a fresh one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from ccfixtures import AGENTS, API_KEY, APP_NUMBER, app_accounts
from hypothesis import strategies as st
from phones import Phone, PhoneCall, heard_hz

from softphone.switch import Switch
from softphone.switch.callcontrol.apps import CallControlOptions

T = TypeVar("T")

ACTIONS = ["answer", "hangup", "bridge", "transfer", "enqueue", "leave_queue", "playback_start", "playback_stop",
           "gather", "speak", "record_start", "", "..", "actions"]
FIELDS = ["to", "from", "connection_id", "audio_url", "record_path", "dtmf", "dtmf_delay_secs", "client_state",
          "call_control_id", "timeout_secs", "maximum_digits", "minimum_digits", "timeout_millis",
          "inter_digit_timeout_millis", "terminating_digit", "valid_digits", "queue_name", "queue", "name",
          "custom_headers", "loop", "overlay", "media_name", "link_to", "park_after_unbridge",
          "target_leg_client_state", "beep_enabled"]


class ErrorLog(logging.Handler):
    """Collects ERROR records (tracebacks) of the switch."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FuzzTarget:
    """A switch with Call Control on a background loop, plus an echo call kept up throughout."""

    def __init__(self, data_dir: Path, park_timeout: float = 2.0) -> None:
        self.data_dir = data_dir
        self.park_timeout = park_timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-switch", daemon=True)
        self.switch: Switch | None = None
        self.phone: Phone | None = None
        self.call: PhoneCall | None = None
        self.errors = ErrorLog()
        self.host = "127.0.0.1"
        self.port = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> FuzzTarget:
        self.thread.start()
        logging.getLogger("softphone").addHandler(self.errors)
        self.run(self._start())
        return self

    async def _start(self) -> None:
        opts = CallControlOptions(api_port=0, park_timeout=self.park_timeout, outside_ring_s=0.2,
                                  data_dir=self.data_dir, dial_timeout=2.0)
        (self.data_dir / "media").mkdir(parents=True, exist_ok=True)
        # Webhooks go to a loopback port nobody listens on (refused at once, retried, dropped).
        self.switch = Switch(accounts=app_accounts("http://127.0.0.1:9/webhooks"), port=0, call_control=opts)
        await self.switch.start()
        self.port = int(self.switch.api_url.rsplit(":", 1)[1])
        self.phone = Phone(self.switch.url, "agent1", AGENTS["agent1"], 640)
        await self.phone.__aenter__()
        self.call = await self.phone.dial("echo")
        await self._wait_hz(self.call, 640)

    @staticmethod
    async def _wait_hz(call: PhoneCall, hz: float, timeout: float = 10.0) -> bool:
        for _ in range(int(timeout / 0.2)):
            await asyncio.sleep(0.2)
            if abs(heard_hz(call, 0.6) - hz) < 15:
                return True
        return False

    def call_alive(self) -> bool:
        """The call placed at start still hears its own tone back from the echo service."""
        assert self.call is not None
        return self.run(self._wait_hz(self.call, 640, timeout=5.0))

    def new_call_works(self) -> bool:
        async def go() -> bool:
            assert self.switch is not None
            async with Phone(self.switch.url, "agent2", AGENTS["agent2"], 880) as p:
                call = await p.dial("echo")
                ok = await self._wait_hz(call, 880)
                await p.hangup(call)
                return ok

        return self.run(go())

    def live_legs(self) -> list[str]:
        sw = self.switch
        if sw is None or sw.call_control is None:
            return []
        return [cid for cid, leg in list(sw.call_control.legs.items()) if leg.alive][:8]

    def conference_ids(self) -> list[str]:
        sw = self.switch
        if sw is None or sw.call_control is None:
            return []
        return list(sw.call_control.conferences)[:4]

    def stop(self) -> None:
        async def go() -> None:
            if self.phone is not None:
                await self.phone.__aexit__(None, None, None)
            if self.switch is not None:
                await self.switch.stop()

        try:
            self.run(go())
        finally:
            logging.getLogger("softphone").removeHandler(self.errors)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    def fill(self, raw: bytes) -> bytes:
        """Replace the id placeholders by live call and conference ids (a gone id when there are fewer)."""
        legs, confs = self.live_legs(), self.conference_ids()
        for slots, ids in ((LEG_SLOTS, legs), (CONF_SLOTS, confs)):
            for i, slot in enumerate(slots):
                if slot.encode() in raw:
                    raw = raw.replace(slot.encode(), (ids[i % len(ids)] if ids else "v3:gone").encode())
        return raw

    def send(self, raw: bytes, timeout: float = 15.0) -> tuple[int, bytes]:
        """One request on a fresh connection (placeholders filled); ``(status, body)`` (0: no HTTP answer)."""
        raw = self.fill(raw)
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            try:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the switch may answer (and close) before reading everything: fine
            chunks = []
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.1") or not parts[1].isdigit():
            return 0, data
        return int(parts[1]), body


def check_response(status: int, body: bytes) -> None:
    """The properties every answer must have: an HTTP status below 500, JSON, Telnyx's error shape."""
    assert status != 0, f"no HTTP answer: {body[:200]!r}"
    assert status < 500, (status, body[:300])
    obj = json.loads(body)
    assert isinstance(obj, dict)
    if status >= 400:
        errors = obj.get("errors")
        assert isinstance(errors, list) and errors, obj
        assert set(errors[0]) == {"code", "title", "detail"}, obj
    else:
        assert "data" in obj, obj


# --- strategies -------------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["", "tone:700", "tone:abc", "silence", "../x.wav", "/etc/passwd", "x.wav", APP_NUMBER,
                     "+13125550100", "agent1", "echo", "app", "http://127.0.0.1:9/x.wav", "file:///etc/passwd",
                     "infinity", "true", "self", "#", "123", "-1", "1e999"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)


LEG_SLOTS = [f"@leg{i}@" for i in range(4)]
CONF_SLOTS = ["@conf0@", "@conf1@"]
"""Placeholders the generators use for live ids; :meth:`FuzzTarget.fill` swaps in the current ones (so
generation does not depend on the switch's state, as hypothesis requires)."""


def bodies() -> st.SearchStrategy[dict[str, Any]]:
    values = st.one_of(json_values, st.sampled_from(LEG_SLOTS))
    return st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)


def paths() -> st.SearchStrategy[str]:
    ids = st.sampled_from([*LEG_SLOTS, *CONF_SLOTS, "v3:nope", "x"])
    segment = st.one_of(
        st.sampled_from(["v2", "calls", "conferences", "actions", "switch", "pstn_calls", "hangup", "..", ".",
                         "%00", "%2e%2e", "?a=b", "join", "leave"]),
        st.sampled_from(ACTIONS),
        ids,
        st.text(alphabet=st.characters(codec="ascii", exclude_characters=" \r\n"), max_size=12),
    )
    structured = st.one_of(
        st.tuples(st.just("v2/calls"), ids, st.just("actions"), st.sampled_from(ACTIONS)).map("/".join),
        st.tuples(st.just("v2/conferences"), ids, st.just("actions"), st.sampled_from(["join", "leave", "x"]))
        .map("/".join),
        st.sampled_from(["v2/calls", "v2/conferences", "switch/pstn_calls"]),
        st.tuples(st.just("switch/pstn_calls"), ids, st.sampled_from(["", "hangup"])).map("/".join),
        st.tuples(st.sampled_from(["v2/calls", "v2/conferences"]), ids).map("/".join),
    )
    return st.one_of(structured, st.lists(segment, max_size=6).map("/".join)).map(lambda p: "/" + p)


methods = st.one_of(st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
                    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A whole HTTP request: method, path, headers (some malformed) and a JSON (or not) body."""
    method = draw(methods)
    path = draw(paths())
    body_kind = draw(st.sampled_from(["json", "json", "json", "raw", "none", "array"]))
    if body_kind == "json":
        body = json.dumps(draw(bodies())).encode()
    elif body_kind == "array":
        body = json.dumps(draw(st.lists(json_values, max_size=3))).encode()
    elif body_kind == "raw":
        body = draw(st.binary(max_size=200))
    else:
        body = b""
    headers = [b"Host: 127.0.0.1"]
    auth = draw(st.sampled_from(["key", "key", "none", "wrong", "garbage"]))
    if auth == "key":
        headers.append(f"Authorization: Bearer {API_KEY}".encode())
    elif auth == "wrong":
        headers.append(b"Authorization: Bearer KEYwrong")
    elif auth == "garbage":
        headers.append(b"Authorization: " + draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b""))
    length = draw(st.sampled_from(["right", "right", "right", "missing", "abc", "-5", "short", "long", "huge", "junk"]))
    if length == "right":
        headers.append(f"Content-Length: {len(body)}".encode())
    elif length == "short":
        headers.append(f"Content-Length: {max(0, len(body) - 3)}".encode())
    elif length == "long":
        headers.append(f"Content-Length: {len(body) + 10}".encode())
    elif length == "huge":
        headers.append(b"Content-Length: 99999999999999999999")
    elif length in ("abc", "-5"):
        headers.append(b"Content-Length: " + length.encode())
    elif length == "junk":
        headers.append(b"Content-Length: " + draw(st.binary(max_size=10)).replace(b"\r", b"").replace(b"\n", b""))
    extra = draw(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                          max_size=3))
    headers.extend(extra)  # random header lines (most have no colon)
    if draw(st.integers(0, 9)) == 0:
        headers.append(b"Transfer-Encoding: chunked")
    version = draw(st.sampled_from([b" HTTP/1.1", b" HTTP/1.1", b" HTTP/1.0", b"", b" HTTP/9"]))
    head = method.encode() + b" " + path.encode() + version + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
    return head + body


raw_requests = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from([b"GET ", b"POST ", b""]), st.binary(max_size=200)).map(b"".join),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
