"""PESQ of speech through the local switch, next to the codec alone (the ceiling), in one run.

Material: four Harvard sentences spoken by flite (``softphone.media.tts``, 16 kHz), with gaps, over a
-50 dBFS white noise floor (a microphone's; seeded).
Measured (ITU-T P.862 through the ``pesq`` package: wide band at 16 kHz for Opus, narrow band at 8 kHz
for PCMU; PESQ-NB of Opus too, for comparison):

* ``echo``: a softphone ``Client`` calls the switch's echo service and hears its own speech back;
* ``softphone_to_softphone``: ``demo`` calls ``alice`` through the switch; alice's side is scored;
* ``codec``: the same audio through PyAV's codec alone (``libopus`` mono at the call's bitrate,
  one pass and two passes, i.e. forwarded vs transcoded once more on the way; ``pcm_mulaw``), the
  ceiling a call can reach.

What the call received is resampled to the PESQ rate and aligned to the reference by
cross-correlation (FFT); the lag is reported too (it is the delay inside the received signal, not
a latency figure). The switch runs in this process; Opus calls run at each ``--bitrate`` (the
softphone's encoder, ``PeerOptions.opus_bitrate``; the switch forwards or encodes at its default).
Results go into ``bench/results.json`` under ``"pesq"`` with the load average at start and end.

    .venv/bin/python bench/pesq.py [--bitrate 32000 --bitrate 40000] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fractions
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# Run as a script, this file's folder comes first on sys.path and this file would shadow the pesq package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import av  # noqa: E402
import numpy as np  # noqa: E402
from pesq import pesq as p862  # noqa: E402

sys.path.append(str(BENCH))
from compare_sdk import write_results  # noqa: E402  (bench/ is not a package)

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
)
GAP_S = 0.25
NOISE_DBFS = -50.0
"""RMS of the white noise floor under the material (dBFS)."""
TARGETS = {"echo_opus_wb": ">= 4.36", "echo_pcmu_nb": ">= 4.30"}


# -- audio helpers ----------------------------------------------------------------------------------


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Whole-signal resampling of mono s16 (libswresample), flushed so nothing is held back."""
    if rate_in == rate_out:
        return x.astype(np.int16)
    res = av.AudioResampler(format="s16", layout="mono", rate=rate_out)
    frame = av.AudioFrame.from_ndarray(x.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate_in
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, rate_in)
    parts = [f.to_ndarray().reshape(-1) for f in res.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in res.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def align(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, int]:
    """``deg`` cut to ``ref``'s length at the lag of the cross-correlation peak (``deg`` later than ``ref``)."""
    n = ref.shape[0] + deg.shape[0]
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(deg.astype(np.float64), size) * np.conj(np.fft.rfft(ref.astype(np.float64), size)),
                        size)
    lag = int(np.argmax(corr[: deg.shape[0]]))
    out = deg[lag : lag + ref.shape[0]]
    if out.shape[0] < ref.shape[0]:
        out = np.concatenate((out, np.zeros(ref.shape[0] - out.shape[0], np.int16)))
    return out.astype(np.int16), lag


def score(ref16: np.ndarray, received48: np.ndarray, *, wide: bool) -> dict[str, float]:
    """PESQ (``wb`` at 16 kHz or ``nb`` at 8 kHz) of 48 kHz received audio against the 16 kHz reference."""
    rate = 16000 if wide else 8000
    ref = resample(ref16, 16000, rate)
    deg, lag = align(ref, resample(received48, 48000, rate))
    value = float(p862(rate, ref.astype(np.float64), deg.astype(np.float64), "wb" if wide else "nb"))
    return {"pesq": round(value, 3), "lag_ms": round(1000.0 * lag / rate, 1)}


def material() -> tuple[np.ndarray, np.ndarray]:
    """(reference at 16 kHz, the same at 48 kHz to send)."""
    from softphone.media.frames import pcm_to_frames
    from softphone.media.tts import synthesize

    gap = np.zeros(int(GAP_S * 16000), np.int16)
    parts = [gap]
    for text in SENTENCES:
        samples, rate = synthesize(text)
        if rate != 16000:
            samples = resample(np.asarray(samples), rate, 16000)
        parts += [np.asarray(samples, np.int16), gap]
    speech = np.concatenate(parts).astype(np.float64)
    # A microphone's noise floor (seeded: every run scores the same material). Digital silence makes PESQ
    # punish G.711's quantisation noise in the gaps far below what listeners hear: PCMU alone scores 3.16
    # on silent gaps, 4.31 with this floor.
    noise = np.random.default_rng(14).normal(0.0, 32768.0 * 10 ** (NOISE_DBFS / 20), speech.shape)
    ref16 = np.clip(np.round(speech + noise), -32768, 32767).astype(np.int16)
    return ref16, pcm_to_frames(ref16, 16000, 1)


# -- the codec alone ------------------------------------------------------------------------------------


def _frames(x: np.ndarray, rate: int, size: int) -> list[av.AudioFrame]:
    out = []
    for i in range(x.shape[0] // size):
        f = av.AudioFrame.from_ndarray(x[i * size : (i + 1) * size].reshape(1, -1), format="s16", layout="mono")
        f.sample_rate = rate
        f.pts = i * size
        f.time_base = fractions.Fraction(1, rate)
        out.append(f)
    return out


def codec_pass(x: np.ndarray, codec: str, bitrate: int = 32000) -> np.ndarray:
    """One encode + decode of 48 kHz mono s16 (``opus`` at ``bitrate``, or ``pcmu`` at 8 kHz); returns 48 kHz."""
    if codec == "opus":
        rate, size, enc_name, dec_name = 48000, 960, "libopus", "libopus"
    else:
        rate, size, enc_name, dec_name = 8000, 160, "pcm_mulaw", "pcm_mulaw"
        x = resample(x, 48000, 8000)
    enc: Any = av.CodecContext.create(enc_name, "w")
    enc.format, enc.layout, enc.sample_rate = "s16", "mono", rate
    enc.time_base = fractions.Fraction(1, rate)
    if codec == "opus":
        enc.bit_rate = bitrate
        enc.options = {"application": "voip"}
    dec: Any = av.CodecContext.create(dec_name, "r")
    dec.format, dec.layout, dec.sample_rate = "s16", "mono", rate
    out = []
    for frame in _frames(x, rate, size):
        for packet in enc.encode(frame):
            out += [f.to_ndarray().reshape(-1) for f in dec.decode(packet)]
    y = np.concatenate(out)
    return resample(y, rate, 48000) if rate != 48000 else y


def codec_ceiling(ref16: np.ndarray, src48: np.ndarray, bitrates: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # 100 ms of silence after the material, as a call sends once the source ends: without it the codec's
    # look-ahead and the last partial frame would cut the material's end short (PESQ-WB 0.13 lower).
    src48 = np.concatenate((src48, np.zeros(4800, np.int16)))
    for br in bitrates:
        once = codec_pass(src48, "opus", br)
        twice = codec_pass(once, "opus", br)
        out[f"opus_{br // 1000}k"] = {"one_pass_wb": score(ref16, once, wide=True)["pesq"],
                                       "two_pass_wb": score(ref16, twice, wide=True)["pesq"],
                                       "one_pass_nb": score(ref16, once, wide=False)["pesq"]}
    once = codec_pass(src48, "pcmu")
    out["pcmu"] = {"one_pass_nb": score(ref16, once, wide=False)["pesq"],
                   "two_pass_nb": score(ref16, codec_pass(once, "pcmu"), wide=False)["pesq"]}
    return out


# -- calls through the switch ------------------------------------------------------------------------------


def _client(url: str, login: str, codec: str, bitrate: int | None) -> Any:
    from softphone.client.client import AudioConfig, Client
    from softphone.media.peer import MediaPeer, PeerOptions
    from softphone.protocol import Credentials

    has_bitrate = any(f.name == "opus_bitrate" for f in dataclasses.fields(PeerOptions))

    def peer_factory(source: Any, sink: Any, name: str, codecs: list[str]) -> Any:
        kw: dict[str, Any] = {"jitter_prefetch": 1, "codecs": codecs}
        if bitrate is not None and has_bitrate:
            kw["opus_bitrate"] = bitrate
        return MediaPeer(PeerOptions.loopback(**kw), source=source, sink=sink, name=name)

    return Client(url, Credentials(login=login, password=f"{login}-secret"), audio=AudioConfig(backend="null"),
                  codecs=[codec], peer_factory=peer_factory)


async def _speak_and_record(call: Any, src48: np.ndarray, listener: Any) -> np.ndarray:
    from softphone.media.sinks import BufferSink
    from softphone.media.sources import ArraySource

    seconds = src48.shape[0] / 48000
    heard = BufferSink(seconds + 4.0)
    listener.set_output(heard)
    await asyncio.sleep(0.6)  # media flowing both ways first
    source = ArraySource(src48)
    call.set_input(source)
    deadline = time.monotonic() + seconds + 10
    while not source.finished and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.8)  # the tail comes back
    return heard.samples(seconds + 4.0)


async def through_echo(url: str, codec: str, bitrate: int | None, src48: np.ndarray) -> np.ndarray:
    from softphone.protocol import CallState

    client = _client(url, "demo", codec, bitrate)
    await client.connect()
    try:
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE, 10)
        got = await _speak_and_record(call, src48, call)
        await call.hangup()
        await call.wait_ended(5)
        return got
    finally:
        await client.close()


async def softphone_to_softphone(url: str, codec: str, bitrate: int | None, src48: np.ndarray) -> np.ndarray:
    from softphone.protocol import CallState

    demo, alice = _client(url, "demo", codec, bitrate), _client(url, "alice", codec, bitrate)
    await demo.connect()
    await alice.connect()
    try:
        out = await demo.new_call("alice")
        deadline = time.monotonic() + 10
        inbound = None
        while inbound is None and time.monotonic() < deadline:
            inbound = next((c for c in alice.calls.values()
                            if c.direction == "inbound" and c.state == CallState.RINGING), None)
            await asyncio.sleep(0.02)
        if inbound is None:
            raise RuntimeError("alice never rang")
        await inbound.answer()
        await out.wait_state(CallState.ACTIVE, 10)
        got = await _speak_and_record(out, src48, inbound)
        await out.hangup()
        await out.wait_ended(5)
        return got
    finally:
        await demo.close()
        await alice.close()


async def calls(ref16: np.ndarray, src48: np.ndarray, bitrates: list[int]) -> dict[str, Any]:
    from softphone.switch import Switch, default_accounts

    out: dict[str, Any] = {}
    async with Switch(accounts=default_accounts(), port=0) as sw:
        for path, run in (("echo", through_echo), ("softphone_to_softphone", softphone_to_softphone)):
            for br in bitrates:
                got = await run(sw.url, "opus", br, src48)
                out[f"{path}_opus_{br // 1000}k"] = {"wb": score(ref16, got, wide=True),
                                                      "nb": score(ref16, got, wide=False)}
            got = await run(sw.url, "PCMU", None, src48)
            out[f"{path}_pcmu"] = {"nb": score(ref16, got, wide=False)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bitrate", type=int, action="append", help="Opus bit/s for the calls (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"),
                        help='results file; this run goes under its "pesq" key')
    parser.add_argument("--label", default="", help="a note stored with the run (e.g. before/after)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bitrates = args.bitrate or [32000, 40000]
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "label": args.label,
                           "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
                           "sentences": list(SENTENCES), "targets": TARGETS}
    ref16, src48 = material()
    res["material_s"] = round(ref16.shape[0] / 16000, 2)
    res["codec"] = codec_ceiling(ref16, src48, bitrates)
    res["calls"] = asyncio.run(calls(ref16, src48, bitrates))
    first = f"{bitrates[0] // 1000}k"
    res["summary"] = {
        "echo_opus_wb": res["calls"][f"echo_opus_{first}"]["wb"]["pesq"],
        "echo_pcmu_nb": res["calls"]["echo_pcmu"]["nb"]["pesq"],
        "codec_opus_one_pass_wb": res["codec"][f"opus_{first}"]["one_pass_wb"],
        "codec_pcmu_one_pass_nb": res["codec"]["pcmu"]["one_pass_nb"],
    }
    res["machine"]["loadavg_end"] = os.getloadavg()
    print(f"{'path':34s}{'PESQ-WB':>9s}{'PESQ-NB':>9s}{'lag ms':>8s}")
    for name, r in res["calls"].items():
        wb, nb = r.get("wb", {}), r["nb"]
        print(f"{name:34s}{wb.get('pesq', float('nan')):9.3f}{nb['pesq']:9.3f}{nb['lag_ms']:8.1f}")
    for name, r in res["codec"].items():
        print(f"codec {name:28s} " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    load = res["machine"]
    print(f"load average {load['loadavg_start'][0]:.2f} -> {load['loadavg_end'][0]:.2f}; targets {TARGETS}")
    write_results(Path(args.out), "pesq", res)
    print(f"written to {args.out} (key pesq)")


if __name__ == "__main__":
    main()
