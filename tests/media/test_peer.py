"""Two MediaPeers in one process on 127.0.0.1: real tones checked by frequency."""

from __future__ import annotations

import asyncio

import pytest

from softphone.errors import MediaError
from softphone.media import sdp as sdputil
from softphone.media.dsp import DtmfDetector, dominant_frequency, dtmf_source, level_dbfs
from softphone.media.peer import MediaPeer, PeerOptions, PeerState
from softphone.media.sinks import TeeSink
from softphone.media.sources import ToneSource

from .conftest import Connect


def candidate_addresses(sdp: str) -> list[str]:
    """Every ``a=candidate`` address of ``sdp``."""
    return [c[1] for c in map(sdputil.candidate_address, sdp.splitlines()) if c is not None]


TOL_HZ = 15.0


def assert_freq(samples: object, expected: float) -> None:
    freq = dominant_frequency(samples)  # type: ignore[arg-type]
    assert abs(freq - expected) <= TOL_HZ, f"got {freq:.1f} Hz, expected {expected} Hz"


@pytest.mark.parametrize(("codec", "name"), [("opus", "opus/48000"), ("PCMU", "PCMU/8000")])
async def test_two_way_tones_switch_and_mute(connect: Connect, codec: str, name: str) -> None:
    states: list[PeerState] = []
    pair = await connect([codec], ToneSource(440), ToneSource(1000))
    pair.a.on_state_change = states.append
    assert pair.a.negotiated_codec == name
    assert pair.b.negotiated_codec == name
    await asyncio.sleep(1.5)
    # a hears b's 1000 Hz, b hears a's 440 Hz.
    assert_freq(pair.a_sink.samples(1.0), 1000)
    assert_freq(pair.b_sink.samples(1.0), 440)
    assert pair.a.output_level_db > -30
    assert pair.a.input_level_db > -30

    # Switching the source mid-call, no renegotiation.
    pair.a.set_source(ToneSource(660))
    await asyncio.sleep(0.7)
    assert_freq(pair.b_sink.samples(0.4), 660)

    # Mute sends silence.
    pair.a.mute()
    assert pair.a.muted
    await asyncio.sleep(0.5)
    assert level_dbfs(pair.b_sink.samples(0.3)) < -50
    pair.a.unmute()
    await asyncio.sleep(0.5)
    assert_freq(pair.b_sink.samples(0.3), 660)

    stats = await pair.a.stats()
    assert stats.codec == name
    assert stats.packets_received > 50 and stats.packets_sent > 50
    assert stats.packet_loss_pct == 0.0
    assert stats.mos is not None and stats.mos > 4.0
    await asyncio.sleep(0.2)
    again = await pair.a.stats()
    assert again.bitrate_out_kbps is not None and again.bitrate_out_kbps > 5

    await pair.a.close()
    assert pair.a.state == PeerState.CLOSED
    assert states[-1] == PeerState.CLOSED
    await pair.a.close()  # idempotent
    with pytest.raises(MediaError):
        await pair.a.create_offer()


async def test_loopback_sdp_has_only_127_0_0_1(connect: Connect) -> None:
    pair = await connect(["opus"])
    for sdp in (pair.offer, pair.answer):
        addresses = candidate_addresses(sdp)
        assert addresses and set(addresses) == {"127.0.0.1"}
        assert "stun" not in sdp.lower()
    assert pair.a.connected_at is not None


async def test_freeswitch_style_rtp_savpf_offer(connect: Connect) -> None:
    def to_savpf(offer: str) -> str:
        assert sdputil.audio_profile(offer) == "UDP/TLS/RTP/SAVPF"
        return sdputil.set_audio_profile(offer, "RTP/SAVPF")

    pair = await connect(["PCMU", "opus"], ToneSource(500), ToneSource(800), mangle_offer=to_savpf)
    assert sdputil.audio_profile(pair.answer) == "RTP/SAVPF"
    assert pair.b.state == PeerState.CONNECTED
    await asyncio.sleep(1.0)
    assert_freq(pair.b_sink.samples(0.5), 500)
    assert_freq(pair.a_sink.samples(0.5), 800)


async def test_dtmf_through_opus_round_trip(connect: Connect) -> None:
    pair = await connect(["opus"], jitter_prefetch=2)
    detector = DtmfDetector()
    pair.b.set_sink(TeeSink([pair.b_sink, detector]))
    source = dtmf_source("0123456789*#ABCD", tone_ms=70, gap_ms=60)
    pair.a.set_source(source)
    while not source.finished:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.4)
    assert "".join(detector.digits) == "0123456789*#ABCD"


async def test_remote_non_loopback_candidates_are_dropped() -> None:
    a = MediaPeer(PeerOptions.loopback())
    b = MediaPeer(PeerOptions.loopback())
    try:
        offer = await a.create_offer()
        extra = (
            "a=candidate:1 1 udp 2130706431 192.0.2.10 40000 typ host\r\n"
            "a=candidate:2 1 udp 2130706431 abcd-1234.local 40001 typ host\r\n"
            "a=candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
        )
        offer = offer.replace("a=end-of-candidates", extra + "a=end-of-candidates")
        filtered = b._filter_remote(offer)
        assert "192.0.2.10" not in filtered and ".local" not in filtered and " tcp " not in filtered
        answer = await b.accept_offer(offer)
        await a.set_answer(answer)
        await a.set_answer(answer)  # a repeat (early media then answer) is ignored
        await asyncio.gather(a.wait_connected(5), b.wait_connected(5))
    finally:
        await a.close()
        await b.close()


def test_unknown_codec_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="unsupported codec"):
        MediaPeer(PeerOptions.loopback(codecs=["speex"]))


async def test_default_options_never_use_a_stun_server() -> None:
    peer = MediaPeer(PeerOptions(loopback_only=True))
    try:
        conn = peer._pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
        assert conn.stun_server is None and conn.turn_server is None
    finally:
        await peer.close()
