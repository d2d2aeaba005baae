"""Completion for the shell, built from the command table."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from softphone.app.commands import COMMANDS, find_command, names, split
from softphone.errors import CommandError

__all__ = ["SERVICES", "CommandCompleter"]

#: Destinations of the local switch's test services, offered after ``dial``.
SERVICES = ("echo", "tone", "dtmf", "busy", "noanswer", "early", "reject", "ivr")


class CommandCompleter(Completer):
    """Completes command names, then each argument by its kind (device, destination, call, choice)."""

    def __init__(self, sources: dict[str, Callable[[], Iterable[str]]]) -> None:
        #: kind -> candidates; kinds: device, destination, call
        self.sources = sources

    def _candidates(self, words: list[str], index: int) -> Iterable[str]:
        try:
            cmd = find_command(words[0])
        except CommandError:
            return ()
        if cmd.name == "help":
            return [c.name for c in COMMANDS]
        if not cmd.args:
            return ()
        arg = cmd.args[min(index, len(cmd.args) - 1)]
        if index >= len(cmd.args) and not arg.variadic:
            return ()
        if arg.choices:
            return arg.choices
        if cmd.name == "wait" and index == 1 and len(words) > 1:
            return _WAIT_STATES.get(words[1], ())
        source = self.sources.get(arg.kind)
        return list(source()) if source else ()

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        try:
            words = split(text)
        except CommandError:
            return
        if text.endswith(" ") or not words:
            words.append("")
        current = words[-1]
        if len(words) == 1:
            candidates: Iterable[str] = names()
        else:
            candidates = self._candidates(words, len(words) - 2)
        low = current.lower()
        for cand in dict.fromkeys(candidates):
            if cand.lower().startswith(low) or (len(words) > 1 and low and low in cand.lower()):
                yield Completion(_quote(cand), start_position=-len(current))


_WAIT_STATES = {
    "socket": ("open", "closed", "connecting", "reconnecting"),
    "client": ("ready", "logged_in", "disconnected", "reconnecting", "closed"),
    "call": ("ringing", "early", "active", "held", "hangup"),
}


def _quote(text: str) -> str:
    return f'"{text}"' if " " in text else text
