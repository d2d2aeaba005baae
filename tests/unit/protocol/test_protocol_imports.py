"""The protocol core is sans-I/O and standard-library only (DESIGN.md §2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "softphone"
PROTOCOL_MODULES = sorted((ROOT / "protocol").glob("*.py"))


def imported_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            assert node.module is not None
            names.append(node.module)
    return names


def is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


def test_protocol_modules_found() -> None:
    assert {p.name for p in PROTOCOL_MODULES} >= {
        "__init__.py", "jsonrpc.py", "verto.py", "states.py", "events.py", "session.py"}


@pytest.mark.parametrize("path", PROTOCOL_MODULES, ids=lambda p: p.name)
def test_protocol_imports_only_stdlib(path: Path) -> None:
    names = imported_names(path)
    assert names
    for name in names:
        ok = (name == "softphone.protocol" or name.startswith("softphone.protocol.")
              or name == "softphone.errors" or name == "__future__" or is_stdlib(name))
        assert ok, f"{path.name} imports {name}"


def test_errors_imports_only_stdlib() -> None:
    for name in imported_names(ROOT / "errors.py"):
        assert name == "__future__" or is_stdlib(name), name


def test_checker_rejects_third_party(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import json\nfrom aiortc import RTCPeerConnection\nimport websockets.client\n")
    names = imported_names(bad)
    assert [n for n in names if not is_stdlib(n)] == ["aiortc", "websockets.client"]
