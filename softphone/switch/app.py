"""The switch's composition root: the core server plus Call Control, wired through the core's hooks.

:class:`~softphone.switch.server.SwitchServer` (the core) knows nothing of
:mod:`softphone.switch.callcontrol`; it exposes the hooks Call Control needs
(:attr:`~softphone.switch.server.SwitchServer.park_hook`, ``no_route_hook``, ``add_call``,
``lookup_client``, ``spawn``). :class:`Switch` builds the engine, with its HTTP commands API
(:class:`~softphone.switch.callcontrol.api.ApiServer`), when the switch starts and stops it first
when the switch stops.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from softphone.switch.media_legs import MediaLeg
from softphone.switch.records import DEFAULT_RATE_PER_MINUTE
from softphone.switch.server import SwitchServer

if TYPE_CHECKING:
    from softphone.media.impair import ImpairSpec
    from softphone.switch.accounts import Accounts
    from softphone.switch.callcontrol.apps import CallControlOptions
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.throttle import ThrottleOptions

logger = logging.getLogger("softphone.switch.server")  # the same logger as before the split


class Switch(SwitchServer):
    """A local Telnyx-compatible WebRTC switch with Call Control (see :mod:`softphone.switch`).

    ``call_control``: ``None`` (default) starts Call Control when a connection has a webhook or an
    API key; ``True`` or :class:`~softphone.switch.callcontrol.apps.CallControlOptions` always
    starts it; ``False`` never does.

    ``media_workers``: 0 (default) keeps every leg's media in this process (tests inspect it);
    N > 0 runs media legs in N worker processes (:mod:`softphone.switch.workers`; the placement
    policy is :meth:`~softphone.switch.server.SwitchServer.new_media_leg`).
    """

    def __init__(
        self,
        accounts: Accounts | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 30.0,
        ping_timeout: float = 60.0,
        rate_per_minute: float = DEFAULT_RATE_PER_MINUTE,
        records_path: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        call_control: CallControlOptions | bool | None = None,
        login_throttle: ThrottleOptions | None = None,
        impair: ImpairSpec | None = None,
        media_workers: int = 0,
    ) -> None:
        super().__init__(
            accounts=accounts,
            host=host,
            port=port,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            rate_per_minute=rate_per_minute,
            records_path=records_path,
            tls_cert=tls_cert,
            tls_key=tls_key,
            login_throttle=login_throttle,
            media_workers=media_workers,
        )
        self.impair = impair
        self.call_control_setting = call_control
        self.call_control: CallControl | None = None
        """The Call Control engine (webhooks + commands API), when enabled (see :meth:`start`)."""

    async def start(self) -> None:
        """Start the core (see :meth:`SwitchServer.start`), then Call Control when enabled."""
        await super().start()
        await self._start_call_control()

    async def _start_call_control(self) -> None:
        from softphone.switch.callcontrol.apps import CallControlOptions, apps_from_accounts

        setting = self.call_control_setting
        if setting is False or (setting is None and not apps_from_accounts(self.accounts)):
            return
        from softphone.switch.callcontrol.api import ApiServer
        from softphone.switch.callcontrol.engine import CallControl

        options = setting if isinstance(setting, CallControlOptions) else CallControlOptions()
        self.call_control = CallControl(self, options=options, api_factory=ApiServer)
        from softphone.switch.callcontrol.texml import attach_texml

        attach_texml(self.call_control)  # TeXML applications (and the TeXML Calls API routes)
        await self.call_control.start()
        logger.info("call control API on %s", self.call_control.api_url)

    def set_impairment(self, spec: ImpairSpec | None, call_id: str | None = None) -> int:
        """Impair media legs from the next packet on (:mod:`softphone.media.impair`); None lifts it.

        ``call_id`` None: every leg, live and future (:attr:`impair`). Otherwise the live legs
        whose callID is ``call_id`` (an A leg's is the caller's callID). Returns how many live legs
        changed.
        """
        if call_id is None:
            self.impair = spec
        changed = 0
        for call in list(self._calls):
            for leg in call.legs():
                if call_id is None or leg.call_id == call_id:
                    leg.media.set_impairment(spec)
                    changed += 1
        return changed

    def leg_media(self, call_id: str) -> MediaLeg | None:
        """The live media leg whose callID is ``call_id`` (tests read its peer's stats), or None."""
        for call in list(self._calls):
            for leg in call.legs():
                if leg.call_id == call_id:
                    media = leg.media
                    return media if isinstance(media, MediaLeg) else None  # None too for a media worker's leg
        return None

    @property
    def api_url(self) -> str:
        """Base URL of the Call Control commands API ("" when Call Control is off)."""
        return self.call_control.api_url if self.call_control is not None else ""

    async def stop(self) -> None:
        """Stop Call Control (hangs up its legs, stops the API), then the core."""
        if self.call_control is not None:
            await self.call_control.stop()
            self.call_control = None
        await super().stop()
