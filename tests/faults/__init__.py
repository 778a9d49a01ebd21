"""Fault tests: the scan engine against real services that break mid-run (issue 6, item 1)."""
