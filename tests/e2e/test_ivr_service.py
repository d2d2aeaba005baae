"""The switch's ``ivr`` service heard by a softphone client: the recogniser hears the menu, a digit
(telnyx_rtc.info or in-band tones) picks the choice it speaks, then the switch hangs up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from softphone.client.call import Call
from softphone.client.client import AudioConfig, Client
from softphone.media.asr import RecognizerProcess, Utterance
from softphone.media.sinks import CallbackSink
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts, ivr
from softphone.switch.routing import route, service_by_number

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

DEMO = Credentials(login="demo", password="demo-secret")


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@pytest.fixture
async def client(switch: Switch) -> AsyncIterator[Client]:
    c = Client(switch.url, DEMO, audio=AudioConfig(backend="null"), random=lambda: 0.0)
    await c.connect()
    yield c
    await c.close()


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Ear:
    """What the caller hears, recognised in a child process (never on the event loop)."""

    def __init__(self) -> None:
        self.heard: list[Utterance] = []
        self.proc = RecognizerProcess(48000, self.heard.append)

    def text(self, start: int = 0) -> str:
        return " ".join(u.text for u in self.heard[start:])


async def call_ivr(client: Client, ear: Ear, dest: str = "ivr") -> Call:
    await ear.proc.start()
    call = await client.new_call(dest)
    call.set_output(CallbackSink(ear.proc.feed))
    await call.wait_state(CallState.ACTIVE, 10)
    # the menu: "welcome to the test line press one for sales press two for support"
    await until(lambda: "support" in ear.text() and "welcome" in ear.text(), 20, f"the menu (heard {ear.text()!r})")
    return call


def test_ivr_is_a_listed_service() -> None:
    svc = service_by_number("+1 555 000 1008")
    assert svc is not None and svc.name == "ivr"
    assert route("sip:ivr@example.com", default_accounts()) == route("+15550001008", default_accounts())


async def test_ivr_menu_digit_two_over_info_speaks_support_and_hangs_up(client: Client) -> None:
    ear = Ear()
    try:
        call = await call_ivr(client, ear)
        assert "press" in ear.text() and "sales" in ear.text(), ear.text()
        menu_end = len(ear.heard)
        await call.dtmf("2")
        await call.wait_ended(15)
        assert call.cause == "NORMAL_CLEARING", call.cause
        await ear.proc.finish()
        after = ear.text(menu_end)
        assert "support" in after and "sales" not in after, (ear.text(), after)
    finally:
        await ear.proc.close()


async def test_ivr_in_band_digit_one_speaks_sales(client: Client) -> None:
    from softphone.media.dsp import dtmf_source

    ear = Ear()
    try:
        call = await call_ivr(client, ear, "+15550001008")
        menu_end = len(ear.heard)
        call.set_input(dtmf_source("1", tone_ms=100, gap_ms=70))  # tones only, no info
        await call.wait_ended(15)
        await ear.proc.finish()
        after = ear.text(menu_end)
        assert "sales" in after and "support" not in after, (ear.text(), after)
    finally:
        await ear.proc.close()


async def test_ivr_without_a_digit_says_goodbye(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ivr, "GATHER_TIMEOUT_S", 1.0)
    ear = Ear()
    try:
        call = await call_ivr(client, ear)
        menu_end = len(ear.heard)
        await call.wait_ended(15)
        assert call.cause == "NORMAL_CLEARING"
        await ear.proc.finish()
        after = ear.text(menu_end)
        assert "bye" in after and "support" not in after and "sales" not in after, (ear.text(), after)
    finally:
        await ear.proc.close()
