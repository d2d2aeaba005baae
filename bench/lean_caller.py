"""A lean caller for bench/capacity.py: many calls in one process, each with real ICE, DTLS-SRTP and Verto.

Why not the softphone itself: each softphone call runs aiortc's whole per-packet path (an encoder
thread, the jitter buffer, a decoder thread, audio-level loops): 10-16 % of a core per call, so on a
2-core machine the callers would run out of CPU long before the switch does. This caller costs a
fraction of that and still does what a WebRTC client does on the wire:

- signaling: one websocket per process and the project's own sans-I/O Verto core
  (softphone.protocol.session.VertoSession): login, invite / answer, bye;
- ICE: one aioice ``Connection`` per call (host candidates on 127.0.0.1, consent checks by aioice);
- DTLS-SRTP: one pyOpenSSL DTLS handshake per call over that ICE connection (one certificate per
  process, as browsers do; the far end's fingerprint from the SDP is checked), SRTP keys from the
  RFC 5764 exporter, packets protected and unprotected by pylibsrtp;
- media: pre-encoded Opus packets of a tone (encoded once at start with libopus), sent every 20 ms
  by one pacing loop for all calls of the process; every received packet is authenticated and
  decrypted; only the probe call's payloads are decoded (once, after the measurement window).

A call's audio is judged from RTP arrival times (:func:`judge`): each packet's media time (its RTP
timestamp) against its arrival time gives how late it came relative to the call's best packet;
frames on time arrive at most ``LATE_S`` after that, late ones after, missing ones never. The probe
call's decoded audio is judged by dominant frequency and level.

Driven by bench/capacity.py over stdin/stdout, one JSON object per line:
  out ``{"event": "ready", ...}`` once every call is up (or failed), in ``measure S`` (seconds),
  out ``{"event": "result", ...}`` with every call's figures, in ``stop`` (or end of input): bye, exit.
The password comes from the environment (``LEAN_CALLER_PASSWORD``), never from argv or output.

    LEAN_CALLER_PASSWORD=... python bench/lean_caller.py --url ws://127.0.0.1:PORT --user demo \
        --mode dial --dest echo --calls 20 --rate 20 --freq 440 --probe
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import json
import os
import random
import struct
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aioice
import numpy as np
import pylibsrtp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from softphone.protocol import events as ev
from softphone.protocol.session import Credentials, VertoSession

FRAME_S = 0.02
SAMPLES = 960  # 20 ms at Opus's 48 kHz RTP clock
PT_OPUS = 111
LATE_S = 0.06
"""A packet more than this behind its call's best-placed packet counts as late (a 3-frame jitter buffer)."""
SRTP_PROFILE = b"SRTP_AES128_CM_SHA1_80"
RTP_HEADER = struct.Struct("!BBHII")


# --- the tone: pre-encoded once --------------------------------------------------------------

def encode_tone(freq: float, level_dbfs: float = -12.0, seconds: int = 1) -> list[bytes]:
    """``seconds`` of a sine as 20 ms Opus packets (mono, 32 kbit/s), to be looped.

    The tone is encoded for ``seconds + 1`` seconds and the first second dropped, so the looped
    packets come from a warmed-up encoder; a whole number of cycles per second keeps the loop seamless.
    """
    import av

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = 32000
    amp = 32767 * 10 ** (level_dbfs / 20)
    total = (seconds + 1) * 48000
    t = np.arange(total) / 48000.0
    pcm = (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    packets: list[bytes] = []
    for i in range(0, total, SAMPLES):
        frame = av.AudioFrame.from_ndarray(pcm[i:i + SAMPLES].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = i
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    per_s = 48000 // SAMPLES
    return packets[per_s:per_s + seconds * per_s]


def analyse(pcm: np.ndarray, rate: int = 48000) -> dict[str, float]:
    """Dominant frequency (Hz, FFT peak with a Hann window) and RMS level (dBFS) of mono float audio."""
    if pcm.size < rate // 10:
        return {"freq_hz": 0.0, "level_dbfs": -120.0, "seconds": round(pcm.size / rate, 2)}
    x = pcm - pcm.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    spec[:int(50 * x.size / rate)] = 0  # below 50 Hz: not a tone we send
    peak = int(np.argmax(spec))
    rms = float(np.sqrt(np.mean(x * x)))
    return {"freq_hz": round(peak * rate / x.size, 1),
            "level_dbfs": round(20 * np.log10(max(rms, 1e-9)), 1), "seconds": round(pcm.size / rate, 2)}


def decode_opus(payloads: list[bytes]) -> np.ndarray:
    """Decode Opus payloads in order to mono float samples (-1..1) at 48 kHz."""
    import av

    dec = av.CodecContext.create("opus", "r")
    dec.sample_rate = 48000
    dec.layout = "stereo"
    out: list[np.ndarray] = []
    for payload in payloads:
        for frame in dec.decode(av.Packet(payload)):
            a = frame.to_ndarray()
            a = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a.astype(np.float32)
            if frame.format.is_planar:
                out.append(a.mean(axis=0))
            else:
                out.append(a.reshape(-1, len(frame.layout.channels)).mean(axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def judge(arrivals: list[tuple[float, int]], window_s: float) -> dict[str, Any]:
    """Frames on time, late and missing from ``(arrival time, RTP timestamp)`` pairs of one window.

    A packet's lateness is its arrival minus its media time (timestamp / 48 kHz), relative to the
    call's earliest such value: the best-placed packet defines "on time". Frames expected: the
    window's length in 20 ms frames (both ends send without pause).
    """
    expected = round(window_s / FRAME_S)
    if not arrivals:
        return {"expected": expected, "received": 0, "on_time": 0, "late": 0, "missing": expected,
                "on_time_pct": 0.0, "late_p99_ms": None}
    ts0 = arrivals[0][1]
    best: dict[int, float] = {}
    for arrival, ts in arrivals:
        d = (ts - ts0) & 0xFFFFFFFF
        if d >= 0x80000000:
            d -= 0x100000000
        idx = round(d / SAMPLES)
        offset = arrival - idx * FRAME_S
        if idx not in best or offset < best[idx]:
            best[idx] = offset  # a duplicate counts once, at its first arrival
    anchor = min(best.values())
    lateness = sorted(v - anchor for v in best.values())
    received = min(len(best), expected)
    on_time = min(sum(1 for x in lateness if x <= LATE_S), expected)
    p99 = lateness[min(len(lateness) - 1, int(0.99 * len(lateness)))]
    return {"expected": expected, "received": received, "on_time": on_time, "late": received - on_time,
            "missing": expected - received, "on_time_pct": round(100.0 * on_time / expected, 2),
            "late_p99_ms": round(1000 * p99, 1)}


# --- DTLS ------------------------------------------------------------------------------------

@dataclass
class Identity:
    """One certificate for every call of the process (browsers reuse theirs too)."""

    context_factory: Callable[[], SSL.Context]
    fingerprint: str

    @classmethod
    def create(cls) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, uuid.uuid4().hex)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
        fp = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
        x509_cert = crypto.X509.from_cryptography(cert)
        pkey = crypto.PKey.from_cryptography_key(key)

        def factory() -> SSL.Context:
            ctx = SSL.Context(SSL.DTLS_METHOD)
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
            ctx.use_certificate(x509_cert)
            ctx.use_privatekey(pkey)
            ctx.set_tlsext_use_srtp(SRTP_PROFILE)
            return ctx

        return cls(functools.cache(factory), fp)


# --- SDP -------------------------------------------------------------------------------------

@dataclass
class RemoteSdp:
    ufrag: str
    pwd: str
    fingerprint: str
    setup: str
    candidates: list[str]
    opus_pt: int


def parse_sdp(sdp: str) -> RemoteSdp:
    attrs: dict[str, str] = {}
    cands: list[str] = []
    opus_pt = PT_OPUS
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("a=candidate:"):
            cands.append(line[len("a=candidate:"):])
        elif line.startswith("a=rtpmap:") and "opus/48000" in line.lower():
            opus_pt = int(line[len("a=rtpmap:"):].split()[0])
        elif line.startswith("a=") and ":" in line:
            k, _, val = line[2:].partition(":")
            attrs.setdefault(k, val)
    fp = attrs.get("fingerprint", "").split()
    return RemoteSdp(attrs.get("ice-ufrag", ""), attrs.get("ice-pwd", ""), fp[-1].upper() if fp else "",
                     attrs.get("setup", "actpass"), cands, opus_pt)


def build_sdp(conn: aioice.Connection, fingerprint: str, setup: str, ssrc: int, pt: int = PT_OPUS) -> str:
    """Our offer or answer: Opus only (an answer uses the payload type the offer gave Opus)."""
    sess = random.randint(1, 2**62)
    lines = ["v=0", f"o=- {sess} {sess} IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
             "a=msid-semantic:WMS *"]
    port = conn.local_candidates[0].port if conn.local_candidates else 9
    lines += [f"m=audio {port} UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 127.0.0.1", "a=sendrecv", "a=mid:0",
              "a=rtcp-mux", f"a=ssrc:{ssrc} cname:lean", f"a=rtpmap:{pt} opus/48000/2",
              f"a=fmtp:{pt} minptime=10;useinbandfec=1"]
    lines += [f"a=candidate:{c.to_sdp()}" for c in conn.local_candidates]
    lines += ["a=end-of-candidates", f"a=ice-ufrag:{conn.local_username}", f"a=ice-pwd:{conn.local_password}",
              f"a=fingerprint:sha-256 {fingerprint}", f"a=setup:{setup}"]
    return "\r\n".join(lines) + "\r\n"


def loopback_connection(controlling: bool) -> aioice.Connection:
    """An aioice connection that gathers 127.0.0.1 only (aioice skips loopback addresses by itself)."""
    conn = aioice.Connection(ice_controlling=controlling, components=1, use_ipv6=False)
    original = conn.get_component_candidates

    async def loopback_only(component: int, addresses: list[str], timeout: int = 5) -> Any:
        return await original(component=component, addresses=["127.0.0.1"], timeout=1)

    conn.get_component_candidates = loopback_only  # type: ignore[method-assign]
    return conn


# --- one call ----------------------------------------------------------------------------------

@dataclass
class Leg:
    call_id: str
    conn: aioice.Connection
    ssrc: int
    probe: bool = False
    answered: asyncio.Future[str] | None = None
    up: bool = False
    failed: str = ""
    setup_ms: float = 0.0
    pt: int = PT_OPUS
    tx: pylibsrtp.Session | None = None
    rx: pylibsrtp.Session | None = None
    ssl: SSL.Connection | None = None
    dtls_in: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    seq: int = field(default_factory=lambda: random.randint(0, 65535))
    ts: int = field(default_factory=lambda: random.randint(0, 2**31))
    recording: bool = False
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    payloads: dict[int, bytes] = field(default_factory=dict)
    rx_packets: int = 0
    auth_failures: int = 0
    reader: asyncio.Task[None] | None = None

    async def connect_media(self, remote: RemoteSdp, identity: Identity, loop: asyncio.AbstractEventLoop) -> None:
        """ICE, then the DTLS handshake, then SRTP keys; starts the reader."""
        self.pt = remote.opus_pt
        self.conn.remote_username = remote.ufrag
        self.conn.remote_password = remote.pwd
        for c in remote.candidates:
            cand = aioice.Candidate.from_sdp(c)
            if cand.host == "127.0.0.1" and cand.transport.lower() == "udp":
                await self.conn.add_remote_candidate(cand)
        await self.conn.add_remote_candidate(None)
        await self.conn.connect()
        self.reader = loop.create_task(self._read())
        ssl = SSL.Connection(identity.context_factory(), None)
        # RFC 5763: the answerer's a=setup decides; an offer's actpass leaves us the client.
        client = remote.setup in ("passive", "actpass")
        (ssl.set_connect_state if client else ssl.set_accept_state)()
        self.ssl = ssl
        while True:
            try:
                ssl.do_handshake()
                break
            except SSL.WantReadError:
                pass
            await self._flush_dtls()
            timeout = ssl.DTLSv1_get_timeout() or 1.0
            try:
                data = await asyncio.wait_for(self.dtls_in.get(), timeout)
            except TimeoutError:
                ssl.DTLSv1_handle_timeout()
                continue
            ssl.bio_write(data)
        await self._flush_dtls()
        peer = ssl.get_peer_certificate()
        if peer is None or peer.digest("sha256").decode().upper() != remote.fingerprint:
            raise RuntimeError("DTLS: the far end's certificate does not match its SDP fingerprint")
        if ssl.get_selected_srtp_profile() != SRTP_PROFILE:
            raise RuntimeError(f"DTLS: SRTP profile {ssl.get_selected_srtp_profile()!r}")
        km = ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (16 + 14))
        ck, sk, cs, ss = km[:16], km[16:32], km[32:46], km[46:60]
        tx_key, rx_key = (ck + cs, sk + ss) if client else (sk + ss, ck + cs)
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        self.tx = pylibsrtp.Session(pylibsrtp.Policy(key=tx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                                     srtp_profile=profile))
        self.rx = pylibsrtp.Session(pylibsrtp.Policy(key=rx_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                                     srtp_profile=profile))
        self.up = True

    async def _flush_dtls(self) -> None:
        assert self.ssl is not None
        while True:
            try:
                data = self.ssl.bio_read(1500)
            except SSL.WantReadError:
                return
            if not data:
                return
            await self.conn.send(data)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        conn = self.conn
        while True:
            try:
                data = await conn.recv()
            except (ConnectionError, asyncio.CancelledError):
                return
            b0 = data[0]
            if 20 <= b0 <= 63:  # DTLS (RFC 7983 demultiplexing)
                if not self.up:
                    self.dtls_in.put_nowait(data)
                continue
            if b0 < 128 or b0 > 191 or self.rx is None:
                continue
            if 192 <= data[1] <= 223:  # RTCP (payload types 64-95 with the marker bit): not judged
                continue
            try:
                rtp = self.rx.unprotect(data)
            except pylibsrtp.Error:
                self.auth_failures += 1
                continue
            self.rx_packets += 1
            if self.recording:
                ts = int.from_bytes(rtp[4:8], "big")
                self.arrivals.append((loop.time(), ts))
                if self.probe:
                    cc = rtp[0] & 0x0F
                    start = 12 + 4 * cc
                    if rtp[0] & 0x10:  # header extension
                        start += 4 + 4 * int.from_bytes(rtp[start + 2:start + 4], "big")
                    self.payloads[ts] = rtp[start:]

    def next_packet(self, payload: bytes, first: bool) -> bytes | None:
        if self.tx is None:
            return None
        header = RTP_HEADER.pack(0x80, self.pt | (0x80 if first else 0), self.seq, self.ts, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + SAMPLES) & 0xFFFFFFFF
        return bytes(self.tx.protect(header + payload))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.conn.close()


# --- the process: signaling, pacing, measuring -------------------------------------------------

class Caller:
    def __init__(self, args: argparse.Namespace, password: str) -> None:
        self.args = args
        self.password = password
        self.loop = asyncio.get_running_loop()
        self.identity = Identity.create()
        self.tone = encode_tone(args.freq)
        self.session = VertoSession(new_id=lambda: str(uuid.uuid4()), clock=time.monotonic, sdk_name="lean-caller")
        self.ws: Any = None
        self.legs: dict[str, Leg] = {}
        self.ready = asyncio.Event()
        self.logged_in: asyncio.Future[None] = self.loop.create_future()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.hangups: list[str] = []
        self.send_lag: list[float] | None = None

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def flush(self) -> None:
        for msg in self.session.data_to_send():
            await self.ws.send(msg)

    async def pump(self) -> None:
        async for text in self.ws:
            self.session.receive_text(text)
            await self.flush()
            for e in self.session.events_received():
                self.on_event(e)

    def on_event(self, e: ev.Event) -> None:
        match e:
            case ev.Ready():
                if not self.logged_in.done():
                    self.logged_in.set_result(None)
            case ev.LoginRejected(code=code, message=msg):
                if not self.logged_in.done():
                    self.logged_in.set_exception(RuntimeError(f"login rejected {code}: {msg}"))
            case ev.RemoteAnswer(call_id=cid, sdp=sdp):
                leg = self.legs.get(cid)
                if leg is not None and leg.answered is not None and not leg.answered.done() and sdp:
                    leg.answered.set_result(sdp)
            case ev.IncomingCall(invite=inv):
                self.spawn(self.answer(inv.call_id, inv.sdp))
            case ev.CallHangup(call_id=cid, cause=cause):
                leg = self.legs.get(cid)
                if leg is not None:
                    self.hangups.append(cause)
                    if leg.answered is not None and not leg.answered.done():
                        leg.answered.set_exception(RuntimeError(f"hung up: {cause}"))
                    if not leg.up and not leg.failed:
                        leg.failed = f"hangup {cause}"
                        self.check_ready()
            case _:
                pass

    def check_ready(self) -> None:
        done = [leg for leg in self.legs.values() if leg.up or leg.failed]
        if len(done) >= self.args.calls:
            self.ready.set()

    async def dial(self, index: int) -> None:
        call_id = str(uuid.uuid4())
        leg = Leg(call_id, loopback_connection(True), random.randint(1, 2**32 - 1),
                  probe=self.args.probe and index == 0)
        leg.answered = self.loop.create_future()
        self.legs[call_id] = leg
        t0 = time.monotonic()
        try:
            await leg.conn.gather_candidates()
            self.session.new_call(call_id, self.args.dest)
            self.session.invite(call_id, build_sdp(leg.conn, self.identity.fingerprint, "actpass", leg.ssrc))
            await self.flush()
            sdp = await asyncio.wait_for(leg.answered, self.args.setup_timeout)
            await asyncio.wait_for(leg.connect_media(parse_sdp(sdp), self.identity, self.loop), self.args.setup_timeout)
            leg.setup_ms = 1000 * (time.monotonic() - t0)
        except Exception as exc:  # a call that fails to set up is counted, not fatal
            leg.failed = leg.failed or f"{type(exc).__name__}: {exc}"[:200]
        self.check_ready()

    async def answer(self, call_id: str, offer: str) -> None:
        index = len(self.legs)
        leg = Leg(call_id, loopback_connection(False), random.randint(1, 2**32 - 1),
                  probe=self.args.probe and index == 0)
        self.legs[call_id] = leg
        t0 = time.monotonic()
        try:
            remote = parse_sdp(offer)
            await leg.conn.gather_candidates()
            self.session.answer(call_id, build_sdp(leg.conn, self.identity.fingerprint, "active", leg.ssrc,
                                                   remote.opus_pt))
            await self.flush()
            await asyncio.wait_for(leg.connect_media(remote, self.identity, self.loop), self.args.setup_timeout)
            leg.setup_ms = 1000 * (time.monotonic() - t0)
        except Exception as exc:
            leg.failed = leg.failed or f"{type(exc).__name__}: {exc}"[:200]
        self.check_ready()

    async def pace(self) -> None:
        """One loop sends every call's next packet each 20 ms, on an absolute schedule.

        After a stall it catches up (sends the packets due, back to back) rather than skipping them,
        so a frame the far end misses was lost on the way, not never sent; how late this loop sent
        (``send_lag``) is reported with every measurement, to tell a starved caller from a slow switch.
        """
        n = 0
        due = self.loop.time()
        started: set[str] = set()
        while True:
            lag = self.loop.time() - due
            if self.send_lag is not None:
                self.send_lag.append(lag)
            payload = self.tone[n % len(self.tone)]
            for leg in list(self.legs.values()):
                if leg.up:
                    pkt = leg.next_packet(payload, leg.call_id not in started)
                    started.add(leg.call_id)
                    if pkt is not None:
                        try:
                            await leg.conn.send(pkt)
                        except ConnectionError:
                            leg.up = False
            n += 1
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - self.loop.time()))

    async def measure(self, seconds: float) -> dict[str, Any]:
        cpu0 = time.process_time()
        self.send_lag = []
        for leg in self.legs.values():
            leg.arrivals.clear()
            leg.payloads.clear()
            leg.recording = True
        t0 = self.loop.time()
        await asyncio.sleep(seconds)
        window = self.loop.time() - t0
        for leg in self.legs.values():
            leg.recording = False
        cpu = time.process_time() - cpu0
        lags, self.send_lag = sorted(self.send_lag or [0.0]), None
        send = {"ticks": len(lags), "late_pct": round(100.0 * sum(1 for x in lags if x > FRAME_S) / len(lags), 2),
                "lag_p99_ms": round(1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))], 1),
                "lag_max_ms": round(1000 * lags[-1], 1)}
        calls = []
        probe: dict[str, Any] | None = None
        for leg in self.legs.values():
            if leg.failed:
                calls.append({"failed": leg.failed, **judge([], window)})
                continue
            calls.append({"setup_ms": round(leg.setup_ms, 1), "auth_failures": leg.auth_failures,
                          **judge(leg.arrivals, window)})
            if leg.probe and self.args.dump:
                with open(self.args.dump, "w") as fh:
                    json.dump({"arrivals": leg.arrivals, "send_lag": lags}, fh)
            if leg.probe:
                payloads = [leg.payloads[k] for k in sorted(leg.payloads, key=lambda ts: (ts - min(leg.payloads))
                                                            & 0xFFFFFFFF)]
                probe = {"own_tone_hz": self.args.freq, **analyse(decode_opus(payloads))}
        return {"event": "result", "window_s": round(window, 3), "caller_cpu_pct": round(100 * cpu / window, 1),
                "send_lag": send, "calls": calls, "probe": probe}

    async def run(self) -> None:
        import websockets

        self.ws = await websockets.connect(self.args.url, max_size=2**22, ping_interval=None)
        self.spawn(self.pump())
        self.session.connection_made()
        self.session.login(Credentials(login=self.args.user, password=self.password))
        await self.flush()
        await asyncio.wait_for(self.logged_in, 20)
        self.spawn(self.pace())
        print(json.dumps({"event": "registered", "user": self.args.user}), flush=True)
        if self.args.mode == "dial":
            for i in range(self.args.calls):
                self.spawn(self.dial(i))
                await asyncio.sleep(1.0 / self.args.rate)
        try:
            await asyncio.wait_for(self.ready.wait(), self.args.ready_timeout)
        except TimeoutError:
            pass
        up = [leg for leg in self.legs.values() if leg.up]
        failed = [leg.failed for leg in self.legs.values() if leg.failed]
        print(json.dumps({"event": "ready", "up": len(up), "failed": len(failed), "failures": failed[:5],
                          "setup_ms_max": round(max((leg.setup_ms for leg in up), default=0.0), 1)}), flush=True)
        reader = asyncio.StreamReader()
        await self.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = (await reader.readline()).decode().strip()
            if line.startswith("measure"):
                result = await self.measure(float(line.split()[1]))
                print(json.dumps(result), flush=True)
            else:  # "stop" or end of input
                break
        await self.shutdown()

    async def shutdown(self) -> None:
        for leg in self.legs.values():
            try:
                if self.session.calls.get(leg.call_id) is not None:
                    self.session.hangup(leg.call_id)
            except Exception:  # already ended: nothing to send
                pass
        try:
            await self.flush()
        except Exception:
            pass
        await asyncio.gather(*(leg.close() for leg in self.legs.values()), return_exceptions=True)
        await self.ws.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--mode", choices=["dial", "answer"], default="dial")
    ap.add_argument("--dest", default="echo")
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--rate", type=float, default=20.0, help="new calls per second (dial mode)")
    ap.add_argument("--freq", type=float, default=440.0)
    ap.add_argument("--probe", action="store_true", help="decode the first call's audio")
    ap.add_argument("--dump", default="", help="write the probe call's (arrival, RTP timestamp) pairs here")
    ap.add_argument("--setup-timeout", type=float, default=20.0)
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    args = ap.parse_args()
    password = os.environ.get("LEAN_CALLER_PASSWORD")
    if password is None:
        raise SystemExit("LEAN_CALLER_PASSWORD is not set")

    async def body() -> None:
        await Caller(args, password).run()

    asyncio.run(body())


if __name__ == "__main__":
    main()
