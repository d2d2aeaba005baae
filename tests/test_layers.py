"""The walls: imports point down, no import cycles, no reaching into another module's privates, no
``getattr`` in ``app/``.

Read from source with ``ast`` (tools/arch_metrics.py does the parsing; ``python tools/arch_metrics.py``
prints the same lists). Function-level (lazy) and ``if TYPE_CHECKING:`` imports count. Each failure
lists every offending import or attribute with its file and line.

The second half runs the same checks on small synthetic trees, so each rule is shown to fail when
it should (the checks are not vacuous).
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_metrics() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arch_metrics", ROOT / "tools" / "arch_metrics.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


am = _load_metrics()


@pytest.fixture(scope="module")
def mods() -> dict[str, object]:
    found: dict[str, object] = am.collect(ROOT)
    assert "softphone.protocol.session" in found and "softphone.switch.server" in found
    return found


def test_imports_point_down(mods: dict[str, object]) -> None:
    bad = am.layer_violations(mods)
    assert not bad, f"{len(bad)} import(s) point the wrong way:\n  " + "\n  ".join(bad)


def test_no_import_cycles(mods: dict[str, object]) -> None:
    found = am.cycles(mods)
    text = "\n  ".join(am.describe_cycle(mods, comp) for comp in found)
    assert not found, f"{len(found)} import cycle(s) (lazy and TYPE_CHECKING imports included):\n  {text}"


def test_no_cross_module_private_reaches(mods: dict[str, object]) -> None:
    found = am.private_reaches(mods)
    text = "\n  ".join(f"{r.module}:{r.line} {r.text}" for r in found)
    assert not found, f"{len(found)} reach(es) into another module's _private names:\n  {text}"


def test_no_getattr_in_app(mods: dict[str, object]) -> None:
    """app/ reads typed values (snapshots, events, calls) by attribute, so mypy checks every name."""
    found = am.getattr_calls(mods)
    assert not found, "getattr in softphone/app: " + ", ".join(found)


def test_allowed_third_party_reaches_are_still_there(mods: dict[str, object]) -> None:
    """An allowlisted reach into a library's privates that the code no longer makes is removed from the list."""
    found = {(r.module, r.text) for r in am.private_reaches(mods, allowed=True)}
    assert set(am.THIRD_PARTY_PRIVATE) <= found, f"stale: {sorted(set(am.THIRD_PARTY_PRIVATE) - found)}"


# --- the checks themselves --------------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, object]:
    for rel, text in {"softphone/__init__.py": "", "softphone/errors.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            init = tmp_path / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text("")
        path.write_text(textwrap.dedent(text))
    found: dict[str, object] = am.collect(tmp_path)
    return found


def test_layer_rules_catch_wrong_imports(tmp_path: Path) -> None:
    mods = _tree(
        tmp_path,
        {
            "softphone/protocol/core.py": """
                import json
                from softphone.errors import ProtocolError

                def late():
                    import websockets
            """,
            "softphone/media/peer.py": "from softphone.protocol import core\n",
            "softphone/client/conn.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aiortc\n",
            "softphone/app/phone.py": "def f():\n    from rich.text import Text\n",
            "softphone/ui/panel.py": "from softphone.app import phone\n",
            "softphone/repl/shell.py": "from softphone.cli.app import Globals\n",
            "softphone/cli/app.py": "from softphone.repl import shell\nfrom softphone.switch import server\n",
            "softphone/switch/server.py": "def start():\n    from softphone.switch.callcontrol.engine import CC\n",
            "softphone/switch/app.py": "from softphone.switch.callcontrol import engine\n",
            "softphone/switch/records.py": "from softphone.app.billing import cost\n",
            "softphone/app/billing.py": "import math\n",
            "softphone/switch/callcontrol/engine.py": "from softphone.switch import server\n",
            "softphone/client/call.py": "from softphone.app.phone import Phone\n",
        },
    )
    text = "\n".join(am.layer_violations(mods))
    assert "softphone.protocol.core:6 (lazy) imports websockets" in text
    assert "softphone.protocol.core:2 " not in text  # stdlib and softphone.errors are fine
    assert "softphone.media.peer:1 imports softphone.protocol.core" in text
    assert "softphone.client.conn:3 (TYPE_CHECKING) imports aiortc" in text
    assert "softphone.app.phone:2 (lazy) imports rich.text" in text
    assert "softphone.ui.panel:1 imports softphone.app.phone: ui renders snapshots" in text
    assert "softphone.repl.shell:1 imports softphone.cli.app" in text
    assert "softphone.switch.server:2 (lazy) imports softphone.switch.callcontrol.engine: the switch core" in text
    assert "softphone.client.call:1 imports softphone.app.phone: softphone.client may not import softphone.app" in text
    for fine in (
        "softphone.cli.app",
        "softphone.switch.app",
        "softphone.switch.records",
        "softphone.switch.callcontrol",
    ):
        assert not any(line.startswith(f"{fine}:") for line in text.splitlines()), fine
    assert len(text.splitlines()) == 8, text


def test_cycles_are_found_through_lazy_and_type_only_imports(tmp_path: Path) -> None:
    mods = _tree(
        tmp_path,
        {
            "softphone/client/a.py": "from softphone.client import b\n",
            "softphone/client/b.py": "def f():\n    from softphone.client.c import x\n",
            "softphone/client/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
            "softphone/client/d.py": "from softphone.client import a\n",  # into the cycle, not part of it
        },
    )
    found = am.cycles(mods)
    assert found == [["softphone.client.a", "softphone.client.b", "softphone.client.c"]]
    text = am.describe_cycle(mods, found[0])
    assert "softphone.client.b -> softphone.client.c (b.py:2 lazy)" in text
    assert "softphone.client.c -> softphone.client.a (c.py:3 TYPE_CHECKING)" in text
    assert "a -> softphone.client.b -> softphone.client.c -> softphone.client.a" in text


def test_private_reaches_are_found_across_modules_only(tmp_path: Path) -> None:
    mods = _tree(
        tmp_path,
        {
            "softphone/client/call.py": """
                from softphone.client.client import _helper

                class Call:
                    def __init__(self, client):
                        self._client = client
                        self._state = 1

                    def same_module(self, other: "Call") -> int:
                        return other._state + super()._x + self._y + type(self)._z

                    def reach(self) -> None:
                        self._client._session.send()
                        self._client.public._pump()
                        print(self.__class__, self.t._replace(a=1))
            """,
        },
    )
    found = [(r.line, r.text) for r in am.private_reaches(mods)]
    assert found == [
        (2, "from softphone.client.client import _helper"),
        (10, "type(self)._z"),
        (13, "self._client._session"),
        (14, "self._client.public._pump"),
    ]


def test_getattr_is_found_in_app_only(tmp_path: Path) -> None:
    mods = _tree(
        tmp_path,
        {
            "softphone/app/phone.py": "def state(call):\n    return getattr(call, 'state', '')\n",
            "softphone/cli/app.py": "def f(o):\n    return getattr(o, 'x')\n",
        },
    )
    assert am.getattr_calls(mods) == ["softphone.app.phone:2"]
