#!/usr/bin/env python3
"""acme2certifier for certkeeper's end-to-end tests (driven by tests/support/a2c.rs).

`serve` makes everything one acme2certifier needs in a directory (an issuing CA with a
subjectKeyIdentifier, a TLS CA and a localhost server certificate, the EAB key file, the
ini file), then serves the WSGI app over HTTPS on 127.0.0.1 with a port the kernel picks,
and writes ready.json once it listens. `sql` runs one statement on the sqlite database, so
a test can read or move what the CA knows without a sqlite3 binary.

Why the patches: acme2certifier 0.46.3 resolves HTTP-01 names with dnspython (not
/etc/hosts) and fetches http://IP:80/ (port hard-coded). Tests have no DNS for their names
and certkeeper's responder listens on a free port, so every name resolves to 127.0.0.1 and
every fetch goes to 127.0.0.1:<http01 port> with the name in the Host header. The patches
are installed before the WSGI module is imported and then swept through every loaded
acme2certifier module, so no early `from ... import` keeps the originals.

What the tests observe: every newOrder payload (decoded JWS payload, one JSON object per
line in new-orders.jsonl, written before acme2certifier sees the request) and every
renewalInfo GET (its path, one per line in renewal-info.log).
"""

import argparse
import base64
import datetime
import faulthandler
import io
import json
import os
import signal
import socketserver
import sqlite3
import ssl
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

NEW_ORDER_PATH = "/acme/neworders"
RENEWAL_INFO_PATH = "/acme/renewal-info"


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_atomically(path, data, mode=0o644):
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf8") as file:
        file.write(data)
    os.replace(tmp, path)


# --- key material -------------------------------------------------------------------------


def make_material(directory):
    """Issuing CA, TLS CA and TLS server certificate (all EC P-256), as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def key_pem(key):
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def ca(common_name):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(
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
                True,
            )
            # Without it issued certificates carry no authorityKeyIdentifier, and no ARI
            # certID (AKI + serial) can be computed for them.
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    issuing_key, issuing_cert = ca("certkeeper test acme2certifier issuing CA")
    tls_ca_key, tls_ca_cert = ca("certkeeper test acme2certifier TLS CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(tls_ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .sign(tls_ca_key, hashes.SHA256())
    )

    def cert_pem(cert):
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    files = {
        "issuing-ca-key.pem": (key_pem(issuing_key), 0o600),
        "issuing-ca.pem": (cert_pem(issuing_cert), 0o644),
        "tls-ca.pem": (cert_pem(tls_ca_cert), 0o644),
        "tls-cert.pem": (cert_pem(server_cert), 0o644),
        "tls-key.pem": (key_pem(server_key), 0o600),
    }
    for name, (text, mode) in files.items():
        write_atomically(os.path.join(directory, name), text, mode)


def write_config(args):
    """The acme_srv.cfg for this instance; returns its path."""
    d = args.dir
    os.makedirs(os.path.join(d, "certs"), exist_ok=True)
    write_atomically(
        os.path.join(d, "eab.csv"), f"eab_kid,eab_mac\n{args.eab_kid},{args.eab_mac}\n", 0o600
    )
    profiles = ""
    if args.profiles:
        # Any URL will do: the openssl handler issues the same certificate for every profile.
        profiles = "profiles: " + json.dumps(
            {
                "classic": "https://example.test/profiles/classic",
                "shortlived": "https://example.test/profiles/shortlived",
                "tlsserver": "https://example.test/profiles/tlsserver",
            }
        )
    text = f"""[DEFAULT]
debug: False

[Nonce]
nonce_check_disable: False

[CAhandler]
handler_module: acme2certifier.cahandlers.openssl_ca_handler
issuing_ca_key: {d}/issuing-ca-key.pem
issuing_ca_cert: {d}/issuing-ca.pem
issuing_ca_crl: {d}/issuing-ca.crl
cert_save_path: {d}/certs
ca_cert_chain_list: {json.dumps([f"{d}/issuing-ca.pem"])}
cert_validity_days: {args.validity_days}

[DBhandler]
handler_module: acme2certifier.dbhandlers.wsgi_handler
dbfile: {d}/a2c.db

[EABhandler]
eab_handler_module: acme2certifier.eabhandlers.file_handler
key_file: {d}/eab.csv

[Certificate]
revocation_reason_check_disable: False
cert_reusage_timeframe: 0

[Challenge]
challenge_validation_disable: False
challenge_validation_timeout: 10

[Order]
tnauthlist_support: False
{profiles}

[Renewalinfo]
renewalthreshold_pctg: {args.threshold_pct}
retry_after_timeout: {args.retry_after}
"""
    path = os.path.join(d, "acme_srv.cfg")
    write_atomically(path, text)
    return path


# --- HTTP-01 on loopback ------------------------------------------------------------------


def install_loopback_http01(http01_port):
    """Resolve every name to 127.0.0.1; fetch HTTP-01 tokens from 127.0.0.1:<http01_port>."""
    import requests
    from acme2certifier.acme_srv import helper
    from acme2certifier.acme_srv.helpers import network

    originals = {
        "fqdn_resolve": network.fqdn_resolve,
        "url_get_dns_pinned": network.url_get_dns_pinned,
    }

    def fqdn_resolve(logger, host, dnssrv=None, catch_all=False):
        logger.info("test launcher: %s resolves to 127.0.0.1", host)
        return (["127.0.0.1"] if catch_all else "127.0.0.1", False, None)

    def url_get_dns_pinned(logger, host, path, pinned_ips, verify=True, timeout=20):
        if not path.startswith("/"):
            path = f"/{path}"
        url = f"http://127.0.0.1:{http01_port}{path}"
        logger.info("test launcher: HTTP-01 fetch %s (Host: %s)", url, host)
        session = requests.Session()
        session.trust_env = False  # never through an http_proxy from the environment
        try:
            response = session.get(
                url,
                headers={"Host": host, "Connection": "close"},
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as err:
            return None, 500, f"Could not fetch {url}: {err}"
        finally:
            session.close()
        error = None if response.status_code == 200 else f"{url} {response.reason}"
        return response.text, response.status_code, error

    replacements = {
        "fqdn_resolve": fqdn_resolve,
        "url_get_dns_pinned": url_get_dns_pinned,
    }

    def sweep():
        for name, module in list(sys.modules.items()):
            if not name.startswith("acme2certifier") or module is None:
                continue
            for attr, original in originals.items():
                if getattr(module, attr, None) is original:
                    setattr(module, attr, replacements[attr])

    for attr, replacement in replacements.items():
        setattr(network, attr, replacement)
        setattr(helper, attr, replacement)
    sweep()
    return sweep


# --- recording ----------------------------------------------------------------------------


class Recorder:
    def __init__(self, directory):
        self.lock = threading.Lock()
        # acme2certifier races with itself on concurrent renewalInfo GETs: each adds the same
        # housekeeping row, the loser's INSERT fails (UNIQUE constraint) and its sqlite
        # connection is left in a write transaction, so every later write to the database (the
        # `sql` command's too) fails with "database is locked". They are served one at a time.
        self.renewal_info_lock = threading.Lock()
        self.new_orders = os.path.join(directory, "new-orders.jsonl")
        self.renewal_info = os.path.join(directory, "renewal-info.log")
        for path in (self.new_orders, self.renewal_info):
            open(path, "w", encoding="utf8").close()

    def append(self, path, line):
        with self.lock, open(path, "a", encoding="utf8") as file:
            file.write(line + "\n")
            file.flush()

    def wrap(self, app):
        def recording_app(environ, start_response):
            # Served over TLS: acme2certifier builds its URLs from the scheme and Host header.
            environ["wsgi.url_scheme"] = "https"
            environ["HTTPS"] = "on"
            path = environ.get("PATH_INFO") or ""
            method = environ.get("REQUEST_METHOD")
            if method == "POST" and path.rstrip("/") == NEW_ORDER_PATH:
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = 0
                body = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(body)
                try:
                    payload = json.loads(b64url_decode(json.loads(body)["payload"]))
                except Exception as err:  # record what could not be read, too
                    payload = {"undecodable": repr(err)}
                self.append(self.new_orders, json.dumps(payload, sort_keys=True))
            elif method == "GET" and path.startswith(RENEWAL_INFO_PATH):
                self.append(self.renewal_info, path)
                with self.renewal_info_lock:
                    return app(environ, start_response)
            return app(environ, start_response)

        return recording_app


# --- HTTPS server -------------------------------------------------------------------------


class QuietHandler(WSGIRequestHandler):
    def address_string(self):
        return self.client_address[0]

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write(
            f"{datetime.datetime.now().isoformat(timespec='milliseconds')} "
            f"{format % args}\n"
        )


def make_server(app, tls):
    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

        def get_request(self):
            sock, address = self.socket.accept()
            # The handshake runs in the request's thread: a client that connects and says
            # nothing (a port probe) cannot stall the accept loop.
            return tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

        def finish_request(self, request, client_address):
            request.settimeout(60)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
            super().finish_request(request, client_address)

        def handle_error(self, request, client_address):
            # Clients that hang up (the fault proxy resets on purpose) are not server errors.
            exc = sys.exc_info()[1]
            if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
                return
            super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), QuietHandler)
    server.set_app(app)
    return server


def serve(args):
    # SIGUSR1 writes every thread's stack to stderr (a2c.log): what a stuck server is doing.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    os.makedirs(args.dir, exist_ok=True)
    make_material(args.dir)
    os.environ["ACME_SRV_CONFIGFILE"] = write_config(args)
    sweep = install_loopback_http01(args.http01_port)
    # Import only now: the module reads the config and boots the stack at import time.
    from acme2certifier.share import acme2certifier_wsgi  # pylint: disable=import-outside-toplevel

    sweep()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(
        os.path.join(args.dir, "tls-cert.pem"), os.path.join(args.dir, "tls-key.pem")
    )
    tls.set_alpn_protocols(["http/1.1"])
    server = make_server(Recorder(args.dir).wrap(acme2certifier_wsgi.application), tls)
    port = server.server_address[1]
    write_atomically(
        os.path.join(args.dir, "ready.json"),
        json.dumps({"port": port, "pid": os.getpid()}),
    )
    sys.stderr.write(f"acme2certifier test launcher listening on 127.0.0.1:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


def sql(args):
    """Run one statement; print {"rows": [...], "rowcount": n} as JSON."""
    connection = sqlite3.connect(args.db, timeout=30)
    try:
        cursor = connection.execute(args.statement, args.params)
        rows = [list(row) for row in cursor.fetchall()]
        connection.commit()
        print(json.dumps({"rows": rows, "rowcount": cursor.rowcount}))
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve")
    run.add_argument("--dir", required=True)
    run.add_argument("--http01-port", type=int, required=True)
    run.add_argument("--validity-days", type=int, default=90)
    run.add_argument("--threshold-pct", type=float, default=85.0)
    run.add_argument("--retry-after", type=int, default=86400)
    run.add_argument("--profiles", action="store_true")
    run.add_argument("--eab-kid", required=True)
    run.add_argument("--eab-mac", required=True)
    query = commands.add_parser("sql")
    query.add_argument("db")
    query.add_argument("statement")
    query.add_argument("params", nargs="*")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    else:
        sql(args)


if __name__ == "__main__":
    main()
