"""Tests of the packaging: the Helm chart, manifests/, the Dockerfile and skaffold.yaml.

They need no API server (tests/k8s/test_chart_install.py does the real installs); helm comes
from the folder tests/k8s/controlplane/testenv.sh prints (`make testenv`).
"""
