"""The test operator's certificates: a test CA made in the test, a server certificate
and client certificates from that CA and from another one."""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path  # the test CA (trusted by both daemons for client certificates)
    server_cert: Path
    server_key: Path
    client_cert: Path  # signed by the test CA
    client_key: Path
    foreign_ca: Path  # another CA: trusted by nobody
    foreign_cert: Path  # a client certificate signed by the other CA
    foreign_key: Path
    dh: Path


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, *certificates: x509.Certificate) -> None:
    path.write_bytes(
        b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)
    )


def make_pki(directory: Path) -> Pki:
    """A test CA with a server certificate for localhost (not 127.0.0.1) and a client
    certificate (ORG AUTH_CLI-like), and another CA with a client certificate of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, foreign_ca_key = _key(), _key()
    ca_name = _name("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS", "RELAIS TEST - NOT ANS")
    foreign_name = _name("AUTRE AC DE TEST", "AUTRE AUTORITE - TEST")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    foreign_ca = _certificate(foreign_name, foreign_ca_key, foreign_name, foreign_ca_key, ca=True)
    server_key, client_key, foreign_key = _key(), _key(), _key()
    server = _certificate(
        _name("mx.mssante.test", "RELAIS TEST - NOT ANS"),
        server_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[
            x509.DNSName("mx.mssante.test"),
            x509.DNSName("localhost"),
            # Not 127.0.0.1: a client connecting by that address must refuse the server.
        ],
    )
    client = _certificate(
        _name("ARCHIVEUR RELAIS TEST", "CLINIQUE DE TEST"),
        client_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    foreign = _certificate(
        _name("ARCHIVEUR RELAIS TEST", "CLINIQUE DE TEST"),
        foreign_key,
        foreign_name,
        foreign_ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    pki = Pki(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        foreign_ca=directory / "foreign-ca.crt",
        foreign_cert=directory / "foreign-client.crt",
        foreign_key=directory / "foreign-client.key",
        dh=directory / "dh.pem",
    )
    _write_cert(pki.ca, ca)
    _write_cert(pki.foreign_ca, foreign_ca)
    _write_cert(pki.server_cert, server, ca)
    _write_cert(pki.client_cert, client)
    _write_cert(pki.foreign_cert, foreign)
    _write_key(pki.server_key, server_key)
    _write_key(pki.client_key, client_key)
    _write_key(pki.foreign_key, foreign_key)
    # RFC 7919's ffdhe2048 group (named, so nothing is generated); Dovecot wants ssl_dh.
    with pki.dh.open("wb") as dh:
        subprocess.run(
            ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
            check=True,
            stdout=dh,
        )
    return pki
