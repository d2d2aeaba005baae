"""What the user asked for, shared by every front-end: the command line's global options and a call's options.

Plain dataclasses (standard library only): :mod:`softphone.cli` builds them from typer options,
:mod:`softphone.repl` and the runtime read them, so neither front-end imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CallOptions", "Globals"]


@dataclass
class Globals:
    """Options shared by every command (``--profile``, ``--config``, ``-v``/``-q``, ``--json``)."""

    profile: str | None = None
    config: Path | None = None
    verbosity: int = 0
    json: bool = False
    impair: str | None = None  #: ``--impair``: network impairment of the calls' media (softphone.media.impair)


@dataclass(frozen=True)
class CallOptions:
    """Audio and call-length options shared by dial, answer, demo, run and the shell."""

    duration: float | None = None
    dtmf: str | None = None
    dtmf_delay: float = 1.0
    play: Path | None = None
    record: Path | None = None
    record_mode: str | None = None
    input_device: str | None = None
    output_device: str | None = None
    no_audio: bool = False
    local: bool = False
    tone: bool = False
