"""A local Pebble (Let's Encrypt's test CA) with External Account Binding required, and
pebble-challtestsrv as its DNS server answering 127.0.0.1 for every name (or, for the DNS-01
scenario, a DNS server of the caller's: a real named, see bind.py).

Pebble ships without configuration or TLS certificate, so this makes both: a throwaway CA
and a `localhost`/`127.0.0.1` server certificate for Pebble's HTTPS listener (the clients
trust the CA, as Pebble's notes require), and a JSON config. The knobs that make runs
comparable are always set: no random validation delay, no rejected nonces, no reuse of
authorizations (each order validates every name, for every tool alike).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DETERMINISTIC_ENV = {
    "PEBBLE_VA_NOSLEEP": "1",
    "PEBBLE_WFE_NONCEREJECT": "0",
    "PEBBLE_AUTHZREUSE": "0",
}

# Certificates live 90 days, as Let's Encrypt's do: nowhere near due for certbot (30 days
# before expiry), lego (`--days 30`) or certkeeper (a third of the lifetime).
VALIDITY_SECONDS = 90 * 86_400

EAB_KID = "bench-kid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
            time.sleep(0.05)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def sign_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    names: list[str],
    ips: list[str] | None = None,
    not_before: datetime.datetime | None = None,
    lifetime: datetime.timedelta = datetime.timedelta(days=30),
) -> x509.Certificate:
    import ipaddress

    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips or []]
    return (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Pebble:
    """A running Pebble and challtestsrv; stop() ends both."""

    dir: Path
    acme_port: int
    mgmt_port: int
    http01_port: int
    tls_ca_file: Path
    eab_kid: str
    eab_hmac: str  # base64url without padding, as Pebble requires
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def directory_url(self) -> str:
        return f"https://localhost:{self.acme_port}/dir"

    def directory_via(self, port: int) -> str:
        """The directory URL through a proxy listening on `port` (Pebble builds its URLs from
        the Host header, so everything after the directory goes through the proxy too)."""
        return f"https://localhost:{port}/dir"

    @property
    def log_file(self) -> Path:
        return self.dir / "pebble.log"

    @classmethod
    def start(cls, workdir: Path, extra_env: dict[str, str] | None = None,
              dns_server: str | None = None) -> "Pebble":
        """Pebble and, unless `dns_server` ("127.0.0.1:PORT") is given, pebble-challtestsrv as
        the DNS server Pebble resolves names and reads TXT records from."""
        workdir.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = make_ca("certkeeper bench Pebble TLS CA")
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = sign_leaf(ca_key, ca_cert, server_key, ["localhost"], ["127.0.0.1"])
        tls_ca_file = workdir / "tls-ca.pem"
        tls_ca_file.write_bytes(pem_cert(ca_cert))
        (workdir / "tls-cert.pem").write_bytes(pem_cert(server_cert))
        (workdir / "tls-key.pem").write_bytes(pem_key(server_key))

        hmac = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        hmac_file = workdir / "eab.hmac"
        hmac_file.write_text(hmac)
        hmac_file.chmod(0o600)

        acme, mgmt, http01, tls, dns, cts = (free_port() for _ in range(6))
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{acme}",
                "managementListenAddress": f"127.0.0.1:{mgmt}",
                "certificate": str(workdir / "tls-cert.pem"),
                "privateKey": str(workdir / "tls-key.pem"),
                "httpPort": http01,
                "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": True,
                "externalAccountMACKeys": {EAB_KID: hmac},
                "certificateValidityPeriod": VALIDITY_SECONDS,
            }
        }
        (workdir / "pebble.json").write_text(json.dumps(config, indent=2))
        env = dict(os.environ, **DETERMINISTIC_ENV, **(extra_env or {}))
        pebble = cls(
            dir=workdir, acme_port=acme, mgmt_port=mgmt, http01_port=http01,
            tls_ca_file=tls_ca_file, eab_kid=EAB_KID, eab_hmac=hmac,
            env={k: env[k] for k in DETERMINISTIC_ENV | (extra_env or {})},
        )
        if dns_server is None:
            log = open(workdir / "challtestsrv.log", "wb")
            pebble.procs.append(subprocess.Popen(
                ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                 "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                 "-management", f"127.0.0.1:{cts}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
            ))
        log = open(workdir / "pebble.log", "wb")
        pebble.procs.append(subprocess.Popen(
            ["pebble", "-config", str(workdir / "pebble.json"),
             "-dnsserver", dns_server or f"127.0.0.1:{dns}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env,
        ))
        for port in ((cts,) if dns_server is None else ()) + (acme, mgmt):
            wait_for_port(port)
        return pebble

    @property
    def hmac_file(self) -> Path:
        return self.dir / "eab.hmac"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
