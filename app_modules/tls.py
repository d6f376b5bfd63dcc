"""https for the web UI: the operator's certificate, or a self-signed one made once and kept.

Browsers give a page the microphone only over https or on localhost, so a phone on the same network
needs TLS to talk. Without ``server.ssl_certfile``/``ssl_keyfile`` a self-signed certificate for
this machine's names and addresses is made in ``~/.cache/talker/tls`` (``XDG_CACHE_HOME``) and reused;
each browser asks once whether to trust it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from app_modules.config import Settings
from app_modules.errors import TalkerError


def certificate(settings: Settings) -> tuple[str, str]:
    """(certfile, keyfile) to serve with: the operator's, checked to exist, or the self-signed pair."""
    s = settings.server
    if s.ssl_certfile:
        for p in (s.ssl_certfile, s.ssl_keyfile):
            if not Path(p).expanduser().is_file():
                raise TalkerError(f"server.https: the certificate file {p} does not exist")
        return str(Path(s.ssl_certfile).expanduser()), str(Path(s.ssl_keyfile).expanduser())
    return self_signed(cache_dir(), names(s.host))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "talker" / "tls"


def names(host: str = "") -> list[str]:
    """The names and addresses browsers may use for this machine: localhost, its host name, its IPs."""
    out = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    try:
        out += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
    except OSError:
        pass
    try:  # the address of the interface the default route uses (no packet is sent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            out.append(probe.getsockname()[0])
    except OSError:
        pass
    if host and host not in ("0.0.0.0", "::"):
        out.append(host)
    return list(dict.fromkeys(n for n in out if n))


def self_signed(folder: Path, hosts: list[str]) -> tuple[str, str]:
    """A certificate for ``hosts`` in ``folder`` (made again when a host is missing from it)."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.is_file() and key_path.is_file() and set(hosts) <= set(_covered(cert_path)):
        return str(cert_path), str(key_path)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Talker (self-signed)")])
    alt: list[x509.GeneralName] = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h.split("%")[0])))
        except ValueError:
            alt.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def _covered(cert_path: Path) -> list[str]:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=7):
            return []
    except (ValueError, x509.ExtensionNotFound, OSError):
        return []
    return [str(v) for v in alt.get_values_for_type(x509.IPAddress)] + alt.get_values_for_type(x509.DNSName)
