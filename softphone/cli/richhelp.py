"""Import ``typer.rich_utils`` without ``rich.markdown`` and ``rich.traceback``.

typer (0.29) renders ``--help`` with ``typer.rich_utils``, which imports ``rich.markdown`` (and with it
markdown-it, pygments via ``rich.syntax``) and ``rich.traceback`` at module level, although they are
used only for ``rich_markup_mode="markdown"`` and for pretty exception tracebacks, neither of which
this app uses. Those two imports are about 75 ms of the ~120 ms it takes to import ``rich_utils``.

:func:`import_rich_utils_light` imports ``rich_utils`` with placeholders standing in for the two
modules, then takes the placeholders out of ``sys.modules`` again, so a later ``import rich.markdown``
(anywhere) gets the real module. The placeholder classes import the real class on first use, so
markdown mode and pretty tracebacks would still work, only not pay for it up front.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from typing import Any

__all__ = ["defer_trivial_coercion", "hide_flag_metavars", "import_rich_utils_light"]

_DEFERRED = (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback"))


class _DeferredMeta(type):
    """Metaclass of the placeholder classes: calling one, or looking up a class attribute it does not
    have (``Traceback.from_exception``), imports the real class and forwards to it. They are real
    classes because ``rich_utils`` evaluates annotations such as ``Markdown | Text``."""

    _module: str

    def _real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(cls._real(), attr)


def import_rich_utils_light() -> None:
    """Import ``typer.rich_utils`` (if not yet imported) without loading markdown-it or rich.traceback."""
    if "typer.rich_utils" in sys.modules:
        return
    placed: dict[str, types.ModuleType] = {}
    for module, name in _DEFERRED:
        if module not in sys.modules:
            stub = types.ModuleType(module, "placeholder while typer.rich_utils is imported")
            setattr(stub, name, _DeferredMeta(name, (), {"_module": module}))
            sys.modules[module] = placed[module] = stub
    try:
        importlib.import_module("typer.rich_utils")
    finally:
        for module, stub in placed.items():
            if sys.modules.get(module) is stub:
                del sys.modules[module]


def hide_flag_metavars() -> None:
    """Show no value placeholder for options that take no value.

    typer 0.29 gives every option a type column, so ``--json`` reads ``<bool>`` and ``-v`` (a counter)
    reads ``<int>`` although neither takes a value; ``--json true`` would be a usage error. Flags and
    counters get an empty type column, as click's own help shows them. Idempotent.
    """
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_softphone_flags", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return original(self, ctx)

    display_type_rich._softphone_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_PLAIN = (str, int, float, bool)


def _plain_annotation(annotation: Any) -> Any:
    """``str`` for ``str``, ``str | None`` and ``Optional[str]``; the annotation itself otherwise."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


class _TrivialFirst:
    """A stand-in for typer's runtime coercion of one parameter that answers the trivial cases itself.

    ``None`` stays ``None`` (``()`` for a multi-value parameter), as typer's ``RuntimeParam.coerce``
    does; a value that already has the parameter's plain type (a ``str`` for a ``str`` option, an
    ``int`` default for a counter) is returned as it is, which is what the pydantic adapter returns
    for them. Anything else goes to typer's own coercion, built on first need.
    """

    def __init__(self, param: Any, build: Any) -> None:
        self._param = param
        self._build = build

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if (param.multiple or param.nargs == -1) else None
        info = self._param.type_descriptor.parameter_info
        plain = _plain_annotation(self._param.type_descriptor.annotation)
        unranged = info.min is None and info.max is None
        if plain in _PLAIN and type(value) is plain and (unranged or value == self._param.default):
            return value
        return self._build(self._param).coerce(value, param=param, ctx=ctx)


def defer_trivial_coercion() -> None:
    """Coerce the parameters' trivial values without typer's pydantic adapters (for ``--help`` only).

    typer (0.29) coerces every parameter value through a pydantic ``TypeAdapter``, built when the
    value is first processed. For ``softphone dial --help`` click processes the app callback's
    options (``--profile``, ``--config``, ``-v``... all at their defaults) before it reaches
    ``dial``'s eager ``--help``: importing pydantic and building those adapters was about half of
    that command's time (``python -X importtime``). With this, a default (``None``, a ``0``
    counter, a plain ``str``) passes through as typer would return it, and anything that really
    needs converting (a ``--config`` path from the environment, a number typed as text) still goes
    through typer's coercion. Idempotent.
    """
    from typer.core import TyperArgument, TyperOption

    for cls in (TyperOption, TyperArgument):
        original = cls.get_runtime_param
        if getattr(original, "_softphone_trivial_first", False):
            continue

        def get_runtime_param(self: Any, _build: Any = original) -> Any:
            return _TrivialFirst(self, _build)

        get_runtime_param._softphone_trivial_first = True  # type: ignore[attr-defined]
        cls.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
