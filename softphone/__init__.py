"""softphone: a command-line softphone for Telnyx WebRTC voice."""

from __future__ import annotations

__version__ = "0.1.0"
SDK_VERSION = f"softphone-{__version__}"
