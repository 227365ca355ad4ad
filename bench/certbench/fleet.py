"""Scenario 8: a fleet of three certkeeper nodes on one PostgreSQL (issue 15's benchmark).

A throwaway PostgreSQL 15 cluster (Debian's `postgresql`, run as the `postgres` user when we
are root, as tests/fleet.rs does: fsync off, password authentication on 127.0.0.1, the
superuser by trust on its Unix socket, pg_stat_statements loaded), three `certkeeper run`
nodes with their own state directories and one inventory, and a round-robin TCP forwarder on
Pebble's HTTP-01 port spreading validation requests over the three nodes' listeners (so a
validation usually reaches a node that did not place the order).

Measured:
- issuance: the three daemons start together on `sync_size` certificates; wall time from
  their start until every node has every certificate live with the same certificate (byte
  for byte, so the same serial); orders placed at the CA (newOrder lines in Pebble's log) per
  certificate; rows of certkeeper_versions.
- at rest: the inventory grows to `rest_size` certificates (the file replaced in place; the
  daemons reload it), the fleet issues the new ones (timed and counted likewise), then, the
  daemons idle, the database's work over `rest_seconds`: statements executed by the fleet's
  role (pg_stat_statements calls) and transactions (pg_stat_database xact_commit +
  xact_rollback of the fleet's database), per minute; then again over `default_rest_seconds`
  once the daemons reloaded an inventory without `sync_interval` (its default, 5 min), the
  figure an operator who keeps the default gets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509

from .pebble import Pebble, free_port, wait_for_port
from .tools import domain, lineage

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROLE = "certkeeper"
DATABASE = "certkeeper"
PASSWORD = "bench-fleet-password"
FLEET_KEY = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="  # 32 bytes of 0x2a, base64
LEASE = "60s"
SYNC_INTERVAL = "5s"
NODES = 3


class Postgres:
    """A throwaway cluster in a temporary directory; stop() ends it and removes the directory."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"{PG_BIN}/initdb is missing: apt-get install postgresql")
        # In /tmp, not the work directory: the postgres user must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="certkeeper-bench-pg-"))
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        pwfile = self.dir / "superuser-password"
        pwfile.write_text("superuser-not-used\n")
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run("initdb", "-N", "-A", "scram-sha-256", "--auth-local=trust", "-U", "postgres",
                  "-E", "UTF8", "--pwfile", str(pwfile), "-D", str(self.data))
        self.log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            self._argv("postgres", "-D", str(self.data), "-k", str(self.dir), "-h", "127.0.0.1",
                       "-p", str(self.port), "-c", "fsync=off", "-c", "synchronous_commit=off",
                       "-c", "full_page_writes=off", "-c", "ssl=off",
                       "-c", "shared_preload_libraries=pg_stat_statements",
                       "-c", "pg_stat_statements.track=all"),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(self.port), "-t", "1"]).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {(self.dir / 'postgres.log').read_text()}")
            time.sleep(0.1)
        self.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        self.psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        self.psql("CREATE EXTENSION pg_stat_statements")

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _argv(self, program: str, *args: str) -> list[str]:
        path = str(PG_BIN / program)
        if self.as_postgres:
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", path, *args]
        return [path, *args]

    def _run(self, program: str, *args: str) -> str:
        out = subprocess.run(self._argv(program, *args), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{program} failed: {out.stderr}")
        return out.stdout

    def psql(self, sql: str, database: str = "postgres") -> str:
        """As the superuser over the Unix socket (in the `postgres` database unless told: the
        fleet database's own counters then leave these queries out)."""
        return self._run("psql", "-X", "-q", "-At", "-h", str(self.dir), "-p", str(self.port),
                         "-U", "postgres", "-d", database, "-c", sql).strip()

    def counters(self) -> dict[str, int]:
        row = self.psql(
            "SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database "
            f"WHERE datname = '{DATABASE}'), (SELECT coalesce(sum(calls), 0) FROM "
            f"pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = '{ROLE}')")
        xacts, calls = row.split("|")
        return {"xacts": int(xacts), "statements": int(calls)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
            except RuntimeError:
                self.proc.kill()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RoundRobin:
    """A TCP forwarder on 127.0.0.1:`port` handing each connection to the next of `targets`."""

    def __init__(self, port: int, targets: list[int]) -> None:
        self.port, self.targets, self.next = port, targets, 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("round-robin forwarder did not start")

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer) -> None:
        target = self.targets[self.next % len(self.targets)]
        self.next += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    dst.close()
                except OSError:
                    pass

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        def close() -> None:
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)


def pebble_count(pebble: Pebble, path: str) -> int:
    """Requests to `path` in Pebble's log (one line per request: `POST /order-plz -> ...`)."""
    needle = f"POST {path}"
    with open(pebble.log_file, errors="replace") as f:
        return sum(1 for line in f if needle in line)


class Node:
    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.http01_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def config(self) -> Path:
        return self.root / "certkeeper.toml"

    def cert(self, lineage_name: str) -> bytes | None:
        try:
            return (self.root / "state" / "live" / lineage_name / "cert.pem").read_bytes()
        except OSError:
            return None


def node_config(node: Node, pebble: Pebble, pg: Postgres, secrets: Path, names: list[str],
                sync_interval: str | None = SYNC_INTERVAL) -> str:
    lines = [
        f'state_dir = "{node.root / "state"}"',
        'retry_initial = "2s"',
        'retry_max = "10s"',
        "",
        "[http01]",
        f'listen = ["127.0.0.1:{node.http01_port}"]',
        "",
        "[cluster]",
        f'postgres = "postgres://{ROLE}@127.0.0.1:{pg.port}/{DATABASE}"',
        'tls = "none"',
        f'password_file = "{secrets / "db.password"}"',
        f'fleet_key_file = "{secrets / "fleet.key"}"',
        f'node = "{node.name}"',
        f'lease = "{LEASE}"',
        *([f'sync_interval = "{sync_interval}"'] if sync_interval else []),
        "",
        "[[ca]]",
        'name = "pebble"',
        f'directory = "{pebble.directory_url}"',
        f'eab_kid = "{pebble.eab_kid}"',
        f'eab_hmac_key_file = "{pebble.hmac_file}"',
        "terms_of_service_agreed = true",
        f'root_ca_file = "{pebble.tls_ca_file}"',
        "",
    ]
    for name in names:
        lines += ["[[certificate]]", f'name = "{name}"', 'ca = "pebble"',
                  f'domains = ["{domain(name)}"]', ""]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def wait_in_sync(nodes: list[Node], names: list[str], timeout: float) -> tuple[float, list[float]]:
    """Seconds until every node has every name live with one and the same certificate (polled
    every 0.2 s), and per name the lag from the first node having it live to all having that
    one; raises after `timeout`."""
    start = time.monotonic()
    pending = list(names)
    first: dict[str, float] = {}
    lags: list[float] = []
    while True:
        now = time.monotonic()
        behind = []
        for name in pending:
            certs = [node.cert(name) for node in nodes]
            if any(c is not None for c in certs):
                first.setdefault(name, now)
            if len(set(certs)) != 1 or None in certs:
                behind.append(name)
            else:
                lags.append(now - first[name])
        pending = behind
        if not pending:
            return time.monotonic() - start, lags
        for node in nodes:
            if node.proc and node.proc.poll() is not None:
                raise RuntimeError(f"{node.name} exited with {node.proc.returncode} (log {node.root / 'daemon.log'})")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"not in sync within {timeout:.0f} s: {len(pending)} behind, e.g. {pending[:5]}")
        time.sleep(0.2)


def at_rest(pg: Postgres, pebble: Pebble, seconds: float, settle: float) -> dict:
    """The fleet's database work over `seconds` from now, the daemons idle."""
    orders0 = pebble_count(pebble, "/order-plz")
    before, t0 = pg.counters(), time.monotonic()
    time.sleep(seconds)
    after, t1 = pg.counters(), time.monotonic()
    minutes = (t1 - t0) / 60
    return {
        "seconds": t1 - t0, "settle": settle,
        "statements": after["statements"] - before["statements"],
        "xacts": after["xacts"] - before["xacts"],
        "statements_per_min": (after["statements"] - before["statements"]) / minutes,
        "xacts_per_min": (after["xacts"] - before["xacts"]) / minutes,
        "orders": pebble_count(pebble, "/order-plz") - orders0,
        "db_size": int(pg.psql(f"SELECT pg_database_size('{DATABASE}')")),
        "versions_size": int(pg.psql("SELECT pg_total_relation_size('certkeeper_versions')", DATABASE)),
        "versions": int(pg.psql("SELECT count(*) FROM certkeeper_versions", DATABASE)),
    }


def top_statements(pg: Postgres) -> list[str]:
    """The fleet role's five most frequent statements since the database started."""
    return pg.psql(
        "SELECT calls || E'\\t' || regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements s "
        f"JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = '{ROLE}' ORDER BY calls DESC LIMIT 5").splitlines()


def lag_stats(lags: list[float]) -> dict:
    import statistics
    return {"lag_median": statistics.median(lags), "lag_max": max(lags)} if lags else {}


def run(work: Path, pebble: Pebble, binary: Path, sync_size: int, rest_size: int,
        rest_seconds: float, default_rest_seconds: float, say) -> dict:
    root = work / "fleet3"
    root.mkdir(parents=True, exist_ok=True)
    secrets = root / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "db.password").write_text(PASSWORD)
    (secrets / "fleet.key").write_text(FLEET_KEY)
    for f in secrets.iterdir():
        f.chmod(0o600)
    result: dict = {"nodes": NODES, "lease": LEASE, "sync_interval": SYNC_INTERVAL,
                    "sync_size": sync_size, "rest_size": rest_size, "rest_seconds": rest_seconds}
    say("fleet: starting PostgreSQL")
    pg = Postgres()
    nodes = [Node(root / f"node-{chr(ord('a') + i)}", f"node-{chr(ord('a') + i)}") for i in range(NODES)]
    rr = RoundRobin(pebble.http01_port, [n.http01_port for n in nodes])
    logs = []
    try:
        result["postgres"] = pg.psql("SHOW server_version")
        names = [lineage(i, "f") for i in range(sync_size)]
        for node in nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            write_atomically(node.config, node_config(node, pebble, pg, secrets, names))
        head, first = nodes[0].config.read_text().split("[[certificate]]")[:2]
        result["config"] = (head + "[[certificate]]" + first).replace(str(work), "$W").replace(
            f"127.0.0.1:{pg.port}/", "127.0.0.1:$PG_PORT/") + "# ... one [[certificate]] per lineage"
        orders0, finals0 = pebble_count(pebble, "/order-plz"), pebble_count(pebble, "/finalize-order/")

        say(f"fleet: {NODES} nodes start on {sync_size} certificates")
        started = time.monotonic()
        for node in nodes:
            log = open(node.root / "daemon.log", "wb")
            logs.append(log)
            node.proc = subprocess.Popen([str(binary), "--config", str(node.config), "run"],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=node.root)
        for node in nodes:
            wait_for_port(node.http01_port, timeout=60)
        _, lags = wait_in_sync(nodes, names, timeout=max(300, sync_size * 3))
        wall = time.monotonic() - started
        orders = pebble_count(pebble, "/order-plz") - orders0
        finals = pebble_count(pebble, "/finalize-order/") - finals0
        versions = int(pg.psql("SELECT count(*) FROM certkeeper_versions", DATABASE))
        publishers = pg.psql("SELECT published_by || ':' || count(*) FROM certkeeper_versions "
                             "GROUP BY published_by ORDER BY published_by", DATABASE).split()
        serials = {x509.load_pem_x509_certificate(nodes[0].cert(n)).serial_number for n in names}
        result["issue"] = {"certs": sync_size, "wall": wall, "orders": orders, "finalized": finals,
                           "versions": versions, "publishers": publishers,
                           "distinct_serials": len(serials), **lag_stats(lags)}
        say(f"fleet: {sync_size} in sync on {NODES} nodes after {wall:.1f} s, {orders} orders, "
            f"{versions} versions, published by {publishers}")

        # Grow to rest_size: the daemons reload their inventory.
        more = [lineage(i, "f") for i in range(rest_size)]
        orders0, finals0 = pebble_count(pebble, "/order-plz"), pebble_count(pebble, "/finalize-order/")
        say(f"fleet: inventory grows to {rest_size} certificates")
        started = time.monotonic()
        for node in nodes:
            write_atomically(node.config, node_config(node, pebble, pg, secrets, more))
        _, lags = wait_in_sync(nodes, more[sync_size:], timeout=max(600, rest_size * 3))
        wall = time.monotonic() - started
        orders = pebble_count(pebble, "/order-plz") - orders0
        versions = int(pg.psql("SELECT count(*) FROM certkeeper_versions", DATABASE))
        result["grow"] = {"certs": rest_size - sync_size, "wall": wall, "orders": orders,
                          "finalized": pebble_count(pebble, "/finalize-order/") - finals0,
                          "versions": versions, **lag_stats(lags)}
        say(f"fleet: {rest_size} in sync after {wall:.1f} s more, {orders} orders, {versions} versions")

        # At rest: let the last deploys, syncs and statistics settle, then count.
        settle = 15 if rest_seconds >= 60 else 3
        time.sleep(settle)
        say(f"fleet: at rest with {rest_size} certificates, counting for {rest_seconds:.0f} s")
        result["rest"] = at_rest(pg, pebble, rest_seconds, settle)
        result["rest"]["top_statements_since_start"] = top_statements(pg)
        say(f"fleet: at rest {result['rest']['statements_per_min']:.1f} statements/min, "
            f"{result['rest']['xacts_per_min']:.1f} transactions/min")

        # Again with the default sync_interval: the daemons reload an inventory without it.
        for node in nodes:
            write_atomically(node.config, node_config(node, pebble, pg, secrets, more, None))
        time.sleep(settle)
        say(f"fleet: at rest with the default sync_interval, counting for {default_rest_seconds:.0f} s")
        result["rest_default"] = at_rest(pg, pebble, default_rest_seconds, settle)
        say(f"fleet: at rest (default sync_interval) "
            f"{result['rest_default']['statements_per_min']:.1f} statements/min, "
            f"{result['rest_default']['xacts_per_min']:.1f} transactions/min")
    finally:
        for node in nodes:
            if node.proc and node.proc.poll() is None:
                node.proc.terminate()
        for node in nodes:
            if node.proc:
                try:
                    node.proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
        for log in logs:
            log.close()
        rr.stop()
        pg.stop()
    return result
