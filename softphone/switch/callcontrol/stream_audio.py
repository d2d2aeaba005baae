"""Audio formats of media streaming: the payload codecs (G.711 mu-law/A-law, L16) and the playout
queue of what a stream server sends back (with Telnyx's ``mark`` and ``clear`` semantics).

Kept apart from :mod:`~softphone.switch.callcontrol.streaming` (the websocket and the actions)
because it is plain data in, data out: tested without sockets.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from softphone.media.frames import Frame

FRAME = 960  # 20 ms at 48 kHz

# --- G.711 and L16 -------------------------------------------------------------------------------

_ULAW_BIAS = 0x84


def _ulaw_table() -> NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    x = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -x, x).astype(np.int16)


def _alaw_table() -> NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    x = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, x, -x).astype(np.int16)


ULAW_DECODE = _ulaw_table()
ALAW_DECODE = _alaw_table()


# Segment ends of the 14-bit (mu-law) and 13-bit (A-law) magnitudes: ITU-T G.711 as in Sun's
# reference g711.c (and CPython's audioop), so the bytes match what other implementations send.
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def ulaw_encode(samples: NDArray[np.int16]) -> bytes:
    """G.711 mu-law (PCMU) bytes for int16 samples."""
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(_ULAW_SEG_END, mag)
    coded = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F)) ^ mask
    return coded.astype(np.uint8).tobytes()


def alaw_encode(samples: NDArray[np.int16]) -> bytes:
    """G.711 A-law (PCMA) bytes for int16 samples."""
    x = samples.astype(np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    mag = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)
    low = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0x0F
    coded = np.where(seg >= 8, 0x7F, (seg << 4) | low) ^ mask
    return coded.astype(np.uint8).tobytes()


@dataclass(frozen=True)
class Codec:
    """A stream payload format: name (as in ``media_format.encoding``) and sample rate."""

    name: str
    rate: int

    def encode(self, samples: NDArray[np.int16]) -> bytes:
        if self.name == "PCMU":
            return ulaw_encode(samples)
        if self.name == "PCMA":
            return alaw_encode(samples)
        return samples.astype(">i2").tobytes()  # L16: RTP's network byte order (RFC 3551 4.5.11)

    def decode(self, data: bytes) -> NDArray[np.int16]:
        raw = np.frombuffer(data, dtype=np.uint8)
        if self.name == "PCMU":
            return ULAW_DECODE[raw]
        if self.name == "PCMA":
            return ALAW_DECODE[raw]
        return np.frombuffer(data[: len(data) // 2 * 2], dtype=">i2").astype(np.int16)


def stream_codec(name: str) -> Codec:
    """The codec media frames are sent in for ``stream_codec`` (fallback PCMU, see the module doc)."""
    if name == "PCMA":
        return Codec("PCMA", 8000)
    if name == "L16":
        return Codec("L16", 16000)
    return Codec("PCMU", 8000)


# --- playing what the server sends back --------------------------------------------------------------


class Playout:
    """Audio queued by the stream server, played in order in 20 ms frames (an AudioSource).

    Items are sample arrays (48 kHz) and mark names; a mark is reported through ``on_mark`` when
    everything before it has been read out.
    """

    finished = False

    def __init__(self, on_mark: Any) -> None:
        self._items: collections.deque[NDArray[np.int16] | str] = collections.deque()
        self._on_mark = on_mark
        self.frames_played = 0

    def add_audio(self, samples: NDArray[np.int16]) -> None:
        if samples.shape[0]:
            self._items.append(samples)

    def add_mark(self, name: str) -> None:
        self._items.append(name)
        self._flush_marks()

    def clear(self) -> None:
        """Drop queued audio; queued marks are still reported (Telnyx returns them on clear)."""
        marks = [m for m in self._items if isinstance(m, str)]
        self._items.clear()
        for m in marks:
            self._on_mark(m)

    def _flush_marks(self) -> None:
        while self._items and isinstance(self._items[0], str):
            self._on_mark(self._items.popleft())

    def read_frame(self) -> Frame | None:
        self._flush_marks()
        if not self._items:
            return None
        out = np.zeros(FRAME, dtype=np.int16)
        filled = 0
        while filled < FRAME and self._items:
            head = self._items[0]
            if isinstance(head, str):
                break
            take = min(FRAME - filled, head.shape[0])
            out[filled : filled + take] = head[:take]
            filled += take
            if take == head.shape[0]:
                self._items.popleft()
            else:
                self._items[0] = head[take:]
        self.frames_played += 1
        return out

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
