"""``python -m softphone``."""

from __future__ import annotations

from softphone.cli.app import main

if __name__ == "__main__":
    main()
