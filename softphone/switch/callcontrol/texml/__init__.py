"""TeXML on the local switch: the documents Telnyx users write, run on Call Control legs.

:func:`attach_texml` (called by the composition root, :mod:`softphone.switch.app`) hooks a
:class:`~.runner.TexmlRunner` into a Call Control engine: outside calls to a TeXML connection's
numbers, and clients' calls that routing leaves to that connection, run its application's
document (:class:`~softphone.switch.callcontrol.apps.TexmlApp`), and the TeXML Calls API routes
(:mod:`.calls_api`) are registered.

Modules: :mod:`.document` (safe parsing, verbs and attributes), :mod:`.fetch` (HTTP on loopback,
TeXML Bins), :mod:`.session` (one call's run), :mod:`.flow` (what verbs return), :mod:`.verbs`,
:mod:`.dialing`, :mod:`.recording`, :mod:`.runner`, :mod:`.calls_api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from softphone.switch.callcontrol.texml import calls_api
from softphone.switch.callcontrol.texml.document import TexmlError, parse
from softphone.switch.callcontrol.texml.runner import TexmlRunner, runner_of
from softphone.switch.callcontrol.texml.session import TexmlSession

if TYPE_CHECKING:
    from softphone.switch.callcontrol.engine import CallControl

__all__ = ["TexmlError", "TexmlRunner", "TexmlSession", "attach_texml", "calls_api", "parse", "runner_of"]


def attach_texml(cc: CallControl) -> TexmlRunner:
    """Hook TeXML into ``cc`` (idempotent; the Calls API routes are registered on import); returns its runner."""
    return runner_of(cc)
