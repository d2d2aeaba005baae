"""What the commands API may read and write on disk: recordings and media to play.

The outside-caller route (``POST /switch/pstn_calls``) needs no API key, so nothing a
request names may reach an arbitrary path:

* a **recording** is a plain file name (no directory part, no ``..``, not hidden behind
  a symlink), written under ``<data dir>/recordings/``;
* **media to play** (``audio_url``) is ``tone:HZ[:MS]``, ``silence``, a file under the
  configured media directory (a name relative to it, an absolute path inside it, or a
  ``file://`` URL inside it; symlinks may not lead out of it), or an ``http://`` URL on
  loopback (127.0.0.0/8, ``::1``, ``localhost``), fetched with urllib and decoded with
  PyAV. Anything else is refused with :class:`MediaRefused` (a 422 on the API).

Default data dir: ``<platformdirs user data dir>/softphone/switch``; media dir:
``<data dir>/media``. Both are ``[call_control]`` options (``data_dir``, ``media_dir``).
"""

from __future__ import annotations

import io
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from softphone.switch.hosts import is_loopback_host

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import AudioSource

MAX_FETCH_BYTES = 20 << 20
"""Largest http:// media the switch downloads."""
FETCH_TIMEOUT_S = 5.0
MAX_MEDIA_S = 600.0
"""Longest decoded media (10 minutes)."""


class MediaRefused(ValueError):
    """A recording name or media reference the switch will not use (message says why)."""


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("softphone", appauthor=False)) / "switch"


def recording_path(data_dir: Path, name: str) -> Path:
    """Where a recording called ``name`` goes (created empty, refusing symlinks); raises MediaRefused."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise MediaRefused("record_path must be a file name")
    if "/" in name or "\\" in name or "\x00" in name or os.path.isabs(name) or name.startswith("."):
        raise MediaRefused("record_path must be a plain file name (no directory, no leading '.'), "
                           "saved under the switch's recordings directory")
    if len(name) > 200:
        raise MediaRefused("record_path is too long")
    rec_dir = data_dir / "recordings"
    try:
        rec_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaRefused(f"cannot create the recordings directory: {exc.strerror}") from exc
    if rec_dir.is_symlink() or not rec_dir.is_dir():
        raise MediaRefused("the recordings directory is not a plain directory")
    path = rec_dir / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise MediaRefused(f"cannot record to {name!r}: {'a symlink' if path.is_symlink() else exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MediaRefused(f"cannot record to {name!r}: not a regular file")
    finally:
        os.close(fd)
    return path


def media_file(media_dir: Path, ref: str) -> Path:
    """The file under ``media_dir`` that ``ref`` (a name, path or file:// URL) names; raises MediaRefused."""
    raw = unquote(urlsplit(ref).path) if ref.startswith("file://") else ref
    if "\x00" in raw:
        raise MediaRefused("audio_url contains a NUL byte")
    try:
        base = media_dir.resolve(strict=True)
    except OSError as exc:
        raise MediaRefused("audio_url: no media directory is configured (call_control.media_dir)") from exc
    candidate = Path(raw) if os.path.isabs(raw) else base / raw
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise MediaRefused("audio_url: no such file in the media directory") from exc
    if not real.is_relative_to(base):
        raise MediaRefused("audio_url: files outside the media directory are refused")
    if not real.is_file():
        raise MediaRefused("audio_url: not a regular file in the media directory")
    return real


def fetch_http(url: str) -> bytes:
    """Download a loopback ``http://`` URL (bounded size and time); raises MediaRefused."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise MediaRefused("audio_url: only http:// URLs on loopback are fetched")
    if not is_loopback_host(parts.hostname):
        raise MediaRefused(f"audio_url: host {parts.hostname!r} is not loopback")
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=FETCH_TIMEOUT_S) as resp:
            data: bytes = resp.read(MAX_FETCH_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise MediaRefused(f"audio_url: the media server answered HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise MediaRefused(f"audio_url: cannot fetch it ({exc})") from exc
    if len(data) > MAX_FETCH_BYTES:
        raise MediaRefused(f"audio_url: media larger than {MAX_FETCH_BYTES >> 20} MB")
    return data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could leave loopback: refuse them."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        raise MediaRefused("audio_url: redirects are not followed")


def decode_audio(data: bytes) -> Frame:
    """Decode any container/codec PyAV knows into 48 kHz mono int16 samples; raises MediaRefused."""
    import av
    import numpy as np

    from softphone.media.frames import SAMPLE_RATE

    chunks: list[Frame] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise MediaRefused("audio_url: the media has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for resampled in resampler.resample(frame):
                    arr = np.asarray(resampled.to_ndarray(), dtype=np.int16).reshape(-1)
                    total += arr.shape[0]
                    if total > MAX_MEDIA_S * SAMPLE_RATE:
                        raise MediaRefused(f"audio_url: media longer than {MAX_MEDIA_S:.0f} s")
                    chunks.append(arr)
    except MediaRefused:
        raise
    except Exception as exc:  # PyAV raises many types (InvalidDataError, ValueError...)
        raise MediaRefused("audio_url: not audio the switch can decode") from exc
    if not chunks:
        raise MediaRefused("audio_url: the media holds no audio")
    samples: Frame = np.concatenate(chunks).astype(np.int16)
    return samples


def load_media(spec: str, media_dir: Path, *, loop: bool = False) -> AudioSource:
    """A source for an ``audio_url`` (see the module docstring); raises MediaRefused.

    Blocking (file decoding, HTTP): call it with ``asyncio.to_thread``.
    """
    from softphone.errors import MediaError
    from softphone.media.sources import ArraySource, FileSource, NullSource, ToneSource

    if not isinstance(spec, str):
        raise MediaRefused("audio_url must be a string")
    if spec in ("", "silence"):
        return NullSource()
    if spec.startswith("tone:"):
        try:
            parts = spec[5:].split(":")
            freqs = [float(f) for f in parts[0].split("+")]
            duration = int(parts[1]) if len(parts) > 1 and parts[1] else None
        except ValueError as exc:
            raise MediaRefused("audio_url: tone:HZ[+HZ][:MS] expected") from exc
        if len(parts) > 2 or not all(0 < f < 24000 for f in freqs) or (duration is not None and duration <= 0):
            raise MediaRefused("audio_url: tone frequencies must be 0-24000 Hz and MS positive")
        return ToneSource(freqs if len(freqs) > 1 else freqs[0], 0.3, duration_ms=duration)
    lowered = spec[:8].lower()
    if lowered.startswith("http://"):
        samples = decode_audio(fetch_http(spec))
        return ArraySource(samples, loop=loop)
    if "://" in spec[:16] and not lowered.startswith("file://"):
        raise MediaRefused("audio_url: only tone:, silence, a media-directory file or a loopback http:// URL")
    path = media_file(media_dir, spec)
    try:
        return FileSource(path, loop=loop)
    except (MediaError, OSError, ValueError, EOFError):
        pass  # not a WAV the stdlib reads, and no ffmpeg: try PyAV
    if path.stat().st_size > MAX_FETCH_BYTES:
        raise MediaRefused(f"audio_url: media larger than {MAX_FETCH_BYTES >> 20} MB")
    return ArraySource(decode_audio(path.read_bytes()), loop=loop)
