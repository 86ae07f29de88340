"""Tests on a real single-node Kubernetes (see conftest.py and node.py)."""
