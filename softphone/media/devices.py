"""PortAudio device discovery through PyAudio.

``PyAudio()`` probes every host API and, on machines with ALSA and JACK
libraries but no sound server, prints dozens of lines to stderr. Everything
here runs that probe with file descriptor 2 pointed at ``/dev/null``
(:func:`quiet_stderr`), and turns "no device" into plain messages.

These calls block (PortAudio initialisation can take a few hundred ms): from
the event loop, call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from softphone.errors import DeviceNotFound, MediaError

_stderr_lock = threading.Lock()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (fd 2) for the duration; Python's ``sys.stderr`` is flushed first.

    Process-wide while active (a thread writing to stderr meanwhile is silenced
    too), so keep the block short: PortAudio initialisation and stream opening.
    """
    with _stderr_lock:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """One PortAudio device as PyAudio reports it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float
    is_default_input: bool = False
    is_default_output: bool = False

    @property
    def is_input(self) -> bool:
        """True if the device can record."""
        return self.max_input_channels > 0

    @property
    def is_output(self) -> bool:
        """True if the device can play."""
        return self.max_output_channels > 0


def open_pyaudio() -> Any:
    """Create a ``pyaudio.PyAudio`` instance quietly; :class:`MediaError` if PortAudio is unusable."""
    try:
        import pyaudio
    except ImportError as exc:  # pragma: no cover - a dependency
        raise MediaError(f"PyAudio is not available: {exc}") from exc
    try:
        with quiet_stderr():
            return pyaudio.PyAudio()
    except Exception as exc:
        raise MediaError(f"cannot initialise PortAudio: {exc}") from exc


def devices_of(pa: Any) -> list[AudioDevice]:
    """Enumerate devices of an open ``pyaudio.PyAudio`` instance (call under :func:`quiet_stderr`)."""
    try:
        default_in = int(pa.get_default_input_device_info()["index"])
    except (OSError, KeyError, ValueError):
        default_in = -1
    try:
        default_out = int(pa.get_default_output_device_info()["index"])
    except (OSError, KeyError, ValueError):
        default_out = -1
    apis: dict[int, str] = {}
    try:
        for i in range(pa.get_host_api_count()):
            apis[i] = str(pa.get_host_api_info_by_index(i).get("name", i))
    except OSError:
        pass
    out = []
    for i in range(pa.get_device_count()):
        try:
            info = pa.get_device_info_by_index(i)
        except OSError:
            continue
        out.append(
            AudioDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                host_api=apis.get(int(info.get("hostApi", -1)), str(info.get("hostApi", "?"))),
                max_input_channels=int(info.get("maxInputChannels", 0)),
                max_output_channels=int(info.get("maxOutputChannels", 0)),
                default_sample_rate=float(info.get("defaultSampleRate", 0.0)),
                is_default_input=int(info["index"]) == default_in,
                is_default_output=int(info["index"]) == default_out,
            )
        )
    return out


def list_devices() -> list[AudioDevice]:
    """All PortAudio devices, or ``[]`` when there are none.

    Raises :class:`MediaError` only if PortAudio itself cannot start.
    """
    pa = open_pyaudio()
    try:
        with quiet_stderr():
            return devices_of(pa)
    finally:
        with quiet_stderr():
            pa.terminate()


def match_device(spec: int | str | None, devices: list[AudioDevice], *, output: bool) -> AudioDevice:
    """The one device-matching rule: ``spec`` against ``devices`` (pure; no PortAudio call).

    ``None`` or ``""``: the system default (else the first usable device), and so is
    ``"default"`` unless a device has that name (PulseAudio's ALSA plugin does);
    an int or a numeric string: that PortAudio index; any other string: the device with
    exactly that name (case-insensitive), else the first whose name contains it. Only
    devices that can record (``output=False``) or play (``output=True``) are considered.
    Raises :class:`DeviceNotFound` naming what there is. Callers that need PortAudio's
    current list use :func:`softphone.media.hub.find_device`.
    """
    kind = "output" if output else "input"
    usable = [d for d in devices if (d.is_output if output else d.is_input)]
    if not usable:
        raise DeviceNotFound(f"no audio {kind} device exists (PortAudio lists none)")
    named_default = isinstance(spec, str) and spec.strip().lower() == "default"
    if spec is None or (isinstance(spec, str) and not spec.strip()) or (
            named_default and not any(d.name.lower() == "default" for d in usable)):
        for d in usable:
            if d.is_default_output if output else d.is_default_input:
                return d
        return usable[0]
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        for d in usable:
            if d.index == index:
                return d
        raise DeviceNotFound(f"no audio {kind} device with index {index} ({_names(usable)})")
    needle = spec.lower()
    exact = [d for d in usable if d.name.lower() == needle]
    partial = [d for d in usable if needle in d.name.lower()]
    if exact or partial:
        return (exact or partial)[0]
    raise DeviceNotFound(f"no audio {kind} device matches {spec!r} ({_names(usable)})")


def _names(devices: list[AudioDevice]) -> str:
    shown = ", ".join(f"{d.index}: {d.name}" for d in devices[:8])
    more = f", +{len(devices) - 8} more" if len(devices) > 8 else ""
    return f"have: {shown}{more}"
