"""The six scenarios. Each returns plain data (lists of rows) that `report` turns into
markdown; nothing here formats numbers.

Every tool runs alone (one process, or one loop of processes, at a time) against the same
Pebble, and the requests each run sent to the CA are counted from Pebble's log, which has a
line per request (`POST /order-plz -> calling handler()`).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import measure
from .measure import Sample, Spawned
from .pebble import Pebble, free_port, pem_cert, pem_key, sign_leaf, make_ca
from .probe import OpenLoopProbe, summarize as summarize_probe
from .relay import ChallengeRelay
from .tools import (Certbot, Certkeeper, DnsProvider, Lego, certbot_rfc2136_credentials, domain,
                    lineage, write_private)


@dataclass
class Plan:
    """How much of everything to run: the full run, or the quick one that only keeps the
    benchmark from rotting."""

    quick: bool
    fleet_sizes: list[int]
    fleet_reps_slow: dict[int, int]  # certbot and lego, per fleet size
    fleet_reps_fast: dict[int, int]  # certkeeper, per fleet size
    sequential_reps: dict[int, int]  # certkeeper with max_concurrent = 1
    idle_sizes: list[int]
    idle_reps_slow: dict[int, int]
    idle_reps_fast: int
    rest_seconds: float
    rest_watchdog_usec: int
    quiet_seconds: float  # a second rest period without the watchdog
    startup_reps: int
    status_entries: int
    status_reps: int
    flood_levels: list[int]
    flood_seconds: float
    criterion_args: list[str]
    # Scenario 6, a large fleet: one lineage issued, the rest written locally.
    scale_size: int
    scale_reps: int  # renew (nothing due) and status --json, each
    scale_startup_reps: int
    burst_certs: int  # issued at once by the daemon while its HTTP-01 port is probed
    burst_key_type: str
    burst_reps: int
    burst_before_seconds: float  # probed at rest before the burst
    probe_rate: float  # requests per second, each on a new connection
    # Scenario 7, DNS-01 through a real named: certkeeper issues dns_size (and as many by
    # HTTP-01, for the ratio) dns_reps times; certbot and lego, far slower, fewer.
    dns_size: int = 100
    dns_reps: int = 3
    dns_certbot: int = 5
    dns_lego: int = 100
    # Scenario 8, three fleet nodes on one PostgreSQL: issue fleet_sync_size, grow to
    # fleet_rest_size, count the database's work at rest for fleet_rest_seconds.
    fleet_sync_size: int = 100
    fleet_rest_size: int = 1000
    fleet_rest_seconds: float = 180
    # ... and again over this long with the default sync_interval (5 min): two intervals.
    fleet_default_rest_seconds: float = 600

    @classmethod
    def full(cls) -> "Plan":
        return cls(
            quick=False,
            fleet_sizes=[20, 100],
            fleet_reps_slow={20: 3, 100: 1},
            fleet_reps_fast={20: 5, 100: 3},
            sequential_reps={20: 3, 100: 1},
            idle_sizes=[20, 1000],
            idle_reps_slow={20: 5, 1000: 3},
            idle_reps_fast=7,
            rest_seconds=600,
            rest_watchdog_usec=60_000_000,
            quiet_seconds=60,
            startup_reps=5,
            status_entries=10_000,
            status_reps=5,
            flood_levels=[0, 64, 256, 1024],
            flood_seconds=10,
            criterion_args=[],
            scale_size=10_000,
            scale_reps=11,
            scale_startup_reps=3,
            burst_certs=20,
            burst_key_type="rsa4096",
            burst_reps=3,
            burst_before_seconds=10,
            probe_rate=100,
        )

    @classmethod
    def quick_plan(cls) -> "Plan":
        return cls(
            quick=True,
            fleet_sizes=[2],
            fleet_reps_slow={2: 1},
            fleet_reps_fast={2: 1},
            sequential_reps={2: 1},
            idle_sizes=[2, 30],
            idle_reps_slow={2: 1, 30: 1},
            idle_reps_fast=1,
            rest_seconds=20,
            rest_watchdog_usec=10_000_000,
            quiet_seconds=5,
            startup_reps=1,
            status_entries=1_000,
            status_reps=1,
            flood_levels=[0, 256],
            flood_seconds=3,
            criterion_args=["--warm-up-time", "0.2", "--measurement-time", "0.5",
                            "--sample-size", "10"],
            # Small and cheap: the rows run and produce numbers; the dev build's RSA key
            # generation is slow, hence two RSA-2048 keys instead of twenty RSA-4096.
            scale_size=300,
            scale_reps=1,
            scale_startup_reps=1,
            burst_certs=2,
            burst_key_type="rsa2048",
            burst_reps=1,
            burst_before_seconds=2,
            probe_rate=50,
            # certbot sleeps 60 s per certificate whatever the size: one certificate.
            dns_size=5,
            dns_reps=1,
            dns_certbot=1,
            dns_lego=1,
            fleet_sync_size=5,
            fleet_rest_size=10,
            fleet_rest_seconds=10,
            fleet_default_rest_seconds=10,
        )


@dataclass
class Row:
    scenario: str
    size: int
    tool: str
    how: str
    samples: list[Sample]
    command: str = ""
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    requests_per_cert: dict[str, dict[str, int]] = field(default_factory=dict)
    startup: list[dict] = field(default_factory=list)
    rest: dict = field(default_factory=dict)
    criterion: list[dict] = field(default_factory=list)
    flood: list[dict] = field(default_factory=list)
    setup: dict = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    # Scenario 6: "startup", "rest" (as `rest`), "burst" (one dict per repetition), "fleet".
    scale: dict = field(default_factory=dict)
    # Scenario 7: "rows" (DnsRow), "zone", "key", "commands", "failed" (what did not run).
    dns: dict = field(default_factory=dict)
    # Scenario 8: fleet.run's dict ("issue", "grow", "rest", "config", ...).
    fleet3: dict = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def find(self, scenario: str, size: int, tool: str, how: str) -> Row | None:
        for row in self.rows:
            if (row.scenario, row.size, row.tool, row.how) == (scenario, size, tool, how):
                return row
        return None


class Bench:
    def __init__(self, plan: Plan, work: Path, pebble: Pebble, certkeeper_bin: Path,
                 repo: Path, log: callable):
        self.plan = plan
        self.work = work
        self.pebble = pebble
        self.bin = certkeeper_bin
        self.repo = repo
        self.say = log
        self.results = Results()
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- helpers ------------------------------------------------------------------------

    def show(self, argv: list[str]) -> str:
        """A command as documented: work paths, ports and the EAB key as variables."""
        p = self.pebble
        text = " ".join(f"'{a}'" if " " in a or "*" in a else a for a in argv)
        text = text.replace(str(self.bin), "certkeeper")
        text = text.replace(p.eab_hmac, "$EAB_HMAC")
        text = text.replace(str(self.work), "$W")
        text = re.sub(rf"\b{p.acme_port}\b", "$ACME_PORT", text)
        text = re.sub(rf"\b{p.http01_port}\b", "$HTTP01_PORT", text)
        return text

    def show_dns(self, argv: list[str], pebble: Pebble, bind) -> str:
        """`show` for scenario 7: its own Pebble's ports, named's port as `$NAMED_PORT`, and
        never the TSIG secret."""
        text = " ".join(f"'{a}'" if " " in a or "*" in a else a for a in argv)
        text = text.replace(bind.secret, "$TSIG_SECRET")
        text = text.replace(str(self.bin), "certkeeper")
        text = text.replace(pebble.eab_hmac, "$EAB_HMAC")
        text = text.replace(str(self.work), "$W")
        text = re.sub(rf"\b{pebble.acme_port}\b", "$ACME_PORT", text)
        text = re.sub(rf"\b{pebble.http01_port}\b", "$HTTP01_PORT", text)
        return re.sub(rf"\b{bind.port}\b", "$NAMED_PORT", text)

    def counted(self, fn) -> tuple[Sample, dict[str, int]]:
        """Run `fn` (returning a Sample) and count the requests Pebble handled meanwhile."""
        offset = self.pebble.log_file.stat().st_size
        sample = fn()
        total, per = measure.pebble_requests(self.pebble.log_file, offset)
        sample.requests = total
        return sample, per

    def loop(self, argvs: list[list[str]], env: dict[str, str], log: Path) -> Sample:
        """One process after another; wall is the whole loop, CPU summed, RSS the largest."""
        total = Sample()
        start = time.monotonic()
        for argv in argvs:
            total.add(measure.run(argv, env=env, log=log))
        total.wall = time.monotonic() - start
        return total

    def daemon_until_installed(self, ck: Certkeeper, names: list[str], log: Path) -> Sample:
        """`certkeeper run` from an empty state directory until every lineage is live, then
        SIGTERM. Wall time is spawn to the last `live/NAME` appearing."""
        proc = Spawned(ck.argv("run"), env=dict(os.environ), log=log)
        sampler = measure.RssSampler(proc.pid)
        pending = [ck.live(n) for n in names]
        deadline = time.monotonic() + 60 + 5 * len(names)
        while pending:
            pending = [p for p in pending if not os.path.lexists(p)]
            if not proc.running():
                raise measure.CommandFailed(f"certkeeper run exited early (output in {log})")
            if time.monotonic() > deadline:
                proc.signal(signal.SIGKILL)
                raise measure.CommandFailed(f"certkeeper run did not install {len(pending)} lineages (see {log})")
            time.sleep(0.01)
        installed_after = time.monotonic() - proc.started
        proc.signal(signal.SIGTERM)
        sample = proc.wait(timeout=60)
        sample.extra["rss_peaks"] = sampler.stop()
        sample.extra["stopped_after"] = sample.wall
        sample.wall = installed_after
        return sample

    # -- scenario 1: fleet issuance -------------------------------------------------------

    def fleet(self, rest_alongside: "list[RestMeasurement]" = ()) -> None:
        """Scenario 1. `rest_alongside` run while lego issues the largest fleet (lego spends
        that time sleeping; each resting daemon listens on a port of its own)."""
        plan = self.plan
        for size in plan.fleet_sizes:
            names = [lineage(i) for i in range(size)]
            rows = {key: Row("fleet", size, *key, samples=[]) for key in [
                ("certbot", "certonly, one process per certificate"),
                ("certbot", "renew --force-renewal"),
                ("lego", "run, one process per certificate"),
                ("certkeeper", "run (daemon) from an empty state dir"),
                ("certkeeper", "renew --force"),
                ("certkeeper", "renew --force, max_concurrent = 1"),
            ]}
            last = size == max(plan.fleet_sizes)
            for rep in range(plan.fleet_reps_slow[size]):
                base = self.work / f"fleet-{size}-{rep}"
                cb = Certbot(base / "certbot", self.pebble)
                self.say(f"fleet N={size} rep {rep + 1}: certbot certonly x{size}")
                s, per = self.counted(lambda: self.loop([cb.certonly(n) for n in names], cb.env, self.logs / f"certbot-fleet-{size}.log"))
                rows[("certbot", "certonly, one process per certificate")].samples.append(s)
                self.results.requests_per_cert["certbot certonly"] = per
                self.results.commands["certbot certonly"] = self.show(cb.certonly(names[0]))
                self.say(f"fleet N={size} rep {rep + 1}: certbot renew --force-renewal")
                s, per = self.counted(lambda: measure.run(cb.renew(force=True), env=cb.env, log=self.logs / f"certbot-fleet-{size}.log"))
                rows[("certbot", "renew --force-renewal")].samples.append(s)
                self.results.requests_per_cert["certbot renew --force-renewal"] = per
                self.results.commands["certbot renew --force-renewal"] = self.show(cb.renew(force=True))

                lg = Lego(base / "lego", self.pebble)
                if last and rep == 0:
                    for rest in rest_alongside:
                        rest.start()
                self.say(f"fleet N={size} rep {rep + 1}: lego run x{size}")
                s, per = self.counted(lambda: self.loop([lg.run(n) for n in names], lg.env, self.logs / f"lego-fleet-{size}.log"))
                rows[("lego", "run, one process per certificate")].samples.append(s)
                self.results.requests_per_cert["lego run"] = per
                self.results.commands["lego run"] = self.show(lg.run(names[0]))
                if last and rep == 0:
                    for rest in rest_alongside:
                        rest.join()

            for rep in range(plan.fleet_reps_fast[size]):
                ck = Certkeeper(self.work / f"fleet-{size}-{rep}" / "certkeeper", self.pebble, self.bin)
                ck.write_config(names)
                self.say(f"fleet N={size} rep {rep + 1}: certkeeper run until {size} installed")
                s, per = self.counted(lambda: self.daemon_until_installed(ck, names, self.logs / f"certkeeper-fleet-{size}.log"))
                rows[("certkeeper", "run (daemon) from an empty state dir")].samples.append(s)
                self.results.requests_per_cert["certkeeper run"] = per
                self.results.commands["certkeeper run"] = self.show(ck.argv("run"))
                self.say(f"fleet N={size} rep {rep + 1}: certkeeper renew --force")
                s, per = self.counted(lambda: measure.run(ck.argv("renew", "--force"), log=self.logs / f"certkeeper-fleet-{size}.log"))
                rows[("certkeeper", "renew --force")].samples.append(s)
                self.results.requests_per_cert["certkeeper renew --force"] = per
                self.results.commands["certkeeper renew --force"] = self.show(ck.argv("renew", "--force"))
                if rep < plan.sequential_reps[size]:
                    ck.write_config(names, max_concurrent=1)
                    self.say(f"fleet N={size} rep {rep + 1}: certkeeper renew --force, max_concurrent = 1")
                    s, _ = self.counted(lambda: measure.run(ck.argv("renew", "--force"), log=self.logs / f"certkeeper-fleet-{size}.log"))
                    rows[("certkeeper", "renew --force, max_concurrent = 1")].samples.append(s)
                    ck.write_config(names)
            for row in rows.values():
                self.results.add(row)

    # -- setup for scenarios 2 and 3: 1,000 valid lineages for certkeeper ----------------------

    def certkeeper_big(self) -> Certkeeper:
        size = max(self.plan.idle_sizes)
        ck = Certkeeper(self.work / f"certkeeper-{size}", self.pebble, self.bin)
        names = [lineage(i) for i in range(size)]
        ck.write_config(names)
        self.say(f"setup: certkeeper renew issues {size} lineages (first issuance, max_concurrent = 4)")
        s, _ = self.counted(lambda: measure.run(ck.argv("renew"), log=self.logs / f"certkeeper-setup-{size}.log"))
        self.results.setup["certkeeper first issuance"] = {"size": size, "sample": s}
        return ck

    # -- scenario 2: nothing due ----------------------------------------------------------------

    def nothing_due(self, ck_big: Certkeeper) -> None:
        plan = self.plan
        small = min(plan.fleet_sizes)
        base = self.work / f"fleet-{small}-{plan.fleet_reps_slow[small] - 1}"
        cb = Certbot(base / "certbot", self.pebble)
        lg = Lego(base / "lego", self.pebble)
        ck_small = Certkeeper(self.work / f"fleet-{small}-{plan.fleet_reps_fast[small] - 1}" / "certkeeper", self.pebble, self.bin)
        have = small
        for size in plan.idle_sizes:
            if size > have:
                extra = [lineage(i) for i in range(have, size)]
                self.say(f"nothing due: copying lineage c0000 to {len(extra)} more names for certbot and lego")
                cb.copy_lineage(lineage(0), extra)
                lg.copy_lineage(lineage(0), extra)
                have = size
            names = [lineage(i) for i in range(size)]
            if size <= small:
                ck = ck_small
                ck.write_config(names)
            else:
                ck = ck_big
            reps = plan.idle_reps_slow[size]
            row = Row("idle", size, "certbot", "renew", [], self.show(cb.renew()))
            self.say(f"nothing due over {size}: certbot renew x{reps}")
            for _ in range(reps):
                s, _ = self.counted(lambda: measure.run(cb.renew(), env=cb.env, log=self.logs / f"certbot-idle-{size}.log"))
                row.samples.append(s)
            self.results.add(row)
            row = Row("idle", size, "lego", f"renew, one process per certificate ({size} processes)", [],
                      self.show(lg.renew(names[0])))
            self.say(f"nothing due over {size}: lego renew x{size}, {reps} times")
            for _ in range(reps):
                s, _ = self.counted(lambda: self.loop([lg.renew(n) for n in names], lg.env, self.logs / f"lego-idle-{size}.log"))
                row.samples.append(s)
            self.results.add(row)
            row = Row("idle", size, "certkeeper", "renew", [], self.show(ck.argv("renew")))
            self.say(f"nothing due over {size}: certkeeper renew x{plan.idle_reps_fast}")
            for _ in range(plan.idle_reps_fast):
                s, _ = self.counted(lambda: measure.run(ck.argv("renew"), log=self.logs / f"certkeeper-idle-{size}.log"))
                row.samples.append(s)
            self.results.add(row)
            last_run = (self.logs / f"certkeeper-idle-{size}.log").read_text().rsplit("\n$ ", 1)[-1]
            row.note = f"{last_run.count(': not due')} of {size} lineages reported 'not due' in the last run"

    # -- scenario 3: the daemon at rest ----------------------------------------------------

    def startup(self, ck: Certkeeper) -> None:
        self.results.startup = self.startups(ck, self.plan.startup_reps)

    def startups(self, ck: Certkeeper, reps: int, log: str = "certkeeper-startup.log",
                 command_key: str = "certkeeper run (rest)") -> list[dict]:
        """`certkeeper run` over `ck`'s inventory `reps` times: spawn to READY=1, then SIGTERM."""
        out = []
        for rep in range(reps):
            notify = measure.NotifySocket(self.work / "notify.sock")
            try:
                env = dict(os.environ, NOTIFY_SOCKET=str(notify.path))
                config = ck.root / "rest.toml"
                ck.write_config(ck_names(ck), http01_port=free_port(), path=config)
                proc = Spawned(ck.argv_with(config, "run"), env=env, log=self.logs / log)
                ready = notify.wait_for("READY=1", timeout=120)
                if ready is None:
                    raise measure.CommandFailed("certkeeper run sent no READY=1 within 120 s")
                at_ready = measure.snapshot(proc.pid)
                time.sleep(1.0)
                settled = measure.snapshot(proc.pid)
                proc.signal(signal.SIGTERM)
                sample = proc.wait(timeout=60)
                out.append({
                    "ready_s": ready - proc.started,
                    "rss_ready_kib": at_ready.rss_kib,
                    "rss_1s_kib": settled.rss_kib,
                    "anon_1s_kib": settled.anon_kib,
                    "file_1s_kib": settled.file_kib,
                    "hwm_kib": settled.hwm_kib,
                    "cpu_to_ready_s": at_ready.cpu_ns / 1e9,
                    "threads": len(settled.threads),
                    "peak_rss_kib": sample.rss_kib,
                })
                self.results.commands[command_key] = (
                    f"NOTIFY_SOCKET=$W/notify.sock {self.show(ck.argv_with(config, 'run'))}")
            finally:
                notify.close()
        return out


    # -- scenario 4: planner scale ------------------------------------------------------------

    def criterion(self, profile: str) -> None:
        home = self.work / "criterion"
        env = dict(os.environ, CRITERION_HOME=str(home))
        argv = ["cargo", "bench", "--locked", "-p", "certkeeper-core", "--bench", "planner"]
        if profile != "release":
            argv += ["--profile", profile]
        if self.plan.criterion_args:
            argv += ["--", *self.plan.criterion_args]
        self.say("planner: " + " ".join(argv))
        measure.run(argv, env=env, log=self.logs / "criterion.log", cwd=self.repo)
        self.results.commands["criterion"] = " ".join(argv)
        for estimates in sorted(home.glob("plan_certificate/*/new/estimates.json")):
            bench = json.loads((estimates.parent / "benchmark.json").read_text())
            est = json.loads(estimates.read_text())
            median = est["median"]
            self.results.criterion.append({
                "name": bench.get("function_id") or estimates.parent.parent.name,
                "elements": (bench.get("throughput") or {}).get("Elements"),
                "median_ns": median["point_estimate"],
                "low_ns": median["confidence_interval"]["lower_bound"],
                "high_ns": median["confidence_interval"]["upper_bound"],
            })

    def status_scale(self) -> None:
        n = self.plan.status_entries
        names = [f"s{i:05d}" for i in range(n)]
        empty = Certkeeper(self.work / f"status-{n}-empty", self.pebble, self.bin)
        empty.write_config(names)
        row = Row("status", n, "certkeeper", "status --json, state dir without certificates", [],
                  self.show(empty.argv("status", "--json")))
        self.say(f"status over {n} entries, no live certificates")
        for _ in range(self.plan.status_reps):
            row.samples.append(measure.run(empty.argv("status", "--json"), log=self.logs / "status.log", check=False))
        self.results.add(row)

        full = Certkeeper(self.work / f"status-{n}-live", self.pebble, self.bin)
        full.write_config(names)
        self.say(f"status over {n} entries: writing {n} synthetic live lineages")
        started = time.monotonic()
        write_synthetic_lineages(full.state_dir, names)
        self.results.setup["synthetic lineages"] = {"size": n, "seconds": time.monotonic() - started}
        for how, args in (("status --json, every certificate live", ("status", "--json")),
                          ("renew, nothing due (synthetic lineages)", ("renew",))):
            row = Row("status", n, "certkeeper", how, [], self.show(full.argv(*args)))
            self.say(f"{' '.join(args)} over {n} live lineages")
            for _ in range(self.plan.status_reps):
                s, _ = self.counted(lambda: measure.run(full.argv(*args), log=self.logs / "status.log", check=False))
                row.samples.append(s)
            self.results.add(row)

    # -- scenario 5: hostile load on the HTTP-01 listener ---------------------------------------

    def flood(self) -> None:
        """The real challenge path probed while wrk floods an unknown path; then the CA's own
        validation request is let through while the flood still runs."""
        ck = Certkeeper(self.work / "flood", self.pebble, self.bin)
        listen = free_port()
        ck.write_config([lineage(0)], http01_port=listen)
        seconds = self.plan.flood_seconds
        tail = 4.0  # the flood outlasts the probe by this much; the validation goes in there
        for level in self.plan.flood_levels:
            self.say(f"HTTP-01 under load: flood of {level} connections for {seconds + tail:g} s")
            relay = ChallengeRelay(self.pebble.http01_port, listen, hold_timeout=seconds + tail + 2)
            renew = Spawned(ck.argv("renew", "--force"), env=dict(os.environ), log=self.logs / "certkeeper-flood.log")
            flood = None
            try:
                if not relay.seen.wait(30):
                    raise measure.CommandFailed("Pebble never asked for the challenge (see certkeeper-flood.log)")
                path = f"/.well-known/acme-challenge/{relay.token}"
                with urllib.request.urlopen(f"http://127.0.0.1:{listen}{path}", timeout=5) as r:
                    body = r.read().decode()
                if not body.startswith(relay.token + "."):
                    raise measure.CommandFailed(f"unexpected challenge response {body!r}")
                before = measure.snapshot(renew.pid)
                if level:
                    flood = subprocess.Popen(
                        ["wrk", "-t1", f"-c{level}", f"-d{seconds + tail:g}s", "--timeout", "2s",
                         f"http://127.0.0.1:{listen}/.well-known/acme-challenge/not-a-published-token"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    time.sleep(0.5)
                probe = subprocess.run(
                    ["wrk", "-t1", "-c4", f"-d{seconds:g}s", "--latency", "--timeout", "5s",
                     "-H", "Connection: close", f"http://127.0.0.1:{listen}{path}"],
                    capture_output=True, text=True, check=True)
                after = measure.snapshot(renew.pid)
                # Let Pebble's validation through while the flood is still on.
                relay.release.set()
                relay.forwarded_event.wait(10)
                flood_out = flood.communicate()[0] if flood else ""
                sample = renew.wait(timeout=60)
                self.results.flood.append({
                    "level": level,
                    "probe": parse_wrk(probe.stdout),
                    "flood": parse_wrk(flood_out) if flood else None,
                    "certkeeper_cpu_s": (after.cpu_ns - before.cpu_ns) / 1e9,
                    "probe_seconds": seconds,
                    "certkeeper_rss_kib": after.rss_kib,
                    "validation": relay.forwarded,
                    "issued": sample.extra["rc"] == 0,
                })
                with (self.logs / "wrk.log").open("a") as f:
                    f.write(f"\n== flood {level}\n{probe.stdout}\n{flood_out}\n")
            finally:
                relay.close()
                if flood and flood.poll() is None:
                    flood.kill()
                    flood.wait()
                if renew.running():
                    renew.signal(signal.SIGKILL)
                    renew.wait()
        self.results.commands["flood"] = (
            f"wrk -t1 -c$LEVEL -d{seconds + tail:g}s --timeout 2s "
            "http://127.0.0.1:$LISTEN/.well-known/acme-challenge/not-a-published-token")
        self.results.commands["probe"] = (
            f"wrk -t1 -c4 -d{seconds:g}s --latency --timeout 5s -H 'Connection: close' "
            "http://127.0.0.1:$LISTEN/.well-known/acme-challenge/$TOKEN")


    # -- scenario 6: a large fleet -----------------------------------------------------------

    def scale_fleet(self) -> Certkeeper:
        """`plan.scale_size` live lineages in one state directory. The first, c0000, is issued
        from Pebble by `certkeeper renew` (which registers the account too); the others are
        written by the benchmark in certkeeper's layout, each with its own key and certificate
        and a copy of c0000's `state/NAME.json` (one success, no failure), as certkeeper
        leaves a lineage after its first issuance. Issuing 10,000 from Pebble would take about
        20 minutes and measure nothing this scenario is about."""
        n = self.plan.scale_size
        ck = Certkeeper(self.work / f"scale-{n}", self.pebble, self.bin)
        names = [lineage(i) for i in range(n)]
        ck.write_config(names[:1])
        self.say(f"scale {n}: certkeeper renew issues {names[0]} from Pebble")
        seed, _ = self.counted(lambda: measure.run(ck.argv("renew"), log=self.logs / "certkeeper-scale.log"))
        template = (ck.state_dir / "state" / f"{names[0]}.json").read_bytes()
        self.say(f"scale {n}: writing {n - 1} more lineages in certkeeper's layout")
        started = time.monotonic()
        write_synthetic_lineages(ck.state_dir, names[1:], state_template=template)
        ck.write_config(names)
        self.results.scale["fleet"] = {"size": n, "seed": seed, "seconds": time.monotonic() - started}
        return ck

    def scale_startup(self, ck: Certkeeper) -> None:
        n = self.plan.scale_size
        self.say(f"scale {n}: daemon start-up x{self.plan.scale_startup_reps}")
        self.results.scale["startup"] = self.startups(
            ck, self.plan.scale_startup_reps, log="certkeeper-scale-startup.log",
            command_key="scale run")

    def scale_rest(self, ck: Certkeeper) -> "RestMeasurement":
        """The daemon at rest over the large fleet (start it, or hand it to `fleet`)."""
        return RestMeasurement(self, ck, name="scale-rest",
                               save=lambda result: self.results.scale.__setitem__("rest", result))

    def scale_commands(self, ck: Certkeeper) -> None:
        """`renew` (nothing due) and `status --json` over the large fleet, each checked: every
        lineage reported not due, every status row valid."""
        n = self.plan.scale_size
        reps = self.plan.scale_reps
        log = self.logs / "certkeeper-scale.log"
        for how, args, expect in (("renew, nothing due", ("renew",), ": not due"),
                                  ("status --json", ("status", "--json"), '"state": "valid"')):
            row = Row("scale", n, "certkeeper", how, [], self.show(ck.argv(*args)))
            self.say(f"scale {n}: certkeeper {' '.join(args)} x{reps}")
            codes = []
            for _ in range(reps):
                sample, _ = self.counted(lambda: measure.run(ck.argv(*args), log=log, check=False))
                codes.append(sample.extra["rc"])
                row.samples.append(sample)
            last_run = log.read_text().rsplit("\n$ ", 1)[-1]
            seen = last_run.count(expect)
            row.note = (f"`{' '.join(args)}`: {seen} of {n} lineages "
                        f"{'not due' if args[0] == 'renew' else 'valid'} in the last run, "
                        f"exit codes {sorted(set(codes))}")
            self.results.add(row)

    def burst(self) -> None:
        """HTTP-01 answers while the daemon issues `burst_certs` certificates with
        `burst_key_type` keys at once. The daemon listens on the port Pebble validates; it starts
        with an empty inventory, an open-loop probe GETs an unknown token on that port (an
        answer is a 404) at `probe_rate` for `burst_before_seconds`, then the inventory is
        rewritten with the new certificates (the daemon reloads it by itself, 0.5 s after the
        file changed) and the probe goes on until every one is live."""
        plan = self.plan
        path = "/.well-known/acme-challenge/not-a-published-token"
        port = self.pebble.http01_port
        for rep in range(plan.burst_reps):
            ck = Certkeeper(self.work / f"burst-{rep}", self.pebble, self.bin)
            names = [lineage(i, prefix="b") for i in range(plan.burst_certs)]
            ck.write_config([])
            notify = measure.NotifySocket(self.work / "notify-burst.sock")
            env = dict(os.environ, NOTIFY_SOCKET=str(notify.path))
            self.say(f"burst {rep + 1}/{plan.burst_reps}: {plan.burst_certs} {plan.burst_key_type} "
                     f"certificates, HTTP-01 port probed at {plan.probe_rate:g}/s")
            proc = Spawned(ck.argv("run"), env=env, log=self.logs / "certkeeper-burst.log")
            probe = None
            try:
                if notify.wait_for("READY=1", timeout=60) is None:
                    raise measure.CommandFailed("certkeeper run sent no READY=1 (see certkeeper-burst.log)")
                time.sleep(0.5)
                probe = OpenLoopProbe(port, path, plan.probe_rate).start()
                before_at = time.monotonic()
                time.sleep(plan.burst_before_seconds)
                a = measure.snapshot(proc.pid)
                offset = self.pebble.log_file.stat().st_size
                burst_at = time.monotonic()
                ck.write_config(names, key_type=plan.burst_key_type)
                pending = [ck.live(n) for n in names]
                deadline = burst_at + 120 + 15 * len(names)
                while pending:
                    pending = [p for p in pending if not os.path.lexists(p)]
                    if not proc.running():
                        raise measure.CommandFailed("certkeeper run exited during the burst (see certkeeper-burst.log)")
                    if time.monotonic() > deadline:
                        raise measure.CommandFailed(f"{len(pending)} of the burst's certificates not live in time (see certkeeper-burst.log)")
                    time.sleep(0.01)
                done_at = time.monotonic()
                b = measure.snapshot(proc.pid)
                lateness = probe.lateness_max_s
                answers = probe.stop()
                probe = None
                requests, _ = measure.pebble_requests(self.pebble.log_file, offset)
                self.results.scale.setdefault("burst", []).append({
                    "before": summarize_probe(answers, before_at, burst_at, "404"),
                    "during": summarize_probe(answers, burst_at, done_at, "404"),
                    "certificates": len(names),
                    "key_type": plan.burst_key_type,
                    "seconds": done_at - burst_at,
                    "cpu_s": (b.cpu_ns - a.cpu_ns) / 1e9,
                    "rss_kib": b.rss_kib,
                    "hwm_kib": b.hwm_kib,
                    "requests": requests,
                    "probe_lateness_max_s": lateness,
                    "rate": plan.probe_rate,
                })
                self.results.commands["burst run"] = f"NOTIFY_SOCKET=$W/notify-burst.sock {self.show(ck.argv('run'))}"
            finally:
                if probe is not None:
                    probe.stop()
                proc.signal(signal.SIGTERM)
                proc.wait(timeout=60)
                notify.close()


    # -- scenario 7: DNS-01 through a real named -----------------------------------------------

    def fleet3(self) -> None:
        """Scenario 8: three nodes of a fleet on one PostgreSQL (bench/certbench/fleet.py)."""
        from . import fleet
        p = self.plan
        self.results.fleet3 = fleet.run(self.work, self.pebble, self.bin, p.fleet_sync_size,
                                        p.fleet_rest_size, p.fleet_rest_seconds,
                                        p.fleet_default_rest_seconds, self.say)

    def dns01(self) -> None:
        """certkeeper, certbot and lego issuing by DNS-01 through a real BIND 9 named (RFC 2136
        updates signed with TSIG), validated by a Pebble of this scenario's own that resolves
        through that named (`-dnsserver`); certkeeper also issues as many by HTTP-01 from the
        same Pebble at the same concurrency, alternating with the DNS-01 runs, for the ratio.
        Counted per run: requests to the CA (Pebble's log), UPDATE messages and record changes
        (named's update log), queries and UPDATEs by opcode (named's statistics channel), and
        the challenge records left in the zone afterwards (an AXFR). A tool that fails is
        recorded as such (`results.dns["failed"]`) and the others still run."""
        from .bind import ALGORITHM, KEY_NAME, ZONE, Bind

        plan = self.plan
        n = plan.dns_size
        root = self.work / "dns01"
        names = [lineage(i, prefix="d") for i in range(max(n, plan.dns_certbot, plan.dns_lego))]
        http_names = [lineage(i, prefix="h") for i in range(n)]
        self.say(f"dns01: starting named and a Pebble that resolves through it")
        bind = Bind.start(root / "named", [domain(x) for x in names])
        pebble = None
        info = self.results.dns
        info.update({"rows": [], "commands": {}, "failed": {}, "zone": ZONE, "key": KEY_NAME,
                     "algorithm": ALGORITHM, "size": n, "pids": []})
        try:
            pebble = Pebble.start(root / "pebble", dns_server=bind.server)
            info["pids"] = [bind.pid] + [x.pid for x in pebble.procs]
            secret_file = write_private(root / "tsig.secret", bind.secret + "\n")
            provider = DnsProvider(server=bind.server, key_name=KEY_NAME, algorithm=ALGORITHM,
                                   secret_file=secret_file)
            rows = {
                "ck-dns": DnsRow("certkeeper", f"`renew`, dns-01 through `[dns.bind]` (rfc2136), max_concurrent = 4", n),
                "ck-http": DnsRow("certkeeper", "`renew`, http-01 (embedded responder), max_concurrent = 4", n),
                "certbot": DnsRow("certbot", "`certonly --authenticator dns-rfc2136`, one process per certificate, "
                                  "default `--dns-rfc2136-propagation-seconds` (60)", plan.dns_certbot),
                "lego": DnsRow("lego", "`--dns rfc2136 run`, one process per certificate", plan.dns_lego),
            }
            info["rows"] = list(rows.values())

            def measured(row: DnsRow, fn) -> None:
                before_updates, before_ops = bind.updates(), bind.opcode_counts()
                try:
                    sample, _ = self.counted_at(pebble, fn)
                except measure.CommandFailed as err:
                    info["failed"][row.tool + " " + row.how] = str(err).replace(bind.secret, "$TSIG_SECRET")
                    self.say(f"dns01: {row.tool} failed: {err}")
                    return
                after_ops = bind.opcode_counts()
                sample.extra["dns"] = {
                    "updates": bind.updates().minus(before_updates),
                    "opcodes": {k: after_ops.get(k, 0) - before_ops.get(k, 0) for k in after_ops},
                    "left": bind.challenge_records(),
                }
                row.samples.append(sample)

            for rep in range(plan.dns_reps):
                ck = Certkeeper(root / f"certkeeper-dns-{rep}", pebble, self.bin)
                ck.write_config(names[:n], dns=provider)
                self.say(f"dns01 {rep + 1}/{plan.dns_reps}: certkeeper renew, {n} certificates by DNS-01")
                measured(rows["ck-dns"], lambda: measure.run(ck.argv("renew"), log=self.logs / "certkeeper-dns01.log"))
                info["commands"]["certkeeper dns"] = self.show_dns(ck.argv("renew"), pebble, bind)
                info["inventory"] = _dns_inventory_example(ck.config.read_text(), self.work, pebble, bind)
                ck_http = Certkeeper(root / f"certkeeper-http-{rep}", pebble, self.bin)
                ck_http.write_config(http_names)
                self.say(f"dns01 {rep + 1}/{plan.dns_reps}: certkeeper renew, {n} certificates by HTTP-01")
                measured(rows["ck-http"], lambda: measure.run(ck_http.argv("renew"), log=self.logs / "certkeeper-dns01-http.log"))
                info["commands"]["certkeeper http"] = self.show_dns(ck_http.argv("renew"), pebble, bind)

            if plan.dns_certbot:
                self._dns_certbot(root, pebble, bind, names[:plan.dns_certbot], rows["certbot"], measured)
            if plan.dns_lego:
                self._dns_lego(root, pebble, bind, names[:plan.dns_lego], rows["lego"], measured)
            info["named_command"] = self.show_dns(bind.proc.args, pebble, bind)
            info["pebble_command"] = self.show_dns(pebble.procs[-1].args, pebble, bind)
        finally:
            if pebble is not None:
                pebble.stop()
            bind.stop()
        # Not fatal for the other rows (the report shows what failed), but a run where certkeeper
        # could not issue is no measurement of it: fail the benchmark, as the other scenarios do.
        ck_failed = [k for k in info["failed"] if k.startswith("certkeeper")]
        if ck_failed:
            raise measure.CommandFailed(f"dns01: {'; '.join(info['failed'][k] for k in ck_failed)}")

    def _dns_certbot(self, root: Path, pebble: Pebble, bind, some: list[str], row, measured) -> None:
        from .bind import ALGORITHM, KEY_NAME

        info = self.results.dns
        cb = Certbot(root / "certbot", pebble)
        credentials = certbot_rfc2136_credentials(root / "certbot-rfc2136.ini", "127.0.0.1", bind.port,
                                                  KEY_NAME, bind.secret, ALGORITHM)
        self.say(f"dns01: certbot certonly --authenticator dns-rfc2136 x{len(some)} (60 s propagation wait each)")
        measured(row, lambda: self.loop([cb.certonly_dns(x, credentials) for x in some], cb.env,
                                        self.logs / "certbot-dns01.log"))
        info["commands"]["certbot"] = self.show_dns(cb.certonly_dns(some[0], credentials), pebble, bind)
        info["certbot_ini"] = "\n".join(
            line if not line.startswith("dns_rfc2136_secret") else "dns_rfc2136_secret = $TSIG_SECRET"
            for line in credentials.read_text().replace(str(bind.port), "$NAMED_PORT").splitlines())

    def _dns_lego(self, root: Path, pebble: Pebble, bind, some: list[str], row, measured) -> None:
        from .bind import ALGORITHM, KEY_NAME

        info = self.results.dns
        lg = Lego(root / "lego", pebble)
        env = lg.dns_env(bind.server, KEY_NAME, bind.secret, ALGORITHM, timeout_s=120, interval_s=2)
        self.say(f"dns01: lego --dns rfc2136 run x{len(some)}")
        measured(row, lambda: self.loop([lg.run_dns(x, bind.server) for x in some], env,
                                        self.logs / "lego-dns01.log"))
        shown = [f"{k}={v}" for k, v in env.items() if k.startswith(("RFC2136_", "LEGO_CA_"))]
        info["commands"]["lego"] = self.show_dns([*shown, *lg.run_dns(some[0], bind.server)], pebble, bind)

    def counted_at(self, pebble: Pebble, fn) -> tuple[Sample, dict[str, int]]:
        """`counted` against another Pebble than the benchmark's."""
        offset = pebble.log_file.stat().st_size
        sample = fn()
        total, per = measure.pebble_requests(pebble.log_file, offset)
        sample.requests = total
        return sample, per


@dataclass
class DnsRow:
    tool: str
    how: str
    size: int  # certificates per run
    samples: list[Sample] = field(default_factory=list)


def _dns_inventory_example(text: str, work: Path, pebble: Pebble, bind) -> str:
    """The DNS-01 inventory's head and first certificate, paths and ports as variables."""
    text = text.replace(str(work), "$W")
    text = text.replace(f"localhost:{pebble.acme_port}/dir", "localhost:$ACME_PORT/dir")
    text = text.replace(f"127.0.0.1:{bind.port}", "127.0.0.1:$NAMED_PORT")
    head, _, rest = text.partition("[[certificate]]")
    first = "[[certificate]]" + rest.split("[[certificate]]")[0]
    return (head + first).strip() + "\n# ... one [[certificate]] per lineage"


def ck_names(ck: Certkeeper) -> list[str]:
    """The certificate names of `ck`'s inventory (the CA's name is `pebble`)."""
    return [n for n in re.findall(r'^name = "([^"]+)"', ck.config.read_text(), flags=re.M)
            if n != "pebble"]


class RestMeasurement:
    """`certkeeper run` with every certificate valid, observed from /proc for a period.

    Started with NOTIFY_SOCKET and WATCHDOG_USEC as systemd would (the shipped unit has
    WatchdogSec=60), on an HTTP-01 port of its own, so it can run while another tool uses
    Pebble's: nothing else can wake it (its only inputs are its timers, signals, its
    configuration directory and its own listening sockets).

    `name` keeps two measurements apart (log, notify socket, config file), so two can run at
    once; the result goes to `results.rest`, or wherever `save` puts it."""

    def __init__(self, bench: Bench, ck: Certkeeper, name: str = "rest", save=None):
        self.bench = bench
        self.ck = ck
        self.name = name
        self.save = save or (lambda result: setattr(bench.results, "rest", result))
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._guarded, daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is None:
            self.start()
        self.thread.join()
        if self.error:
            raise self.error

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as err:  # reported by join()
            self.error = err

    def run(self) -> None:
        bench, ck = self.bench, self.ck
        period = bench.plan.rest_seconds
        notify = measure.NotifySocket(bench.work / f"notify-{self.name}.sock")
        config = ck.root / f"{self.name}.toml"
        ck.write_config(ck_names(ck), http01_port=free_port(), path=config)
        env = dict(os.environ, NOTIFY_SOCKET=str(notify.path),
                   WATCHDOG_USEC=str(bench.plan.rest_watchdog_usec))
        bench.say(f"daemon at rest: {len(ck_names(ck))} certificates, {period:g} s")
        proc = Spawned(ck.argv_with(config, "run"), env=env, log=bench.logs / f"certkeeper-{self.name}.log")
        try:
            ready = notify.wait_for("READY=1", timeout=120)
            if ready is None:
                raise measure.CommandFailed("certkeeper run sent no READY=1")
            time.sleep(2.0)
            a = measure.snapshot(proc.pid)
            # A snapshot every second (reading /proc does not wake the daemon): the seconds in
            # which any of its threads ran show how often it wakes, not just how many times.
            samples = []
            deadline = a.at + period
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                samples.append(measure.snapshot(proc.pid))
            b = samples[-1]
            active = [cur.at - a.at for prev, cur in zip([a, *samples], samples) if cur.runs != prev.runs]
            gaps = [y - x for x, y in zip(active, active[1:])]
            by_mapping = measure.rss_by_mapping(proc.pid)
            pets = notify.count("WATCHDOG=1", since=a.at)
            status_messages = notify.count_prefix("STATUS=", since=a.at)
            per_thread = {}
            for tid, (ns, runs) in b.threads.items():
                ns0, runs0 = a.threads.get(tid, (0, 0))
                name = Path(f"/proc/{proc.pid}/task/{tid}/comm").read_text().strip()
                per_thread[f"{name} ({tid})"] = {"cpu_ns": ns - ns0, "wakeups": runs - runs0}
            measured = b.at - a.at
            result = {
                "certificates": len(ck_names(ck)),
                "seconds": measured,
                "watchdog_usec": bench.plan.rest_watchdog_usec,
                "watchdog_pets": pets,
                "status_messages": status_messages,
                "cpu_s": (b.cpu_ns - a.cpu_ns) / 1e9,
                "ticks_s": (b.ticks - a.ticks) / measure.CLOCK_TICKS,
                "wakeups": b.runs - a.runs,
                "active_seconds": len(active),
                "median_gap_s": statistics.median(gaps) if gaps else None,
                "min_gap_s": min(gaps) if gaps else None,
                "voluntary": b.voluntary - a.voluntary,
                "involuntary": b.involuntary - a.involuntary,
                "rss_start_kib": a.rss_kib,
                "rss_end_kib": b.rss_kib,
                "rss_max_kib": max(s.rss_kib for s in [a, *samples]),
                "hwm_kib": b.hwm_kib,
                "anon_kib": b.anon_kib,
                "file_kib": b.file_kib,
                "by_mapping": by_mapping,
                "threads": len(b.threads),
                "threads_gone": sorted(set(a.threads) - set(b.threads)),
                "per_thread": per_thread,
                "command": f"NOTIFY_SOCKET=$W/notify.sock WATCHDOG_USEC={bench.plan.rest_watchdog_usec} "
                           f"{bench.show(ck.argv_with(config, 'run'))}",
            }
        finally:
            proc.signal(signal.SIGTERM)
            proc.wait(timeout=60)
            notify.close()
        result["quiet"] = self.quiet(config)
        self.save(result)

    def quiet(self, config: Path) -> dict:
        """The same daemon without a watchdog: any wake-up now is one it chose to make."""
        bench = self.bench
        seconds = bench.plan.quiet_seconds
        notify = measure.NotifySocket(bench.work / f"notify-{self.name}-quiet.sock")
        env = dict(os.environ, NOTIFY_SOCKET=str(notify.path))
        env.pop("WATCHDOG_USEC", None)
        bench.say(f"daemon at rest without watchdog: {seconds:g} s")
        proc = Spawned(self.ck.argv_with(config, "run"), env=env, log=bench.logs / f"certkeeper-{self.name}.log")
        try:
            if notify.wait_for("READY=1", timeout=120) is None:
                raise measure.CommandFailed("certkeeper run sent no READY=1")
            time.sleep(2.0)
            a = measure.snapshot(proc.pid)
            time.sleep(seconds)
            b = measure.snapshot(proc.pid)
            return {"seconds": b.at - a.at, "cpu_s": (b.cpu_ns - a.cpu_ns) / 1e9,
                    "wakeups": b.runs - a.runs, "voluntary": b.voluntary - a.voluntary}
        finally:
            proc.signal(signal.SIGTERM)
            proc.wait(timeout=60)
            notify.close()


def write_synthetic_lineages(state_dir: Path, names: list[str], state_template: bytes | None = None) -> None:
    """`state_dir/archive/NAME/v0001/*.pem` and `live/NAME -> ../archive/NAME/v0001` for every
    name, as certkeeper's store lays them out, with its modes (see crates/store/src/layout.rs:
    directories 0750, private keys 0600, the rest 0644): a fresh P-256 key and a 90-day
    certificate for `NAME.bench.example.com` from a local CA. With `state_template`, also
    `state/NAME.json` (0644) with that content."""
    ca_key, ca_cert = make_ca("certkeeper bench synthetic CA")
    ca_pem = pem_cert(ca_cert)
    from cryptography.hazmat.primitives.asymmetric import ec

    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    for sub, mode in (("archive", 0o750), ("live", 0o750), ("state", 0o700), ("accounts", 0o700)):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
        (state_dir / sub).chmod(mode)
    state_dir.chmod(0o750)
    def public(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)  # whatever the umask

    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = sign_leaf(ca_key, ca_cert, key, [domain(name)], not_before=start,
                         lifetime=datetime.timedelta(days=90))
        version = state_dir / "archive" / name / "v0001"
        version.mkdir(parents=True)
        version.chmod(0o750)
        version.parent.chmod(0o750)
        leaf = pem_cert(cert)
        public(version / "cert.pem", leaf)
        public(version / "chain.pem", ca_pem)
        public(version / "fullchain.pem", leaf + ca_pem)
        fd = os.open(version / "privkey.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem_key(key))
        os.symlink(f"../archive/{name}/v0001", state_dir / "live" / name)
        if state_template is not None:
            public(state_dir / "state" / f"{name}.json", state_template)


def parse_wrk(text: str) -> dict:
    """Requests/sec, latency percentiles, non-2xx responses and socket errors from wrk."""
    def seconds(value: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s|m)", value)
        if not m:
            return float("nan")
        scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]
        return float(m.group(1)) * scale

    out: dict = {"rps": None, "requests": 0, "non2xx": 0, "errors": {}, "latency": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, flags=re.M):
        out["latency"][pct] = seconds(value)
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["latency"]["avg"] = seconds(m.group(1))
        out["latency"]["max"] = seconds(m.group(3))
    return out
