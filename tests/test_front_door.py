"""The front door: ``from softphone import Client, Call, ...`` lazily, one version source, a fast ``--help``."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import softphone

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiortc", "aioice", "av", "numpy", "pyaudio", "websockets", "prompt_toolkit", "rich", "importlib.metadata")
CORE = ("Client", "Call", "AudioConfig", "Credentials", "CallState", "ClientState")


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_softphone_loads_nothing_else() -> None:
    out = _fresh(
        "import sys\nimport softphone\n"
        "print(sorted(m for m in sys.modules if m.startswith('softphone')))\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert out.splitlines() == ["['softphone']", "[]"]


def test_help_path_loads_no_heavy_module() -> None:
    out = _fresh(
        "import sys\nfrom softphone.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('aiortc', 'av', 'numpy', 'pyaudio', 'websockets', 'importlib.metadata')"
        " if m in sys.modules], sorted(m for m in sys.modules if m.startswith('softphone.')))"
    )
    line = next(x for x in out.splitlines() if x.startswith("LOADED"))
    assert line.startswith("LOADED [] "), line
    assert "softphone.client" not in line and "softphone.media" not in line, line


def test_every_public_name_resolves_to_its_definition() -> None:
    assert set(CORE) <= set(softphone.__all__)
    for name in softphone.__all__:
        module, attr = softphone._EXPORTS[name]
        assert getattr(softphone, name) is getattr(importlib.import_module(module), attr), name
    assert set(softphone.__all__) == set(softphone._EXPORTS)
    assert set(softphone.__all__) <= set(dir(softphone))


def test_core_names_are_the_classes_the_package_uses() -> None:
    from softphone import AudioConfig, Call, CallState, Client, ClientState, Credentials
    from softphone.client.call import Call as RealCall
    from softphone.client.client import Client as RealClient
    from softphone.media.hub import AudioConfig as RealAudioConfig
    from softphone.protocol.session import Credentials as RealCredentials
    from softphone.protocol.states import CallState as RealCallState
    from softphone.protocol.states import ClientState as RealClientState

    assert (Client, Call, AudioConfig, Credentials, CallState, ClientState) == (
        RealClient, RealCall, RealAudioConfig, RealCredentials, RealCallState, RealClientState)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        softphone.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("softphone.NoSuchThing resolved")


def test_one_version_source() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    version = meta["project"]["version"]
    assert softphone.__version__ == version
    literal = re.compile(rf"""["']{re.escape(version)}["']""")
    copies = [str(p.relative_to(ROOT)) for p in (ROOT / "softphone").rglob("*.py") if literal.search(p.read_text())]
    assert copies == [], f"the version is written again in {copies}"


def test_docs_show_the_front_door() -> None:
    doc = (ROOT / "docs" / "python-api.md").read_text()
    imports = re.findall(r"^from softphone import (.+)$", doc, flags=re.M)
    assert imports, "docs/python-api.md must import from the front door"
    for line in imports:
        for name in (n.strip() for n in line.split(",")):
            assert hasattr(softphone, name), name
    assert "from softphone.client.client import" not in doc  # the old paths of the first example
    for module in set(re.findall(r"`(softphone(?:\.\w+)+)`", doc)):
        parts = module.split(".")
        for cut in range(len(parts), 0, -1):  # a module, or an attribute of one
            try:
                obj: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break
        else:  # pragma: no cover
            raise AssertionError(f"docs/python-api.md names {module}, which does not exist")
