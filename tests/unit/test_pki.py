"""``pki init``: RFC 5280-strict demo certificates, private files, idempotence, and a real
mutual-TLS handshake on loopback with the options built from those files."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import defer, protocol
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from zope.interface import implementer

from switch import paths, pki
from switch.pki import PkiError, init_pki


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One PKI for the read-only tests of this module (key generation is the slow part)."""
    base = tmp_path_factory.mktemp("pki")
    init_pki(base / "pki", base / "keys")
    return base / "pki", base / "keys"


def _ext(cert: x509.Certificate, cls: Any) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(cls)


def test_ca_is_rfc5280_strict(made: tuple[Path, Path]) -> None:
    """The CA: self-signed, critical basicConstraints CA=true, critical keyUsage
    keyCertSign+cRLSign only, SKI, positive serial, v3, a non-empty subject."""
    ca = pki.load_certificate(made[0] / paths.CA_CERT)
    assert ca.version == x509.Version.v3
    assert ca.subject == ca.issuer and ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert ca.serial_number > 0
    bc = _ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True
    ku = _ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = _ext(ca, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    ca.verify_directly_issued_by(ca)


@pytest.mark.parametrize(
    ("cert_name", "usage", "dns", "ips"),
    [
        (paths.SERVER_CERT, ExtendedKeyUsageOID.SERVER_AUTH, ["localhost"], ["127.0.0.1"]),
        (paths.CLIENT_CERT, ExtendedKeyUsageOID.CLIENT_AUTH, [], []),
    ],
)
def test_leaves_are_rfc5280_strict(
    made: tuple[Path, Path], cert_name: str, usage: Any, dns: list[str], ips: list[str]
) -> None:
    """Each leaf is issued by the CA (signature, AKI = CA SKI), is not a CA (critical),
    has critical keyUsage digitalSignature, one EKU, its SKI, and the server the SAN
    DNS:localhost + IP:127.0.0.1 the gateway verifies."""
    ca = pki.load_certificate(made[0] / paths.CA_CERT)
    cert = pki.load_certificate(made[0] / cert_name)
    cert.verify_directly_issued_by(ca)
    assert cert.issuer == ca.subject
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [usage]
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    )
    now = _dt.datetime.now(_dt.UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    if dns or ips:
        san = _ext(cert, x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == dns
        assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ips


def test_private_files_are_0600_and_keys_match(made: tuple[Path, Path]) -> None:
    """Every private key is mode 0600 and matches its certificate; certs are readable."""
    pki_dir, keys = made
    for cert_name, key_name in (
        (paths.CA_CERT, paths.CA_KEY),
        (paths.SERVER_CERT, paths.SERVER_KEY),
        (paths.CLIENT_CERT, paths.CLIENT_KEY),
    ):
        assert (pki_dir / key_name).stat().st_mode & 0o777 == 0o600
        assert (pki_dir / cert_name).stat().st_mode & 0o777 == 0o644
        key = pki.load_private_key(pki_dir / key_name)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key() == pki.load_certificate(pki_dir / cert_name).public_key()
    assert (keys / paths.AUDIT_SIGNING_KEY).stat().st_mode & 0o777 == 0o600


def test_audit_keypair_signs_and_verifies(made: tuple[Path, Path]) -> None:
    """The audit key is Ed25519 PKCS8 PEM; the .pub verifies its signatures."""
    keys = made[1]
    assert b"BEGIN PRIVATE KEY" in (keys / paths.AUDIT_SIGNING_KEY).read_bytes()
    signing = pki.load_audit_signing_key(keys)
    public = pki.load_audit_public_key(keys / paths.AUDIT_SIGNING_PUB)
    signature = signing.sign(b'{"hash":"00","seq":1}')
    public.verify(signature, b'{"hash":"00","seq":1}')


def _snapshot(*dirs: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for d in dirs for p in sorted(d.iterdir())}


def test_idempotent_and_force(tmp_path: Path) -> None:
    """A second run keeps every file byte for byte; --force replaces them all."""
    pki_dir, keys = tmp_path / "pki", tmp_path / "keys"
    first = init_pki(pki_dir, keys)
    assert len(first.written) == 8
    before = _snapshot(pki_dir, keys)
    again = init_pki(pki_dir, keys)
    assert again.written == ()
    assert _snapshot(pki_dir, keys) == before
    forced = init_pki(pki_dir, keys, force=True)
    assert len(forced.written) == 8
    after = _snapshot(pki_dir, keys)
    assert all(after[k] != before[k] for k in before)


def test_missing_leaf_is_reissued_by_the_existing_ca(tmp_path: Path) -> None:
    """Deleting one leaf re-issues only that leaf, signed by the CA that was kept."""
    pki_dir, keys = tmp_path / "pki", tmp_path / "keys"
    init_pki(pki_dir, keys)
    ca_before = (pki_dir / paths.CA_CERT).read_bytes()
    client_before = (pki_dir / paths.CLIENT_CERT).read_bytes()
    (pki_dir / paths.SERVER_KEY).unlink()
    result = init_pki(pki_dir, keys)
    assert set(result.written) == {pki_dir / paths.SERVER_CERT, pki_dir / paths.SERVER_KEY}
    assert (pki_dir / paths.CA_CERT).read_bytes() == ca_before
    assert (pki_dir / paths.CLIENT_CERT).read_bytes() == client_before
    ca = pki.load_certificate(pki_dir / paths.CA_CERT)
    pki.load_certificate(pki_dir / paths.SERVER_CERT).verify_directly_issued_by(ca)


def test_missing_audit_pub_is_derived_not_a_new_key(tmp_path: Path) -> None:
    """Losing audit-signing.pub recreates it from the kept key (old checkpoints stay valid);
    a .pub without its key is refused rather than paired with a new key."""
    pki_dir, keys = tmp_path / "pki", tmp_path / "keys"
    init_pki(pki_dir, keys)
    key_before = (keys / paths.AUDIT_SIGNING_KEY).read_bytes()
    pub_before = (keys / paths.AUDIT_SIGNING_PUB).read_bytes()
    (keys / paths.AUDIT_SIGNING_PUB).unlink()
    init_pki(pki_dir, keys)
    assert (keys / paths.AUDIT_SIGNING_KEY).read_bytes() == key_before
    assert (keys / paths.AUDIT_SIGNING_PUB).read_bytes() == pub_before
    (keys / paths.AUDIT_SIGNING_KEY).unlink()
    with pytest.raises(PkiError, match=r"audit-signing\.pub exists without"):
        init_pki(pki_dir, keys)


def test_refuses_a_private_key_readable_by_others(tmp_path: Path) -> None:
    """An existing key with mode 0644 may have leaked: refused, not kept; --force replaces."""
    pki_dir, keys = tmp_path / "pki", tmp_path / "keys"
    init_pki(pki_dir, keys)
    os.chmod(pki_dir / paths.CLIENT_KEY, 0o644)
    with pytest.raises(PkiError, match=r"gateway-client\.key"):
        init_pki(pki_dir, keys)
    with pytest.raises(PkiError, match="chmod 600"):
        pki.load_private_key(pki_dir / paths.CLIENT_KEY)
    init_pki(pki_dir, keys, force=True)
    assert (pki_dir / paths.CLIENT_KEY).stat().st_mode & 0o777 == 0o600


def test_ca_key_missing_cannot_issue(tmp_path: Path) -> None:
    """Without ca.key a missing leaf cannot be issued: a clear error, nothing half-made."""
    pki_dir, keys = tmp_path / "pki", tmp_path / "keys"
    init_pki(pki_dir, keys)
    (pki_dir / paths.CA_KEY).unlink()
    (pki_dir / paths.CLIENT_CERT).unlink()
    with pytest.raises(PkiError, match="use --force"):
        init_pki(pki_dir, keys)
    assert not (pki_dir / paths.CLIENT_CERT).exists()


# --------------------------------------------------------------------------- TLS handshake


@implementer(IHandshakeListener)
class _Server(protocol.Protocol):
    peers: list[str]

    def handshakeCompleted(self) -> None:
        assert self.transport is not None
        peer = self.transport.getPeerCertificate()  # type: ignore[attr-defined]
        cn = peer.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.factory.peers.append(cn[0].value)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        if data == b"ping":
            self.transport.write(b"pong")


class _Client(protocol.Protocol):
    def __init__(self) -> None:
        self.done: defer.Deferred[bytes] = defer.Deferred()
        self.received = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.received == b"pong" and not self.done.called:
            self.done.callback(self.received)
            assert self.transport is not None
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.errback(reason)


async def _exchange(reactor: Any, server_opts: Any, client_opts: Any) -> tuple[bytes, list[str]]:
    factory = protocol.Factory.forProtocol(_Server)
    factory.peers = []  # type: ignore[attr-defined]
    port = await SSL4ServerEndpoint(reactor, 0, server_opts, interface="127.0.0.1").listen(factory)
    try:
        client = _Client()
        endpoint = wrapClientTLS(
            client_opts, TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        )
        await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        data = await client.done.addTimeout(10, reactor)
        return data, factory.peers  # type: ignore[attr-defined]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_mutual_tls_handshake_on_loopback(reactor: Any, made: tuple[Path, Path]) -> None:
    """A server requiring client certificates and a client verifying ``localhost``, both
    built from the pki init files, complete a handshake and exchange data; the server
    sees the gateway's certificate."""
    pki_dir = made[0]
    server = pki.server_tls_options(pki_dir)
    client = pki.client_tls_options(
        pki_dir / paths.CA_CERT,
        pki_dir / paths.CLIENT_CERT,
        pki_dir / paths.CLIENT_KEY,
        "localhost",
    )
    data, peers = await _exchange(reactor, server, client)
    assert data == b"pong"
    assert peers == ["MO0380100 gateway"]


@pytest_twisted.ensureDeferred
async def test_handshake_refused_without_client_certificate(
    reactor: Any, made: tuple[Path, Path]
) -> None:
    """A client that presents no certificate never gets an answer from the server."""
    pki_dir = made[0]
    client = pki.client_tls_options(pki_dir / paths.CA_CERT, None, None, "localhost")
    with pytest.raises(Exception) as info:
        await _exchange(reactor, pki.server_tls_options(pki_dir), client)
    assert "pong" not in str(info.value)


@pytest_twisted.ensureDeferred
async def test_handshake_refused_for_the_wrong_server_name(
    reactor: Any, made: tuple[Path, Path]
) -> None:
    """The client verifies the server name: a certificate for localhost does not pass as
    another host."""
    pki_dir = made[0]
    client = pki.client_tls_options(
        pki_dir / paths.CA_CERT,
        pki_dir / paths.CLIENT_CERT,
        pki_dir / paths.CLIENT_KEY,
        "national.example",
    )
    with pytest.raises(Exception):  # noqa: B017 - an SSL error wrapped by Twisted
        await _exchange(reactor, pki.server_tls_options(pki_dir), client)


@pytest_twisted.ensureDeferred
async def test_handshake_refused_for_a_foreign_ca(
    reactor: Any, made: tuple[Path, Path], tmp_path: Path
) -> None:
    """A client certificate from another CA is refused by the server."""
    other = tmp_path / "other"
    init_pki(other, tmp_path / "keys")
    client = pki.client_tls_options(
        made[0] / paths.CA_CERT, other / paths.CLIENT_CERT, other / paths.CLIENT_KEY, "localhost"
    )
    with pytest.raises(Exception):  # noqa: B017
        await _exchange(reactor, pki.server_tls_options(made[0]), client)
