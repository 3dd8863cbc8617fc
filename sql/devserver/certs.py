"""Certificates for the dev server and its tests: a CA, a server certificate it signs, and the
broken variants a client must refuse.

``python -m sql.devserver.certs --out DIR [--host NAME ...]`` writes ``ca.pem`` (what a client
trusts), ``server.pem`` and ``server-key.pem`` (what ``python -m sql.devserver --tls-cert
--tls-key`` serves), for ``localhost`` and ``127.0.0.1`` unless hosts are given.  The CA's key
is not written (``--keep-ca-key`` writes ``ca-key.pem``): a dev CA key left on disk would let
anything that reads the directory mint certificates the export API trusts.

Keys are EC P-256: generated in well under a millisecond (an RSA-2048 key takes ~50-100 ms, a
test run makes dozens), small, and accepted by every TLS 1.2/1.3 stack a SQL Server client
uses (OpenSSL for Python and pyOpenSSL, GnuTLS for FreeTDS, Go, Node, SChannel).

The certificates follow what strict verifiers check (Python 3.13's VERIFY_X509_STRICT,
browsers' rules): the CA has critical basicConstraints CA:TRUE and keyUsage keyCertSign; the
server certificate has basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
serverAuth, subjectAltName (DNS names and IP addresses; the first host is also the subject's
CN, which pytds compares first), and subject/authority key identifiers.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
# The dev stack writes fresh certificates at every start, so a year only has to outlast one
# long-running stack; a file left behind still expires rather than stay trusted for ever.
VALIDITY = datetime.timedelta(days=365)
# Certificates start this far in the past, so a clock a little behind (a container, a VM just
# resumed) does not see them as not yet valid.
BACKDATE = datetime.timedelta(hours=1)
CA_NAME = "xlsx-stream-export dev CA"
# File names written by write_dev_certificates (and the CLI).
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
# Private keys are readable by their owner only.
KEY_MODE = 0o600


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def new_authority(
    name: str = CA_NAME,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A self-signed CA that may sign server certificates (and no other CA: pathlen 0)."""
    start = not_before if not_before is not None else _now() - BACKDATE
    end = not_after if not_after is not None else start + VALIDITY
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue_server_certificate(
    issuer: Issued | None,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A TLS server certificate for ``hosts`` (DNS names or IP addresses; the first is also the
    CN), signed by ``issuer`` or, with None, by its own key (self-signed)."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name")
    start = not_before if not_before is not None else _now() - BACKDATE
    end = not_after if not_after is not None else start + VALIDITY
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    subject = _name(hosts[0])
    signer_key = key if issuer is None else issuer.key
    signer_public = public if issuer is None else issuer.key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public), critical=False
        )
        .sign(signer_key, hashes.SHA256())
    )
    return Issued(key, cert)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    if private:
        # Created with the owner-only mode, never readable by others even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, KEY_MODE)  # an existing file keeps its mode through O_TRUNC
    else:
        path.write_bytes(data)


def write_pair(issued: Issued, cert_path: Path, key_path: Path) -> None:
    """Write a certificate and its key (the key owner-readable only)."""
    _write(cert_path, issued.cert_pem())
    _write(key_path, issued.key_pem(), private=True)


@dataclass(frozen=True)
class DevCertificates:
    """Where :func:`write_dev_certificates` wrote the files."""

    ca: Path  # ca.pem: what a client trusts
    server_cert: Path  # server.pem
    server_key: Path  # server-key.pem
    ca_key: Path | None = None  # ca-key.pem, only when asked for


def write_dev_certificates(
    out: str | os.PathLike[str],
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    keep_ca_key: bool = False,
) -> DevCertificates:
    """A new CA and a server certificate for ``hosts`` signed by it, written to ``out``
    (created if missing): ``ca.pem``, ``server.pem``, ``server-key.pem`` (and ``ca-key.pem``
    with ``keep_ca_key``).  Existing files are replaced."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_authority()
    server = issue_server_certificate(ca, hosts)
    paths = DevCertificates(
        ca=directory / CA_FILE,
        server_cert=directory / SERVER_FILE,
        server_key=directory / SERVER_KEY_FILE,
        ca_key=directory / CA_KEY_FILE if keep_ca_key else None,
    )
    _write(paths.ca, ca.cert_pem())
    write_pair(server, paths.server_cert, paths.server_key)
    if paths.ca_key is not None:
        _write(paths.ca_key, ca.key_pem(), private=True)
    return paths


@dataclass(frozen=True)
class CertificateVariants:
    """The dev certificates and, each as (certificate, key) files, server certificates a
    client that trusts ``ca`` must refuse."""

    ca: Path
    server: tuple[Path, Path]  # valid for the hosts, signed by ca
    expired: tuple[Path, Path]  # signed by ca, for the hosts, expired yesterday
    wrong_host: tuple[Path, Path]  # signed by ca, valid, for another host only
    unknown_ca: tuple[Path, Path]  # valid, for the hosts, signed by a CA nobody trusts
    self_signed: tuple[Path, Path]  # valid, for the hosts, signed by its own key


WRONG_HOST = "not-this-host.invalid"  # .invalid: a name that can never resolve (RFC 2606)


def write_test_certificates(
    out: str | os.PathLike[str], hosts: Sequence[str] = DEFAULT_HOSTS
) -> CertificateVariants:
    """:func:`write_dev_certificates`'s three files plus the variants of
    :class:`CertificateVariants`, as ``expired.pem`` / ``expired-key.pem``, ``wrong-host.pem``,
    ``unknown-ca.pem`` and ``self-signed.pem`` (each with its ``-key.pem``)."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_authority()
    _write(directory / CA_FILE, ca.cert_pem())
    now = _now()
    variants = {
        "server": issue_server_certificate(ca, hosts),
        "expired": issue_server_certificate(
            ca,
            hosts,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
        "wrong-host": issue_server_certificate(ca, (WRONG_HOST,)),
        "unknown-ca": issue_server_certificate(new_authority("an unknown CA"), hosts),
        "self-signed": issue_server_certificate(None, hosts),
    }
    paths: dict[str, tuple[Path, Path]] = {}
    for stem, issued in variants.items():
        pair = (directory / f"{stem}.pem", directory / f"{stem}-key.pem")
        write_pair(issued, *pair)
        paths[stem] = pair
    return CertificateVariants(
        ca=directory / CA_FILE,
        server=paths["server"],
        expired=paths["expired"],
        wrong_host=paths["wrong-host"],
        unknown_ca=paths["unknown-ca"],
        self_signed=paths["self-signed"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sql.devserver.certs",
        description="Write a dev CA (ca.pem) and a server certificate it signs (server.pem, "
        "server-key.pem) for the TDS dev server.",
    )
    parser.add_argument("--out", required=True, help="directory to write to (created if missing)")
    parser.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="NAME",
        help="a DNS name or IP address the certificate is for (repeat for more; the first is "
        f"also the CN; default: {' '.join(DEFAULT_HOSTS)})",
    )
    parser.add_argument(
        "--keep-ca-key", action="store_true", help="also write the CA's key (ca-key.pem)"
    )
    args = parser.parse_args(argv)
    try:
        paths = write_dev_certificates(
            args.out, tuple(args.hosts or DEFAULT_HOSTS), keep_ca_key=args.keep_ca_key
        )
    except OSError as exc:
        print(f"cannot write the certificates: {exc}", file=sys.stderr)
        return 1
    written = [paths.ca, paths.server_cert, paths.server_key]
    if paths.ca_key is not None:
        written.append(paths.ca_key)
    print(" ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
