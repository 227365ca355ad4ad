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
                     key_type: str | None = None) -> None:
        """The inventory: one CA (Pebble, EAB) and one certificate per name; without
        `max_concurrent` the default (4) applies, without `key_type` certkeeper's default
        (ECDSA P-256). Written to a temporary file and renamed into place, so a running
        daemon watching it reloads once, on the whole file."""
        p = self.pebble
        port = http01_port or p.http01_port
        lines = [
            f'state_dir = "{self.state_dir}"',
            *([f"max_concurrent = {max_concurrent}"] if max_concurrent else []),
            "",
            "[http01]",
            f'listen = ["127.0.0.1:{port}"]',
            "",
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
                      *([f'key_type = "{key_type}"'] if key_type else []), ""]
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
