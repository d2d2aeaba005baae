"""One TeXML call: fetch the document, run its verbs on the leg, follow action URLs, report.

A :class:`TexmlSession` owns one Call Control leg (an outside call to the application's
number, a client's call, or a call the TeXML Calls API placed) for as long as the document
runs. Verbs run in order through the engine's primitives (answer, play, gather, bridge,
queues, conferences, hangup); a verb with an ``action`` URL (or a ``<Redirect>``) requests
a new document with the request parameters Telnyx posts, and that document replaces the
current one. When a document runs out the call is hung up, as Telnyx does.

Failures are reported once: a document that is not XML, or has an unknown verb or attribute,
ends the call (``NORMAL_TEMPORARY_FAILURE``, SIP 503), writes ONE warning naming the
document URL and the line, and the status callback carries ``ErrorCode``/``ErrorMessage``.
An unreachable ``voice_url`` is retried on the application's fallback URL, then the call is
hung up the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol.texml import verbs as run
from softphone.switch.callcontrol.texml.document import TexmlError, Verb, parse
from softphone.switch.callcontrol.texml.fetch import FetchError, fetch, is_http, request, resolve
from softphone.switch.callcontrol.texml.flow import Hangup, Next, Outcome, call_status

if TYPE_CHECKING:
    from softphone.media.sources import AudioSource
    from softphone.switch.callcontrol.apps import TexmlApp
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg

logger = logging.getLogger("softphone.switch.callcontrol.texml")

FAIL_CAUSE = "NORMAL_TEMPORARY_FAILURE"
"""How a call whose document cannot run ends (SIP 503)."""
ERROR_DOCUMENT = "12100"
"""``ErrorCode`` for a document that cannot be parsed or run (Twilio's code, kept by TeXML)."""
ERROR_FETCH = "11200"
"""``ErrorCode`` for a document that could not be fetched."""
MAX_DOCUMENTS = 500
"""Documents one call may go through (a Redirect loop ends the call instead of spinning)."""

class _Prompt:
    """A played source, registered like a playback so a digit (gather) or a hangup stops it."""

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self.stopped = ""


class TexmlSession:
    """One call running TeXML (see the module docstring)."""

    def __init__(
        self,
        cc: CallControl,
        leg: CCLeg,
        app: TexmlApp,
        *,
        direction: str,
        url: str = "",
        method: str = "",
        inline: str = "",
        status_callback: str = "",
        status_callback_method: str = "",
        status_callback_event: str = "",
        fallback_url: str = "",
        account_sid: str = "",
    ) -> None:
        self.cc = cc
        self.leg = leg
        self.app = app
        self.direction = direction
        self.url = url or app.voice_url
        self.method = (method or app.voice_method or "POST").upper()
        self.inline = inline
        self.status_callback = status_callback if status_callback else app.status_callback
        self.status_callback_method = (status_callback_method or app.status_callback_method or "POST").upper()
        self.fallback_url = fallback_url if fallback_url else app.fallback_url
        self.account_sid = account_sid or app.connection_id
        self.document_url = ""
        """Where the document being run came from (``inline`` for a TeXML Calls API ``Texml``)."""
        self.error: tuple[str, str] | None = None
        """``(ErrorCode, ErrorMessage)`` once the document failed."""
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        """Seconds from the session's start: ``answered``, ``first_say_audio``."""
        self.verbs_run: list[str] = []
        self.task: asyncio.Task[None] | None = None
        self._document_task: asyncio.Task[Outcome] | None = None
        self.status_events = frozenset(status_callback_event.replace(",", " ").split()) or frozenset({"completed"})
        """Which call-progress events go to the status callback (``completed`` unless StatusCallbackEvent says)."""
        self._sequence = 0
        self._progress_task: asyncio.Task[None] | None = None
        self._redirect: Next | None = None
        self.interrupt: Any = None
        """A predicate: True stops the prompt being played (queue wait documents)."""
        leg.extras["texml"] = self

    # --- parameters ---------------------------------------------------------------------

    def params(self, **extra: str) -> dict[str, str]:
        """The request parameters Telnyx posts with every TeXML request."""
        leg = self.leg
        out = {
            "AccountSid": self.account_sid,
            "CallSid": leg.call_control_id,
            "CallSidLegacy": leg.call_control_id,
            "CallSessionId": leg.call_session_id,
            "ConnectionId": leg.connection_id,
            "ApplicationSid": self.app.sid,
            "From": leg.from_,
            "To": leg.to,
            "CallerId": leg.from_,
            "CallStatus": call_status(leg),
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
        }
        out.update(extra)
        return out

    # --- the main loop -------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self.status_callback and self.status_events - {"completed"}:
            self._progress_task = self.cc.spawn(self._progress(), f"texml-progress {self.leg.call_control_id}")
        self.task = self.cc.spawn(self.run(), f"texml {self.leg.call_control_id}")
        return self.task

    async def run(self) -> None:
        """Run the call's documents to the end, then the status callback."""
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the call hanging without a cause
            logger.exception("TeXML %s failed", self.document_url or self.url)
            await self.fail(ERROR_DOCUMENT, f"internal error: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.leg.ended.wait(), 5.0)
            await self.report()

    async def _run(self) -> None:
        if self.leg.direction == "outgoing" and not await self.ensure_answered():
            return  # a TeXML Calls API call nobody answered: only the status callback
        verbs = await self.first_document()
        documents = 1
        while verbs is not None and self.leg.alive:
            outcome = self._take_redirect() or await self._run_document(verbs)
            if isinstance(outcome, Next):
                documents += 1
                if documents > MAX_DOCUMENTS:
                    await self.fail(ERROR_DOCUMENT, f"more than {MAX_DOCUMENTS} documents (a Redirect loop?)")
                    return
                if outcome.inline:
                    self.document_url = "inline"
                    verbs = await self.parse("inline", outcome.inline)
                else:
                    verbs = await self.document(outcome.url, outcome.method, self.params(**outcome.extra))
                continue
            if outcome is None and self.leg.alive:
                await self.cc.hangup_leg(self.leg, "NORMAL_CLEARING")  # the document ran out
            return

    async def _run_document(self, verbs: list[Verb]) -> Outcome:
        """Run a document's verbs in a task of their own, so :meth:`redirect` can stop them."""
        task = asyncio.ensure_future(self.run_verbs(verbs))
        self._document_task = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if (current is not None and current.cancelling()) or self._redirect is None:
                raise
            self.cc.leave_everything(self.leg, reason="redirect")  # out of its queue or conference
            return self._take_redirect()
        finally:
            self._document_task = None

    def redirect(self, *, url: str = "", method: str = "POST", texml: str = "") -> None:
        """Replace the running document (TeXML Calls API update with ``Url`` or ``Texml``)."""
        self._redirect = Next(url, method.upper() or "POST", inline=texml)
        task = self._document_task
        if task is not None and not task.done():
            task.cancel()

    def _take_redirect(self) -> Next | None:
        pending, self._redirect = self._redirect, None
        return pending

    async def first_document(self) -> list[Verb] | None:
        if self.inline:
            self.document_url = "inline"
            return await self.parse("inline", self.inline)
        params = self.params()
        try:
            got = await fetch(self.url, self.method, params, allow_remote=self.cc.options.allow_remote_webhooks)
        except FetchError as exc:
            if not self.fallback_url:
                await self.fail(ERROR_FETCH, f"voice_url unreachable: {exc}", url=self.url)
                return None
            logger.warning("TeXML %s unreachable (%s); trying the fallback %s", self.url, exc, self.fallback_url)
            params.update(ErrorCode=ERROR_FETCH, ErrorUrl=self.url)
            try:
                got = await fetch(self.fallback_url, self.method, params,
                                  allow_remote=self.cc.options.allow_remote_webhooks)
            except FetchError as exc2:
                await self.fail(ERROR_FETCH, f"voice_url and fallback unreachable: {exc}; {exc2}",
                                url=self.fallback_url)
                return None
        self.document_url = got.url
        return await self.parse(got.url, got.text)

    def target(self, url: str) -> str:
        """Where a verb's URL points, relative to the current document. Only a document read from a
        file (a TeXML Bin the switch's operator wrote) may name another file: one fetched over HTTP
        (or sent inline through the API) may not make the switch read local files."""
        base = self.document_url if self.document_url != "inline" else self.url
        target = resolve(base, url)
        from_file = bool(base) and not is_http(base) and self.document_url != "inline"
        if not is_http(target) and not from_file:
            raise FetchError(f"{url!r} is not an http:// URL (only a TeXML Bin file may name another file)")
        return target

    async def document(self, url: str, method: str, params: dict[str, str]) -> list[Verb] | None:
        """Fetch and parse an action/Redirect document (no fallback: Telnyx falls back on voice_url only)."""
        try:
            target = self.target(url)
        except FetchError as exc:
            await self.fail(ERROR_FETCH, str(exc), url=url)
            return None
        try:
            got = await fetch(target, method, params, allow_remote=self.cc.options.allow_remote_webhooks)
        except FetchError as exc:
            await self.fail(ERROR_FETCH, f"cannot fetch {target}: {exc}", url=target)
            return None
        self.document_url = got.url
        return await self.parse(got.url, got.text)

    async def parse(self, url: str, text: str) -> list[Verb] | None:
        try:
            return parse(text)
        except TexmlError as exc:
            await self.fail(ERROR_DOCUMENT, exc.message, url=url, line=exc.line)
            return None

    async def fail(self, code: str, message: str, *, url: str = "", line: int = 0) -> None:
        """End the call because the document cannot run: ONE log line, the status callback says why."""
        if self.error is not None:
            return
        where = url or self.document_url or self.url
        self.error = (code, f"{where} line {line}: {message}" if line else f"{where}: {message}")
        if line:
            logger.warning("TeXML document %s line %d: %s; ending call %s", where, line, message,
                           self.leg.call_control_id)
        else:
            logger.warning("TeXML document %s: %s; ending call %s", where, message, self.leg.call_control_id)
        self.leg.extras["texml_error"] = self.error[1]
        if self.leg.alive:
            await self.cc.hangup_leg(self.leg, FAIL_CAUSE)

    async def run_verbs(self, verbs: list[Verb]) -> Outcome:
        """Run one document's verbs; a :class:`Next` or :class:`Hangup` ends it early."""
        for verb in verbs:
            if not self.leg.alive:
                return Hangup()
            if self.interrupt is not None and self.interrupt():
                return None
            self.verbs_run.append(verb.name)
            outcome = await run.VERBS[verb.name](self, verb)
            if outcome is not None:
                return outcome
        return None

    async def report(self) -> None:
        """The ``completed`` status callback at the end of the call (form-encoded, like every TeXML request)."""
        leg = self.leg
        if self._progress_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._progress_task, 5.0)
        if not self.status_callback or "completed" not in self.status_events:
            return
        from softphone.switch.callcontrol.legs import telnyx_cause
        from softphone.switch.callcontrol.webhooks import iso_now

        duration = int((leg.ended_at or time.time()) - leg.answered_at) if leg.answered_at is not None else 0
        extra = {"CallDuration": str(duration), "CallControlId": leg.call_control_id, "CallLegId": leg.call_leg_id}
        if leg.hangup_cause:
            extra["HangupCause"] = telnyx_cause(leg.hangup_cause)
            extra["SipHangupCause"] = leg.hangup_cause
            extra["HangupSource"] = leg.hangup_source or "unknown"
        if leg.answered_at is not None:
            extra["AnsweredTime"] = iso_now(leg.answered_at)
        if leg.ended_at is not None:
            extra["EndTime"] = iso_now(leg.ended_at)
        if self.error is not None:
            extra["ErrorCode"], extra["ErrorMessage"] = self.error
        await self._post_status(**extra)

    async def _post_status(self, **extra: str) -> None:
        """One call-progress event to the status callback (``SequenceNumber`` counts from 0)."""
        from softphone.switch.callcontrol.webhooks import iso_now

        params = self.params(
            CallbackSource="call-progress-events",
            SequenceNumber=str(self._sequence),
            Timestamp=iso_now(),
            CallInitiatedAt=iso_now(self.leg.created),
            **extra,
        )
        self._sequence += 1
        try:
            await request(self.status_callback, self.status_callback_method, params,
                          allow_remote=self.cc.options.allow_remote_webhooks)
        except FetchError as exc:
            logger.warning("TeXML status callback %s failed: %s", self.status_callback, exc)

    async def _progress(self) -> None:
        """``initiated``, ``ringing`` and ``answered`` events, when StatusCallbackEvent asks for them."""
        leg, events = self.leg, self.status_events
        if "initiated" in events:
            await self._post_status(CallStatus="initiated")
        if "ringing" in events and leg.alive and leg.answered_at is None:
            await self._post_status(CallStatus="ringing")
        if "answered" in events:
            await _first(leg.answered.wait(), leg.ended.wait())
            if leg.answered_at is not None:
                await self._post_status(CallStatus="in-progress")

    # --- helpers for verbs ------------------------------------------------------------------

    async def ensure_answered(self) -> bool:
        """Answer an incoming call before the first verb that needs media (False if it ended)."""
        leg = self.leg
        if leg.answered_at is not None:
            return leg.alive
        if not leg.alive:
            return False
        if leg.direction == "incoming":
            from softphone.switch.callcontrol.commands import answer_leg
            from softphone.switch.callcontrol.engine import CommandError

            try:
                await answer_leg(self.cc, leg)
            except CommandError:
                return False
        else:
            await _first(leg.answered.wait(), leg.ended.wait())
        self.timings.setdefault("answered", time.monotonic() - self.started)
        return leg.alive and leg.answered_at is not None

    async def play(self, source: AudioSource, *, interruptible: bool = True) -> bool:
        """Play ``source`` on the leg to its end; False when a digit, the caller or :attr:`interrupt` stopped it."""
        leg = self.leg
        prompt = _Prompt(source)
        key = f"texml-{id(prompt)}"
        if interruptible:
            leg.extras.setdefault("playbacks", {})[key] = prompt
        leg.endpoint.play(source)
        try:
            while leg.alive and not prompt.stopped and not getattr(source, "finished", False):
                if self.interrupt is not None and self.interrupt():
                    return False
                await asyncio.sleep(0.02)
        finally:
            leg.endpoint.stop_playing(source)
            leg.extras.get("playbacks", {}).pop(key, None)
        return leg.alive and not prompt.stopped

    async def sleep(self, seconds: float) -> bool:
        """Wait (Pause) unless the call ends or :attr:`interrupt` fires; False if cut short."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.leg.alive or (self.interrupt is not None and self.interrupt()):
                return False
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.leg.alive

    def first_say_audio(self) -> None:
        self.timings.setdefault("first_say_audio", time.monotonic() - self.started)

    def new_sid(self, prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex}"


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
