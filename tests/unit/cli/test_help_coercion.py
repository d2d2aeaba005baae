"""softphone.cli.richhelp.defer_trivial_coercion: trivial values skip typer's pydantic adapters, the rest do not."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer._adapters
from typer.core import TyperArgument, TyperOption
from typer.testing import CliRunner

from softphone.cli.richhelp import defer_trivial_coercion


def make_app(seen: dict[str, Any]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def cmd(
        name: Annotated[str | None, typer.Option("--name")] = None,
        verbose: Annotated[int, typer.Option("-v", count=True)] = 0,
        config: Annotated[Path | None, typer.Option("--config")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1)] = 3,
        tags: Annotated[list[str] | None, typer.Option("--tag")] = None,
    ) -> None:
        seen.update(name=name, verbose=verbose, config=config, limit=limit, tags=tags)

    return app


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The patch applied for this test only, and the adapters typer builds recorded."""
    for cls in (TyperOption, TyperArgument):
        monkeypatch.setattr(cls, "get_runtime_param", cls.get_runtime_param)  # restored afterwards
    built: list[Any] = []
    original = typer._adapters.try_build_adapter

    def record(annotation: Any, parameter_info: Any) -> Any:
        built.append(annotation)
        return original(annotation, parameter_info)

    monkeypatch.setattr(typer._adapters, "try_build_adapter", record)
    defer_trivial_coercion()
    defer_trivial_coercion()  # idempotent
    return built


def test_defaults_build_no_adapter(deferred: list[Any]) -> None:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(make_app(seen), [])
    assert result.exit_code == 0, result.output
    assert seen == {"name": None, "verbose": 0, "config": None, "limit": 3, "tags": None}
    assert deferred == []


ARGS = [[], ["--name", "bob", "-vv"], ["--config", "/tmp/x.toml", "--limit", "5", "--tag", "a", "--tag", "b"]]


def test_same_values_as_typer_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    plain: list[dict[str, Any]] = []
    for args in ARGS:
        seen: dict[str, Any] = {}
        assert CliRunner().invoke(make_app(seen), args).exit_code == 0
        plain.append(seen)
    for cls in (TyperOption, TyperArgument):
        monkeypatch.setattr(cls, "get_runtime_param", cls.get_runtime_param)
    defer_trivial_coercion()
    for args, expected in zip(ARGS, plain, strict=True):
        seen = {}
        assert CliRunner().invoke(make_app(seen), args).exit_code == 0
        assert seen == expected


def test_plain_text_passes_through_and_counters_count(deferred: list[Any]) -> None:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(make_app(seen), ["--name", "bob", "-vv"])
    assert result.exit_code == 0, result.output
    assert (seen["name"], seen["verbose"]) == ("bob", 2)


def test_values_that_need_converting_still_go_through_typer(deferred: list[Any]) -> None:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(make_app(seen), ["--config", "/tmp/x.toml", "--limit", "5", "--tag", "a"])
    assert result.exit_code == 0, result.output
    assert seen["config"] == Path("/tmp/x.toml") and seen["limit"] == 5 and seen["tags"] == ["a"]
    assert deferred  # typer built its adapters for those


def test_ranges_are_still_checked(deferred: list[Any]) -> None:
    result = CliRunner().invoke(make_app({}), ["--limit", "0"])
    assert result.exit_code == 2
    assert "--limit" in result.output
