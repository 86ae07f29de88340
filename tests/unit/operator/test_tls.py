"""Self-signed certificates: issued by the cluster CA, renewed for every good reason."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509

from semantest_operator import tls

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
NAMES = ["hub-gateway", "hub-gateway.team.svc"]
MONTH = datetime.timedelta(days=30)
YEAR = datetime.timedelta(days=365)


def test_issued_certificate_is_good_until_the_renewal_window() -> None:
    ca = tls.new_ca("hub CA", NOW)
    server = tls.issue(ca, NAMES, YEAR, NOW)
    assert tls.renewal_reason(server, ca.cert, NAMES, MONTH, NOW) is None
    assert tls.not_after(server.cert) == NOW + YEAR
    cert = x509.load_pem_x509_certificate(server.cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == NAMES
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert tls.not_after(ca.cert) - NOW == tls.CA_VALIDITY


def test_a_tls_server_loads_the_pair(tmp_path: Path) -> None:
    server = tls.issue(tls.new_ca("hub CA", NOW), NAMES, YEAR, datetime.datetime.now(datetime.UTC))
    (tmp_path / "tls.crt").write_bytes(server.cert)
    (tmp_path / "tls.key").write_bytes(server.key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_renewal_is_due_inside_the_window() -> None:
    ca = tls.new_ca("hub CA", NOW)
    server = tls.issue(ca, NAMES, YEAR, NOW)
    later = NOW + YEAR - MONTH + datetime.timedelta(hours=1)
    assert "expires at" in (tls.renewal_reason(server, ca.cert, NAMES, MONTH, later) or "")


def test_renewal_is_due_for_another_ca_new_names_or_garbage() -> None:
    ca, other = tls.new_ca("hub CA", NOW), tls.new_ca("other CA", NOW)
    server = tls.issue(ca, NAMES, YEAR, NOW)
    assert "not signed" in (tls.renewal_reason(server, other.cert, NAMES, MONTH, NOW) or "")
    more = [*NAMES, "hub.example.com"]
    assert "hub.example.com" in (tls.renewal_reason(server, ca.cert, more, MONTH, NOW) or "")
    swapped = tls.KeyPair(server.cert, tls.issue(ca, NAMES, YEAR, NOW).key)
    assert "key does not match" in (tls.renewal_reason(swapped, ca.cert, NAMES, MONTH, NOW) or "")
    garbage = tls.KeyPair(b"nope", b"nope")
    assert "does not parse" in (tls.renewal_reason(garbage, ca.cert, NAMES, MONTH, NOW) or "")
