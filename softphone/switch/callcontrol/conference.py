"""Audio wiring of Call Control legs: bridges, queues and conferences.

Every leg's :class:`~softphone.switch.callcontrol.legs.Endpoint` has one *receiver* (where the
audio it receives goes) and a mix of what it sends (``play``/``stop_playing``).

* **Bridge**: each leg's receiver pushes into the other leg (a full-duplex pair).
* **Queue**: a waiting leg receives nothing and hears the hold tone until it leaves
  (bridge, ``leave_queue``, hangup).
* **Conference**: every participant gets one :class:`~softphone.media.sources.PushSource`
  per *other* participant, mixed into what it hears by its endpoint's
  :class:`~softphone.media.sources.MixSource`; a participant's receiver pushes each
  received frame into its own source at every other participant. So each one hears the
  sum of the others, never itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import AudioSource, PushSource
    from softphone.switch.callcontrol.legs import CCLeg


def bridge_audio(a: CCLeg, b: CCLeg) -> None:
    """Connect two legs full duplex."""
    a.endpoint.set_receiver(b.endpoint.push)
    b.endpoint.set_receiver(a.endpoint.push)


def cut_audio(leg: CCLeg) -> None:
    """Stop delivering what ``leg`` receives anywhere."""
    leg.endpoint.set_receiver(None)


@dataclass(eq=False)
class Queue:
    """A named call queue: legs waiting, in order, each hearing the hold tone."""

    name: str
    legs: list[CCLeg] = field(default_factory=list)
    tones: dict[str, AudioSource] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    """Seconds each dequeued leg waited (for ``queue_avg_wait_time_secs``)."""

    def add(self, leg: CCLeg, tone: AudioSource) -> int:
        """Append ``leg`` (it hears ``tone``); returns its 1-based position."""
        cut_audio(leg)
        leg.endpoint.play(tone)
        self.tones[leg.call_control_id] = tone
        leg.extras["enqueued_at"] = time.monotonic()
        self.legs.append(leg)
        return len(self.legs)

    def remove(self, leg: CCLeg) -> bool:
        """Take ``leg`` out (stops its hold tone); False if it was not queued here."""
        if leg not in self.legs:
            return False
        self.legs.remove(leg)
        tone = self.tones.pop(leg.call_control_id, None)
        if tone is not None:
            leg.endpoint.stop_playing(tone)
        started = leg.extras.pop("enqueued_at", None)
        if isinstance(started, float):
            self.waits.append(time.monotonic() - started)
        return True

    def position(self, leg: CCLeg) -> int:
        return self.legs.index(leg) + 1 if leg in self.legs else 0

    @property
    def avg_wait_s(self) -> int:
        return int(sum(self.waits) / len(self.waits)) if self.waits else 0


@dataclass(eq=False)
class Conference:
    """A conference room: every participant hears the mix of the others."""

    name: str
    connection_id: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    participants: list[CCLeg] = field(default_factory=list)
    ended: bool = False
    # _inputs[listener][speaker]: what ``speaker`` says, as heard by ``listener``.
    _inputs: dict[str, dict[str, PushSource]] = field(default_factory=dict)

    def join(self, leg: CCLeg) -> None:
        """Add a participant and rewire everyone's audio."""
        from softphone.media.sources import PushSource

        if leg in self.participants:
            return
        cut_audio(leg)
        mine: dict[str, PushSource] = {}
        for other in self.participants:
            src = PushSource(max_frames=8)
            self._inputs[other.call_control_id][leg.call_control_id] = src
            other.endpoint.play(src)
            back = PushSource(max_frames=8)
            mine[other.call_control_id] = back
            leg.endpoint.play(back)
        self._inputs[leg.call_control_id] = mine
        self.participants.append(leg)
        leg.conference_id = self.id
        for p in self.participants:
            p.endpoint.set_receiver(self._fan_out(p))

    def leave(self, leg: CCLeg) -> bool:
        """Remove a participant (False if not in this conference)."""
        if leg not in self.participants:
            return False
        self.participants.remove(leg)
        leg.conference_id = ""
        cut_audio(leg)
        for src in self._inputs.pop(leg.call_control_id, {}).values():
            leg.endpoint.stop_playing(src)
        for other in self.participants:
            heard = self._inputs[other.call_control_id]
            if leg.call_control_id in heard:
                other.endpoint.stop_playing(heard.pop(leg.call_control_id))
            other.endpoint.set_receiver(self._fan_out(other))
        return True

    def _fan_out(self, speaker: CCLeg) -> Callable[[Frame], Any]:
        key = speaker.call_control_id
        targets = [inputs[key] for lid, inputs in self._inputs.items() if lid != key and key in inputs]

        def deliver(frame: Frame) -> None:
            for t in targets:
                t.push(frame)

        return deliver

    def record(self) -> dict[str, Any]:
        """The conference object of the API."""
        return {
            "record_type": "conference",
            "id": self.id,
            "name": self.name,
            "connection_id": self.connection_id,
            "status": "completed" if self.ended else "in_progress",
            "participants": [p.call_control_id for p in self.participants],
        }
