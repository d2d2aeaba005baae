"""The ``softphone`` command (typer). Heavy modules are imported inside command functions."""
