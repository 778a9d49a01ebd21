"""Benchmarks of the scanner: see bench/README.md."""
