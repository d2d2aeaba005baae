"""Sources, sinks and frame conversion, without any network."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from softphone.errors import MediaError
from softphone.media import sdp as sdputil
from softphone.media.dsp import dominant_frequency
from softphone.media.frames import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    TIME_BASE,
    FrameAssembler,
    Normalizer,
    StreamResampler,
    as_frame,
    to_av_frame,
)
from softphone.media.sinks import BufferSink, CallbackSink, NullSink, TeeSink, WavRecorder
from softphone.media.sources import (
    ArraySource,
    AudioSource,
    FileSource,
    MixSource,
    NullSource,
    PushSource,
    ToneSource,
)


def candidate_addresses(sdp: str) -> list[str]:
    """Every ``a=candidate`` address of ``sdp``."""
    return [c[1] for c in map(sdputil.candidate_address, sdp.splitlines()) if c is not None]


def write_wav(path: Path, freq: float, rate: int, channels: int, seconds: float = 0.5) -> None:
    t = np.arange(int(rate * seconds)) / rate
    mono = (np.sin(2 * np.pi * freq * t) * 10000).astype("<i2")
    data = np.repeat(mono, channels) if channels > 1 else mono
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(data.tobytes())


def test_av_frame_has_timing() -> None:
    frame = to_av_frame(np.zeros(FRAME_SAMPLES, np.int16), pts=1920)
    assert frame.sample_rate == SAMPLE_RATE and frame.pts == 1920 and frame.time_base == TIME_BASE
    assert frame.samples == FRAME_SAMPLES and frame.layout.name == "mono" and frame.format.name == "s16"


def test_normalizer_resamples_8k_and_downmixes_stereo() -> None:
    norm = Normalizer()
    out = []
    t = np.arange(160)
    for i in range(50):  # one second of 8 kHz PCMU-decoder-like frames at 1 kHz
        data = (np.sin(2 * np.pi * 1000 * (t + 160 * i) / 8000) * 8000).astype(np.int16)
        f = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        f.sample_rate, f.pts = 8000, 160 * i
        out += norm.convert(f)
    assert all(x.shape == (FRAME_SAMPLES,) for x in out) and len(out) >= 48
    assert abs(dominant_frequency(np.concatenate(out)) - 1000) < 2
    stereo = np.repeat(np.full(960, 1000, np.int16), 2).reshape(1, -1)
    f = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    f.sample_rate = 48000
    (frame,) = Normalizer().convert(f)
    assert np.all(frame == 1000)


def test_assembler_and_stream_resampler() -> None:
    asm = FrameAssembler()
    assert asm.push(np.zeros(500, np.int16)) == []
    assert len(asm.push(np.zeros(1500, np.int16))) == 2
    rs = StreamResampler(44100, 48000)
    total = sum(rs.process(np.zeros(882, np.int16)).shape[0] for _ in range(50))
    assert abs(total - 48000) < 200
    assert as_frame(np.ones(10, np.float32)).shape == (FRAME_SAMPLES,)


def test_sources_satisfy_protocol() -> None:
    for src in (NullSource(), ToneSource(440), PushSource(), MixSource(), ArraySource(np.zeros(10, np.int16))):
        assert isinstance(src, AudioSource)
    assert NullSource().read_frame() is None


@pytest.mark.parametrize(("rate", "channels"), [(48000, 1), (8000, 1), (44100, 2)])
def test_file_source_wav(tmp_path: Path, rate: int, channels: int) -> None:
    path = tmp_path / "t.wav"
    write_wav(path, 600, rate, channels)
    src = FileSource(path)
    frames = []
    while (f := src.read_frame()) is not None:
        frames.append(f)
    assert src.finished and abs(len(frames) - 25) <= 1
    assert abs(dominant_frequency(np.concatenate(frames)) - 600) < 3
    looping = FileSource(path, loop=True)
    assert all(looping.read_frame() is not None for _ in range(100))


def test_file_source_ffmpeg(tmp_path: Path) -> None:
    assert shutil.which("ffmpeg"), "ffmpeg is not installed (`make test` installs it)"
    wav, flac = tmp_path / "t.wav", tmp_path / "t.flac"
    write_wav(wav, 800, 16000, 1)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(flac)], check=True)
    src = FileSource(flac)
    assert abs(src.duration_s - 0.5) < 0.05
    assert abs(dominant_frequency(np.concatenate([src.read_frame() for _ in range(20)])) - 800) < 3  # type: ignore[misc]


def test_file_source_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        FileSource(tmp_path / "missing.wav")
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(MediaError):
        FileSource(bad)


def test_push_source_drops_oldest_and_prebuffers() -> None:
    src = PushSource(max_frames=3)
    for i in range(5):
        src.push(np.full(FRAME_SAMPLES, i, np.int16))
    assert src.dropped == 2 and len(src) == 3
    assert [int(src.read_frame()[0]) for _ in range(3)] == [2, 3, 4]  # type: ignore[index]
    assert src.read_frame() is None
    pre = PushSource(prebuffer=2)
    pre.write_frame(np.ones(FRAME_SAMPLES, np.int16))
    assert pre.read_frame() is None
    pre.push(np.ones(FRAME_SAMPLES, np.int16))
    assert pre.read_frame() is not None


def test_mix_source_sums_with_clipping_and_drops_finished() -> None:
    loud = PushSource()
    loud.push(np.full(FRAME_SAMPLES, 30000, np.int16))
    loud.push(np.full(FRAME_SAMPLES, -30000, np.int16))
    other = PushSource()
    other.push(np.full(FRAME_SAMPLES, 10000, np.int16))
    other.push(np.full(FRAME_SAMPLES, -10000, np.int16))
    once = ArraySource(np.full(FRAME_SAMPLES, 5, np.int16))
    mix = MixSource([loud, other, once])
    assert int(mix.read_frame()[0]) == 32767  # type: ignore[index]
    assert int(mix.read_frame()[0]) == -32768  # type: ignore[index]
    assert once not in mix.sources
    assert mix.read_frame() is None


def test_buffer_tee_callback_null_sinks() -> None:
    buf, got = BufferSink(seconds=0.1), []
    tee = TeeSink([buf, CallbackSink(got.append), NullSink()])
    for i in range(10):
        tee.write_frame(np.full(FRAME_SAMPLES, i, np.int16))
    assert buf.frames_written == 10 and len(got) == 10
    assert buf.samples().shape[0] == 5 * FRAME_SAMPLES  # 100 ms kept
    assert int(buf.samples()[0]) == 5 and abs(buf.duration_s - 0.1) < 1e-9


async def test_wav_recorder_mono_and_stereo(tmp_path: Path) -> None:
    mono = WavRecorder(tmp_path / "mono.wav")
    src = ToneSource(440)
    for _ in range(25):
        mono.write_frame(src.read_frame())  # type: ignore[arg-type]
    await mono.stop()
    with wave.open(str(tmp_path / "mono.wav")) as wf:
        assert (wf.getnchannels(), wf.getframerate(), wf.getsampwidth(), wf.getnframes()) == (1, 48000, 2, 24000)
    stereo = WavRecorder(tmp_path / "st.wav", mode="stereo")
    far, near = ToneSource(440), ToneSource(1000)
    for _ in range(25):
        stereo.local_sink.write_frame(near.read_frame())  # type: ignore[arg-type]
        stereo.write_frame(far.read_frame())  # type: ignore[arg-type]
    stereo.close()
    with wave.open(str(tmp_path / "st.wav")) as wf:
        # 25 local frames, the first with no far frame yet; the last far frame is written on close
        assert wf.getnchannels() == 2 and wf.getnframes() == 26 * 960
        data = np.frombuffer(wf.readframes(26 * 960), "<i2").reshape(-1, 2)
    assert abs(dominant_frequency(data[:24000, 0]) - 1000) < 2  # local: left
    assert abs(dominant_frequency(data[960:, 1]) - 440) < 2  # far end: right
    with pytest.raises(MediaError):
        WavRecorder(tmp_path / "no" / "dir.wav")
    with pytest.raises(MediaError):
        WavRecorder(tmp_path / "x.wav", mode="both")


def test_wav_recorder_mixed_is_the_sum_on_one_clock(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "mix.wav", mode="mixed")
    rec.write_frame(np.full(FRAME_SAMPLES, 7, np.int16))  # before the local clock starts: written alone
    rec.write_local(np.full(FRAME_SAMPLES, 1, np.int16))  # no far frame waiting: local alone
    for i in range(3):
        rec.write_frame(np.full(FRAME_SAMPLES, 100 * (i + 1), np.int16))  # queued for the local clock
    for _ in range(2):
        rec.write_local(np.full(FRAME_SAMPLES, 1, np.int16))
    rec.write_frame(np.full(FRAME_SAMPLES, 30000, np.int16))
    rec.write_local(np.full(FRAME_SAMPLES, 32600, np.int16))  # next to the 300s: clipped
    rec.close()
    rec.close()  # idempotent
    with wave.open(str(tmp_path / "mix.wav")) as wf:
        assert wf.getnchannels() == 1
        data = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").reshape(-1, FRAME_SAMPLES)
    assert [int(f[0]) for f in data] == [7, 1, 101, 201, 32767, 30000]


def test_wav_recorder_header_is_valid_before_close(tmp_path: Path) -> None:
    """A process that dies mid-call still leaves a WAV whose header matches its data."""
    rec = WavRecorder(tmp_path / "live.wav", mode="stereo")
    for _ in range(10):
        rec.write_local(np.zeros(FRAME_SAMPLES, np.int16))
    rec._file.flush()  # type: ignore[union-attr]  # what the OS has if the process dies now
    with wave.open(str(tmp_path / "live.wav")) as wf:
        assert wf.getnframes() == 10 * FRAME_SAMPLES
    assert (tmp_path / "live.wav").stat().st_size == 44 + 10 * FRAME_SAMPLES * 4
    rec.close()


def test_sdp_helpers() -> None:
    sdp = (
        "v=0\r\nm=audio 9 RTP/SAVPF 0 8 102\r\na=rtpmap:102 opus/48000/2\r\n"
        "a=candidate:1 1 udp 1 185.246.41.185 17924 typ host\r\n"
        "a=candidate:2 1 udp 1 127.0.0.1 17925 typ host\r\n"
    )
    assert sdputil.audio_profile(sdp) == "RTP/SAVPF"
    assert sdputil.first_audio_codec(sdp) == ("PCMU", 8000)
    filtered = sdputil.filter_candidates(sdp, loopback_only=True)
    assert candidate_addresses(filtered) == ["127.0.0.1"]
    assert sdputil.filter_candidates(sdp, loopback_only=False) == sdp
    assert "UDP/TLS/RTP/SAVPF 0 8 102" in sdputil.set_audio_profile(sdp, "UDP/TLS/RTP/SAVPF")
