"""Call-progress tones, in one place: every ringback, ringtone, hold and busy tone is made here.

Each function returns a fresh :class:`~softphone.media.sources.ToneSource` (48 kHz mono int16
frames), so every call keeps its own cadence. Frequencies and cadences follow the North
American precise tone plan that PROTOCOL.md §6.7 uses for the local tones:

* ringback (the caller hears the far end ringing): 440 + 480 Hz, 2 s on / 4 s off;
* ringtone (an inbound call rings here): 480 + 620 Hz, 1 s on / 3 s off;
* hold reminder: a soft 480 Hz beep of 300 ms every 5 s;
* busy: 480 + 620 Hz, 0.5 s on / 0.5 s off.

In-band DTMF is generated next to its detector, in :mod:`softphone.media.dsp`.
"""

from __future__ import annotations

from softphone.media.sources import ToneSource

__all__ = ["busy_tone", "hold_tone", "ringback_tone", "ringtone"]


def ringback_tone(amplitude: float = 0.2) -> ToneSource:
    """Ringback: heard while an outbound call rings without early media (and sent as early media by the switch)."""
    return ToneSource((440.0, 480.0), amplitude, on_ms=2000, off_ms=4000)


def ringtone(amplitude: float = 0.2) -> ToneSource:
    """The ringtone played locally for an inbound call."""
    return ToneSource((480.0, 620.0), amplitude, on_ms=1000, off_ms=3000)


def hold_tone(amplitude: float = 0.15) -> ToneSource:
    """Held-call reminder: a soft 480 Hz beep of 300 ms every 5 s."""
    return ToneSource(480.0, amplitude, on_ms=300, off_ms=4700)


def busy_tone(amplitude: float = 0.25) -> ToneSource:
    """Busy: 480 + 620 Hz, 0.5 s on, 0.5 s off."""
    return ToneSource((480.0, 620.0), amplitude, on_ms=500, off_ms=500)
