"""The local switch: a Telnyx-compatible WebRTC server with media legs and test services.

Embedding::

    from softphone.switch import Switch, default_accounts

    async with Switch(accounts=default_accounts(), port=0) as sw:
        print(sw.url)            # ws://127.0.0.1:<port>
        ...                      # point clients at it
        print(sw.records)        # call records (one per WebRTC leg)

The switch speaks the server side of the ``telnyx_rtc`` protocol (login by password or
JWT, clientReady/gatewayState, pings both ways, invite/ringing/media/answer/bye,
hold via modify, DTMF via info, trickle candidates, reattach after reconnect) and
terminates WebRTC on every leg (a B2BUA), bridging audio between legs.

Registration: each SIP username, and each telephony credential together with every
JWT minted from it, is one slot; dialling a slot rings the last client that logged in
there (falling back to the previous one still connected).

Built-in accounts (:func:`default_accounts`):

==========  ===============  ==============  ================  ==========================
connection  SIP user         password        number            inbound format
==========  ===============  ==============  ================  ==========================
demo        demo             demo-secret     +13125550100      sip_username
alice       alice            alice-secret    +13125550111      sip_username
bob         bob              bob-secret      +13125550122      e164 (number not routed)
john1234    john1234         john-secret     (none)            credentials gencred1 /
                                                               gencred1-secret, gencred2 /
                                                               gencred2-secret
==========  ===============  ==============  ================  ==========================

Services (dial the name, ``sip:<name>@any``, or a number):

=========  ==============================  ================================================
name       numbers                         behaviour
=========  ==============================  ================================================
echo       +15550001001, +13128889999      answers; your audio back with minimal delay
tone       +15550001002                    answers; a steady 1004 Hz tone
dtmf       +15550001003                    answers; each DTMF digit you send comes back as
                                           an in-band tone (100 ms, 70 ms gap) and as a
                                           ``telnyx_rtc.info``
busy       +15550001004                    rings ~1 s, then bye USER_BUSY (17) / SIP 486
noanswer   +15550001005                    rings until the caller gives up (or
                                           ``Switch.noanswer_timeout``: NO_ANSWER / 480)
early      +15550001006                    ringback as early media (``telnyx_rtc.media``
                                           with SDP) for ~2 s, then ``telnyx_rtc.answer``
                                           without SDP, then echo
reject     +15550001007                    bye CALL_REJECTED (21) / SIP 603
ivr        +15550001008                    answers; speaks a menu (flite), gathers one digit
                                           (info or in-band), speaks the choice, hangs up
                                           (:mod:`softphone.switch.ivr`)
=========  ==============================  ================================================

Call records: one :class:`CallRecord` per WebRTC leg (parties, start/answer/end,
duration, cause, codec, cost), in ``Switch.records`` and appended to ``records_path``
as JSONL. Cost = ``rate_per_minute`` (default $0.002) per answered leg, billed per
started second (``ceil(seconds) * rate / 60``).

Call Control (:mod:`softphone.switch.callcontrol.engine`): connections with a ``webhook_url`` (and
optionally ``webhook_failover_url``, ``api_key``) are Call Control applications. Their
clients' calls to unknown destinations, and outside calls to their numbers, are parked and
announced by webhook; a backend drives them through the commands API (``sw.api_url``:
``/v2/calls``, ``/v2/calls/{id}/actions/...``, ``/v2/conferences``). Simulated outside
callers: ``sw.call_control.outside_call(...)`` or ``softphone switch pstn-call``. Started
automatically when such a connection exists, or with ``Switch(call_control=CallControlOptions(...))``.
The switch core (:class:`~softphone.switch.server.SwitchServer`) does not know Call Control;
:class:`Switch` (:mod:`softphone.switch.app`, the composition root) wires it in through the core's hooks.

Failures: unknown destination -> bye UNALLOCATED_NUMBER / 404; a known user with no
registered client (or a number on an ``e164`` connection) -> USER_NOT_REGISTERED / 480.
"""

from __future__ import annotations

from softphone.switch.accounts import Accounts, default_accounts, load_accounts, mint_token, token_for, verify_token
from softphone.switch.app import Switch
from softphone.switch.records import CallRecord, render_records

__all__ = [
    "Accounts",
    "CallRecord",
    "Switch",
    "default_accounts",
    "load_accounts",
    "mint_token",
    "render_records",
    "token_for",
    "verify_token",
]
