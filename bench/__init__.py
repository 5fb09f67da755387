"""Benchmarks: timing figures for the services, kept out of the test suite (see README.md)."""
