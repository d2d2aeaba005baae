"""Commands that need no connection: devices, history, config."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from softphone.cli.exitcodes import ExitCode
from softphone.errors import ConfigError, MediaError
from softphone.ui.panel import safe

if TYPE_CHECKING:
    from softphone.app.options import Globals

__all__ = ["config_init", "config_path", "config_show", "show_devices", "show_history"]


def _console() -> Console:
    return Console(highlight=False)


def _print_table(table: Table, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal; tab-separated lines (a header, then one line per row) when stdout is
    piped, so that nothing is cut to an 80-column guess and ``cut``/``awk`` read it."""
    if sys.stdout.isatty():
        for row in rows:
            table.add_row(*row)
        _console().print(table)
        return
    for line in (columns, *rows):
        print("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in line))


def _err(msg: str) -> None:
    from softphone.log import redact

    print(f"error: {redact(msg)}", file=sys.stderr)


def show_devices(g: Globals) -> int:
    from softphone.media.devices import list_devices

    try:
        devices = list_devices()
    except MediaError as exc:
        _err(str(exc))
        return ExitCode.ERROR
    rows: list[dict[str, Any]] = [
        {"index": d.index, "name": d.name, "host_api": d.host_api, "inputs": d.max_input_channels,
         "outputs": d.max_output_channels, "default_input": d.is_default_input,
         "default_output": d.is_default_output, "sample_rate": d.default_sample_rate}
        for d in devices
    ]
    if g.json:
        print(json.dumps({"v": 1, "devices": rows}))
        return ExitCode.OK
    if not rows:
        print("no audio devices (PortAudio lists none)")
        return ExitCode.OK
    columns = ("#", "name", "host API", "in", "out", "default")
    table = Table(title="Audio devices", title_justify="left")
    for col in columns:
        table.add_column(col)
    cells = [
        [str(r["index"]), safe(r["name"]), safe(r["host_api"]), str(r["inputs"]), str(r["outputs"]),
         "/".join(k for k, on in (("input", r["default_input"]), ("output", r["default_output"])) if on)]
        for r in rows
    ]
    _print_table(table, columns, cells)
    return ExitCode.OK


def show_history(g: Globals, limit: int) -> int:
    from softphone.app.history import CallHistory

    history = CallHistory()
    records = history.records()
    shown = records[-limit:] if limit else records
    totals = CallHistory.totals(records)
    if g.json:
        print(json.dumps({"v": 1, "calls": shown, "totals": {"calls": totals.calls, "answered": totals.answered,
                                                            "duration": round(totals.duration, 3),
                                                            "cost": totals.cost}}))
        return ExitCode.OK
    columns = ("started", "dir", "remote", "duration", "cause", "codec", "MOS", "cost")
    table = Table(title=f"Call history ({history.path})", title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col in ("duration", "cost", "MOS") else "left")
    cells: list[list[str]] = []
    for r in shown:
        mos = r.get("mos")
        cells.append([safe(str(r.get("started", ""))[:19].replace("T", " ")), safe(r.get("direction", "")),
                      safe(r.get("remote", "")), f"{float(r.get('duration') or 0):.1f}s", safe(r.get("cause") or ""),
                      safe(r.get("codec") or ""), f"{mos:.2f}" if isinstance(mos, int | float) else "-",
                      f"${float(r.get('cost') or 0):.4f}"])
    total = ["total", "", f"{totals.calls} calls, {totals.answered} answered", f"{totals.duration:.1f}s",
             "", "", "", f"${totals.cost:.4f}"]
    if sys.stdout.isatty():
        for row in cells:
            table.add_row(*row)
        table.add_section()
        table.add_row(*total)
        _console().print(table)
    else:
        _print_table(table, columns, [*cells, total])
    return ExitCode.OK


def config_init(g: Globals, force: bool) -> int:
    from softphone.config import init_config

    try:
        path = init_config(g.config, force=force)
    except ConfigError as exc:
        _err(str(exc))
        return ExitCode.USAGE
    print(f"wrote {path}")
    return ExitCode.OK


def config_show(g: Globals) -> int:
    from softphone.config import load_config
    from softphone.log import redact

    try:
        profile = load_config(g.config, g.profile)
    except ConfigError as exc:
        _err(str(exc))
        return ExitCode.USAGE
    shown = profile.display_dict()
    if g.json:
        print(redact(json.dumps({"v": 1, "profile": shown}, default=str)))
        return ExitCode.OK
    table = Table(title=f"profile {safe(profile.name)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in shown.items():
        table.add_row(safe(key), safe(redact(str(value))))
    _console().print(table)
    return ExitCode.OK


def config_path(g: Globals) -> int:
    import os

    from softphone.config import default_config_path

    path = g.config or (os.environ.get("SOFTPHONE_CONFIG") or default_config_path())
    print(path)
    return ExitCode.OK
