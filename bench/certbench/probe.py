"""An open-loop HTTP probe: GET one path at a fixed rate, each request on a new connection.

Open loop means the probe sends on schedule whether or not earlier requests were answered,
as independent validators (a CA's, from several vantage points) would. A closed-loop load
tool such as wrk waits for an answer before sending the next request on a connection, so a
server that stalls for a second gets only one sample per connection for that second and the
stall all but vanishes from the percentiles; here every request scheduled during the stall
waits it out and counts. It also keeps the probe's own CPU small (about 0.2 ms of Python per
request), so on a 2-core machine it does not take the core the server needs.

Latency is from the start of connect(2) to the end of the response (the server closes after
it: `Connection: close`). If the probe itself runs late (this Python process descheduled on
a busy machine), the request starts late and its latency does not include the delay; the
largest such delay is reported as `lateness_max_s`, so a late probe is visible.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass


@dataclass
class Answer:
    sent_at: float  # monotonic
    latency: float | None  # seconds, None when the request failed
    outcome: str  # HTTP status code, or the error's name


class OpenLoopProbe:
    def __init__(self, port: int, path: str, rate: float, timeout: float = 10.0):
        self.port = port
        self.path = path
        self.rate = rate
        self.timeout = timeout
        self.answers: list[Answer] = []
        self.lateness_max_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         "User-Agent: certbench-probe\r\nConnection: close\r\n\r\n").encode()

    def start(self) -> "OpenLoopProbe":
        self._thread.start()
        return self

    def stop(self) -> list[Answer]:
        """Stop sending, wait for the requests in flight (up to the timeout), return all."""
        self._stop.set()
        self._thread.join()
        return sorted(self.answers, key=lambda a: a.sent_at)

    async def _main(self) -> None:
        interval = 1.0 / self.rate
        start = time.monotonic()
        pending: set[asyncio.Task] = set()
        i = 0
        while not self._stop.is_set():
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness_max_s = max(self.lateness_max_s, time.monotonic() - due)
            task = asyncio.create_task(self._one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        if pending:
            await asyncio.wait(pending, timeout=self.timeout + 1)

    async def _one(self) -> None:
        started = time.monotonic()
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(self._request)
                await writer.drain()
                data = await reader.read()  # to EOF: the server closes after the answer
            parts = data.split(b" ", 2)
            outcome = parts[1].decode() if len(parts) > 1 and data.startswith(b"HTTP/") else "malformed"
            self.answers.append(Answer(started, time.monotonic() - started, outcome))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
            self.answers.append(Answer(started, None, type(err).__name__))
        finally:
            if writer is not None:
                writer.close()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the smallest value with at least pct% of values at or below)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summarize(answers: list[Answer], since: float, until: float, expect: str) -> dict:
    """Requests sent in [since, until): how many, answered with `expect`, latency percentiles
    of those, and the failures by kind."""
    window = [a for a in answers if since <= a.sent_at < until]
    good = [a.latency for a in window if a.latency is not None and a.outcome == expect]
    failures: dict[str, int] = {}
    for a in window:
        if a.latency is None or a.outcome != expect:
            failures[a.outcome] = failures.get(a.outcome, 0) + 1
    return {
        "seconds": until - since,
        "sent": len(window),
        "answered": len(good),
        "failures": failures,
        "p50": percentile(good, 50),
        "p90": percentile(good, 90),
        "p99": percentile(good, 99),
        "max": max(good) if good else float("nan"),
        "over_100ms": sum(1 for v in good if v > 0.1),
    }
