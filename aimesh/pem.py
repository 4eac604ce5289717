"""CA certificates given as PEM text in stack config (pure; no Pulumi imports).

The mesh's trust bundle (`aimesh:meshTrustRoots`) is a list of PEM certificates. A malformed,
non-CA or expired entry would only surface at runtime, when istio-csr refuses to load the bundle
and every workload certificate request fails: so each entry is parsed here, with the `cryptography`
library, while the stack config is validated, before any resource is registered.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----", re.DOTALL
)


@dataclass(frozen=True)
class CaCertificate:
    """What aimesh needs to know about one trusted root: who it is and until when it is valid."""

    subject: str
    fingerprint: str  # SHA-256 of the DER encoding, lowercase hex
    not_after: datetime  # timezone-aware (UTC)
    pem: str  # the single certificate block, normalized (no surrounding text)

    @property
    def not_after_epoch(self) -> int:
        return int(self.not_after.timestamp())


def read_ca_certificate(text: str, *, now: datetime | None = None) -> CaCertificate:
    """Parse exactly one PEM certificate that may sign others (basicConstraints CA:TRUE) and is
    valid now. Raises ValueError saying what is wrong (never echoing the input)."""
    chain = read_ca_chain(text, now=now)
    if len(chain) != 1:
        raise ValueError(
            f"holds {len(chain)} certificates: give each root its own entry (name and pem)"
        )
    return chain[0]


def read_ca_chain(text: str, *, now: datetime | None = None) -> list[CaCertificate]:
    """Parse one or more PEM CA certificates (a signing CA, then the intermediates above it),
    each a CA and valid now. Raises ValueError saying what is wrong (never echoing the input)."""
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ValueError(
            "is not PEM: expected one '-----BEGIN CERTIFICATE-----' ... "
            "'-----END CERTIFICATE-----' block"
        )
    kinds = [kind for kind, _ in blocks]
    if any(kind != "CERTIFICATE" for kind in kinds):
        others = sorted({k for k in kinds if k != "CERTIFICATE"})
        raise ValueError(
            f"holds a {' and a '.join(others)} block: give only public certificates here (a "
            "private key never belongs in plain stack config)"
        )
    return [_read_one(m.group(0).strip() + "\n", now) for m in _PEM_BLOCK.finditer(text)]


def _read_one(pem: str, now: datetime | None) -> CaCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ValueError("is not a parsable X.509 certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    subject = cert.subject.rfc4514_string() or "<empty subject>"
    if not is_ca:
        raise ValueError(
            f"certificate {subject!r} is not a CA (basicConstraints CA:TRUE): it cannot anchor "
            "a chain of workload certificates"
        )
    moment = now or datetime.now(UTC)
    not_after = cert.not_valid_after_utc
    if not_after <= moment:
        raise ValueError(
            f"certificate {subject!r} expired on {not_after:%Y-%m-%d}: replace it "
            "(docs/pki.md, 'Rotating the root')"
        )
    return CaCertificate(
        subject=subject,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        not_after=not_after,
        pem=pem,
    )


def signing_root(chain: list[CaCertificate], roots: list[CaCertificate]) -> CaCertificate | None:
    """The root of `roots` that `chain` leads to: each certificate of the chain is signed by the
    next one, and the last is one of the roots or signed by one. None when it leads nowhere."""
    from cryptography import x509

    if not chain:
        return None
    loaded = [x509.load_pem_x509_certificate(c.pem.encode()) for c in chain]
    for child, parent in itertools.pairwise(loaded):
        if not _issued_by(child, parent):
            return None
    top = loaded[-1]
    for root in roots:
        if root.fingerprint == chain[-1].fingerprint:
            return root
        if _issued_by(top, x509.load_pem_x509_certificate(root.pem.encode())):
            return root
    return None


def _issued_by(child: Any, parent: Any) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
