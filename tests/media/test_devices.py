"""PortAudio device discovery (works with or without any audio device)."""

from __future__ import annotations

import os

import pytest

from softphone.errors import DeviceNotFound, MediaError
from softphone.media.devices import AudioDevice, find_device, list_devices, quiet_stderr

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
        with pytest.raises(DeviceNotFound, match=r"^no audio device$"):
            find_device(None, "input", devices)


def test_find_device_by_index_name_and_default() -> None:
    assert find_device(1, "input", DEVS).index == 1
    assert find_device("1", "output", DEVS).index == 1
    assert find_device("headset", "input", DEVS).name.startswith("USB Headset")
    assert find_device("HDMI", "output", DEVS).index == 2
    assert find_device(None, "output", DEVS).name == "default"
    assert find_device("default", "input", DEVS).index == 3


def test_find_device_errors_are_clear() -> None:
    with pytest.raises(DeviceNotFound, match=r"^no audio device$"):
        find_device(None, "input", [])
    with pytest.raises(DeviceNotFound, match="no audio input device matching 'hdmi'"):
        find_device("hdmi", "input", DEVS)  # HDMI cannot record
    with pytest.raises(DeviceNotFound, match="index 9"):
        find_device(9, "output", DEVS)
    with pytest.raises(DeviceNotFound, match=r"no audio input device$"):
        find_device(None, "input", [DEVS[2]])


def test_quiet_stderr_silences_fd2(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_stderr():
        os.write(2, b"noise from C\n")
    os.write(2, b"visible\n")
    err = capfd.readouterr().err
    assert "noise from C" not in err and "visible" in err
