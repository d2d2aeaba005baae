"""Rendering of snapshots with rich: pure functions, no I/O."""
