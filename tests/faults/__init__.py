"""Fault tests: the scan engine against real services that break mid-run."""
