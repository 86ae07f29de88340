"""Certificates for the `selfSigned` TLS mode: a CA per cluster, a server certificate it signs.

Pure functions over PEM bytes (the `cryptography` package); no Kubernetes here. Keys are
ECDSA P-256: small, fast to generate, accepted by every TLS client. This module must not decide
*when* to renew; it only says why a certificate is no longer good (`renewal_reason`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(minutes=5)  # tolerate clock skew between nodes


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(common_name: str, now: datetime.datetime) -> KeyPair:
    """A self-signed CA valid for ten years from `now`."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: KeyPair, dns_names: Sequence[str], validity: datetime.timedelta, now: datetime.datetime
) -> KeyPair:
    """A server certificate for `dns_names` (the first is the common name), signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def not_after(cert_pem: bytes) -> datetime.datetime:
    """When the (first) certificate in `cert_pem` expires, in UTC."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def renewal_reason(
    server: KeyPair,
    ca_cert_pem: bytes,
    dns_names: Sequence[str],
    renew_before: datetime.timedelta,
    now: datetime.datetime,
) -> str | None:
    """Why `server` must be re-issued, or None while it is good.

    Good means: it parses, its key matches, the CA signed it, it names every DNS name, and it
    stays valid for longer than `renew_before`.
    """
    try:
        cert = x509.load_pem_x509_certificate(server.cert)
        key = serialization.load_pem_private_key(server.key, password=None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    except ValueError:
        return "the certificate or key does not parse"
    if key.public_key() != cert.public_key():
        return "the key does not match the certificate"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "the certificate is not signed by the cluster's CA"
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the certificate has no DNS names"
    missing = sorted(set(dns_names) - set(names.get_values_for_type(x509.DNSName)))
    if missing:
        return f"the certificate does not name {', '.join(missing)}"
    left = cert.not_valid_after_utc - now
    if left <= renew_before:
        return f"the certificate expires at {cert.not_valid_after_utc.isoformat()}"
    return None
