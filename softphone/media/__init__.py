"""The media engine: aiortc peers, audio sources and sinks, devices, DSP and stats.

Importing ``softphone.media`` is cheap: names are loaded on first use (aiortc,
av, numpy and pyaudio are imported only by the submodules that need them).
The engine knows nothing of Verto: SDP crosses as a string.

Audio format everywhere: 48 kHz, mono, int16, 20 ms frames = ``numpy.int16``
arrays of shape ``(960,)`` (``frames.SAMPLE_RATE``, ``frames.FRAME_SAMPLES``).

API summary
-----------
Peers (``peer``)::

    PeerOptions(ice_servers=[], loopback_only=False, host_address="127.0.0.1",
                codecs=["opus", "PCMU", "PCMA"], gather_timeout=1.0, relay_only=False,
                jitter_prefetch=None)
    PeerOptions.loopback(**kw)                    # 127.0.0.1 only, no ICE servers
    PeerState: NEW, CONNECTING, CONNECTED, FAILED, CLOSED
    MediaPeer(options=None, *, source=None, sink=None, on_state_change=None, name="peer")
        await create_offer() -> str               # full SDP, candidates included
        await accept_offer(sdp) -> str            # answer SDP (echoes RTP/SAVPF if offered)
        await set_answer(sdp)                     # remote answer; repeats ignored (early media)
        await wait_connected(timeout=None)        # MediaError on failure/timeout
        set_source(src) / source; set_sink(sink) / sink; set_send_tap(sink | None)
        mute() / unmute() / muted
        state, negotiated_codec ("opus/48000"), input_level_db, output_level_db,
        connected_at, first_audio_at, local_sdp
        await stats() -> MediaStats;  await close()

Sources (``sources``; ``AudioSource`` protocol: ``read_frame() -> Frame | None``
non-blocking, ``async start()``, ``async stop()``)::

    NullSource(), ToneSource(freq | freqs, amplitude=0.3, *, on_ms, off_ms, duration_ms),
    ArraySource(samples, *, loop=False), FileSource(path, *, loop=False),
    PushSource(max_frames=10, *, prebuffer=0)  .push(frame) / .write_frame(frame)
    MixSource(sources=(), *, auto_remove=True) .add(src) / .remove(src)

Sinks (``sinks``; ``AudioSink`` protocol: ``write_frame(frame)`` non-blocking,
``async start()``, ``async stop()``)::

    NullSink(), BufferSink(seconds=10).samples(last_seconds=None), CallbackSink(fn),
    TeeSink(sinks=()).add/.remove,
    WavRecorder(path, *, mode="remote" | "stereo" | "mixed").local_sink / .write_local(frame)
    (PushSource is also a sink: bridge leg A into leg B with a.set_sink(b_push)).

Devices (``devices``; the PortAudio streams calls use live in :mod:`softphone.media.hub`)::

    list_devices() -> list[AudioDevice]
    match_device(spec, devices, *, output) -> AudioDevice   # the one matching rule, pure
    find_device(spec, *, output) -> AudioDevice             # (hub) that rule on PortAudio's list now

DSP (``dsp``)::

    level_dbfs(samples), dominant_frequency(samples), split_frames(samples)
    DtmfDetector(on_digit=None).feed(frame) -> list[str]  (also a sink), detect_dtmf(samples)
    dtmf_samples(digits), dtmf_source(digits)

Tones (``tones``; every call-progress tone is made there)::

    ringback_tone(), ringtone(), hold_tone(), busy_tone()

Stats (``stats``)::

    MediaStats (frozen): codec, rtt_ms, jitter_ms, packet_loss_pct, packets_sent/received/lost,
        bytes_sent/received, bitrate_in_kbps, bitrate_out_kbps, input_level_db, output_level_db, mos
    mos(rtt_ms, jitter_ms=0, loss_pct=0) -> float; r_factor(...); quality_label(mos)

Errors are ``softphone.errors.MediaError`` (``DeviceNotFound``, ``DeviceBusy``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PeerOptions": "peer",
    "PeerState": "peer",
    "MediaPeer": "peer",
    "AudioSource": "sources",
    "NullSource": "sources",
    "ToneSource": "sources",
    "ArraySource": "sources",
    "FileSource": "sources",
    "PushSource": "sources",
    "MixSource": "sources",
    "AudioSink": "sinks",
    "NullSink": "sinks",
    "BufferSink": "sinks",
    "CallbackSink": "sinks",
    "TeeSink": "sinks",
    "WavRecorder": "sinks",
    "AudioDevice": "devices",
    "list_devices": "devices",
    "match_device": "devices",
    "find_device": "hub",
    "DtmfDetector": "dsp",
    "detect_dtmf": "dsp",
    "dominant_frequency": "dsp",
    "dtmf_samples": "dsp",
    "dtmf_source": "dsp",
    "level_dbfs": "dsp",
    "ringback_tone": "tones",
    "ringtone": "tones",
    "hold_tone": "tones",
    "busy_tone": "tones",
    "MediaStats": "stats",
    "mos": "stats",
    "quality_label": "stats",
    "SAMPLE_RATE": "frames",
    "FRAME_SAMPLES": "frames",
    "Frame": "frames",
}

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "ArraySource",
    "AudioDevice",
    "AudioSink",
    "AudioSource",
    "BufferSink",
    "CallbackSink",
    "DtmfDetector",
    "FileSource",
    "Frame",
    "MediaPeer",
    "MediaStats",
    "MixSource",
    "NullSink",
    "NullSource",
    "PeerOptions",
    "PeerState",
    "PushSource",
    "TeeSink",
    "ToneSource",
    "WavRecorder",
    "busy_tone",
    "detect_dtmf",
    "dominant_frequency",
    "dtmf_samples",
    "dtmf_source",
    "find_device",
    "hold_tone",
    "level_dbfs",
    "list_devices",
    "match_device",
    "mos",
    "quality_label",
    "ringback_tone",
    "ringtone",
]

if TYPE_CHECKING:
    from softphone.media.devices import AudioDevice, list_devices, match_device
    from softphone.media.dsp import (
        DtmfDetector,
        detect_dtmf,
        dominant_frequency,
        dtmf_samples,
        dtmf_source,
        level_dbfs,
    )
    from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame
    from softphone.media.hub import find_device
    from softphone.media.peer import MediaPeer, PeerOptions, PeerState
    from softphone.media.sinks import (
        AudioSink,
        BufferSink,
        CallbackSink,
        NullSink,
        TeeSink,
        WavRecorder,
    )
    from softphone.media.sources import (
        ArraySource,
        AudioSource,
        FileSource,
        MixSource,
        NullSource,
        PushSource,
        ToneSource,
    )
    from softphone.media.stats import MediaStats, mos, quality_label
    from softphone.media.tones import busy_tone, hold_tone, ringback_tone, ringtone


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'softphone.media' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"softphone.media.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
