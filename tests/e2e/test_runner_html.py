"""The --html reports of `softphone test` and `softphone load` in headless Chromium (the conformance
harness's Chromium and flags): they load with no console errors and no request but the file itself,
show the expected rows, timelines and histograms, the filter works; screenshots are kept in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from harness import CHROMIUM, CHROMIUM_FLAGS

pytestmark = [pytest.mark.e2e, pytest.mark.conformance, pytest.mark.timeout(150)]

OK = "dial dtmf\nwait call active 10\ndtmf 12\nexpect dtmf 12 5\nhangup\n"
BAD = "dial dtmf\nwait call active 10\ndtmf 1\nexpect dtmf 9 2\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(tmp_path / "none.toml"), SOFTPHONE_DATA_DIR=str(tmp_path / "data"))
    return e


def softphone(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softphone", *args, "--local"], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=100, check=False)


async def open_page(path: Path, shot: Path) -> dict[str, Any]:
    """Load ``path`` in headless Chromium; what the page shows, its console errors and its requests."""
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="softphone-chromium-")
    errors: list[str] = []
    requests: list[str] = []
    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                          args=list(CHROMIUM_FLAGS))
        try:
            page = ctx.pages[0] if ctx.pages else await ctx.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(path.resolve().as_uri())
            await page.wait_for_selector("body[data-ready='1']", timeout=10000)
            shown = await page.evaluate("""() => ({
                rows: [...document.querySelectorAll('tr.case')].map(r => [r.className, r.innerText]),
                timelines: document.querySelectorAll('svg.timeline').length,
                histograms: document.querySelectorAll('svg.histogram').length,
                percentiles: [...document.querySelectorAll('#percentiles tr')].map(r => r.innerText),
                totals: document.getElementById('totals').innerText,
            })""")
            await page.screenshot(path=str(shot), full_page=True)
            await page.check("#only-failed")
            shown["visible_after_filter"] = await page.evaluate(
                "() => [...document.querySelectorAll('tr.case')].filter(r => r.style.display !== 'none').length")
        finally:
            await ctx.close()
    return {**shown, "errors": errors, "requests": requests}


async def test_test_report_in_chromium(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "ok.sp").write_text(OK)
    (tmp_path / "bad.sp").write_text(BAD)
    r = softphone(env, tmp_path, "test", "ok.sp", "bad.sp", "--html", "report.html")
    assert r.returncode == 9, (r.stdout, r.stderr)
    shot = tmp_path / "report.png"
    got = await open_page(tmp_path / "report.html", shot)
    assert got["errors"] == [] and got["requests"] == [(tmp_path / "report.html").resolve().as_uri()], got
    rows = got["rows"]
    assert [cls for cls, _text in rows] == ["case pass", "case fail"], rows
    assert "ok" in rows[0][1] and "PASS" in rows[0][1]
    assert "bad.sp:4: expect dtmf 9 2" in rows[1][1] and "received '1'" in rows[1][1]
    assert got["timelines"] == 2 and got["totals"].startswith("1 passed, 1 failed")
    assert got["visible_after_filter"] == 1
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


async def test_load_report_in_chromium(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "call.sp").write_text(OK)
    r = softphone(env, tmp_path, "load", "call.sp", "--calls", "6", "--concurrency", "3", "--rate", "20",
                  "--html", "load.html")
    assert r.returncode == 0, (r.stdout, r.stderr)
    shot = tmp_path / "load.png"
    got = await open_page(tmp_path / "load.html", shot)
    assert got["errors"] == [] and len(got["requests"]) == 1, got
    assert len(got["rows"]) == 6 and all(cls == "case pass" for cls, _ in got["rows"])
    assert got["histograms"] >= 4 and got["timelines"] == 6
    assert any(line.startswith("answer\t6\t") for line in got["percentiles"]), got["percentiles"]
    assert got["totals"].startswith("6 passed, 0 failed of 6 calls")
    assert shot.read_bytes()[:4] == b"\x89PNG"
