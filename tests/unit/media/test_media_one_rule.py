"""media/: one device-matching rule (hub.find_device is devices.match_device on PortAudio's list), one
set of tone generators (media/tones.py), and the dead helpers gone."""

from __future__ import annotations

from typing import Any

import pytest

from softphone.errors import DeviceNotFound
from softphone.media import devices, dsp, hub, sdp, sources, tones


class FakePyAudio:
    """What hub.find_device asks PortAudio: the default devices, host APIs, device infos."""

    def __init__(self, infos: list[dict[str, Any]], default_in: int, default_out: int) -> None:
        self.infos, self.default_in, self.default_out = infos, default_in, default_out

    def get_default_input_device_info(self) -> dict[str, Any]:
        return self.get_device_info_by_index(self.default_in)

    def get_default_output_device_info(self) -> dict[str, Any]:
        return self.get_device_info_by_index(self.default_out)

    def get_host_api_count(self) -> int:
        return 1

    def get_host_api_info_by_index(self, i: int) -> dict[str, Any]:
        return {"name": "ALSA"}

    def get_device_count(self) -> int:
        return len(self.infos)

    def get_device_info_by_index(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.infos):
            raise OSError(-9996, "Invalid device")  # what PyAudio raises
        return self.infos[i]


def _info(index: int, name: str, ins: int, outs: int) -> dict[str, Any]:
    return {"index": index, "name": name, "hostApi": 0, "maxInputChannels": ins, "maxOutputChannels": outs,
            "defaultSampleRate": 48000.0}


@pytest.fixture
def fake_pa(monkeypatch: pytest.MonkeyPatch) -> FakePyAudio:
    pa = FakePyAudio([_info(0, "HDMI 0", 0, 8), _info(1, "USB Headset", 1, 2), _info(2, "pulse", 32, 32)],
                     default_in=2, default_out=2)
    monkeypatch.setattr(hub, "_pyaudio", lambda: pa)
    return pa


def test_hub_find_device_uses_the_one_rule(fake_pa: FakePyAudio) -> None:
    assert hub.find_device(None, output=False).name == "pulse"  # the system default
    assert hub.find_device("headset", output=False).index == 1
    assert hub.find_device("1", output=True).name == "USB Headset"
    assert isinstance(hub.find_device("hdmi", output=True), devices.AudioDevice)
    have = r"\(have: 1: USB Headset, 2: pulse\)"
    with pytest.raises(DeviceNotFound, match=r"no audio input device matches 'hdmi' " + have):
        hub.find_device("hdmi", output=False)  # HDMI cannot record
    with pytest.raises(DeviceNotFound, match="no audio output device with index 7"):
        hub.find_device(7, output=True)


def test_hub_find_device_with_no_device(fake_pa: FakePyAudio) -> None:
    fake_pa.infos = []
    with pytest.raises(DeviceNotFound, match=r"^no audio input device exists \(PortAudio lists none\)$"):
        hub.find_device(None, output=False)
    assert hub.probe_pyaudio() == "no audio input device exists (PortAudio lists none)"


def test_one_matching_rule_one_find_device() -> None:
    assert not hasattr(devices, "find_device")
    assert not hasattr(hub, "list_devices") and not hasattr(hub, "DeviceInfo")


def test_tones_live_in_one_place() -> None:
    for name in ("ringback_tone", "ringtone", "hold_tone", "busy_tone"):
        assert not hasattr(dsp, name), name
    assert not hasattr(hub, "ringback_tone") and not hasattr(hub, "ringtone_tone")
    back, ring = tones.ringback_tone(), tones.ringtone()
    assert back.freqs == (440.0, 480.0) and ring.freqs == (480.0, 620.0)
    # cadence in 20 ms frames: ringback 2 s on / 4 s off, ringtone 1 s on / 3 s off (PROTOCOL.md §6.7)
    assert _cadence(back, 300) == [True] * 100 + [False] * 200
    assert _cadence(ring, 200) == [True] * 50 + [False] * 150


def _cadence(src: sources.ToneSource, frames: int) -> list[bool]:
    out = []
    for _ in range(frames):
        frame = src.read_frame()
        assert frame is not None
        out.append(bool(frame.any()))
    return out


def test_dead_helpers_are_gone() -> None:
    assert not hasattr(sources.ArraySource, "rewind")
    assert not hasattr(sources.PushSource, "push_many")
    assert not hasattr(sdp, "candidate_addresses")
