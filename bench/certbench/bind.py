"""A real BIND 9 `named` for the DNS-01 scenario, as crates/dns/tests/support/bind.rs starts
one for certkeeper's tests: on 127.0.0.1 and a free port, primary for the zone
`bench.example.com`, accepting TSIG-signed dynamic updates (RFC 2136).

- Zone: `ns1 A 127.0.0.1` (the zone's one authoritative server, at this named's port for
  whoever asks it the port it was told), `* A 127.0.0.1` (every name resolves, so Pebble's
  HTTP-01 validations reach the local listener), and a random marker TXT record at
  `instance.bench.example.com` that must come back over UDP and TCP before the server counts
  as started (named binds with SO_REUSEPORT: another named on the same port would share its
  queries silently).
- Key: one made by `tsig-keygen -a hmac-sha256 bench-tsig.`; the zone's update-policy grants
  it exactly the TXT records at `_acme-challenge.NAME.bench.example.com.` of the names the
  benchmark will issue, nothing else.
- Logs: a channel for the `update` category to `update.log` (severity debug 8: one
  `update section prescan OK` line per accepted UPDATE message, one info line per record
  added or deleted, `update failed` for refused ones), counted by `update_counts`. The
  statistics channel (JSON, on a second free port) counts every request by opcode, which
  `opcode_counts` reads: the UPDATE count there must agree with the log's, and the QUERY count
  shows how often a client polled for its record.

named runs in the foreground (`-f`, not `-g`, which would send every log to stderr and
ignore the logging statement) as a child of the benchmark, in a directory it can write (it
keeps a `.jnl` journal of the updates), and is stopped by `stop()`. The TSIG secret is in
`secret` and in files under the work directory only; `show` in scenarios.py writes it as
`$TSIG_SECRET`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ZONE = "bench.example.com"
KEY_NAME = "bench-tsig."
ALGORITHM = "hmac-sha256"
START_TIMEOUT = 30.0
PORT_ATTEMPTS = 5


def tool(name: str) -> str:
    """A BIND tool from PATH or the sbin directories (not in every user's PATH)."""
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d) / name).is_file()), None)
    if not found:
        raise RuntimeError(f"{name} is missing: apt-get install -y bind9 bind9-dnsutils")
    return found


def free_udp_tcp_port(taken: set[int]) -> int:
    """A port free for TCP and UDP on 127.0.0.1 right now."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if port in taken:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass
class UpdateCounts:
    messages: int = 0  # UPDATE messages named received (accepted or not)
    refused: int = 0  # of which refused or failed
    added: int = 0  # records added
    deleted: int = 0  # records deleted (a delete of a missing record logs one too)
    rrsets_deleted: int = 0  # whole RRsets deleted (lego empties the name before adding)
    committed: int = 0  # transactions written to the journal

    def minus(self, before: "UpdateCounts") -> "UpdateCounts":
        return UpdateCounts(**{k: getattr(self, k) - getattr(before, k) for k in vars(self)})


def update_counts(log: Path) -> UpdateCounts:
    """UPDATE messages and record changes in named's `update` log so far.

    A message that passes the prescan logs `update section prescan OK` first, and its other
    lines carry the same `client @PTR ADDR#PORT`; one refused before that (e.g. `rejected by
    secure update`, a key the policy does not allow) logs only an `update failed` line."""
    counts = UpdateCounts()
    if not log.exists():
        return counts
    pattern = re.compile(r"client (@0x[0-9a-f]+ \S+?)(?:/key \S+)?: updating zone '[^']+': (.*)$")
    open_messages: set[str] = set()
    for line in log.read_text(errors="replace").splitlines():
        m = pattern.search(line)
        if not m:
            continue
        client, text = m.groups()
        if text.startswith("update section prescan OK"):
            counts.messages += 1
            open_messages.add(client)
        elif text.startswith(("update failed", "update unsuccessful")):
            counts.refused += 1
            if client in open_messages:
                open_messages.discard(client)
            else:
                counts.messages += 1
        elif text.startswith("adding an RR"):
            counts.added += 1
        elif text.startswith("deleting an RR"):
            counts.deleted += 1
        elif text.startswith("deleting rrset"):
            counts.rrsets_deleted += 1
        elif text.startswith("committing update transaction"):
            counts.committed += 1
            open_messages.discard(client)
        elif text.startswith("rolling back"):
            open_messages.discard(client)
    return counts


@dataclass
class Bind:
    dir: Path
    port: int
    stats_port: int
    secret: str
    key_file: Path  # the `key { ... };` block (nsupdate -k)
    proc: subprocess.Popen | None = None
    names: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def update_log(self) -> Path:
        return self.dir / "update.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, workdir: Path, challenge_names: list[str]) -> "Bind":
        """named for ZONE, the key allowed to update `_acme-challenge.NAME TXT` for each of
        `challenge_names` (full domain names)."""
        workdir.mkdir(parents=True, exist_ok=True)
        named = tool("named")
        keygen = subprocess.run([tool("tsig-keygen"), "-a", ALGORITHM, KEY_NAME],
                                check=True, capture_output=True, text=True).stdout
        secret = keygen.split('"')[3]
        key_file = workdir / "tsig.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(keygen)
        marker = secrets.token_hex(16)
        (workdir / f"{ZONE}.zone").write_text("\n".join([
            "$TTL 60",
            f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 60",
            f"@ IN NS ns1.{ZONE}.",
            "ns1 IN A 127.0.0.1",
            f'instance IN TXT "{marker}"',
            "* IN A 127.0.0.1",
            "",
        ]))
        grants = " ".join(f"grant {KEY_NAME} name _acme-challenge.{n}. TXT;" for n in challenge_names)
        taken: set[int] = set()
        last_log = ""
        for _ in range(PORT_ATTEMPTS):
            port = free_udp_tcp_port(taken)
            taken.add(port)
            stats = free_udp_tcp_port(taken)
            taken.add(stats)
            config = workdir / "named.conf"
            config.write_text(f"""options {{
    directory "{workdir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    pid-file none;
    session-keyfile none;
    dnssec-validation no;
    notify no;
    allow-transfer {{ 127.0.0.1; }};
}};
controls {{ }};
statistics-channels {{ inet 127.0.0.1 port {stats} allow {{ 127.0.0.1; }}; }};
logging {{
    channel main {{ file "{workdir}/named.log"; severity info; print-time yes; print-category yes; }};
    channel updates {{ file "{workdir}/update.log"; severity debug 8; print-time yes; print-severity yes; }};
    category default {{ main; }};
    category update {{ updates; }};
    category update-security {{ updates; }};
}};
include "{key_file}";
zone "{ZONE}" {{
    type primary;
    file "{ZONE}.zone";
    update-policy {{ {grants} }};
}};
""")
            for stale in workdir.glob("*.jnl"):
                stale.unlink()
            out = open(workdir / "named.out", "ab")
            proc = subprocess.Popen([named, "-f", "-4", "-c", str(config), "-p", str(port)],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=workdir)
            bind = cls(dir=workdir, port=port, stats_port=stats, secret=secret, key_file=key_file,
                       proc=proc, names=list(challenge_names))
            state = bind._wait_answering(marker)
            if state == "up":
                return bind
            bind.stop()
            last_log = "\n".join(p.read_text(errors="replace")[-3000:]
                                 for p in (workdir / "named.out", workdir / "named.log") if p.exists())
        raise RuntimeError(f"named did not start in {PORT_ATTEMPTS} attempts:\n{last_log}")

    def _wait_answering(self, marker: str) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        expected = f'"{marker}"'
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited"
            answers = [self.dig(transport, f"instance.{ZONE}", "TXT").strip()
                       for transport in ("+notcp", "+tcp", "+notcp")]
            if all(a == expected for a in answers):
                try:
                    self.opcode_counts()
                except OSError:
                    time.sleep(0.05)
                    continue
                return "up"
            if any(a.startswith('"') and a != expected for a in answers):
                return "another server"
            time.sleep(0.05)
        raise RuntimeError(f"named did not answer within {START_TIMEOUT} s (see {self.dir})")

    def dig(self, *args: str) -> str:
        return subprocess.run(
            [tool("dig"), "+short", "+norecurse", "+time=1", "+tries=1", "@127.0.0.1",
             "-p", str(self.port), *args], capture_output=True, text=True).stdout

    def opcode_counts(self) -> dict[str, int]:
        """Requests named received by opcode (QUERY, UPDATE, ...), from its statistics channel."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/json/v1/server", timeout=5) as r:
            data = json.load(r)
        return {k: v for k, v in data.get("opcodes", {}).items() if v}

    def updates(self) -> UpdateCounts:
        return update_counts(self.update_log)

    def challenge_records(self) -> list[str]:
        """TXT records under `_acme-challenge` in the zone now (an AXFR): what a run left behind."""
        out = subprocess.run(
            [tool("dig"), "+noall", "+answer", "+time=2", "+tries=1", "@127.0.0.1", "-p",
             str(self.port), "-k", str(self.key_file), ZONE, "AXFR"],
            capture_output=True, text=True).stdout
        return [line for line in out.splitlines()
                if line.startswith("_acme-challenge.") and "\tTXT\t" in line.replace(" ", "\t")]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
