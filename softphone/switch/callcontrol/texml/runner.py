"""The TeXML runner of a Call Control engine: which calls run a document, one session each."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from softphone.switch.callcontrol.texml.session import TexmlSession
from softphone.switch.routing import destination_user, is_number

if TYPE_CHECKING:
    from softphone.switch.callcontrol.apps import TexmlApp
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg
    from softphone.switch.calls import Call

_RUNNERS: weakref.WeakKeyDictionary[CallControl, TexmlRunner] = weakref.WeakKeyDictionary()


class TexmlRunner:
    """Starts a :class:`TexmlSession` for each call a TeXML application takes."""

    def __init__(self, cc: CallControl) -> None:
        self.cc = cc
        self.sessions: dict[str, TexmlSession] = {}
        """Sessions by ``call_control_id`` (kept after the call for status queries)."""

    def app(self, connection_id: str) -> TexmlApp | None:
        """The connection's own application."""
        return self.cc.options.texml_apps.get(connection_id)

    def number_app(self, number: str) -> TexmlApp | None:
        """The application of a number that has one of its own."""
        from softphone.switch.accounts import normalize_number

        return self.cc.options.texml_number_apps.get(normalize_number(number)) if number else None

    def by_sid(self, sid: str) -> TexmlApp | None:
        """The application an ``ApplicationSid`` names: a connection id or a number's application id."""
        return self.app(sid) or next((a for a in self.cc.options.texml_number_apps.values() if a.app_id == sid), None)

    def all_apps(self) -> list[TexmlApp]:
        return [*self.cc.options.texml_apps.values(), *self.cc.options.texml_number_apps.values()]

    def begin(self, leg: CCLeg, app: TexmlApp, *, direction: str, **kw: str) -> TexmlSession:
        session = TexmlSession(self.cc, leg, app, direction=direction, **kw)
        self.sessions[leg.call_control_id] = session
        session.start()
        return session

    def take_outside(self, leg: CCLeg) -> bool:
        """An outside call reached a number of ``leg.connection_id``: run the number's application, else the
        connection's (if any)."""
        app = self.number_app(leg.to) or self.app(leg.connection_id)
        if app is None:
            return False
        self.begin(leg, app, direction="inbound")
        return True

    async def take_client_call(self, call: Call) -> bool:
        """A client's call routing left unplaced: the dialled number's app, else the caller's connection's."""
        accounts = self.cc.switch.accounts
        user = destination_user(call.destination)
        owner = accounts.by_number(user) if is_number(user) else None
        app = (self.number_app(user) or self.app(owner.id)) if owner is not None else None
        if app is None:
            app = self.app(call.a.session.login.connection_id)
        if app is None:
            return False
        leg = self.cc.park_call(call)
        self.begin(leg, app, direction="inbound")
        return True


def runner_of(cc: CallControl) -> TexmlRunner:
    """The runner of ``cc``, hooked into the engine's programs on first use (idempotent)."""
    runner = _RUNNERS.get(cc)
    if runner is None:
        runner = _RUNNERS[cc] = TexmlRunner(cc)
        cc.inbound_programs.append(runner.take_outside)
        cc.client_call_programs.append(runner.take_client_call)
    return runner

