"""PortAudio device discovery (works with or without any audio device) and the one matching rule."""

from __future__ import annotations

import os

import pytest

from softphone.errors import DeviceNotFound, MediaError
from softphone.media.devices import AudioDevice, list_devices, match_device, quiet_stderr

DEVS = [
    AudioDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 2, 44100.0),
    AudioDevice(1, "USB Headset: Audio (hw:1,0)", "ALSA", 1, 2, 48000.0),
    AudioDevice(2, "HDMI 0", "ALSA", 0, 8, 48000.0),
    AudioDevice(3, "default", "ALSA", 32, 32, 44100.0, is_default_input=True, is_default_output=True),
]


def test_list_devices_returns_list_or_clear_error(capfd: pytest.CaptureFixture[str]) -> None:
    try:
        devices = list_devices()
    except MediaError as exc:
        assert "PortAudio" in str(exc)
        return
    assert isinstance(devices, list)
    assert all(isinstance(d, AudioDevice) for d in devices)
    # ALSA/JACK probing noise must not reach the terminal.
    assert "ALSA lib" not in capfd.readouterr().err
    if not devices:
        with pytest.raises(DeviceNotFound, match=r"^no audio input device exists \(PortAudio lists none\)$"):
            match_device(None, devices, output=False)


def test_match_device_by_index_name_and_default() -> None:
    assert match_device(1, DEVS, output=False).index == 1
    assert match_device("1", DEVS, output=True).index == 1
    assert match_device(" 1 ", DEVS, output=True).index == 1
    assert match_device("headset", DEVS, output=False).name.startswith("USB Headset")
    assert match_device("HDMI", DEVS, output=True).index == 2
    assert match_device(None, DEVS, output=True).name == "default"
    assert match_device("", DEVS, output=True).name == "default"
    assert match_device("default", DEVS, output=False).index == 3
    # an exact name wins over an earlier partial match
    both = [AudioDevice(0, "Mic Array", "ALSA", 2, 0, 48000.0), AudioDevice(1, "mic", "ALSA", 1, 0, 48000.0)]
    assert match_device("MIC", both, output=False).index == 1
    # "default" is a name first (PulseAudio's ALSA device), the system default otherwise
    unnamed = [DEVS[0], AudioDevice(1, "USB", "ALSA", 1, 2, 48000.0, is_default_input=True)]
    assert match_device("default", unnamed, output=False).index == 1


def test_match_device_errors_are_clear() -> None:
    with pytest.raises(DeviceNotFound, match=r"^no audio input device exists \(PortAudio lists none\)$"):
        match_device(None, [], output=False)
    with pytest.raises(DeviceNotFound, match=r"no audio input device matches 'hdmi' \(have: 0: HDA"):
        match_device("hdmi", DEVS, output=False)  # HDMI cannot record
    with pytest.raises(DeviceNotFound, match="no audio output device with index 9 "):
        match_device(9, DEVS, output=True)
    with pytest.raises(DeviceNotFound, match=r"^no audio input device exists"):
        match_device(None, [DEVS[2]], output=False)


def test_quiet_stderr_silences_fd2(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_stderr():
        os.write(2, b"noise from C\n")
    os.write(2, b"visible\n")
    err = capfd.readouterr().err
    assert "noise from C" not in err and "visible" in err
