"""The small vocabulary shared by the TeXML session and its verbs (a leaf: no cycle between them).

:class:`Runner` is what a verb sees of the session running it
(:class:`~softphone.switch.callcontrol.texml.session.TexmlSession` implements it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from softphone.media.sources import AudioSource
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.callcontrol.texml.document import Verb


_STATUS_BY_CAUSE = {
    "USER_BUSY": "busy",
    "CALL_REJECTED": "busy",
    "NO_ANSWER": "no-answer",
    "NO_USER_RESPONSE": "no-answer",
    "RECOVERY_ON_TIMER_EXPIRE": "no-answer",
    "ORIGINATOR_CANCEL": "canceled",
}


def call_status(leg: CCLeg) -> str:
    """TeXML's ``CallStatus`` of a leg."""
    if leg.alive:
        return "in-progress" if leg.answered_at is not None else "ringing"
    if leg.answered_at is not None:
        return "completed"
    return _STATUS_BY_CAUSE.get(leg.hangup_cause, "failed")


@dataclass(eq=False)
class Next:
    """What a verb asks for: fetch ``url`` (with ``extra`` parameters) and run that document."""

    url: str
    method: str = "POST"
    extra: dict[str, str] = field(default_factory=dict)
    inline: str = ""
    """A document given as text (the Calls API's ``Texml`` on update) instead of a URL."""


@dataclass(eq=False)
class Hangup:
    """The document ended the call (Hangup, Reject)."""


Outcome = Next | Hangup | None
"""What a verb returns: go on (None), fetch a new document (Next), or stop (Hangup)."""


class Runner(Protocol):
    """The session surface the verbs use."""

    cc: CallControl
    leg: CCLeg
    url: str
    method: str
    document_url: str
    interrupt: Any
    verbs_run: list[str]

    def params(self, **extra: str) -> dict[str, str]: ...

    def target(self, url: str) -> str: ...

    async def ensure_answered(self) -> bool: ...

    async def play(self, source: AudioSource, *, interruptible: bool = True) -> bool: ...

    async def sleep(self, seconds: float) -> bool: ...

    async def run_verbs(self, verbs: list[Verb]) -> Outcome: ...

    def first_say_audio(self) -> None: ...

    def new_sid(self, prefix: str) -> str: ...


class Timed:
    """A source wrapper noting when its first frame was taken (the first audio of a Say)."""

    def __init__(self, source: AudioSource, on_first: Any) -> None:
        self.source = source
        self._on_first = on_first

    @property
    def finished(self) -> bool:
        return bool(getattr(self.source, "finished", False))

    def read_frame(self) -> Any:
        if self._on_first is not None:
            self._on_first()
            self._on_first = None
        return self.source.read_frame()

    async def start(self) -> None:
        await self.source.start()

    async def stop(self) -> None:
        await self.source.stop()
