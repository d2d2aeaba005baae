"""softphone: a command-line softphone for Telnyx WebRTC voice."""

from __future__ import annotations

import platform

__version__ = "0.1.0"
SDK_NAME = "softphone"
#: The ``User-Agent`` string of invites and answers, in the JS SDK's ``name-version`` form (``Web-2.27.10``).
SDK_VERSION = f"{SDK_NAME}-{__version__}"
#: ``User-Agent.data`` of the login (where the JS SDK puts ``navigator.userAgent``).
USER_AGENT = f"{SDK_VERSION} (Python {platform.python_version()}; {platform.system()} {platform.machine()})"
