"""The three clients, configured the same way against the same Pebble: each trusts Pebble's
HTTPS through its own setting, answers HTTP-01 on the port Pebble validates, registers with
EAB, and asks for one ECDSA P-256 certificate per lineage (the default of all three).

Lineage `cNNNN` is the name `cNNNN.bench.example.com` for every tool.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .pebble import Pebble

EMAIL = "bench@example.com"


def lineage(i: int, prefix: str = "c") -> str:
    return f"{prefix}{i:04d}"


def domain(name: str) -> str:
    return f"{name}.bench.example.com"


@dataclass
class Certbot:
    """certbot with its own config, work and logs directories under `root`."""

    root: Path
    pebble: Pebble

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, REQUESTS_CA_BUNDLE=str(self.pebble.tls_ca_file))

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    def dirs(self) -> list[str]:
        return ["--config-dir", str(self.config_dir), "--work-dir", str(self.root / "work"),
                "--logs-dir", str(self.root / "logs")]

    def certonly(self, name: str) -> list[str]:
        """As DigiCert's CertCentral guide runs it (standalone, EAB, non-interactive), one
        process per certificate."""
        p = self.pebble
        return ["certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos",
                "--email", EMAIL, "--no-eff-email",
                "--server", p.directory_url, "--eab-kid", p.eab_kid, "--eab-hmac-key", p.eab_hmac,
                "--http-01-port", str(p.http01_port), "--http-01-address", "127.0.0.1",
                "--cert-name", name, "--domain", domain(name), *self.dirs()]

    def certonly_dns(self, name: str, credentials: Path) -> list[str]:
        """DNS-01 through certbot-dns-rfc2136, one process per certificate; its propagation
        wait is left at the plugin's default (`--dns-rfc2136-propagation-seconds 60`)."""
        p = self.pebble
        return ["certbot", "certonly", "--authenticator", "dns-rfc2136",
                "--dns-rfc2136-credentials", str(credentials),
                "--non-interactive", "--agree-tos", "--email", EMAIL, "--no-eff-email",
                "--server", p.directory_url, "--eab-kid", p.eab_kid, "--eab-hmac-key", p.eab_hmac,
                "--cert-name", name, "--domain", domain(name), *self.dirs()]

    def renew(self, force: bool = False) -> list[str]:
        # --no-random-sleep-on-renew: without a terminal certbot renew first sleeps a random
        # 1-480 s before renewing anything (a cron job would pay that too; it is not work).
        argv = ["certbot", "renew", "--non-interactive", "--no-random-sleep-on-renew"]
        if force:
            argv.append("--force-renewal")
        return argv + self.dirs()

    def copy_lineage(self, source: str, names: list[str]) -> None:
        """Make lineages `names` as copies of the issued lineage `source` in certbot's layout:
        archive/NAME/*1.pem, live/NAME/*.pem symlinks, renewal/NAME.conf with NAME's paths.
        The certificate inside is `source`'s (certbot's renewal check reads only its dates)."""
        config = self.config_dir
        src_archive = config / "archive" / source
        versions = sorted(src_archive.glob("cert*.pem"))
        latest = re.search(r"(\d+)", versions[-1].name).group(1) if versions else "1"
        conf = (config / "renewal" / f"{source}.conf").read_text()
        for name in names:
            archive = config / "archive" / name
            live = config / "live" / name
            archive.mkdir(parents=True)
            live.mkdir(parents=True)
            for kind in ("cert", "chain", "fullchain", "privkey"):
                shutil.copy2(src_archive / f"{kind}{latest}.pem", archive / f"{kind}1.pem")
                os.symlink(f"../../archive/{name}/{kind}1.pem", live / f"{kind}.pem")
            # The name appears in renewal/NAME.conf only in archive_dir and the live paths.
            text = conf.replace(f"/archive/{source}\n", f"/archive/{name}\n")
            text = text.replace(f"/live/{source}/", f"/live/{name}/")
            (config / "renewal" / f"{name}.conf").write_text(text)


@dataclass
class Lego:
    """lego with its state (accounts/, certificates/) under `root`."""

    root: Path
    pebble: Pebble

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, LEGO_CA_CERTIFICATES=str(self.pebble.tls_ca_file))

    def common(self, name: str) -> list[str]:
        p = self.pebble
        return ["lego", "--accept-tos", "--email", EMAIL, "--server", p.directory_url,
                "--eab", "--kid", p.eab_kid, "--hmac", p.eab_hmac,
                "--http", "--http.port", f":{p.http01_port}",
                "--path", str(self.root), "--domains", domain(name)]

    def run(self, name: str) -> list[str]:
        return self.common(name) + ["run"]

    def run_dns(self, name: str, resolver: str) -> list[str]:
        """DNS-01 through lego's rfc2136 provider (its settings in `dns_env`). lego looks up
        the zone and checks the record through `--dns.resolvers`; `--dns.disable-cp` because
        its complete-propagation check asks every authoritative server on port 53, resolved
        through the system's resolver, and this named is on another port of 127.0.0.1 (with
        the flag, one query to the resolver must succeed before it asks the CA)."""
        p = self.pebble
        return ["lego", "--accept-tos", "--email", EMAIL, "--server", p.directory_url,
                "--eab", "--kid", p.eab_kid, "--hmac", p.eab_hmac,
                "--dns", "rfc2136", "--dns.resolvers", resolver, "--dns.disable-cp",
                "--path", str(self.root), "--domains", domain(name), "run"]

    def dns_env(self, server: str, key_name: str, secret: str, algorithm: str,
                timeout_s: int, interval_s: int) -> dict[str, str]:
        return dict(self.env, RFC2136_NAMESERVER=server, RFC2136_TSIG_KEY=key_name,
                    RFC2136_TSIG_SECRET=secret, RFC2136_TSIG_ALGORITHM=f"{algorithm}.",
                    RFC2136_PROPAGATION_TIMEOUT=str(timeout_s),
                    RFC2136_POLLING_INTERVAL=str(interval_s))

    def renew(self, name: str) -> list[str]:
        # lego renews one certificate (one --domains set) per invocation; --days 30 is its
        # default threshold, spelled out.
        return self.common(name) + ["renew", "--days", "30"]

    def copy_lineage(self, source: str, names: list[str]) -> None:
        """Certificates NAME.{crt,key,issuer.crt,json} copied from `source`'s files."""
        certs = self.root / "certificates"
        src = domain(source)
        for name in names:
            dst = domain(name)
            for suffix in (".crt", ".key", ".issuer.crt"):
                shutil.copy2(certs / f"{src}{suffix}", certs / f"{dst}{suffix}")
            meta = (certs / f"{src}.json").read_text().replace(src, dst)
            (certs / f"{dst}.json").write_text(meta)


@dataclass
class DnsProvider:
    """certkeeper's `[dns.NAME]` table for an RFC 2136 server: everything but the server,
    the key and its secret file left at certkeeper's defaults (zone found by asking the
    server, TTL 60 s, propagation checked at every authoritative server of the zone every 2 s
    for up to 2 minutes), unless `resolvers` is given."""

    server: str  # "127.0.0.1:PORT"
    key_name: str
    algorithm: str
    secret_file: Path
    resolvers: list[str] | None = None
    name: str = "bind"

    def toml(self) -> list[str]:
        return [
            f"[dns.{self.name}]",
            'type = "rfc2136"',
            f'server = "{self.server}"',
            f'key_name = "{self.key_name}"',
            f'algorithm = "{self.algorithm}"',
            f'secret_file = "{self.secret_file}"',
            *(["resolvers = [" + ", ".join(f'"{r}"' for r in self.resolvers) + "]"]
              if self.resolvers else []),
            "",
        ]


def write_private(path: Path, text: str) -> Path:
    """A file only its owner can read (0600 from its creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def certbot_rfc2136_credentials(path: Path, host: str, port: int, key_name: str, secret: str,
                                algorithm: str) -> Path:
    """certbot-dns-rfc2136's credentials INI, 0600 (certbot warns otherwise). The plugin looks
    the algorithm up by its upper-case name and silently falls back to HMAC-MD5 for anything
    else, hence `.upper()`."""
    return write_private(path, "\n".join([
        f"dns_rfc2136_server = {host}",
        f"dns_rfc2136_port = {port}",
        f"dns_rfc2136_name = {key_name}",
        f"dns_rfc2136_secret = {secret}",
        f"dns_rfc2136_algorithm = {algorithm.upper()}",
        "",
    ]))


@dataclass
class Certkeeper:
    """certkeeper with one inventory file and its state directory under `root`."""

    root: Path
    pebble: Pebble
    binary: Path

    @property
    def config(self) -> Path:
        return self.root / "certkeeper.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def write_config(self, names: list[str], *, max_concurrent: int | None = None,
                     http01_port: int | None = None, path: Path | None = None,
                     key_type: str | None = None, dns: "DnsProvider | None" = None) -> None:
        """The inventory: one CA (Pebble, EAB) and one certificate per name; without
        `max_concurrent` the default (4) applies, without `key_type` certkeeper's default
        (ECDSA P-256). With `dns`, every certificate answers dns-01 through that one
        provider (`challenge = "dns-01"`, `[dns.NAME]`, `dns = "NAME"`) and there is no
        HTTP-01 listener. Written to a temporary file and renamed into place, so a running
        daemon watching it reloads once, on the whole file."""
        p = self.pebble
        port = http01_port or p.http01_port
        lines = [
            f'state_dir = "{self.state_dir}"',
            *([f"max_concurrent = {max_concurrent}"] if max_concurrent else []),
            *(['challenge = "dns-01"'] if dns else []),
            "",
            *(dns.toml() if dns else ["[http01]", f'listen = ["127.0.0.1:{port}"]', ""]),
            "[[ca]]",
            'name = "pebble"',
            f'directory = "{p.directory_url}"',
            f'eab_kid = "{p.eab_kid}"',
            f'eab_hmac_key_file = "{p.hmac_file}"',
            "terms_of_service_agreed = true",
            f'root_ca_file = "{p.tls_ca_file}"',
            "",
        ]
        for name in names:
            lines += ["[[certificate]]", f'name = "{name}"', f'domains = ["{domain(name)}"]',
                      *([f'key_type = "{key_type}"'] if key_type else []),
                      *([f'dns = "{dns.name}"'] if dns else []), ""]
        self.root.mkdir(parents=True, exist_ok=True)
        target = path or self.config
        temp = target.with_name(f".{target.name}.tmp")
        temp.write_text("\n".join(lines))
        os.replace(temp, target)

    def argv(self, *args: str) -> list[str]:
        return self.argv_with(self.config, *args)

    def argv_with(self, config: Path, *args: str) -> list[str]:
        return [str(self.binary), "--config", str(config), *args]

    def live(self, name: str) -> Path:
        return self.state_dir / "live" / name
