"""The interactive shell (prompt-toolkit)."""
