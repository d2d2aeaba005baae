"""``--html report.html``: one self-contained page for ``softphone test`` and ``softphone load``.

Everything is inline (CSS, a little JS, SVG drawn here in Python): the page fetches nothing, so
it opens from a CI artifact store or a mail attachment as it is. It shows the pass/fail table,
one timeline per case or call (its state changes, script lines, expects, DTMF, hangup, with the
received level and jitter/RTT/loss from its ``call.stats`` events drawn under it), and for
``load`` the timing percentiles and a histogram of each timing. Text from the network or the
scripts is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softphone.cli.results import CaseResult

__all__ = ["histogram_svg", "render_load_report", "render_test_report", "timeline_svg"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#eee}tr.pass td.result{color:#176c2c;font-weight:bold}
tr.fail td.result{color:#b00020;font-weight:bold}.num{text-align:right;font-variant-numeric:tabular-nums}
details{margin:.4em 0}summary{cursor:pointer}.muted{color:#777}svg{background:#fff;border:1px solid #ddd}
.filter{margin:.5em 0}pre{background:#fff;border:1px solid #ddd;padding:.5em;max-height:20em;overflow:auto}
"""

_JS = """
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('only-failed');
  if (!box) { return; }
  box.addEventListener('change', function () {
    document.querySelectorAll('tr.case').forEach(function (row) {
      row.style.display = (box.checked && row.classList.contains('pass')) ? 'none' : '';
    });
  });
  document.body.setAttribute('data-ready', '1');
});
"""

_MARK_COLOURS = {"call.state": "#1f77b4", "script.line": "#999", "script.check": "#176c2c",
                 "call.dtmf": "#9467bd", "call.dtmf_sent": "#9467bd",
                 "call.hangup": "#d62728", "call.created": "#2ca02c"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"softphone\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style><script>{_JS}</script></head><body>\n{body}\n</body></html>\n")


def _label(e: Mapping[str, Any]) -> str:
    d = e.get("data", {})
    t = e["type"]
    if t == "call.state":
        return str(d.get("new", ""))
    if t == "script.line":
        return f"L{d.get('line', '')} {d.get('command', '')}"
    if t == "script.check":
        return f"L{d.get('line', '')} " + (f"ok after {d.get('seconds')}s" if d.get("ok") else "FAILED")
    if t in ("call.dtmf", "call.dtmf_sent"):
        return f"{t.split('.')[-1]} {d.get('digits', '')}"
    if t == "call.hangup":
        return f"hangup {d.get('cause', '')}"
    return str(t)


def timeline_svg(result: CaseResult, *, width: int = 900) -> str:
    """The case's events on a time axis, with the received level and jitter/RTT/loss under it."""
    events = [e for e in result.events if e["type"] in _MARK_COLOURS]
    stats = [e for e in result.events if e["type"] == "call.stats"]
    span = max([result.duration, *(e["t"] for e in result.events)] or [1.0]) or 1.0
    left, right = 10, width - 10

    def x(t: float) -> float:
        return left + (right - left) * min(max(t / span, 0.0), 1.0)

    several = len({e["call_id"] for e in events if e.get("call_id")}) > 1

    def tag(e: Mapping[str, Any]) -> str:
        """With several calls in the case, which one an event is about."""
        return f"[{str(e['call_id'])[:8]}] " if several and e.get("call_id") else ""

    rows = max(1, len(events))
    height = 40 + 14 * rows + 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'class="timeline" role="img" aria-label="timeline of {_e(result.name)}">']
    parts.append(f'<line x1="{left}" y1="20" x2="{right}" y2="20" stroke="#444"/>')
    for i in range(6):
        t = span * i / 5
        parts.append(f'<text x="{x(t):.1f}" y="14" font-size="10" text-anchor="middle">{t:.1f}s</text>')
    for row, e in enumerate(events):
        y = 34 + 14 * row
        colour = "#b00020" if e["type"] == "script.check" and not e["data"].get("ok") else _MARK_COLOURS[e["type"]]
        parts.append(f'<line x1="{x(e["t"]):.1f}" y1="20" x2="{x(e["t"]):.1f}" y2="{y}" stroke="{colour}" '
                     'stroke-width="1"/>')
        parts.append(f'<circle cx="{x(e["t"]):.1f}" cy="{y}" r="3" fill="{colour}"/>')
        parts.append(f'<text x="{x(e["t"]) + 5:.1f}" y="{y + 4}" font-size="11">{_e(e["t"])}s '
                     f'{_e(tag(e) + _label(e))}</text>')
    base = 40 + 14 * rows + 60
    parts.append(f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#ccc"/>')
    for key, colour, scale in (("output_level", "#2ca02c", 1.0), ("jitter_ms", "#ff7f0e", 1 / 50),
                               ("rtt_ms", "#1f77b4", 1 / 300), ("loss_pct", "#d62728", 1 / 10)):
        pts = [(x(e["t"]), base - 50 * min(float(e["data"][key]) * scale, 1.0)) for e in stats
               if isinstance(e["data"].get(key), int | float)]
        if len(pts) >= 2:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5">'
                         f'<title>{key}</title></polyline>')
    parts.append(f'<text x="{left}" y="{height - 2}" font-size="10" class="muted">'
                 'level (green), jitter /50 ms (orange), RTT /300 ms (blue), loss /10 % (red)</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(name: str, values: Sequence[float], *, bins: int = 20, width: int = 420, height: int = 140) -> str:
    """A histogram of one timing (seconds), as inline SVG."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="histogram" '
             f'role="img" aria-label="histogram of {_e(name)}">']
    if values:
        lo, hi = min(values), max(values)
        step = (hi - lo) / bins or 1.0
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int((v - lo) / step))] += 1
        top = max(counts)
        bar = (width - 20) / bins
        for i, c in enumerate(counts):
            h = (height - 40) * c / top
            parts.append(f'<rect x="{10 + i * bar:.1f}" y="{height - 25 - h:.1f}" width="{bar - 1:.1f}" '
                         f'height="{h:.1f}" fill="#1f77b4"><title>{lo + i * step:.3f}-{lo + (i + 1) * step:.3f}s: '
                         f'{c}</title></rect>')
        parts.append(f'<text x="10" y="{height - 8}" font-size="10">{lo:.3f}s</text>')
        parts.append(f'<text x="{width - 10}" y="{height - 8}" font-size="10" text-anchor="end">{hi:.3f}s</text>')
    parts.append(f'<text x="10" y="14" font-size="12">{_e(name)} (n={len(values)})</text></svg>')
    return "".join(parts)


def _cases_table(results: Sequence[CaseResult], *, load: bool) -> str:
    rows = []
    for r in results:
        f = r.failure
        cls = "pass" if r.passed else "fail"
        what = "" if f is None else f"{r.file}:{f.line}: {f.command}: {f.message}"
        extra = f"<td>{_e(' '.join(f'{k}={v}' for k, v in r.variables.items()))}</td>" if load else ""
        rows.append(f'<tr class="case {cls}" data-name="{_e(r.name)}"><td class="num">{r.index + 1}</td>'
                    f'<td class="result">{"PASS" if r.passed else "FAIL"}</td><td>{_e(r.name)}</td>'
                    f'<td class="num">{r.duration:.2f}s</td>{extra}<td>{_e(what)}</td></tr>')
    head = "<th>vars</th>" if load else ""
    return ('<label class="filter"><input type="checkbox" id="only-failed"> only failures</label>'
            f'<table id="cases"><thead><tr><th>#</th><th>result</th><th>name</th><th>time</th>{head}'
            f'<th>failure</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _details(results: Sequence[CaseResult], limit: int) -> str:
    out = []
    for r in sorted(results, key=lambda r: (r.passed, r.index))[:limit]:
        timings = "".join(f"<tr><td>{_e(k)}</td><td class=\"num\">{v:.3f}s</td></tr>" for k, v in r.timings.items())
        out.append(f'<details class="call" {"open" if not r.passed else ""}><summary>{_e(r.name)} '
                   f'({"PASS" if r.passed else "FAIL"}, {r.duration:.2f}s)</summary>{timeline_svg(r)}'
                   f'<table class="timings"><tr><th>timing</th><th>value</th></tr>{timings}</table>'
                   f'<pre>{_e(chr(10).join(r.output))}</pre></details>')
    return "".join(out)


def render_test_report(results: Sequence[CaseResult], *, title: str = "softphone test") -> str:
    """The page for ``softphone test``."""
    passed = sum(1 for r in results if r.passed)
    body = (f"<h1>{_e(title)}</h1><p id=\"totals\">{passed} passed, {len(results) - passed} failed; "
            f"generated {_e(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>"
            f"{_cases_table(results, load=False)}<h2>Timelines</h2>{_details(results, len(results))}")
    return _page(title, body)


def render_load_report(results: Sequence[CaseResult], summary: Mapping[str, Any], *,
                       title: str = "softphone load") -> str:
    """The page for ``softphone load``: totals, percentiles, histograms, calls, timelines (failures first)."""
    pct = summary.get("timings", {})
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td class=\"num\">{int(v.get('n', 0))}</td>"
        + "".join(f'<td class="num">{v.get(p, 0):.3f}</td>' for p in ("p50", "p95", "p99", "max")) + "</tr>"
        for k, v in pct.items())
    causes = "".join(f"<tr><td>{_e(k)}</td><td class=\"num\">{v}</td></tr>"
                     for k, v in summary.get("failure_causes", {}).items())
    values: dict[str, list[float]] = {}
    for r in results:
        for k, v in r.timings.items():
            values.setdefault(k, []).append(v)
    hist = "".join(histogram_svg(k, v) for k, v in values.items())
    body = (f"<h1>{_e(title)}</h1><p id=\"totals\">{summary.get('passed', 0)} passed, "
            f"{summary.get('failed', 0)} failed of {summary.get('calls', 0)} calls; "
            f"{_e(json.dumps({k: summary[k] for k in ('concurrency', 'rate', 'wall') if k in summary}))}</p>"
            f'<h2>Timings (s)</h2><table id="percentiles"><tr><th>timing</th><th>n</th><th>p50</th><th>p95</th>'
            f"<th>p99</th><th>max</th></tr>{rows}</table>"
            + (f'<h2>Failure causes</h2><table id="causes"><tr><th>cause</th><th>calls</th></tr>{causes}</table>'
               if causes else "")
            + f"<h2>Histograms</h2><div>{hist}</div><h2>Calls</h2>{_cases_table(results, load=True)}"
            f"<h2>Timelines</h2>{_details(results, 50)}")
    return _page(title, body)
