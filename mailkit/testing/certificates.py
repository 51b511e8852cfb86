"""Throwaway TLS certificates for tests: a test CA, issued and self-signed certificates.

Keys are EC P-256. The certificates carry the extensions that strict X.509
verification requires (basic constraints, key usage, subject and authority key
identifiers), so clients that use ``ssl.create_default_context()`` accept them
once they trust the test CA.

Certificates are made with the ``cryptography`` package when it is installed,
else with the ``openssl`` command-line tool. Everything is kept in memory as PEM.
Files are written only briefly to load a server context, or when a caller asks
for a CA file.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "CertificateAuthority",
    "ServerCertificate",
    "TestCertificates",
    "make_self_signed_certificate",
    "make_test_certificates",
]

Backend = Literal["cryptography", "openssl"]

DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1")
#: Host name in the certificate that :func:`make_test_certificates` makes for the
#: host name mismatch case. The .invalid top-level domain never resolves (RFC 2606).
WRONG_HOSTNAME = "wrong-host.invalid"
_OPENSSL_TIMEOUT = 30.0
#: openssl arguments for a new unencrypted P-256 key.
_OPENSSL_NEW_KEY = (
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
)


@dataclass(frozen=True)
class ServerCertificate:
    """Server certificate and key in PEM, with the certificate a client must trust."""

    certificate_pem: bytes = field(repr=False)
    private_key_pem: bytes = field(repr=False)
    #: The issuing CA's certificate, or the certificate itself when self-signed.
    trust_anchor_pem: bytes = field(repr=False)
    hostnames: tuple[str, ...]

    def server_context(self) -> ssl.SSLContext:
        """Create a server-side SSL context that presents this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # load_cert_chain reads only files, so the PEM goes through a private
        # temporary directory that is removed right after loading.
        with tempfile.TemporaryDirectory(prefix="mailkit-cert-") as directory:
            certificate_file = Path(directory, "server.pem")
            key_file = Path(directory, "server.key")
            certificate_file.write_bytes(self.certificate_pem)
            _write_private(key_file, self.private_key_pem)
            context.load_cert_chain(certificate_file, key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Create a client SSL context that trusts only this certificate's trust anchor.

        It verifies the chain and the host name like ``ssl.create_default_context()``.
        """
        return ssl.create_default_context(cadata=self.trust_anchor_pem.decode("ascii"))

    def write_trust_anchor(self, path: str | os.PathLike[str]) -> Path:
        """Write the trust anchor to ``path`` as PEM and return the path.

        Use it as a ``cafile`` for clients that take a file name.
        """
        target = Path(path)
        target.write_bytes(self.trust_anchor_pem)
        return target


@dataclass(frozen=True)
class CertificateAuthority:
    """Test certificate authority that issues server certificates."""

    certificate_pem: bytes = field(repr=False)
    private_key_pem: bytes = field(repr=False)
    common_name: str
    backend: Backend

    @classmethod
    def create(
        cls,
        common_name: str = "mailkit test CA",
        *,
        days: int = 7,
        backend: Backend | None = None,
    ) -> CertificateAuthority:
        """Create a CA with a new key, valid from one hour ago for ``days`` days."""
        _validate_common_name(common_name)
        chosen = backend or _default_backend()
        if chosen == "cryptography":
            certificate_pem, key_pem = _cryptography_ca(common_name, days)
        else:
            certificate_pem, key_pem = _openssl_ca(common_name, days)
        return cls(certificate_pem, key_pem, common_name, chosen)

    def issue(
        self,
        hostnames: tuple[str, ...] | list[str] = DEFAULT_HOSTNAMES,
        *,
        days: int = 7,
    ) -> ServerCertificate:
        """Issue a server certificate for ``hostnames`` (DNS names or IP addresses).

        The first host name is also the subject common name.
        """
        names = _validate_hostnames(hostnames)
        if self.backend == "cryptography":
            certificate_pem, key_pem = _cryptography_leaf(names, days, self)
        else:
            certificate_pem, key_pem = _openssl_leaf(names, days, self)
        return ServerCertificate(certificate_pem, key_pem, self.certificate_pem, names)

    def client_context(self) -> ssl.SSLContext:
        """Create a client context that trusts only this CA and checks host names."""
        return ssl.create_default_context(cadata=self.certificate_pem.decode("ascii"))

    def write_certificate(self, path: str | os.PathLike[str]) -> Path:
        """Write the CA certificate to ``path`` as PEM and return the path."""
        target = Path(path)
        target.write_bytes(self.certificate_pem)
        return target


@dataclass(frozen=True)
class TestCertificates:
    """A test CA and the server certificates that TLS tests usually need."""

    __test__ = False  # Tells pytest that this is not a test class.

    authority: CertificateAuthority
    #: Issued by ``authority`` for localhost and 127.0.0.1.
    server: ServerCertificate
    #: Self-signed for localhost and 127.0.0.1, so a client that trusts only
    #: ``authority`` rejects it.
    self_signed: ServerCertificate
    #: Issued by ``authority`` for :data:`WRONG_HOSTNAME`, so host name checks fail.
    wrong_host: ServerCertificate


def make_self_signed_certificate(
    hostnames: tuple[str, ...] | list[str] = DEFAULT_HOSTNAMES,
    *,
    days: int = 7,
    backend: Backend | None = None,
) -> ServerCertificate:
    """Make a self-signed server certificate for ``hostnames``.

    The certificate is its own trust anchor, so its ``client_context()`` accepts it.
    """
    names = _validate_hostnames(hostnames)
    chosen = backend or _default_backend()
    if chosen == "cryptography":
        certificate_pem, key_pem = _cryptography_leaf(names, days, None)
    else:
        certificate_pem, key_pem = _openssl_leaf(names, days, None)
    return ServerCertificate(certificate_pem, key_pem, certificate_pem, names)


def make_test_certificates(
    *, days: int = 7, backend: Backend | None = None
) -> TestCertificates:
    """Make a test CA plus valid, self-signed and wrong-host server certificates."""
    authority = CertificateAuthority.create(days=days, backend=backend)
    return TestCertificates(
        authority=authority,
        server=authority.issue(DEFAULT_HOSTNAMES, days=days),
        self_signed=make_self_signed_certificate(
            DEFAULT_HOSTNAMES, days=days, backend=authority.backend
        ),
        wrong_host=authority.issue((WRONG_HOSTNAME,), days=days),
    )


def _default_backend() -> Backend:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        pass
    else:
        return "cryptography"
    if shutil.which("openssl"):
        return "openssl"
    raise RuntimeError(
        "Cannot make test certificates: the cryptography package is not installed "
        "and no openssl command is on PATH. Install one of them "
        "(pip install cryptography)."
    )


def _validate_common_name(common_name: str) -> None:
    # "/" and "=" would change the meaning of an openssl -subj argument.
    if not common_name or any(character in common_name for character in "/=\r\n"):
        raise ValueError(
            f"Invalid common name {common_name!r}: use a non-empty name without "
            "'/', '=' or line breaks."
        )


def _validate_hostnames(hostnames: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    names = tuple(hostnames)
    if not names:
        raise ValueError("Invalid hostnames: give at least one DNS name or IP address.")
    for name in names:
        if _is_ip_address(name):
            continue
        if not name or any(character in name for character in "/=, \r\n\t"):
            raise ValueError(
                f"Invalid host name {name!r} for a certificate: use a DNS name or an "
                "IP address."
            )
    return names


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


# cryptography backend


def _cryptography_ca(common_name: str, days: int) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
            critical=False,
        )
    )
    certificate = builder.sign(key, hashes.SHA256())
    return _cryptography_pem(certificate, key)


def _cryptography_leaf(
    hostnames: tuple[str, ...], days: int, authority: CertificateAuthority | None
) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    if authority is None:
        issuer_name = subject
        issuer_key = key
    else:
        issuer_certificate = x509.load_pem_x509_certificate(authority.certificate_pem)
        issuer_name = issuer_certificate.subject
        issuer_key = serialization.load_pem_private_key(
            authority.private_key_pem, password=None
        )
    alternative_names: list[x509.GeneralName] = []
    for hostname in hostnames:
        if _is_ip_address(hostname):
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        else:
            alternative_names.append(x509.DNSName(hostname))
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
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
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    certificate = builder.sign(issuer_key, hashes.SHA256())
    return _cryptography_pem(certificate, key)


def _cryptography_pem(certificate, key) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate_pem, key_pem


# openssl command-line backend

# The configuration is written per call so that the system openssl.cnf, whose
# default extensions vary between distributions, plays no part.
_OPENSSL_CONFIG = """\
[req]
distinguished_name = subject
prompt = no

[subject]
CN = unused

[ca_extensions]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server_extensions]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {subject_alternative_names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def _openssl_ca(common_name: str, days: int) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory(prefix="mailkit-openssl-") as directory:
        folder = Path(directory)
        config = _write_openssl_config(folder, ("localhost",))
        _run_openssl(
            "req", "-x509", "-new", "-config", str(config),
            "-extensions", "ca_extensions",
            *_OPENSSL_NEW_KEY,
            "-keyout", str(folder / "ca.key"),
            "-out", str(folder / "ca.pem"),
            "-days", str(days),
            "-subj", f"/CN={common_name}",
        )  # fmt: skip
        return (folder / "ca.pem").read_bytes(), (folder / "ca.key").read_bytes()


def _openssl_leaf(
    hostnames: tuple[str, ...], days: int, authority: CertificateAuthority | None
) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory(prefix="mailkit-openssl-") as directory:
        folder = Path(directory)
        config = _write_openssl_config(folder, hostnames)
        key_file = folder / "server.key"
        certificate_file = folder / "server.pem"
        subject = f"/CN={hostnames[0]}"
        if authority is None:
            _run_openssl(
                "req", "-x509", "-new", "-config", str(config),
                "-extensions", "server_extensions",
                *_OPENSSL_NEW_KEY,
                "-keyout", str(key_file),
                "-out", str(certificate_file),
                "-days", str(days),
                "-subj", subject,
            )  # fmt: skip
        else:
            request_file = folder / "server.csr"
            ca_certificate = folder / "ca.pem"
            ca_key = folder / "ca.key"
            ca_certificate.write_bytes(authority.certificate_pem)
            _write_private(ca_key, authority.private_key_pem)
            _run_openssl(
                "req", "-new", "-config", str(config),
                *_OPENSSL_NEW_KEY,
                "-keyout", str(key_file),
                "-out", str(request_file),
                "-subj", subject,
            )  # fmt: skip
            _run_openssl(
                "x509", "-req", "-in", str(request_file),
                "-CA", str(ca_certificate), "-CAkey", str(ca_key),
                "-set_serial", str(secrets.randbits(63) | 1),
                "-days", str(days),
                "-extfile", str(config), "-extensions", "server_extensions",
                "-out", str(certificate_file),
            )  # fmt: skip
        return certificate_file.read_bytes(), key_file.read_bytes()


def _write_openssl_config(folder: Path, hostnames: tuple[str, ...]) -> Path:
    entries = []
    for hostname in hostnames:
        prefix = "IP" if _is_ip_address(hostname) else "DNS"
        entries.append(f"{prefix}:{hostname}")
    config = folder / "openssl.cnf"
    config.write_text(
        _OPENSSL_CONFIG.format(subject_alternative_names=", ".join(entries))
    )
    return config


def _run_openssl(*arguments: str) -> None:
    # NOTE: only OpenSSL 3.0 has been run. "-newkey ec -pkeyopt" needs 1.1.1 or later.
    command = ["openssl", *arguments]
    try:
        subprocess.run(
            command, check=True, capture_output=True, timeout=_OPENSSL_TIMEOUT
        )
    except subprocess.CalledProcessError as error:
        output = error.stderr.decode(errors="replace").strip()
        raise RuntimeError(
            f"openssl failed with exit code {error.returncode} while making a test "
            f"certificate: {' '.join(command[:3])} ...: {output}"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(
            f"openssl timed out after {_OPENSSL_TIMEOUT:.0f} s while making a test "
            "certificate."
        ) from error
