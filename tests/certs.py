"""Real X.509 certificates for tests (generated with `cryptography`, never fixtures on disk):
roots of a PKI, intermediates they sign, and a workload certificate an intermediate signs, so
trust-bundle logic is checked against real chain verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate with its key (the key only ever stays in memory)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aimesh tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _build(
    subject: str,
    issuer: Issued | None,
    *,
    ca: bool,
    days: int = 365,
    not_before: datetime | None = None,
    uri: str | None = None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if not ca:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@cache
def root(name: str, days: int = 3650) -> Issued:
    """A self-signed root CA (cached per name, so one test run uses one certificate per name)."""
    return _build(name, None, ca=True, days=days)


@cache
def intermediate(name: str, parent: str) -> Issued:
    """An intermediate CA signed by `root(parent)`."""
    return _build(name, root(parent), ca=True, days=365)


def expired_root(name: str) -> Issued:
    start = datetime.now(UTC) - timedelta(days=30)
    return _build(name, None, ca=True, days=10, not_before=start)


def leaf(name: str, issuer: Issued, uri: str | None = None) -> Issued:
    """A non-CA certificate (a workload's) signed by `issuer`."""
    return _build(name, issuer, ca=False, days=1, uri=uri)


def verifies(cert: Issued, chain: list[Issued], bundle_pem: str) -> bool:
    """Whether `cert` (with intermediates `chain`) chains to a root of the PEM `bundle_pem`,
    as a peer with that trust bundle would check it."""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    anchors = x509.load_pem_x509_certificates(bundle_pem.encode()) if bundle_pem else []
    if not anchors:
        return False
    verifier = PolicyBuilder().store(Store(anchors)).build_client_verifier()
    try:
        verifier.verify(cert.cert, [c.cert for c in chain])
    except VerificationError:
        return False
    return True
