"""Who this client says it is: the package version and the ``User-Agent`` strings it sends.

One version source: ``version`` in ``pyproject.toml``, read back from the installed distribution's
metadata (:mod:`importlib.metadata`); :data:`softphone.__version__` is this :data:`VERSION`.
Standard library only, so :mod:`softphone.client` can import it without importing the front door.
"""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["SDK_NAME", "SDK_VERSION", "USER_AGENT", "VERSION"]

SDK_NAME = "softphone"


def _installed_version() -> str:
    try:
        return importlib.metadata.version(SDK_NAME)
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


VERSION = _installed_version()
"""The package version (``0.1.0``)."""
SDK_VERSION = f"{SDK_NAME}-{VERSION}"
"""The ``User-Agent`` string of invites and answers, in the JS SDK's ``name-version`` form (``Web-2.27.10``)."""
USER_AGENT = f"{SDK_VERSION} (Python {platform.python_version()}; {platform.system()} {platform.machine()})"
"""``User-Agent.data`` of the login (where the JS SDK puts ``navigator.userAgent``)."""
