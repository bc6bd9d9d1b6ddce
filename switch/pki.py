"""Demo PKI for the national link's mutual TLS, the audit signing keypair, and the TLS
options both ends build from those files (DESIGN §9, ``switchctl pki init``).

The certificates are RFC 5280-strict so that a strict verifier (OpenSSL 3, Go, a real
Nlets gateway) accepts them: critical basicConstraints on every certificate, keyUsage,
extendedKeyUsage on the leaves, SKI everywhere and AKI pointing at the CA's SKI, positive
random serials, a non-empty subject, and the names in subjectAltName.

TLS option builders hand ``cryptography`` objects to Twisted (ENGINEERING.md): the old
``PrivateCertificate`` path emits deprecation warnings.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from switch import paths

CA_DAYS: Final = 3650
LEAF_DAYS: Final = 825  # the CA/Browser limit: strict clients refuse longer leaves
SERVER_DNS: Final = "localhost"
SERVER_IP: Final = "127.0.0.1"
_BACKDATE: Final = _dt.timedelta(minutes=5)  # tolerate clock skew between processes


class PkiError(Exception):
    """``pki init`` cannot proceed safely (one line for the operator), or a file is bad."""


@dataclass(frozen=True)
class PkiResult:
    """What ``init_pki`` did: files written and files kept as they were."""

    written: tuple[Path, ...]
    kept: tuple[Path, ...]


# --------------------------------------------------------------------------- files


def load_certificate(path: Path) -> x509.Certificate:
    """Read one PEM certificate; PkiError (not an OpenSSL error) when unreadable."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise PkiError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a PEM certificate ({exc})") from None


def load_private_key(path: Path) -> PrivateKeyTypes:
    """Read an unencrypted PEM private key, refusing one that group or others can read."""
    problem = paths.private_mode_problem(path)
    if problem is not None:
        raise PkiError(f"{path}: {problem}")
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"{path}: not an unencrypted PEM private key ({exc})") from None


def _key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_public(path: Path, data: bytes) -> None:
    paths.write_private(path, data, replace=True)
    path.chmod(0o644)


# --------------------------------------------------------------------------- certificates


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "switch demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate (tests, `make run`), accepted everywhere TLS 1.2+ is.
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(
    now: _dt.datetime, common_name: str = "switch demo CA"
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA that may sign leaves only (pathLen 0)."""
    key = _new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    common_name: str,
    usage: x509.ObjectIdentifier,
    now: _dt.datetime,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An end-entity certificate for one TLS role (``usage``: serverAuth or clientAuth)."""
    key = _new_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_after = min(now + _dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,  # EC keys: ECDHE key agreement, no key transport
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


# --------------------------------------------------------------------------- pki init


def _check_private(paths_: Iterable[Path]) -> None:
    for path in paths_:
        if path.exists():
            problem = paths.private_mode_problem(path)
            if problem is not None:
                raise PkiError(f"refusing to keep {path}: {problem}; fix it or use --force")


def init_pki(
    pki_dir: Path,
    keys_dir: Path,
    *,
    force: bool = False,
    now: _dt.datetime | None = None,
    station: str = "MO0380100",
) -> PkiResult:
    """Create what is missing in ``pki_dir`` and ``keys_dir``; keep the rest unless ``force``.

    Idempotent, so that ``make run`` may call it every time. A private key that group or
    others can read is refused rather than silently kept or replaced: it may have leaked.
    """
    now = now or _dt.datetime.now(_dt.UTC)
    ca_pem, ca_key_path = pki_dir / paths.CA_CERT, pki_dir / paths.CA_KEY
    leaves = {
        "server": (pki_dir / paths.SERVER_CERT, pki_dir / paths.SERVER_KEY),
        "client": (pki_dir / paths.CLIENT_CERT, pki_dir / paths.CLIENT_KEY),
    }
    audit_key, audit_pub = keys_dir / paths.AUDIT_SIGNING_KEY, keys_dir / paths.AUDIT_SIGNING_PUB
    if not force:
        _check_private([ca_key_path, *(k for _, k in leaves.values()), audit_key])

    for d in (pki_dir, keys_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    kept: list[Path] = []

    # CA: a new one invalidates every leaf it did not sign, so they are remade too.
    new_ca = force or (not ca_pem.exists() and not ca_key_path.exists())
    missing = {
        role: force or new_ca or not (c.exists() and k.exists()) for role, (c, k) in leaves.items()
    }
    ca_cert: x509.Certificate | None = None
    ca_key: CertificateIssuerPrivateKeyTypes | None = None
    if new_ca:
        ca_cert, ca_key = make_ca(now)
        paths.write_private(ca_key_path, _key_pem(ca_key), replace=True)
        _write_public(ca_pem, _cert_pem(ca_cert))
        written += [ca_pem, ca_key_path]
    else:
        kept += [p for p in (ca_pem, ca_key_path) if p.exists()]
        if any(missing.values()):
            if not (ca_pem.exists() and ca_key_path.exists()):
                raise PkiError(
                    f"{pki_dir}: cannot issue certificates without both {paths.CA_CERT} and "
                    f"{paths.CA_KEY}; use --force to make a new CA"
                )
            ca_cert = load_certificate(ca_pem)
            loaded = load_private_key(ca_key_path)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
                raise PkiError(f"{ca_key_path}: unsupported CA key type")
            if loaded.public_key() != ca_cert.public_key():
                raise PkiError(f"{ca_key_path}: does not match {ca_pem}; use --force")
            ca_key = loaded

    specs = {
        "server": ("national", ExtendedKeyUsageOID.SERVER_AUTH, [SERVER_DNS], [SERVER_IP]),
        "client": (f"{station} gateway", ExtendedKeyUsageOID.CLIENT_AUTH, [], []),
    }
    for role, (cert_path, key_path) in leaves.items():
        if not missing[role]:
            kept += [cert_path, key_path]
            continue
        assert ca_cert is not None and ca_key is not None
        cn, usage, dns, ips = specs[role]
        cert, key = make_leaf(ca_cert, ca_key, cn, usage, now, dns, ips)
        paths.write_private(key_path, _key_pem(key), replace=True)
        _write_public(cert_path, _cert_pem(cert))
        written += [cert_path, key_path]

    # Audit keypair: never replace a key whose public half auditors may already hold.
    if force or not audit_key.exists():
        if audit_pub.exists() and not force:
            raise PkiError(
                f"{audit_pub} exists without {audit_key.name}; use --force to make a new pair"
            )
        signing = ed25519.Ed25519PrivateKey.generate()
        paths.write_private(audit_key, _key_pem(signing), replace=True)
        written.append(audit_key)
        write_pub = True
    else:
        kept.append(audit_key)
        write_pub = not audit_pub.exists()
    if write_pub:
        loaded_audit = load_private_key(audit_key)
        if not isinstance(loaded_audit, ed25519.Ed25519PrivateKey):
            raise PkiError(f"{audit_key}: not an Ed25519 key")
        pub = loaded_audit.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_public(audit_pub, pub)
        written.append(audit_pub)
    else:
        kept.append(audit_pub)
    return PkiResult(tuple(written), tuple(kept))


def load_audit_signing_key(keys_dir: Path) -> ed25519.Ed25519PrivateKey:
    """The audit checkpoint signing key of ``keys_dir`` (PKCS8 PEM, mode 0600)."""
    key = load_private_key(keys_dir / paths.AUDIT_SIGNING_KEY)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PkiError(f"{keys_dir / paths.AUDIT_SIGNING_KEY}: not an Ed25519 key")
    return key


def load_audit_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    """The audit verification key (``audit-signing.pub``, SubjectPublicKeyInfo PEM)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise PkiError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PkiError(f"{path}: not an Ed25519 public key")
    return key


# --------------------------------------------------------------------------- TLS options


def _trust_root(ca: x509.Certificate) -> Any:
    # Imported here: switch.pki is also used by `switchctl pki init`, which needs no Twisted.
    from OpenSSL.crypto import X509
    from twisted.internet.ssl import Certificate

    return Certificate(X509.from_cryptography(ca))  # type: ignore[no-untyped-call]


def server_tls_options(
    pki_dir: Path,
    cert_name: str = paths.SERVER_CERT,
    key_name: str = paths.SERVER_KEY,
    ca_name: str = paths.CA_CERT,
) -> Any:
    """Server-side ``CertificateOptions`` that require a client certificate from our CA.

    This cannot be said with an endpoint string (ENGINEERING.md): the national simulator
    passes the result to ``SSL4ServerEndpoint``/``listenSSL``.
    """
    from twisted.internet.ssl import CertificateOptions

    cert = load_certificate(pki_dir / cert_name)
    key = load_private_key(pki_dir / key_name)
    ca = load_certificate(pki_dir / ca_name)
    # Twisted's annotations still name pyOpenSSL types; pyOpenSSL takes cryptography
    # objects directly (and warns on its own), hence the untyped keyword dict.
    kwargs: dict[str, Any] = {
        "privateKey": key,
        "certificate": cert,
        "trustRoot": _trust_root(ca),
    }
    return CertificateOptions(**kwargs)


def client_tls_options(
    ca: Path,
    certificate: Path | None,
    private_key: Path | None,
    server_name: str,
) -> Any:
    """A client connection creator that verifies ``server_name`` against our CA and, when
    given, presents ``certificate``/``private_key`` (``IOpenSSLClientConnectionCreator``,
    for ``wrapClientTLS`` or ``SSL4ClientEndpoint``)."""
    from twisted.internet.ssl import optionsForClientTLS

    if (certificate is None) != (private_key is None):
        raise PkiError("a client certificate needs both certificate and private_key")
    extra: dict[str, Any] = {}
    if certificate is not None and private_key is not None:
        extra = {
            "privateKey": load_private_key(private_key),
            "certificate": load_certificate(certificate),
        }
    return optionsForClientTLS(
        server_name,
        trustRoot=_trust_root(load_certificate(ca)),
        extraCertificateOptions=extra,
    )
