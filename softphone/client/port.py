"""The port between a :class:`~softphone.client.call.Call` and its host (the Client), as types.

A call asks its host to send protocol intents (the frozen dataclasses below, one union
:data:`Intent`), to publish events (:mod:`softphone.client.events`), to run tasks and to give it
media: devices (:class:`CallMedia`) and a media peer (:class:`Peer`, which
:class:`softphone.media.peer.MediaPeer` is; SDP crosses as text). :class:`CallHost` is that port;
:class:`softphone.client.client.Client` implements it, and unit tests can implement it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from softphone.client import events as ce
from softphone.media.sinks import AudioSink
from softphone.media.sources import AudioSource

if TYPE_CHECKING:
    from softphone.media.stats import MediaStats

__all__ = [
    "Answer", "AttachAnswer", "CallHost", "CallMedia", "Hangup", "Intent", "Invite", "Modify", "Peer", "Reject",
    "SendDtmf",
]


# --- intents: what a call asks its host to send ------------------------------------------------


@dataclass(frozen=True)
class Invite:
    call_id: str
    sdp: str


@dataclass(frozen=True)
class Answer:
    call_id: str
    sdp: str


@dataclass(frozen=True)
class AttachAnswer:
    call_id: str
    sdp: str


@dataclass(frozen=True)
class Hangup:
    call_id: str
    cause: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Reject:
    call_id: str


@dataclass(frozen=True)
class SendDtmf:
    call_id: str
    digits: str


@dataclass(frozen=True)
class Modify:
    call_id: str
    action: str  #: hold | unhold | toggleHold


Intent = Invite | Answer | AttachAnswer | Hangup | Reject | SendDtmf | Modify
"""A protocol intent; the host applies it to the session (raising LocalProtocolError) and sends it."""


# --- the port ---------------------------------------------------------------------------------


class Peer(Protocol):
    """What a call needs of its media peer (:class:`softphone.media.peer.MediaPeer`); SDP crosses as text."""

    async def create_offer(self) -> str: ...
    async def accept_offer(self, sdp: str) -> str: ...
    async def set_answer(self, sdp: str) -> None: ...
    async def close(self) -> None: ...
    async def stats(self) -> MediaStats: ...
    def mute(self) -> None: ...
    def unmute(self) -> None: ...
    def set_source(self, source: AudioSource) -> None: ...
    def set_send_tap(self, sink: AudioSink | None) -> None: ...
    @property
    def negotiated_codec(self) -> str | None: ...
    @property
    def input_level_db(self) -> float: ...
    @property
    def output_level_db(self) -> float: ...


@dataclass(frozen=True)
class CallMedia:
    """One call's devices, from its host: the source, the sink and the recorder's local side."""

    source: AudioSource
    sink: AudioSink
    send_tap: AudioSink | None = None  #: what the call sends goes here too (the recording's local side)


class CallHost(Protocol):
    """What a :class:`Call` needs from its owner (the Client); nothing else is reached for."""

    def send(self, intent: Intent) -> None:
        """Apply ``intent`` to the session and send it (raises LocalProtocolError when not allowed)."""

    def emit(self, event: ce.Event) -> None:
        """Publish an event."""

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, finish: bool = False) -> asyncio.Task[Any]:
        """Run ``coro`` as a tracked task (``finish``: the host's close() waits for it, never cancels it)."""
        ...

    async def open_media(self, call_id: str) -> CallMedia:
        """This call's source and sink (may raise device errors)."""
        ...

    def new_peer(self, source: AudioSource, sink: AudioSink, *, name: str, codecs: list[str] | None) -> Peer:
        """A new media peer with the host's options (ICE servers, codecs ...)."""
        ...

    def set_audio_input(self, device: str | int) -> None:
        """Switch the input device of every call."""

    def set_audio_output(self, device: str | int) -> None:
        """Switch the output device of every call."""
