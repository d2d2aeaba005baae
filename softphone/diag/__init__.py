"""Diagnostics a support engineer reaches for: doctor, pre-call test, one-way-audio finder, latency, bundle."""
