"""Shows a diagnostics command's report (softphone.diag): a rich table, tab-separated lines or JSON.

A diagnostics module measures and returns a report (anything with ``title``, ``rows()``,
``as_dict()`` and ``exit_code``); this module runs it under :func:`~softphone.cli.runtime.run_async`
with the profile (and the ``--local`` switch) from :func:`~softphone.cli.runtime.open_profile`, and
prints it: one JSON document with ``--json``, a table on a terminal, ``figure<TAB>value`` lines when
piped. The exit code is the report's (each module documents its codes).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from softphone.cli.runtime import open_profile, run_async

if TYPE_CHECKING:
    from softphone.app.options import CallOptions, Globals
    from softphone.config import Profile

__all__ = ["DiagReport", "print_report", "run_diag"]


class DiagReport(Protocol):
    """What a diagnostics command returns."""

    @property
    def title(self) -> str: ...

    @property
    def exit_code(self) -> int: ...

    def rows(self) -> Sequence[tuple[str, str]]: ...

    def as_dict(self) -> dict[str, Any]: ...


def print_report(report: DiagReport, *, json_out: bool) -> None:
    """One JSON document, a rich table on a terminal, or tab-separated lines when piped."""
    if json_out:
        print(json.dumps(report.as_dict()), flush=True)
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=report.title, title_justify="left", show_header=False)
        table.add_column("figure", style="bold")
        table.add_column("value")
        for name, value in report.rows():
            table.add_row(escape(name), escape(value))
        Console(highlight=False).print(table)
        return
    for name, value in report.rows():
        print(f"{name}\t{value}".replace("\n", " "), flush=True)


def run_diag(g: Globals, opts: CallOptions, measure: Callable[[Profile], Awaitable[DiagReport]]) -> int:
    """Open the profile (``opts``: ``--local``, audio), run ``measure``, print its report; its exit code."""

    async def body(interrupted: asyncio.Event) -> int:
        async with open_profile(g, opts) as profile:
            report = await measure(profile)
        print_report(report, json_out=g.json)
        return report.exit_code

    return run_async(g, body)
