"""TeXML on the local switch: the documents Telnyx users write, run on Call Control legs.

:func:`attach_texml` (called by the composition root, :mod:`softphone.switch.app`) hooks a
:class:`TexmlRunner` into a Call Control engine: outside calls to a TeXML connection's numbers,
and clients' calls that routing leaves to that connection, run its application's document
(:class:`~softphone.switch.callcontrol.apps.TexmlApp`); importing this package also registers the
TeXML Calls API routes (:mod:`~softphone.switch.callcontrol.texml.calls_api`).

Modules: :mod:`.document` (safe parsing, verbs and attributes), :mod:`.fetch` (HTTP on loopback,
TeXML Bins), :mod:`.session` (one call's run), :mod:`.verbs`, :mod:`.dialing`, :mod:`.recording`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from softphone.switch.callcontrol.apps import TexmlApp
from softphone.switch.callcontrol.texml.document import TexmlError, parse
from softphone.switch.callcontrol.texml.session import TexmlSession
from softphone.switch.routing import destination_user, is_number

if TYPE_CHECKING:
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.calls import Call

__all__ = ["TexmlError", "TexmlRunner", "TexmlSession", "attach_texml", "parse", "runner_of"]

_RUNNERS: weakref.WeakKeyDictionary[CallControl, TexmlRunner] = weakref.WeakKeyDictionary()


class TexmlRunner:
    """Starts a :class:`TexmlSession` for each call a TeXML application takes."""

    def __init__(self, cc: CallControl) -> None:
        self.cc = cc
        self.sessions: dict[str, TexmlSession] = {}
        """Sessions by ``call_control_id`` (kept after the call for status queries)."""

    def app(self, connection_id: str) -> TexmlApp | None:
        return self.cc.options.texml_apps.get(connection_id)

    def begin(self, leg: CCLeg, app: TexmlApp, *, direction: str, **kw: str) -> TexmlSession:
        session = TexmlSession(self.cc, leg, app, direction=direction, **kw)
        self.sessions[leg.call_control_id] = session
        session.start()
        return session

    def take_outside(self, leg: CCLeg) -> bool:
        """An outside call reached a number of ``leg.connection_id``: run its TeXML app (if any)."""
        app = self.app(leg.connection_id)
        if app is None:
            return False
        self.begin(leg, app, direction="inbound")
        return True

    async def take_client_call(self, call: Call) -> bool:
        """A client's call routing left unplaced: the dialled number's app, else the caller's connection's."""
        accounts = self.cc.switch.accounts
        user = destination_user(call.destination)
        owner = accounts.by_number(user) if is_number(user) else None
        app = self.app(owner.id) if owner is not None else None
        if app is None:
            app = self.app(call.a.session.login.connection_id)
        if app is None:
            return False
        leg = self.cc.park_call(call)
        self.begin(leg, app, direction="inbound")
        return True


def attach_texml(cc: CallControl) -> TexmlRunner:
    """Hook TeXML into ``cc`` (idempotent); returns its runner."""
    from softphone.switch.callcontrol.texml import calls_api  # noqa: F401  (registers the routes)

    runner = _RUNNERS.get(cc)
    if runner is None:
        runner = _RUNNERS[cc] = TexmlRunner(cc)
        cc.inbound_programs.append(runner.take_outside)
        cc.client_call_programs.append(runner.take_client_call)
    return runner


def runner_of(cc: CallControl) -> TexmlRunner:
    """The runner of ``cc`` (attached on first use)."""
    return _RUNNERS.get(cc) or attach_texml(cc)
