"""How processes are measured.

Every measured process is started under GNU time (`/usr/bin/time -f %M`), whose small forked
child execs the tool, so the peak RSS it reports is the tool's own (a child forked from this
Python script would carry the script's resident set into the tool's high-water mark). Wall
time is the monotonic clock around the process, spawn to reaped. CPU time is user + system
time from wait4(2) on GNU time, which covers the tool and everything it waited for, at
microsecond resolution (GNU time itself would print it rounded to 10 ms; its own share is
well under a millisecond).

For a loop of processes (one certbot or lego per certificate) wall and CPU are summed and
peak RSS is the largest of any one process. A daemon at rest is observed from /proc while
it runs: /proc/PID/task/*/schedstat (nanoseconds on a CPU and the number of times each
thread was scheduled in, i.e. woken), /proc/PID/task/*/status (voluntary context switches)
and /proc/PID/status (VmRSS, VmHWM).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    wall: float = 0.0  # seconds
    cpu: float = 0.0  # user + system seconds
    rss_kib: int = 0  # peak resident set, KiB
    requests: int | None = None  # requests that reached the CA
    processes: int = 0
    extra: dict = field(default_factory=dict)

    def add(self, other: "Sample") -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.rss_kib = max(self.rss_kib, other.rss_kib)
        self.processes += other.processes
        if other.requests is not None:
            self.requests = (self.requests or 0) + other.requests
        peaks = other.extra.get("rss_peaks")
        if peaks:
            mine = self.extra.setdefault("rss_peaks", {})
            for key, value in peaks.items():
                mine[key] = max(mine.get(key, 0), value)


class CommandFailed(RuntimeError):
    pass


TIME = "/usr/bin/time"


class Spawned:
    """A tool started under GNU time: `proc` is GNU time, `pid` the tool itself."""

    def __init__(self, argv: list[str], *, env, log: Path, cwd: Path | None = None):
        self.argv = argv
        self.log = log
        self.rss_file = log.with_name(f".{log.name}.{os.getpid()}.{time.monotonic_ns()}.rss")
        self.out = open(log, "ab")
        self.out.write(("\n$ " + " ".join(argv) + "\n").encode())
        self.out.flush()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [TIME, "-f", "%M", "-o", str(self.rss_file), *argv], env=env, cwd=cwd,
            stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._pid: int | None = None

    @property
    def pid(self) -> int:
        """The tool's pid (GNU time's only child)."""
        while self._pid is None:
            try:
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            except FileNotFoundError:
                raise RuntimeError(f"{self.argv[0]} ended early (output in {self.log})") from None
            if children:
                self._pid = int(children[0])
            else:
                time.sleep(0.001)
        return self._pid

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> Sample:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.monotonic() > deadline:
                self.signal(signal.SIGKILL)
                _, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.out.close()
        rss = 0
        try:
            lines = self.rss_file.read_text().split()
            rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
            self.rss_file.unlink()
        except FileNotFoundError:
            pass
        return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss_kib=rss,
                      processes=1, extra={"rc": self.proc.returncode})


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Path,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> Sample:
    """Run one process to completion, output appended to `log`."""
    spawned = Spawned(argv, env=env, log=log, cwd=cwd)
    try:
        sampler = RssSampler(spawned.pid)
    except RuntimeError:  # ended before its pid was seen
        sampler = None
    sample = spawned.wait(timeout)
    if sampler:
        sample.extra["rss_peaks"] = sampler.stop()
    if check and sample.extra["rc"] != 0:
        raise CommandFailed(f"exit {sample.extra['rc']}: {' '.join(argv)} (output in {log})")
    return sample


# -- /proc ------------------------------------------------------------------------------------

@dataclass
class ProcSnapshot:
    at: float
    cpu_ns: int  # sum over live threads of schedstat's time on CPU
    runs: int  # sum over live threads of schedstat's timeslice count (wake-ups)
    voluntary: int  # sum over live threads of voluntary_ctxt_switches
    involuntary: int
    ticks: int  # utime + stime from /proc/PID/stat (whole process, in clock ticks)
    rss_kib: int
    hwm_kib: int
    anon_kib: int
    file_kib: int
    threads: dict[int, tuple[int, int]]  # tid -> (cpu_ns, runs)


def _status_fields(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def snapshot(pid: int) -> ProcSnapshot:
    base = Path(f"/proc/{pid}")
    cpu_ns = runs = vol = invol = 0
    threads = {}
    for task in (base / "task").iterdir():
        try:
            ns, _wait, slices = (int(x) for x in (task / "schedstat").read_text().split())
            status = _status_fields(task / "status")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
        threads[int(task.name)] = (ns, slices)
        cpu_ns += ns
        runs += slices
        vol += int(status["voluntary_ctxt_switches"])
        invol += int(status["nonvoluntary_ctxt_switches"])
    stat = (base / "stat").read_text()
    after_comm = stat[stat.rindex(")") + 2:].split()
    ticks = int(after_comm[11]) + int(after_comm[12])  # fields 14 and 15: utime, stime
    status = _status_fields(base / "status")
    return ProcSnapshot(
        at=time.monotonic(), cpu_ns=cpu_ns, runs=runs, voluntary=vol, involuntary=invol,
        ticks=ticks, rss_kib=int(status["VmRSS"].split()[0]),
        hwm_kib=int(status["VmHWM"].split()[0]), anon_kib=int(status["RssAnon"].split()[0]),
        file_kib=int(status["RssFile"].split()[0]), threads=threads,
    )


def rss_by_mapping(pid: int) -> dict[str, int]:
    """Resident KiB per kind of mapping, from /proc/PID/smaps: the executable, each shared
    library, `[heap]`, `[stack]`, and anonymous mappings (malloc arenas, thread stacks)."""
    totals: dict[str, int] = {}
    current = "?"
    exe = os.readlink(f"/proc/{pid}/exe")
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
            if path == exe:
                current = "executable"
            elif path.startswith("["):
                current = path
            elif path:
                current = Path(path).name.split(".so")[0] + (".so" if ".so" in path else "")
            else:
                current = "anonymous (malloc arenas, thread stacks)"
        elif fields[0] == "Rss:":
            totals[current] = totals.get(current, 0) + int(fields[1])
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


class RssSampler:
    """Largest VmRSS, RssAnon and RssFile of a running process, sampled every 10 ms."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            try:
                fields = _status_fields(path)
            except (FileNotFoundError, ProcessLookupError, KeyError):
                return
            for key in self.peak:
                if key in fields:
                    self.peak[key] = max(self.peak[key], int(fields[key].split()[0]))
            self._stop.wait(0.01)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peak


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- sd_notify ------------------------------------------------------------------------------

class NotifySocket:
    """A Unix datagram socket standing in for systemd's NOTIFY_SOCKET, recording when each
    message arrived."""

    def __init__(self, path: Path):
        self.path = path
        if path.exists():
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._closed = False
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode(errors="replace")))
                self._lock.notify_all()

    def wait_for(self, needle: str, timeout: float) -> float | None:
        """Monotonic arrival time of the first message containing `needle`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for at, text in self.messages:
                    if needle in text.split("\n"):
                        return at
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(remaining)

    def count(self, needle: str, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for at, text in self.messages if at >= since and needle in text.split("\n"))

    def count_prefix(self, prefix: str, since: float = 0.0) -> int:
        """Messages with a line starting with `prefix` (e.g. `STATUS=`)."""
        with self._lock:
            return sum(1 for at, text in self.messages
                       if at >= since and any(l.startswith(prefix) for l in text.split("\n")))

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


# -- statistics -----------------------------------------------------------------------------

@dataclass
class Summary:
    n: int
    median: float
    low: float
    high: float


def summarize(values: list[float]) -> Summary:
    return Summary(len(values), statistics.median(values), min(values), max(values))


def pebble_requests(log: Path, start_offset: int) -> tuple[int, dict[str, int]]:
    """Requests Pebble handled since `start_offset` of its log (it logs
    `GET /dir -> calling handler()` for every request), and a count per method and path
    (numbers and ids in paths folded)."""
    import re

    pattern = re.compile(r"^Pebble \S+ \S+ ([A-Z]+) (\S+) -> calling handler")
    total = 0
    per: dict[str, int] = {}
    with open(log, "rb") as f:
        f.seek(start_offset)
        for raw in f:
            m = pattern.match(raw.decode(errors="replace"))
            if not m:
                continue
            total += 1
            path = re.sub(r"/[A-Za-z0-9_-]{10,}", "/ID", m.group(2))
            path = re.sub(r"/\d+(/|$)", r"/N\1", path)
            key = f"{m.group(1)} {path}"
            per[key] = per.get(key, 0) + 1
    return total, per


# -- the rest of the machine ------------------------------------------------------------------

class LoadMeter:
    """CPU the whole machine used per phase (from /proc/stat), and how much of it was not this
    benchmark's (its own CPU and that of every process it started). Other processes on the
    machine compete for the same cores, so the report says how busy they were, and which
    programs were busy (`OtherProcesses`)."""

    def __init__(self, extra_pids: list[int]):
        self.extra_pids = extra_pids
        self.phases: list[dict] = []
        self._current: tuple[str, float, float, float] | None = None
        self.others = OtherProcesses()

    @staticmethod
    def _busy() -> float:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields[:8]) - idle) / CLOCK_TICKS

    def _ours(self) -> float:
        import resource

        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        for pid in self.extra_pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue
            after = stat[stat.rindex(")") + 2:].split()
            total += (int(after[11]) + int(after[12])) / CLOCK_TICKS
        return total

    def mark(self, name: str | None) -> None:
        now, busy, ours = time.monotonic(), self._busy(), self._ours()
        by_program = self.others.take()
        if self._current:
            label, t0, b0, o0 = self._current
            wall = now - t0
            self.phases.append({"phase": label, "wall": wall, "busy": busy - b0,
                                "ours": ours - o0, "others": max(0.0, (busy - b0) - (ours - o0)),
                                "other_programs": by_program})
        self._current = (name, now, busy, ours) if name else None
        if not name:
            self.others.stop()


class OtherProcesses:
    """CPU used by processes that are not this benchmark's, per program name (`comm`), sampled
    from /proc/PID/stat every 2 s by a thread. A process is the benchmark's when this Python
    process is among its ancestors (GNU time, the tools, Pebble). Processes born and gone
    between two samples are missed, so the figures are a lower bound; what they show is which
    programs (rustc, a test binary, ...) shared the machine."""

    PERIOD = 2.0

    def __init__(self):
        self.me = os.getpid()
        self._last: dict[int, tuple[str, int]] = {}  # pid -> (comm, ticks) at the last sample
        self._totals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
        self._last_at = time.time()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.PERIOD):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        procs: dict[int, tuple[str, int, int, float]] = {}  # pid -> comm, ppid, ticks, start
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            rest = stat[stat.rindex(")") + 2:].split()
            procs[int(entry.name)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]),
                                      self._boot + int(rest[19]) / CLOCK_TICKS)

        def ours(pid: int) -> bool:
            seen = 0
            while pid > 1 and seen < 64:
                if pid == self.me:
                    return True
                pid = procs[pid][1] if pid in procs else 0
                seen += 1
            return False

        current: dict[int, tuple[str, int]] = {}
        with self._lock:
            previous_sample, self._last_at = self._last_at, time.time()
            for pid, (comm, _ppid, ticks, started) in procs.items():
                current[pid] = (comm, ticks)
                if first or ours(pid):
                    continue
                before = self._last.get(pid)
                if before is not None and before[0] == comm:
                    delta = ticks - before[1]
                elif started >= previous_sample - 0.5:
                    delta = ticks  # born since the last sample: all of its CPU is new
                else:
                    delta = 0  # first seen now, but older: its past CPU is not this phase's
                if delta > 0:
                    self._totals[comm] = self._totals.get(comm, 0.0) + delta / CLOCK_TICKS
            self._last = current

    def take(self) -> dict[str, float]:
        """CPU seconds per program since the last call, largest first."""
        self._sample()
        with self._lock:
            totals, self._totals = self._totals, {}
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def stop(self) -> None:
        self._stop.set()
