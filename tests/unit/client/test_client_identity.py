"""softphone.client.identity: the version comes from pyproject.toml (one source), the User-Agent from it."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from softphone.client import identity

ROOT = Path(__file__).resolve().parents[3]


def test_version_is_pyprojects() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert identity.VERSION == meta["project"]["version"] == importlib.metadata.version("softphone")
    assert identity.SDK_VERSION == f"softphone-{identity.VERSION}"
    assert re.fullmatch(r"softphone-\d+\.\d+\.\d+ \(Python \d+\.\d+\.\d+\S*; .+\)", identity.USER_AGENT)
