"""The shell's persistent history file, which never stores a credential."""

from __future__ import annotations

import os

from prompt_toolkit.history import FileHistory

from softphone.app.commands import is_secret_line

__all__ = ["SafeFileHistory", "keep_in_history"]


def keep_in_history(line: str) -> bool:
    """False for lines carrying a password or token (``login USER PASSWORD``, JWTs, ``password=...``)."""
    from softphone.log import redact

    return bool(line.strip()) and not is_secret_line(line) and redact(line) == line


class SafeFileHistory(FileHistory):
    """A :class:`FileHistory` that drops secret lines before they reach the disk or the session.

    The file is private to its owner (mode 0600), created so and tightened if it already exists.
    """

    def __init__(self, filename: str) -> None:
        os.close(os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(filename, 0o600)
        super().__init__(filename)

    def append_string(self, string: str) -> None:
        if keep_in_history(string):
            super().append_string(string)
