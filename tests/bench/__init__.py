"""Smoke test of the benchmark harness in bench/."""
