#!/usr/bin/env python3
"""Architecture metrics of the ``softphone`` package, read from source with ``ast`` (nothing is imported).

    tools/arch_metrics.py [ROOT] [--unit-time]   # ROOT: a checkout (default: this one), e.g. a `git worktree`

``--unit-time`` also runs the unit suite (``make test-fast``) in ROOT and prints its wall time.

Prints: import cycles (module-level, function-level and ``if TYPE_CHECKING:`` imports), cross-module
private reaches, layer violations, ``getattr`` calls in ``softphone/app/`` and lines per package.
``tests/test_layers.py`` loads this file and asserts on the same functions, so the numbers printed
here are the ones the layer test enforces.

Definitions (kept deliberately simple, so the test is tight but not flaky):

- An import of ``a.b`` is an edge to module ``a.b``; ``from a import b`` is an edge to ``a.b`` when that
  is a module, else to ``a``. Importing a submodule does not count as importing its package's
  ``__init__`` (Python runs it, but every module would then depend on every ``__init__`` above it).
- A *cycle* is a strongly connected component of more than one module in the import graph (every
  import: module-level, lazy and type-only); each is printed with one loop and all imports inside it.
- A *private reach* is ``x._name`` (not a dunder) where ``x`` is not ``self``, ``cls`` or ``super()``
  and ``_name`` is not defined anywhere in the same module (as a function, class, attribute,
  assignment target or parameter), or ``from softphone.x import _name``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PKG = "softphone"

# --- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One imported module (absolute name), where and how."""

    target: str
    line: int
    lazy: bool  # inside a function body
    type_only: bool  # inside ``if TYPE_CHECKING:``

    @property
    def runtime(self) -> bool:
        return not self.type_only


@dataclass(frozen=True)
class Reach:
    module: str
    line: int
    text: str  # e.g. "call._on_answer"


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    imports: list[Import] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return len(self.path.read_text(encoding="utf-8").splitlines())


def module_name(root: Path, path: Path) -> tuple[str, bool]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_imports(
    node: ast.AST, lazy: bool, type_only: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy, type_only
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk_imports(child, True, type_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_imports(ast.Module(body=[stmt], type_ignores=[]), lazy, True)
            for stmt in child.orelse:
                yield from _walk_imports(ast.Module(body=[stmt], type_ignores=[]), lazy, type_only)
        else:
            yield from _walk_imports(child, lazy, type_only)


def _resolve(mod: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        pkg = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, base] if base else pkg)
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in known else base)
    return out


def collect(root: Path) -> dict[str, Module]:
    """Every module under ``ROOT/softphone`` with its imports."""
    mods: dict[str, Module] = {}
    for path in sorted((root / PKG).rglob("*.py")):
        name, is_package = module_name(root, path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        mods[name] = Module(name, path, tree, is_package)
    known = set(mods)
    for mod in mods.values():
        for node, lazy, type_only in _walk_imports(mod.tree, False, False):
            for target in _resolve(mod, node, known):
                mod.imports.append(Import(target, node.lineno, lazy, type_only))
    return mods


def internal(target: str, mods: dict[str, Module]) -> str | None:
    """The softphone module an import target names (None for third-party / stdlib)."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in mods:
            return name
        parts.pop()
    return None


# --- cycles ------------------------------------------------------------------------------------


def graph(mods: dict[str, Module], *, runtime_only: bool = True) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {name: set() for name in mods}
    for mod in mods.values():
        for imp in mod.imports:
            if runtime_only and not imp.runtime:
                continue
            tgt = internal(imp.target, mods)
            if tgt is not None and tgt != mod.name:
                g[mod.name].add(tgt)
    return g


def _sccs(g: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # recursion depth = module count (~100): fine
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _loop(g: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest loop from the component's first module back to itself (BFS inside the component)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def cycles(mods: dict[str, Module]) -> list[list[str]]:
    """The import cycles: each a strongly connected component (sorted module names) of the graph of
    every import, type-only ones included (two modules naming each other's types know each other)."""
    return [comp for comp in _sccs(graph(mods, runtime_only=False)) if len(comp) > 1]


def _edge(mods: dict[str, Module], a: str, b: str) -> str:
    where = [
        f"{imp.line}{' lazy' if imp.lazy else ''}{' TYPE_CHECKING' if imp.type_only else ''}"
        for imp in mods[a].imports
        if internal(imp.target, mods) == b
    ]
    return f"{a} -> {b} ({mods[a].path.name}:{', '.join(dict.fromkeys(where))})"


def describe_cycle(mods: dict[str, Module], members: list[str]) -> str:
    """A cycle's modules: one loop through them and every import between them (file:line)."""
    g = graph(mods, runtime_only=False)
    loop = _loop(g, members)
    edges = [_edge(mods, a, b) for a in members for b in sorted(g[a] & set(members))]
    return "\n    ".join([f"{len(members)} modules, e.g. {' -> '.join(loop)}; imports inside it:", *edges])


# --- private reaches ---------------------------------------------------------------------------

PUBLIC_UNDERSCORE = frozenset(
    {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_exit", "_value_", "_name_", "_missing_"}
)
"""Underscore names that are documented public API (namedtuple, os._exit, enum)."""


def defined_names(tree: ast.Module) -> set[str]:
    """Every name a module defines: functions, classes, attributes, assignment targets, parameters."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
    return names


def _is_self(value: ast.expr) -> bool:
    if isinstance(value, ast.Name) and value.id in ("self", "cls"):
        return True
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def _private(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and name not in PUBLIC_UNDERSCORE


THIRD_PARTY_PRIVATE: dict[tuple[str, str], str] = {
    ("softphone.media.peer", "gatherer._connection"): "aiortc keeps its aioice.Connection private and has no "
    "public way to choose the host candidates (loopback-only peers in a namespace with only lo)",
}
"""Reaches into a third-party library's privates with no public alternative, each with its reason.
They are printed, not counted; a reach into a softphone module's privates is never allowed."""


def private_reaches(mods: dict[str, Module], *, allowed: bool = False) -> list[Reach]:
    """Every cross-module private reach (``allowed=True``: only the :data:`THIRD_PARTY_PRIVATE` ones)."""
    out: list[Reach] = []
    for mod in mods.values():
        own = defined_names(mod.tree)
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and not _is_self(node.value):
                if node.attr not in own:
                    out.append(Reach(mod.name, node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if _private(alias.name):
                        out.append(Reach(mod.name, node.lineno, f"from {node.module} import {alias.name}"))
    out = [r for r in out if ((r.module, r.text) in THIRD_PARTY_PRIVATE) == allowed]
    return sorted(out, key=lambda r: (r.module, r.line, r.text))


# --- layers ------------------------------------------------------------------------------------

STDLIB = frozenset(sys.stdlib_module_names)
UI_LIBS = ("rich", "prompt_toolkit", "typer", "click")

# Package -> the softphone packages it may import (besides itself). "Nothing imports up" is this table:
# a package not listed for another may not be imported by it.
_BASE = {"softphone.errors", "softphone.log"}
_IO = _BASE | {"softphone.config", "softphone.protocol", "softphone.media"}
_APP = _IO | {"softphone.client", "softphone.app"}
ALLOWED: dict[str, set[str]] = {
    "softphone.errors": set(),
    "softphone.log": {"softphone.errors"},
    "softphone.protocol": {"softphone.errors"},
    "softphone.config": set(_BASE),
    "softphone.media": _BASE | {"softphone.config"},
    "softphone.client": set(_IO),
    "softphone.app": _IO | {"softphone.client"},
    "softphone.ui": set(_APP),
    "softphone.repl": _APP | {"softphone.ui"},
    "softphone.switch": set(_IO),
    "softphone.diag": set(_APP),  # diagnostics commands (issue 15): calls and measurements, no cli
    "softphone.cli": _APP | {"softphone", "softphone.ui", "softphone.repl", "softphone.switch", "softphone.diag"},
    "softphone": set(_APP),  # the front door re-exports the public API (lazily)
    "softphone.__main__": {"softphone.cli"},
}
ALLOWED_MODULES: dict[str, set[str]] = {
    # one billing rule for every cost shown anywhere, the switch's call records included
    "softphone.switch": {"softphone.app.billing"},
    "softphone.client": {"softphone.app.billing"},  # Call.cost() (documented API) delegates to it
}
"""Single modules a package may import although their package is not in :data:`ALLOWED`."""
SWITCH_COMPOSITION = frozenset({"softphone.switch", "softphone.switch.app", "softphone.switch.cli"})
"""The switch's composition root and its CLI: the only switch modules that may import Call Control."""


WIRED = "softphone.switch.app wires it in"


def package_of(name: str) -> str:
    """The layer a module belongs to: ``softphone.<pkg>`` (switch/callcontrol counts as switch here)."""
    parts = name.split(".")
    if len(parts) == 1:
        return PKG
    return ".".join(parts[:2])


def _third_party(target: str) -> str | None:
    top = target.split(".")[0]
    return None if top == PKG else top


def layer_violations(mods: dict[str, Module]) -> list[str]:
    """Every import that points the wrong way (type-only imports included: a wall is a wall)."""
    out: list[str] = []
    for mod in mods.values():
        pkg = package_of(mod.name)
        for imp in mod.imports:
            where = f"{mod.name}:{imp.line}{' (lazy)' if imp.lazy else ''}{' (TYPE_CHECKING)' if imp.type_only else ''}"
            tgt = internal(imp.target, mods)
            ext = _third_party(imp.target)
            if tgt is None and ext is None:
                continue  # a softphone name that does not exist here: ruff/mypy report it
            if ext is not None:
                if pkg == "softphone.protocol" and ext not in STDLIB:
                    out.append(f"{where} imports {imp.target}: protocol imports the standard library only")
                if pkg == "softphone.client" and ext in ("aiortc", "aioice"):
                    out.append(f"{where} imports {imp.target}: client/ does not import aiortc (media/ does)")
                if pkg in ("softphone.protocol", "softphone.media", "softphone.client", "softphone.app") and (
                    ext in UI_LIBS
                ):
                    out.append(f"{where} imports {imp.target}: nothing below the front-ends imports {ext}")
                continue
            assert tgt is not None
            tpkg = package_of(tgt)
            if tpkg != pkg and tpkg not in ALLOWED.get(pkg, set()) and tgt not in ALLOWED_MODULES.get(pkg, set()):
                out.append(f"{where} imports {tgt}: {pkg} may not import {tpkg}")
            if pkg == "softphone.ui" and tgt == "softphone.app.phone":
                out.append(f"{where} imports {tgt}: ui renders snapshots, it does not know Phone")
            in_cc = tgt == "softphone.switch.callcontrol" or tgt.startswith("softphone.switch.callcontrol.")
            is_cc = mod.name.startswith("softphone.switch.callcontrol")
            if pkg == "softphone.switch" and in_cc and not is_cc and mod.name not in SWITCH_COMPOSITION:
                out.append(f"{where} imports {tgt}: the switch core does not know Call Control ({WIRED})")
    return sorted(set(out))


# --- counts ------------------------------------------------------------------------------------


def getattr_calls(mods: dict[str, Module], package: str = "softphone.app") -> list[str]:
    out = []
    for mod in mods.values():
        if mod.name == package or mod.name.startswith(package + "."):
            for node in ast.walk(mod.tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                    out.append(f"{mod.name}:{node.lineno}")
    return out


def lines_per_package(mods: dict[str, Module]) -> dict[str, int]:
    out: dict[str, int] = {}
    for mod in mods.values():
        parts = mod.name.split(".")
        if mod.name.startswith("softphone.switch.callcontrol"):
            key = "switch/callcontrol"
        elif len(parts) == 1 or (len(parts) == 2 and not mod.is_package):
            key = "(root)"
        else:
            key = parts[1]
        out[key] = out.get(key, 0) + mod.lines
    return dict(sorted(out.items()))


def _print(title: str, items: Iterable[str]) -> None:
    items = list(items)
    print(f"{title}: {len(items)}")
    for item in items:
        print(f"  {item}")


def unit_suite_time(root: Path) -> str:
    """Wall time of ``make test-fast`` (``pytest -q tests/unit``) in ``root``, with pytest's last line."""
    import os
    import subprocess
    import time

    if not (root / "tests" / "unit").is_dir():
        return "no tests/unit"
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return f"{took:.1f} s wall ({last})"


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    root = Path(args[0]).resolve() if args else Path(__file__).resolve().parent.parent
    mods = collect(root)
    print(f"root: {root} ({len(mods)} modules)")
    _print("import cycles", (describe_cycle(mods, comp) for comp in cycles(mods)))
    reaches = private_reaches(mods)
    _print("cross-module private reaches", (f"{r.module}:{r.line} {r.text}" for r in reaches))
    allowed = private_reaches(mods, allowed=True)
    _print(
        "  allowed third-party private reaches (not counted)",
        (f"{r.module}:{r.line} {r.text}: {THIRD_PARTY_PRIVATE[r.module, r.text]}" for r in allowed),
    )
    _print("layer violations", layer_violations(mods))
    _print("getattr calls in softphone/app", getattr_calls(mods))
    lpp = lines_per_package(mods)
    print(f"lines per package (total {sum(lpp.values())}):")
    for key, n in lpp.items():
        print(f"  {key:20} {n:6}")
    if "--unit-time" in argv:
        print(f"unit suite (make test-fast): {unit_suite_time(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
