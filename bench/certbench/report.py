"""docs/benchmarks.md from the results: tables with median and spread, the targets with
what was measured against them, and the method, commands and machine so anyone can rerun it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from .measure import Sample
from .scenarios import Plan, Results, Row


def fmt_time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
    if seconds < 100:
        return f"{seconds:.2f} s"
    return f"{seconds:.0f} s"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def spread(values: list[float], fmt) -> str:
    """`median (min–max)`, or the single value."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def med(values: list[float]) -> float:
    return statistics.median(values)


def sample_cells(samples: list[Sample]) -> list[str]:
    return [
        spread([s.wall for s in samples], fmt_time),
        spread([s.cpu for s in samples], fmt_time),
        spread([s.rss_kib for s in samples], fmt_mib),
        spread([float(s.requests or 0) for s in samples], lambda v: f"{v:.0f}"),
        str(len(samples)),
    ]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "n/a"


def headline(results: Results, plan: Plan) -> dict:
    """The numbers the README quotes (largest fleet, largest nothing-due inventory)."""
    n = max(plan.fleet_sizes)
    get = lambda tool, how: results.find("fleet", n, tool, how)
    ck = get("certkeeper", "renew --force")
    ckd = get("certkeeper", "run (daemon) from an empty state dir")
    cb_renew = get("certbot", "renew --force-renewal")
    cb_each = get("certbot", "certonly, one process per certificate")
    lego = get("lego", "run, one process per certificate")
    w = lambda row: med([s.wall for s in row.samples])
    r = lambda row: med([s.rss_kib for s in row.samples])
    out = {
        "n": n,
        "vs_renew": w(cb_renew) / w(ck),
        "vs_each": w(cb_each) / w(ck),
        "vs_lego": w(lego) / w(ck),
        "daemon_vs_each": w(cb_each) / w(ckd),
        "rss_fraction": r(ck) / max(r(cb_renew), r(cb_each)),
        "ck_wall": w(ck), "cb_renew_wall": w(cb_renew), "cb_each_wall": w(cb_each),
        "ck_rss": r(ck), "cb_rss": max(r(cb_renew), r(cb_each)), "lego_wall": w(lego),
        "daemon_wall": w(ckd),
    }
    m = max(plan.idle_sizes)
    idle = results.find("idle", m, "certkeeper", "renew")
    out["idle_n"] = m
    out["idle_wall"] = med([s.wall for s in idle.samples])
    out["idle_requests"] = max(s.requests or 0 for s in idle.samples)
    out["idle_certbot"] = med([s.wall for s in results.find("idle", m, "certbot", "renew").samples])
    lego_idle = [r for r in results.rows if r.scenario == "idle" and r.size == m and r.tool == "lego"][0]
    out["idle_lego"] = med([s.wall for s in lego_idle.samples])
    out["idle_lego_requests"] = med([s.requests or 0 for s in lego_idle.samples])
    return out


def targets(results: Results, plan: Plan, h: dict) -> list[list[str]]:
    rest = results.rest
    hours = rest["seconds"] / 3600
    cpu_per_hour = rest["cpu_s"] / hours
    wake_per_hour = rest["wakeups"] / hours
    pets_per_hour = rest["watchdog_pets"] / hours
    rss = rest["rss_max_kib"]
    mark = lambda ok: "met" if ok else "**missed**"
    rows = [
        [f"fleet N = {h['n']}: ≥10x faster than `certbot renew --force-renewal`",
         f"{ratio(h['cb_renew_wall'], h['ck_wall'])} ({fmt_time(h['cb_renew_wall'])} vs {fmt_time(h['ck_wall'])})",
         mark(h["vs_renew"] >= 10)],
        [f"fleet N = {h['n']}: ≥10x faster than one certbot per certificate",
         f"{ratio(h['cb_each_wall'], h['ck_wall'])} ({fmt_time(h['cb_each_wall'])} vs {fmt_time(h['ck_wall'])})",
         mark(h["vs_each"] >= 10)],
        [f"fleet N = {h['n']}: ≤ 1/4 of certbot's peak RSS",
         f"{h['rss_fraction']:.2f} ({fmt_mib(h['ck_rss'])} vs {fmt_mib(h['cb_rss'])})",
         mark(h["rss_fraction"] <= 0.25)],
        [f"nothing due over {h['idle_n']}: under 50 ms",
         f"{fmt_time(h['idle_wall'])} (median wall)", mark(h["idle_wall"] < 0.050)],
        [f"nothing due over {h['idle_n']}: no request to the CA",
         f"{h['idle_requests']} requests", mark(h["idle_requests"] == 0)],
        [f"at rest with {rest['certificates']}: under 15 MiB RSS",
         f"{fmt_mib(rss)} (largest VmRSS seen)", mark(rss < 15 * 1024)],
        [f"at rest with {rest['certificates']}: under 0.1 s CPU per hour",
         f"{cpu_per_hour:.4f} s/h ({rest['cpu_s'] * 1000:.2f} ms in {rest['seconds']:.0f} s)",
         mark(cpu_per_hour < 0.1)],
        [f"at rest: no wake-ups more often than the watchdog needs (WatchdogSec={rest['watchdog_usec'] // 1_000_000}, pets every {rest['watchdog_usec'] // 2_000_000} s)",
         f"woke in {rest['active_seconds']} of {rest['seconds']:.0f} s for {rest['watchdog_pets']} "
         f"pets ({wake_per_hour:.0f} thread wake-ups/h, {rest['wakeups'] / max(rest['watchdog_pets'], 1):.1f} per pet); "
         f"without a watchdog {rest['quiet']['wakeups']} wake-ups in {rest['quiet']['seconds']:.0f} s",
         mark(rest["quiet"]["wakeups"] == 0 and rest["active_seconds"] <= 3 * rest["watchdog_pets"] + 2)],
    ]
    return rows


def render(results: Results, plan: Plan, meta: dict, notes: str) -> str:
    h = headline(results, plan)
    L: list[str] = []
    title = "certkeeper benchmarks" + (" (quick run: small sizes, one repetition; not for publishing)" if plan.quick else "")
    L += [f"# {title}", ""]
    L += [
        "certkeeper side by side with certbot and lego, on one machine against one local Pebble.",
        f"Generated by `bench/run{' --quick' if plan.quick else ''}` on {meta['date']} "
        f"(took {meta['duration']}); rerun it to regenerate this file. Every number is measured; "
        "nothing is asserted.",
        "",
        "## Headline",
        "",
        f"- **Fleet issuance, {h['n']} certificates:** `certkeeper renew --force` took "
        f"{fmt_time(h['ck_wall'])}, `certbot renew --force-renewal` {fmt_time(h['cb_renew_wall'])} "
        f"(**{h['vs_renew']:.0f}x**), one `certbot certonly` per certificate "
        f"{fmt_time(h['cb_each_wall'])} (**{h['vs_each']:.0f}x**), one `lego run` per certificate "
        f"{fmt_time(h['lego_wall'])} ({h['vs_lego']:.0f}x). The daemon, from an empty state "
        f"directory, had all {h['n']} installed after {fmt_time(h['daemon_wall'])}. Peak RSS "
        f"{fmt_mib(h['ck_rss'])} against certbot's {fmt_mib(h['cb_rss'])} "
        f"({h['rss_fraction']:.2f} of it).",
        f"- **Nothing due, {h['idle_n']} certificates:** `certkeeper renew` {fmt_time(h['idle_wall'])} "
        f"and {h['idle_requests']} requests to the CA; `certbot renew` {fmt_time(h['idle_certbot'])}; "
        f"lego, one `renew` per certificate, {fmt_time(h['idle_lego'])} and {h['idle_lego_requests']:.0f} requests.",
    ]
    rest = results.rest
    hours = rest["seconds"] / 3600
    L += [
        f"- **Daemon at rest, {rest['certificates']} certificates:** "
        f"{fmt_mib(rest['rss_max_kib'])} RSS, {rest['cpu_s'] / hours:.4f} s CPU per hour, "
        f"{rest['wakeups'] / hours:.0f} thread wake-ups per hour with the watchdog petted "
        f"{rest['watchdog_pets'] / hours:.0f} times per hour; READY=1 after "
        f"{fmt_time(med([s['ready_s'] for s in results.startup]))}.",
        *([bullet] if (bullet := scale_headline(results, plan)) else []),
        *([bullet] if (bullet := dns_headline(results, plan)) else []),
        *([bullet] if (bullet := fleet3_headline(results, plan)) else []),
        "",
        "## Targets",
        "",
    ]
    L += table(["target", "measured", ""],
               targets(results, plan, h) + scale_targets(results, plan) + dns_targets(results, plan)
               + fleet3_targets(results, plan))
    L += [""]

    L += ["## Machine and versions", ""]
    L += table(["", ""], [[k, f"{v}"] for k, v in meta["machine"].items()] +
               [[k, f"`{v}`"] for k, v in meta["versions"].items()])
    L += [""]

    L += method(results, plan, meta)

    # 1
    L += ["## 1. Fleet issuance", "",
          "N single-name certificates from nothing (first issuance) or from existing lineages "
          "(forced renewal). Wall, CPU (user + system of the whole process tree) and peak RSS; "
          "for one-process-per-certificate loops wall and CPU are the loop's totals and RSS the "
          "largest process. \"CA requests\" are all requests Pebble handled during the run. "
          "certkeeper runs orders concurrently, at most `max_concurrent` at a time: the default, "
          "4, unless the row says otherwise. Cells are median (min–max) over n runs.", ""]
    for n in plan.fleet_sizes:
        L += [f"### N = {n}", ""]
        rows = [r for r in results.rows if r.scenario == "fleet" and r.size == n]
        L += table(["tool", "how", "wall", "CPU", "peak RSS", "CA requests", "n"],
                   [[r.tool, r.how, *sample_cells(r.samples)] for r in rows])
        base = results.find("fleet", n, "certkeeper", "renew --force")
        L += ["", "Wall time relative to `certkeeper renew --force`: " + ", ".join(
            f"{r.tool} {r.how}: {med([s.wall for s in r.samples]) / med([s.wall for s in base.samples]):.1f}x"
            for r in rows if r is not base) + ".", ""]
    n = max(plan.fleet_sizes)
    L += [f"Peak RSS split (N = {n}; the largest RssAnon and RssFile sampled every 10 ms from "
          "/proc/PID/status, so a little under GNU time's figure): anonymous memory is the "
          "process's own (heap, stacks), file-backed is the executable and shared libraries "
          "paged in.", ""]
    split_rows = []
    for r in [r for r in results.rows if r.scenario == "fleet" and r.size == n]:
        peaks = [s.extra.get("rss_peaks") for s in r.samples if s.extra.get("rss_peaks")]
        if peaks:
            split_rows.append([f"{r.tool} {r.how}",
                               spread([p["RssAnon"] for p in peaks], fmt_mib),
                               spread([p["RssFile"] for p in peaks], fmt_mib)])
    L += table(["run", "anonymous", "file-backed"], split_rows)
    L += [""]
    L += ["Requests per certificate (one run; certbot and lego register their account on "
          "the first certificate of a fresh directory, certkeeper on its first order):", ""]
    L += table(["run", "requests by kind"],
               [[k, ", ".join(f"{p} {c}" for p, c in sorted(v.items()))]
                for k, v in results.requests_per_cert.items()])
    L += [""]

    # 2
    L += ["## 2. Nothing due", "",
          "Every certificate valid for 90 days: none of the tools should renew or contact the "
          "CA. lego renews one certificate per invocation, so it runs once per certificate "
          "(`lego ... --domains NAME renew --days 30` in a loop); certbot and certkeeper run once.",
          ""]
    L += table(["N", "tool", "how", "wall", "CPU", "peak RSS", "CA requests", "n"],
               [[str(r.size), r.tool, r.how, *sample_cells(r.samples)]
                for r in results.rows if r.scenario == "idle"])
    notes_idle = [f"N = {r.size}: {r.note}" for r in results.rows
                  if r.scenario == "idle" and r.tool == "certkeeper" and r.note]
    if notes_idle:
        L += ["", "certkeeper's output: " + "; ".join(notes_idle) + "."]
    s = results.setup.get("certkeeper first issuance")
    if s:
        L += ["", f"Setting up: certkeeper issued its {s['size']} lineages with one "
              f"`certkeeper renew` (first issuance, max_concurrent = 4) in "
              f"{fmt_time(s['sample'].wall)}, {fmt_time(s['sample'].cpu)} CPU, "
              f"{fmt_mib(s['sample'].rss_kib)} peak RSS, {s['sample'].requests} requests."]
    L += [""]

    # 3
    L += ["## 3. The daemon at rest", ""]
    st = results.startup
    L += [f"`certkeeper run` with {rest['certificates']} certificates in the inventory, all "
          "valid, started with `NOTIFY_SOCKET` pointing at a Unix datagram socket the benchmark "
          "reads. Start-up is spawn to the `READY=1` datagram; RSS is VmRSS at READY=1 and one "
          "second later.", ""]
    L += table(["", "median (min–max)", "n"], [
        ["spawn to READY=1", spread([x["ready_s"] for x in st], fmt_time), str(len(st))],
        ["CPU until READY=1", spread([x["cpu_to_ready_s"] for x in st], fmt_time), str(len(st))],
        ["VmRSS at READY=1", spread([x["rss_ready_kib"] for x in st], fmt_mib), str(len(st))],
        ["VmRSS 1 s later", spread([x["rss_1s_kib"] for x in st], fmt_mib), str(len(st))],
        ["VmHWM (peak) 1 s later", spread([x["hwm_kib"] for x in st], fmt_mib), str(len(st))],
        ["of VmRSS 1 s later: anonymous", spread([x["anon_1s_kib"] for x in st], fmt_mib), str(len(st))],
        ["of VmRSS 1 s later: file-backed (executable, libraries)", spread([x["file_1s_kib"] for x in st], fmt_mib), str(len(st))],
        ["threads", spread([x["threads"] for x in st], lambda v: f"{v:.0f}"), str(len(st))],
    ])
    L += ["", f"Then {rest['seconds']:.0f} s at rest (measured from 2 s after READY=1), with "
          f"`WATCHDOG_USEC={rest['watchdog_usec']}` as systemd sets it for "
          f"`WatchdogSec={rest['watchdog_usec'] // 1_000_000}`"
          + (" (the shipped unit's value)" if rest["watchdog_usec"] == 60_000_000 else "") + ":", ""]
    L += table(["", "over the period", "per hour"], [
        ["CPU (schedstat, all threads)", f"{rest['cpu_s'] * 1000:.3f} ms", f"{rest['cpu_s'] / hours:.4f} s"],
        ["CPU (utime + stime, clock ticks)", f"{rest['ticks_s']:.2f} s", f"{rest['ticks_s'] / hours:.2f} s"],
        ["thread wake-ups (schedstat timeslices)", str(rest["wakeups"]), f"{rest['wakeups'] / hours:.0f}"],
        ["voluntary context switches", str(rest["voluntary"]), f"{rest['voluntary'] / hours:.0f}"],
        ["involuntary context switches", str(rest["involuntary"]), f"{rest['involuntary'] / hours:.0f}"],
        ["WATCHDOG=1 received", str(rest["watchdog_pets"]), f"{rest['watchdog_pets'] / hours:.0f}"],
        ["STATUS= messages received", str(rest.get("status_messages", "-")),
         f"{rest.get('status_messages', 0) / hours:.0f}"],
        ["CPU per watchdog pet", f"{rest['cpu_s'] * 1e6 / max(rest['watchdog_pets'], 1):.0f} µs", ""],
        ["VmRSS at start / end / largest", f"{fmt_mib(rest['rss_start_kib'])} / {fmt_mib(rest['rss_end_kib'])} / {fmt_mib(rest['rss_max_kib'])}", ""],
        ["of which anonymous / file-backed (end)", f"{fmt_mib(rest['anon_kib'])} / {fmt_mib(rest['file_kib'])}", ""],
    ])
    L += ["", "Where the resident memory is at the end of the period (`/proc/PID/smaps`, Rss per mapping):", ""]
    L += table(["mapping", "resident"], [[k, fmt_mib(v)] for k, v in rest["by_mapping"].items() if v >= 64])
    if rest.get("active_seconds") is not None:
        gap = rest.get("median_gap_s")
        L += ["", f"Sampled every second, some thread of the daemon ran in {rest['active_seconds']} "
              f"of the {rest['seconds']:.0f} seconds"
              + (f"; the median gap between those seconds was {gap:.0f} s and the shortest "
                 f"{rest['min_gap_s']:.0f} s" if gap is not None else "") + "."]
    q = rest["quiet"]
    L += ["", f"The same daemon started again without `WATCHDOG_USEC` and watched for "
          f"{q['seconds']:.0f} s: {q['wakeups']} thread wake-ups, {q['voluntary']} voluntary "
          f"context switches, {q['cpu_s'] * 1e6:.0f} µs CPU."]
    L += ["", "Per thread over the period:", ""]
    L += table(["thread", "CPU", "wake-ups"],
               [[k, f"{v['cpu_ns'] / 1e6:.3f} ms", str(v["wakeups"])] for k, v in rest["per_thread"].items()])
    if rest["threads_gone"]:
        L += ["", f"Threads that ended during the period (their CPU is only in the clock-tick row): {rest['threads_gone']}."]
    L += [""]

    # 4
    L += ["## 4. Planner scale", ""]
    if results.criterion:
        L += ["Criterion, `crates/core/benches/planner.rs`: `plan_certificate` for each of "
              "10,000 in-memory inventory entries (varied lifetimes and ages, some missing, "
              "renamed or failing) and `next_wake` over the results, i.e. one daemon wake-up. "
              f"Median with Criterion's 95% confidence interval{' (quick: dev profile, tiny sample)' if plan.quick else ''}.", ""]
        L += table(["benchmark", "time per pass", "per certificate", "certificates/s"], [
            [c["name"],
             f"{fmt_time(c['median_ns'] / 1e9)} ({fmt_time(c['low_ns'] / 1e9)}–{fmt_time(c['high_ns'] / 1e9)})",
             f"{c['median_ns'] / (c['elements'] or 1):.0f} ns",
             f"{(c['elements'] or 0) / (c['median_ns'] / 1e9):,.0f}"]
            for c in results.criterion])
        L += [""]
    L += [f"End to end over {plan.status_entries:,} inventory entries (one TOML file). "
          "\"Without certificates\": an empty state directory, so every entry is missing. "
          "\"Every certificate live\": a synthetic state directory written by the benchmark in "
          "certkeeper's layout (`archive/NAME/v0001/{cert,chain,fullchain,privkey}.pem`, "
          "`live/NAME -> ../archive/NAME/v0001`), one fresh P-256 key and 90-day certificate "
          "per name from a local CA.", ""]
    L += table(["how", "wall", "CPU", "peak RSS", "CA requests", "n"],
               [[r.how, *sample_cells(r.samples)] for r in results.rows if r.scenario == "status"])
    L += [""]

    # 5
    L += ["## 5. HTTP-01 responder under hostile load", ""]
    L += ["During an issuance (`certkeeper renew --force` of one certificate), a relay on "
          "Pebble's `httpPort` holds Pebble's validation request, so the token stays published. "
          f"`wrk` floods an unknown token path with N keep-alive connections for "
          f"{plan.flood_seconds + 4:g} s; during the first {plan.flood_seconds:g} s a probe "
          "fetches the real challenge path with 4 concurrent clients and a new connection per "
          "request (`Connection: close`, as a CA's validator connects); then, with the flood "
          "still running, the relay lets Pebble's own validation request through to certkeeper "
          "on a new connection. Both wrk processes run on the same 2 cores as certkeeper. The "
          "responder serves at most 512 connections at once (its `max_connections`) and closes "
          "any connection beyond that as soon as it is accepted.", ""]
    rows = []
    for f in results.flood:
        p = f["probe"]
        errs = sum(p["errors"].values()) if p["errors"] else 0
        failed = p["non2xx"] + errs
        fl = f["flood"]
        v = f.get("validation") or {}
        if v.get("status"):
            validation = f"{v['status'].replace('HTTP/1.1 ', '')} after {fmt_time(v['seconds'])}"
        else:
            validation = f"**no answer** ({v.get('error', 'not seen')})"
        rows.append([
            str(f["level"]),
            f"{p['rps']:.0f}" if p["rps"] is not None else "-",
            fmt_time(p["latency"].get("50", float("nan"))),
            fmt_time(p["latency"].get("99", float("nan"))),
            f"{failed} of {p['requests'] + errs}" if failed else "0",
            f"{fl['rps']:.0f}" if fl and fl["rps"] is not None else "-",
            f"{f['certkeeper_cpu_s'] / f.get('probe_seconds', plan.flood_seconds):.2f}",
            validation,
            "yes" if f["issued"] else "**no**",
        ])
    L += table(["flood connections", "challenge answers/s", "p50", "p99", "failed fetches",
                "flood req/s", "certkeeper CPU (cores)", "Pebble's validation during the flood",
                "issued"], rows)
    L += ["", "Latency percentiles are wrk's, over the answered fetches; failed fetches are "
          "non-200 answers plus connections closed or refused."]
    L += [""]

    if getattr(results, "scale", None):
        L += scale_section(results, plan, meta)
    if dns_rows(results):
        L += dns_section(results, plan, meta)
    if getattr(results, "fleet3", None):
        L += fleet3_section(results, plan, meta)

    load = meta.get("load") or []
    if load:
        L += ["## Other activity on the machine", "", LOAD_INTRO, ""]
        L += table(LOAD_HEADER, [load_row(p) for p in load])
        L += [""]

    if notes.strip():
        L += [notes.strip(), ""]
    return "\n".join(L) + "\n"


LOAD_INTRO = (
    "The benchmark shares the machine with whatever else runs on it. CPU the whole machine "
    "used per phase (`/proc/stat`), and the part that was not the benchmark's (its own "
    "processes, Pebble included), as a share of one core; the busiest other programs by name, "
    "sampled from `/proc/PID/stat` every 2 s (a lower bound: processes that lived less than "
    "that are missed):")
LOAD_HEADER = ["phase", "wall", "machine CPU", "benchmark", "other processes", "busiest other programs"]


def load_row(p: dict) -> list[str]:
    programs = p.get("other_programs")
    return [p["phase"], fmt_time(p["wall"]), f"{p['busy']:.1f} s", f"{p['ours']:.1f} s",
            f"{p['others']:.1f} s ({100 * p['others'] / p['wall']:.0f}% of a core)",
            ", ".join(f"{name} {cpu:.1f} s" for name, cpu in list(programs.items())[:4] if cpu >= 0.05)
            if programs is not None else "-"]


# -- scenario 6: a large fleet ------------------------------------------------------------------

def key_label(key_type: str) -> str:
    """`rsa4096` as RSA-4096, `ecdsa-p256` as ECDSA P-256."""
    if key_type.startswith("rsa"):
        return f"RSA-{key_type[3:]}"
    return key_type.replace("ecdsa-p", "ECDSA P-")


def timed_mark(wall: float, cpu: float, limit: float) -> str:
    """Targets on a median wall time. On a shared 2-core machine wall can miss while the
    process's own CPU time (what it would take alone) does not: say so rather than hide it."""
    if wall < limit:
        return "met"
    if cpu < limit:
        return f"**missed** on wall time; its CPU time ({fmt_time(cpu)}) is under it (other load)"
    return "**missed**"


def scale_rows(results: Results, plan: Plan) -> dict[str, Row]:
    n = plan.scale_size
    return {how: row for how in ("renew, nothing due", "status --json")
            if (row := results.find("scale", n, "certkeeper", how))}


def burst_median(bursts: list[dict], phase: str, key: str) -> float:
    return med([b[phase][key] for b in bursts])


def scale_targets(results: Results, plan: Plan) -> list[list[str]]:
    sc = getattr(results, "scale", None) or {}
    n = plan.scale_size
    rows = []
    mark = lambda ok: "met" if ok else "**missed**"
    found = scale_rows(results, plan)
    renew = found.get("renew, nothing due")
    if renew:
        wall, cpu = med([s.wall for s in renew.samples]), med([s.cpu for s in renew.samples])
        requests = max(s.requests or 0 for s in renew.samples)
        rows += [
            [f"nothing due over {n:,}: `certkeeper renew` under 200 ms (median)",
             f"{fmt_time(wall)} (median wall of {len(renew.samples)}; CPU {fmt_time(cpu)})",
             timed_mark(wall, cpu, 0.200)],
            [f"nothing due over {n:,}: no request to the CA", f"{requests} requests", mark(requests == 0)],
        ]
    rest = sc.get("rest")
    if rest:
        hours = rest["seconds"] / 3600
        cpu_per_hour = rest["cpu_s"] / hours
        rows += [
            [f"at rest with {n:,}: under 20 MiB RSS",
             f"{fmt_mib(rest['rss_max_kib'])} (largest VmRSS seen)", mark(rest["rss_max_kib"] < 20 * 1024)],
            [f"at rest with {n:,}: under 0.2 s CPU per hour",
             f"{cpu_per_hour:.4f} s/h ({rest['cpu_s'] * 1000:.2f} ms in {rest['seconds']:.0f} s)",
             mark(cpu_per_hour < 0.2)],
        ]
    status = found.get("status --json")
    if status:
        wall, cpu = med([s.wall for s in status.samples]), med([s.cpu for s in status.samples])
        rows.append([f"`certkeeper status --json` over {n:,}: under 500 ms (median)",
                     f"{fmt_time(wall)} (median wall of {len(status.samples)}; CPU {fmt_time(cpu)})",
                     timed_mark(wall, cpu, 0.500)])
    bursts = sc.get("burst")
    if bursts:
        b0 = bursts[0]
        rows.append([f"HTTP-01 answer latency p99 while {b0['certificates']} {key_label(b0['key_type'])} "
                     "certificates are issued (informational)",
                     f"{fmt_time(burst_median(bursts, 'during', 'p99'))} during the burst, "
                     f"{fmt_time(burst_median(bursts, 'before', 'p99'))} before it "
                     f"(median of {len(bursts)} burst{'s' if len(bursts) > 1 else ''}; slowest answer "
                     f"{fmt_time(max(b['during']['max'] for b in bursts))})",
                     "informational"])
    return rows


def scale_headline(results: Results, plan: Plan) -> str | None:
    sc = getattr(results, "scale", None) or {}
    found = scale_rows(results, plan)
    rest, bursts = sc.get("rest"), sc.get("burst")
    if not (found and rest and bursts):
        return None
    w = lambda how: fmt_time(med([s.wall for s in found[how].samples]))
    hours = rest["seconds"] / 3600
    b0 = bursts[0]
    return (f"{SCALE_BULLET.format(n=plan.scale_size)} nothing due: `certkeeper renew` "
            f"{w('renew, nothing due')}; `status --json` {w('status --json')}; the daemon at rest "
            f"{fmt_mib(rest['rss_max_kib'])} RSS and {rest['cpu_s'] / hours:.4f} s CPU per hour. "
            f"While it issued {b0['certificates']} {key_label(b0['key_type'])} certificates its "
            f"HTTP-01 answers took {fmt_time(burst_median(bursts, 'during', 'p99'))} at p99 "
            f"({fmt_time(burst_median(bursts, 'before', 'p99'))} before).")


SCALE_BULLET = "- **{n:,} certificates:**"
SCALE_HEADING = "## 6. "


def scale_section(results: Results, plan: Plan, meta: dict) -> list[str]:
    sc = results.scale
    n = plan.scale_size
    L = [f"{SCALE_HEADING}A fleet of {n:,} certificates", ""]
    if meta.get("only") and meta.get("only_part", "scale10k") == "scale10k":
        L += [f"Measured apart from the rest of this file, by `{meta['only']}` on {meta['date']} "
              f"(took {meta['duration']}), with `{meta['versions']['certkeeper']}`. What else the "
              "machine was doing meanwhile is in the last table, in the phases marked "
              "`--only`.", ""]
    fleet = sc.get("fleet")
    if fleet:
        seed = fleet["seed"]
        L += [f"One state directory with {n:,} live lineages, and an inventory listing all of "
              "them (one `[[certificate]]` each, as in scenario 2). c0000 was issued from "
              f"Pebble by `certkeeper renew` ({fmt_time(seed.wall)}, {seed.requests} requests to "
              f"the CA with the account's registration); the other {n - 1:,} were written by the "
              f"benchmark in {fmt_time(fleet['seconds'])}, in certkeeper's layout and modes "
              "(`archive/NAME/v0001/{cert,chain,fullchain}.pem` 0644 and `privkey.pem` 0600, "
              "`live/NAME -> ../archive/NAME/v0001`, directories 0750), each with its own P-256 "
              "key and 90-day certificate for `NAME.bench.example.com` from a local CA, and "
              "`state/NAME.json` a copy of c0000's (one success, no failure), as certkeeper "
              "leaves a lineage after its first issuance. Issuing them all from Pebble would "
              "take about 20 minutes (scenario 2's setup issued 1,000 in about two).", ""]
    found = scale_rows(results, plan)
    if found:
        L += ["`certkeeper renew` with nothing due and `certkeeper status --json`, one run after "
              "another (median (min–max) over n runs; CPU is user + system, what the command "
              "would take on an idle machine):", ""]
        L += table(["how", "wall", "CPU", "peak RSS", "CA requests", "n"],
                   [[r.how, *sample_cells(r.samples)] for r in found.values()])
        notes = [r.note for r in found.values() if r.note]
        if notes:
            L += ["", "Checked: " + "; ".join(notes) + "."]
        L += [""]
    st = sc.get("startup")
    if st:
        L += [f"`certkeeper run` over the {n:,} (start-up as in scenario 3: spawn to `READY=1`):", ""]
        L += table(["", "median (min–max)", "n"], [
            ["spawn to READY=1", spread([x["ready_s"] for x in st], fmt_time), str(len(st))],
            ["CPU until READY=1", spread([x["cpu_to_ready_s"] for x in st], fmt_time), str(len(st))],
            ["VmRSS at READY=1", spread([x["rss_ready_kib"] for x in st], fmt_mib), str(len(st))],
            ["VmRSS 1 s later", spread([x["rss_1s_kib"] for x in st], fmt_mib), str(len(st))],
            ["VmHWM (peak) 1 s later", spread([x["hwm_kib"] for x in st], fmt_mib), str(len(st))],
            ["of VmRSS 1 s later: anonymous", spread([x["anon_1s_kib"] for x in st], fmt_mib), str(len(st))],
            ["threads", spread([x["threads"] for x in st], lambda v: f"{v:.0f}"), str(len(st))],
        ])
        L += [""]
    rest = sc.get("rest")
    if rest:
        hours = rest["seconds"] / 3600
        L += [f"Then {rest['seconds']:.0f} s at rest, measured as in scenario 3 (from 2 s after "
              f"READY=1, `WATCHDOG_USEC={rest['watchdog_usec']}`)"
              + (", at the same time as scenario 3's daemon (each on its own port and state "
                 "directory)" if not plan.quick and not meta.get("only") else "") + ":", ""]
        L += table(["", "over the period", "per hour"], [
            ["CPU (schedstat, all threads)", f"{rest['cpu_s'] * 1000:.3f} ms", f"{rest['cpu_s'] / hours:.4f} s"],
            ["thread wake-ups", str(rest["wakeups"]), f"{rest['wakeups'] / hours:.0f}"],
            ["WATCHDOG=1 received", str(rest["watchdog_pets"]), f"{rest['watchdog_pets'] / hours:.0f}"],
            ["CPU per watchdog pet", f"{rest['cpu_s'] * 1e6 / max(rest['watchdog_pets'], 1):.0f} µs", ""],
            ["VmRSS at start / end / largest", f"{fmt_mib(rest['rss_start_kib'])} / {fmt_mib(rest['rss_end_kib'])} / {fmt_mib(rest['rss_max_kib'])}", ""],
            ["VmHWM (peak since start)", fmt_mib(rest["hwm_kib"]), ""],
            ["of which anonymous / file-backed (end)", f"{fmt_mib(rest['anon_kib'])} / {fmt_mib(rest['file_kib'])}", ""],
        ])
        q = rest["quiet"]
        L += ["", "Resident memory at the end, by mapping: " + ", ".join(
            f"{k} {fmt_mib(v)}" for k, v in rest["by_mapping"].items() if v >= 64)
              + f". Without `WATCHDOG_USEC`, {q['seconds']:.0f} s: {q['wakeups']} thread wake-ups, "
              f"{q['cpu_s'] * 1e6:.0f} µs CPU.", ""]
    bursts = sc.get("burst")
    if bursts:
        b0 = bursts[0]
        label = key_label(b0["key_type"])
        L += [f"### HTTP-01 answers while {b0['certificates']} {label} certificates are issued", "",
              "`certkeeper run` listens on the port Pebble validates and starts with an empty "
              "inventory. An open-loop probe (`bench/certbench/probe.py`) sends "
              f"`GET /.well-known/acme-challenge/not-a-published-token` {b0['rate']:g} times a "
              "second, each on a new connection, on schedule whether or not earlier ones were "
              "answered (so a stalled responder shows in the latencies instead of in fewer "
              "samples; a closed-loop tool like wrk would hide it), and times connect to last "
              "byte; the answer is a 404. "
              f"After {plan.burst_before_seconds:g} s the inventory is rewritten with "
              f"{b0['certificates']} new {label} certificates; the daemon reloads it by itself "
              "and orders them (`max_concurrent` = 4); 'during' runs from the rewrite until "
              "the last is live. Pebble's own validation requests go to the same port.", ""]
        rows = []
        for i, b in enumerate(bursts, 1):
            for phase in ("before", "during"):
                x = b[phase]
                failed = sum(x["failures"].values())
                rows.append([str(i), phase, fmt_time(x["seconds"]), str(x["sent"]),
                             fmt_time(x["p50"]), fmt_time(x["p90"]), fmt_time(x["p99"]),
                             fmt_time(x["max"]), str(x["over_100ms"]),
                             ", ".join(f"{k} {v}" for k, v in x["failures"].items()) if failed else "0"])
        L += table(["burst", "phase", "length", "requests", "p50", "p90", "p99", "slowest",
                    "over 100 ms", "failed"], rows)
        L += ["", f"Per burst (median (min–max) over {len(bursts)}): all {b0['certificates']} "
              f"live after {spread([b['seconds'] for b in bursts], fmt_time)}; the daemon used "
              f"{spread([b['cpu_s'] for b in bursts], fmt_time)} of CPU meanwhile, "
              f"{spread([b['requests'] for b in bursts], lambda v: f'{v:.0f}')} requests to the "
              f"CA; VmHWM {spread([b['hwm_kib'] for b in bursts], fmt_mib)}. The probe ran late "
              f"by at most {fmt_time(max(b['probe_lateness_max_s'] for b in bursts))} (a late "
              "request starts late; its latency does not include the delay).", ""]
    c = results.commands
    cmds = [r.command for r in found.values()] if found else []
    cmds += [c[k] for k in ("scale run",) if k in c]
    if rest and rest.get("command"):
        cmds.append(rest["command"])
    cmds += [c[k] for k in ("burst run",) if k in c]
    if cmds:
        L += ["Commands:", "", "```sh", *cmds, "```", ""]
    return L


# -- --only: a part of the report measured on its own -----------------------------------------

@dataclass
class Part:
    """A part of the report a `bench/run --only NAME` run measures on its own."""

    number: str  # the section's number, "6"
    heading: str  # how its section's heading starts, "## 6. "
    bullet: callable  # plan -> how its headline bullet starts
    headline: callable  # (results, plan) -> the bullet, or None
    targets: callable  # (results, plan) -> rows of the targets table
    section: callable  # (results, plan, meta) -> the section's lines, heading first
    rows_prefix: str | None = None  # its target rows all start so: stale ones are dropped


def parts() -> dict[str, Part]:
    return {
        "scale10k": Part("6", SCALE_HEADING, lambda plan: SCALE_BULLET.format(n=plan.scale_size),
                         scale_headline, scale_targets, scale_section),
        "dns01": Part("7", DNS_HEADING, lambda plan: DNS_BULLET.split(" {n}")[0],
                      dns_headline, dns_targets, dns_section, rows_prefix=DNS_ROWS_PREFIX),
        "fleet": Part("8", FLEET3_HEADING, lambda plan: FLEET3_BULLET,
                      fleet3_headline, fleet3_targets, fleet3_section, rows_prefix=FLEET3_ROWS_PREFIX),
    }


def only_part(meta: dict) -> Part:
    """The part an `--only` run measured (runs saved before there were two say only "only")."""
    return parts()[meta.get("only_part", "scale10k")]


def splice(old: str, results: Results, plan: Plan, meta: dict, notes: str) -> str:
    """`old` (a report of the full run) with the parts a `bench/run --only` run measured put in:
    its section (replaced, or inserted before "Other activity"), its rows of the targets table
    and its headline bullet (replaced by their label, or appended), its phases added to the
    load table, the notes refreshed. Everything else is left as the full run wrote it."""
    part = only_part(meta)
    blocks = _blocks(old)
    # Preamble: say which part was measured when (one line per part, in section order).
    pre = blocks[0][1]
    own = f"Section {part.number} and its rows"
    stamp = (f"{own} in the targets table: `{meta['only']}` on {meta['date']} "
             f"({meta['versions']['certkeeper']}).")
    pre[:] = [l for l in pre if not l.startswith(own)]
    after = [i for i, l in enumerate(pre) if l.startswith("Generated by")
             or (l.startswith("Section ") and l.split(" ", 2)[1] < part.number)]
    pre.insert((max(after) if after else len(pre) - 1) + 1, stamp)
    for heading, lines in blocks:
        if heading.startswith("## Headline") and (bullet := part.headline(results, plan)):
            prefix = part.bullet(plan)
            lines[:] = [l for l in lines if not l.startswith(prefix)]
            last = max(i for i, l in enumerate(lines) if l.startswith("- "))
            lines.insert(last + 1, bullet)
        elif heading.startswith("## Targets"):
            new_rows = part.targets(results, plan)
            if part.rows_prefix and new_rows:
                lines[:] = [l for l in lines if not l.startswith(f"| {part.rows_prefix}")]
            for row in new_rows:
                text = "| " + " | ".join(row) + " |"
                same = [i for i, l in enumerate(lines) if l.startswith(f"| {row[0]} |")]
                if same:
                    lines[same[0]] = text
                else:
                    last = max(i for i, l in enumerate(lines) if l.startswith("|"))
                    lines.insert(last + 1, text)
        elif heading.startswith("## Other activity"):
            lines[:] = [LOAD_INTRO if l.startswith("The benchmark shares the machine") else l
                        for l in lines]
            header = [i for i, l in enumerate(lines) if l.startswith("| phase |")]
            if header:
                i = header[0]
                lines[i] = "| " + " | ".join(LOAD_HEADER) + " |"
                lines[i + 1] = "|" + "|".join(" --- " for _ in LOAD_HEADER) + "|"
                for p in meta.get("load") or []:
                    text = "| " + " | ".join(load_row(p)) + " |"
                    lines[:] = [l for l in lines if not l.startswith(f"| {p['phase']} |")]
                    last = max(j for j, l in enumerate(lines) if l.startswith("|"))
                    lines.insert(last + 1, text)
    section = part.section(results, plan, meta)
    section_block = (section[0], section[1:])
    names = [h for h, _ in blocks]
    if any(h.startswith(part.heading) for h in names):
        blocks = [section_block if h.startswith(part.heading) else (h, l) for h, l in blocks]
    else:
        # Before the first later numbered section, or the closing sections.
        def later(h: str) -> bool:
            number = h[3:].split(".", 1)[0]
            return number.isdigit() and int(number) > int(part.number)
        before = next((i for i, h in enumerate(names) if later(h)
                       or h.startswith("## Other activity") or h.startswith("## Reading the results")),
                      len(blocks))
        blocks.insert(before, section_block)
    if notes.strip():
        reading = [i for i, (h, _) in enumerate(blocks) if h.startswith("## Reading the results")]
        note_blocks = _blocks("\n" + notes.strip() + "\n")[1:]
        if reading:
            blocks[reading[0]:reading[0] + 1] = note_blocks
        else:
            blocks += note_blocks
    out = []
    for heading, lines in blocks:
        if heading:
            out.append(heading)
        out += lines
    text = "\n".join(out)
    return text.rstrip("\n") + "\n"


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """The text cut before each `## ` heading: (heading, the lines after it); the first block,
    before any heading, has the heading ""."""
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for line in text.split("\n"):
        if line.startswith("## "):
            blocks.append((line, []))
        else:
            blocks[-1][1].append(line)
    return blocks


def method(results: Results, plan: Plan, meta: dict) -> list[str]:
    c = results.commands
    L = ["## How it was run", ""]
    L += [
        "- **CA**: Debian's Pebble with `externalAccountBindingRequired`, certificates valid 90 "
        "days, `PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0` (no random "
        "validation delay, no rejected nonces, every order validates its name), and "
        "pebble-challtestsrv as its DNS server answering 127.0.0.1 for every name. Every tool "
        "answers HTTP-01 itself on the port Pebble validates (`httpPort`) and trusts Pebble's "
        "HTTPS through its own setting: certbot `REQUESTS_CA_BUNDLE`, lego "
        "`LEGO_CA_CERTIFICATES`, certkeeper `root_ca_file`. All three use ECDSA P-256 keys (their "
        "default). Lineage `cNNNN` is the name `cNNNN.bench.example.com`.",
        "- **Measuring**: each tool runs alone under GNU time (`/usr/bin/time -f %M`) so its peak "
        "RSS is its own; CPU is user + system from wait4(2) at microsecond resolution; wall is "
        "the monotonic clock from spawn to exit. CA requests are counted from Pebble's log, which "
        "has one line per request. The daemon at rest is read from `/proc/PID/task/*/schedstat` "
        "(time on CPU, times scheduled in), `/proc/PID/task/*/status` (context switches) and "
        "`/proc/PID/status` (VmRSS, VmHWM).",
        "- **certbot** runs with `--no-random-sleep-on-renew` (without a terminal, `certbot "
        "renew` otherwise first sleeps a random 1–480 s) and its own `--config-dir`, "
        "`--work-dir` and `--logs-dir`.",
        f"- **Lineages for \"nothing due\"**: certbot and lego use the {min(plan.fleet_sizes)} "
        f"lineages they issued in scenario 1; for {max(plan.idle_sizes):,}, lineage c0000 is "
        "copied under the other names: certbot's `archive/NAME/{cert,chain,fullchain,privkey}1.pem`, "
        "`live/NAME/*.pem` symlinks and `renewal/NAME.conf` (c0000's, with NAME's paths); lego's "
        "`certificates/NAME.bench.example.com.{crt,key,issuer.crt,json}`. Neither tool compares "
        "names when deciding not to renew, so the copies cost them what real lineages would. "
        f"certkeeper's {max(plan.idle_sizes):,} are real: issued from Pebble by one "
        "`certkeeper renew` (it compares the configured names with the certificate's, so a copy "
        "would be due).",
    ]
    if not plan.quick:
        both = bool((getattr(results, "scale", None) or {}).get("rest"))
        L += [f"- **Overlap**: the 10-minute rest period{'s of scenarios 3 and 6 (two daemons at once)' if both else ' of scenario 3'} ran while lego issued "
              f"its N = {max(plan.fleet_sizes)} certificates (lego spends that time waiting: it "
              "sleeps 5 s before polling each authorization and uses about 0.02 s CPU per "
              f"certificate). {'Each resting daemon listens on a port of its own and has its own state directory' if both else 'The resting daemon listens on a port of its own'}, so nothing lego "
              "or Pebble does can wake it. Every other measurement ran with no other benchmark "
              "process active (what else the machine was doing is in the last table)."]
    L += ["", "Commands, with `$W` the work directory, `$ACME_PORT` Pebble's ACME port, "
          "`$HTTP01_PORT` Pebble's `httpPort` and `$EAB_HMAC` the EAB key:", "", "```sh"]
    for k in ["certbot certonly", "certbot renew --force-renewal", "lego run", "certkeeper run",
              "certkeeper renew --force"]:
        if k in c:
            L.append(c[k])
    for r in results.rows:
        if r.scenario in ("idle",) and r.command and r.size == max(plan.idle_sizes):
            L.append(r.command)
    for k in ["certkeeper run (rest)", "criterion", "flood", "probe"]:
        if k in c:
            L.append(c[k].removesuffix(" --"))
    L += ["```", "", "The inventory certkeeper reads (one `[[certificate]]` per lineage):", "",
          "```toml", _ports_as_variables(meta["inventory_example"]), "```", ""]
    return L


def _ports_as_variables(toml: str) -> str:
    import re

    toml = re.sub(r"localhost:\d+/dir", "localhost:$ACME_PORT/dir", toml)
    return re.sub(r'"127\.0\.0\.1:\d+"', '"127.0.0.1:$HTTP01_PORT"', toml)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- scenario 7: DNS-01 through a real named ----------------------------------------------------

DNS_BULLET = "- **DNS-01 through BIND, {n} certificates:**"
DNS_HEADING = "## 7. "
DNS_ROWS_PREFIX = "DNS-01, "


def dns_size(results: Results, plan: Plan) -> int:
    """Certificates per certkeeper run, as measured (a plan saved before scenario 7 existed
    has no dns_size of its own)."""
    return ((getattr(results, "dns", None) or {}).get("size")) or plan.dns_size


def dns_rows(results: Results) -> dict[str, "object"]:
    """Scenario 7's rows by key (`ck-dns`, `ck-http`, `certbot`, `lego`), those with samples."""
    info = getattr(results, "dns", None) or {}
    keys = ("ck-dns", "ck-http", "certbot", "lego")
    return {k: r for k, r in zip(keys, info.get("rows") or []) if r.samples}


def _wall(row) -> float:
    return med([s.wall for s in row.samples])


def _per_cert(row) -> float:
    return _wall(row) / row.size


def _for_n(row, n: int) -> tuple[float, bool]:
    """Wall for `n` certificates: measured, or per certificate times `n` (extrapolated)."""
    if row.size == n:
        return _wall(row), False
    return _per_cert(row) * n, True


def dns_targets(results: Results, plan: Plan) -> list[list[str]]:
    rows = dns_rows(results)
    n = dns_size(results, plan)
    ck, http, cb = rows.get("ck-dns"), rows.get("ck-http"), rows.get("certbot")
    out = []
    if ck and http:
        r = _wall(ck) / _wall(http)
        cpu = med([s.cpu for s in ck.samples]) / max(med([s.cpu for s in http.samples]), 1e-9)
        out.append([f"{DNS_ROWS_PREFIX}{n} certificates: `certkeeper renew` within 2x of its own HTTP-01 wall "
                    "(same Pebble, max_concurrent = 4)",
                    f"{r:.2f}x ({fmt_time(_wall(ck))} vs {fmt_time(_wall(http))}, median of "
                    f"{len(ck.samples)}; CPU {cpu:.2f}x)",
                    "met" if r <= 2 else "**missed**"])
    if ck and cb:
        cb_n, extrapolated = _for_n(cb, n)
        r = cb_n / _wall(ck)
        how = (f"certbot {fmt_time(_per_cert(cb))} per certificate over the {cb.size} measured, "
               f"{fmt_time(cb_n)} for {n} extrapolated" if extrapolated else f"certbot {fmt_time(cb_n)}")
        out.append([f"{DNS_ROWS_PREFIX}{n} certificates: ≥10x faster than `certbot --dns-rfc2136`",
                    f"{r:.0f}x ({how}, vs {fmt_time(_wall(ck))})",
                    "met" if r >= 10 else "**missed**"])
    return out


def dns_headline(results: Results, plan: Plan) -> str | None:
    rows = dns_rows(results)
    n = dns_size(results, plan)
    ck, http = rows.get("ck-dns"), rows.get("ck-http")
    if not (ck and http):
        return None
    updates = med([s.extra["dns"]["updates"].messages for s in ck.samples])
    text = (f"{DNS_BULLET.format(n=n)} `certkeeper renew` {fmt_time(_wall(ck))} "
            f"({_wall(ck) / _wall(http):.2f}x its HTTP-01 time at the same concurrency, "
            f"{fmt_time(_wall(http))}), {updates:.0f} UPDATE messages to named")
    parts = []
    for key, label in (("certbot", "`certbot --dns-rfc2136`"), ("lego", "`lego --dns rfc2136`")):
        row = rows.get(key)
        if not row:
            continue
        total, extrapolated = _for_n(row, n)
        times = f"{total / _wall(ck):.0f}x"
        if key == "certbot":
            times = f"**{times}**"
        parts.append(f"{label} {fmt_time(_per_cert(row))} per certificate"
                     + (f" ({fmt_time(total)} for {n} extrapolated from {row.size}: {times})"
                        if extrapolated else f" ({fmt_time(total)} for {n}: {times})"))
    return text + ("; " + ", ".join(parts) if parts else "") + "."


def dns_section(results: Results, plan: Plan, meta: dict) -> list[str]:
    info = getattr(results, "dns", None) or {}
    rows = dns_rows(results)
    n = dns_size(results, plan)
    L = [f"{DNS_HEADING}DNS-01 through BIND ({n} certificates)", ""]
    if meta.get("only_part") == "dns01":
        L += [f"Measured apart from the rest of this file, by `{meta['only']}` on {meta['date']} "
              f"(took {meta['duration']}), with `{meta['versions']['certkeeper']}`. What else the "
              "machine was doing meanwhile is in the last table, in the phases marked "
              "`--only`.", ""]
    L += [f"A real BIND 9 `named` (Debian `bind9`) on 127.0.0.1 and a free port, primary for "
          f"`{info.get('zone', 'bench.example.com')}` (`* A 127.0.0.1`, `ns1 A 127.0.0.1`), with "
          f"one TSIG key (`{info.get('algorithm', 'hmac-sha256')}`, made by `tsig-keygen`) whose "
          "update-policy grants exactly the TXT records at `_acme-challenge.NAME` of the names "
          "issued here. A Pebble of this scenario's own, configured as the others "
          "(EAB, no validation delay, no authorization reuse), resolves through that named "
          "(`-dnsserver`), so every DNS-01 validation reads the record the client put there "
          "and every HTTP-01 name resolves to the local listener. Each tool issues single-name "
          "ECDSA P-256 certificates `dNNNN.bench.example.com` from an empty directory (account "
          "registration included), one run after another, alone:", "",
          f"- **certkeeper**: one `certkeeper renew` over {n} certificates with "
          "`challenge = \"dns-01\"` and one `[dns.bind]` provider (`type = \"rfc2136\"`, the "
          "secret from a 0600 file); zone, TTL and the propagation check are certkeeper's "
          "defaults: the zone found by asking the server, and the record checked at every "
          "authoritative server of the zone (`ns1`, asked at the provider's port) every 2 s "
          "for up to 2 minutes. max_concurrent is the default, 4. Alternating with it, as many "
          "other names (`hNNNN`) by HTTP-01 from its embedded responder, same Pebble, same "
          "concurrency: the ratio of the two walls is what DNS-01 costs certkeeper.",
          "- **certbot**: `certbot certonly --authenticator dns-rfc2136`, one process (and "
          "lineage) per certificate as in scenario 1, credentials INI 0600 "
          "(`dns_rfc2136_server`/`_port`/`_name`/`_secret`/`_algorithm`). It waits a fixed "
          "`--dns-rfc2136-propagation-seconds`, left at its default of 60 s: that wait is what "
          "this compares."
          + (f" Run on {rows['certbot'].size} certificate{'s' if rows['certbot'].size > 1 else ''} "
             f"only (all {n} would take over {n} minutes); its figure for {n} is "
             "its wall per certificate times "
             f"{n}, marked extrapolated." if "certbot" in rows and rows["certbot"].size != n else ""),
          "- **lego** (Debian 4.9): `lego --dns rfc2136 run`, one process per certificate, "
          "`RFC2136_NAMESERVER`, `RFC2136_TSIG_KEY`, `RFC2136_TSIG_SECRET`, "
          "`RFC2136_TSIG_ALGORITHM`, `RFC2136_PROPAGATION_TIMEOUT=120`, "
          "`RFC2136_POLLING_INTERVAL=2` (certkeeper's defaults). It finds the zone and checks "
          "the record through `--dns.resolvers` (this named); `--dns.disable-cp` because its "
          "complete-propagation check asks each authoritative server on port 53, found through "
          "the system resolver, which cannot reach a named on another port: with the flag it "
          "asks the CA once one query to the resolver succeeded."
          + (f" Run on {rows['lego'].size} certificate{'s' if rows['lego'].size > 1 else ''}; its "
             f"figure for {n} is extrapolated the same way." if "lego" in rows and rows["lego"].size != n else ""),
          "",
          "Counted per run: UPDATE messages named received and the records they added and "
          "deleted (its log: a channel for the `update` category, `severity debug 8`, which "
          "logs `update section prescan OK` once per message and one line per record changed); "
          "the same UPDATE count and the number of queries from its statistics channel "
          "(opcode counters; queries include Pebble's own lookups while validating); the "
          "`_acme-challenge` TXT records left in the zone afterwards (an AXFR); requests to the "
          "CA from Pebble's log. Wall, CPU and peak RSS as in scenario 1 (for one process per "
          "certificate: the loop's wall and CPU, the largest RSS). Cells are median (min–max) "
          "over n runs.", ""]
    table_rows = []
    for key, row in dns_rows(results).items():
        ss = row.samples
        d = [s.extra["dns"] for s in ss]
        total, extrapolated = _for_n(row, n)
        table_rows.append([
            row.tool, row.how, str(row.size),
            spread([s.wall for s in ss], fmt_time),
            fmt_time(_per_cert(row)),
            fmt_time(total) + (" (extrapolated)" if extrapolated else ""),
            spread([s.cpu for s in ss], fmt_time),
            spread([s.rss_kib for s in ss], fmt_mib),
            spread([float(x["updates"].messages) for x in d], lambda v: f"{v:.0f}")
            + _stats_disagree(d),
            spread([float(x["updates"].added) for x in d], lambda v: f"{v:.0f}") + " / "
            + spread([float(x["updates"].deleted + x["updates"].rrsets_deleted) for x in d],
                     lambda v: f"{v:.0f}"),
            spread([float(x["opcodes"].get("QUERY", 0)) for x in d], lambda v: f"{v:.0f}"),
            spread([float(s.requests or 0) for s in ss], lambda v: f"{v:.0f}"),
            str(max(len(x["left"]) for x in d)),
            str(len(ss)),
        ])
    if table_rows:
        L += table(["tool", "how", "certificates", "wall", "wall per certificate", f"wall for {n}",
                    "CPU", "peak RSS", "UPDATE messages", "records added / deleted",
                    "DNS queries (all)", "CA requests", "TXT left", "n"], table_rows)
        L += [""]
        lego = rows.get("lego")
        if lego and any(s.extra["dns"]["updates"].rrsets_deleted for s in lego.samples):
            L += ["lego's UPDATE that adds the record first deletes every TXT record at the name "
                  "(counted with the deletions), so two values at one name (a wildcard and its "
                  "apex in one order) cannot both be published by it.", ""]
    failed = info.get("failed") or {}
    if failed:
        L += ["Did not complete: " + "; ".join(f"{k}: {v}" for k, v in failed.items()) + ".", ""]
    if info.get("inventory"):
        L += ["certkeeper's inventory (with `$NAMED_PORT` named's port):", "", "```toml",
              info["inventory"], "```", ""]
    c = info.get("commands") or {}
    cmds = [x for x in (info.get("named_command"), info.get("pebble_command")) if x]
    cmds += [c[k] for k in ("certkeeper dns", "certkeeper http", "certbot", "lego") if k in c]
    if cmds:
        L += ["Commands (`$TSIG_SECRET` the key's secret, never printed here):", "", "```sh", *cmds, "```", ""]
    if info.get("certbot_ini"):
        L += ["certbot's credentials file (0600):", "", "```ini", info["certbot_ini"], "```", ""]
    return L


def _stats_disagree(d: list[dict]) -> str:
    """A note when named's statistics counted other UPDATE totals than its log."""
    off = [(x["updates"].messages, x["opcodes"].get("UPDATE", 0)) for x in d
           if x["updates"].messages != x["opcodes"].get("UPDATE", 0)]
    return "" if not off else " (statistics channel: " + ", ".join(str(b) for _, b in off) + ")"


# -- 8. three fleet nodes on one PostgreSQL ------------------------------------------------------

FLEET3_HEADING = "## 8. "
FLEET3_BULLET = "- **Fleet mode, 3 nodes on one PostgreSQL**"
FLEET3_ROWS_PREFIX = "Fleet (3 nodes)"


def fleet3_headline(results: Results, plan: Plan) -> str | None:
    f = getattr(results, "fleet3", None) or {}
    if not f.get("issue"):
        return None
    i, r, d = f["issue"], f.get("rest") or {}, f.get("rest_default") or {}
    text = (f"{FLEET3_BULLET}: {i['certs']} certificates ordered {i['orders'] / i['certs']:.2f} times "
            f"each and live on all {f['nodes']} nodes with the same serial {fmt_time(i['wall'])} after "
            "the daemons started")
    if r:
        text += (f"; at rest with {f['rest_size']:,} certificates the database runs "
                 f"{r['statements_per_min']:.0f} statements ({r['xacts_per_min']:.0f} transactions) "
                 f"a minute for the whole fleet (sync_interval {f['sync_interval']})")
    if d:
        text += f", {d['statements_per_min']:.0f} with the default sync_interval (5 min)"
    return text + "."


def fleet3_targets(results: Results, plan: Plan) -> list[list[str]]:
    f = getattr(results, "fleet3", None) or {}
    if not f.get("issue"):
        return []
    i = f["issue"]
    per = i["orders"] / i["certs"]
    return [[f"{FLEET3_ROWS_PREFIX}: {i['certs']} certificates ordered once each (issue 15)",
             f"{per:.2f} orders per certificate ({i['orders']} for {i['certs']})",
             "met" if per == 1 else "**missed**"]]


def _lags(phase: dict) -> str:
    if "lag_median" not in phase:
        return ""
    return f"{fmt_time(phase['lag_median'])} / {fmt_time(phase['lag_max'])}"


def fleet3_section(results: Results, plan: Plan, meta: dict) -> list[str]:
    f = getattr(results, "fleet3", None) or {}
    L = [f"{FLEET3_HEADING}A fleet of three nodes on one PostgreSQL", ""]
    if meta.get("only_part") == "fleet":
        L += [f"Measured apart from the rest of this file, by `{meta['only']}` on {meta['date']} "
              f"(took {meta['duration']}), with `{meta['versions']['certkeeper']}`. What else the "
              "machine was doing meanwhile is in the last table, in the phases marked "
              "`--only`.", ""]
    if not f.get("issue"):
        return L + ["Not measured.", ""]
    i, g, r = f["issue"], f.get("grow") or {}, f.get("rest") or {}
    d = f.get("rest_default") or {}
    L += [f"Issue 15's benchmark (bench/certbench/fleet.py). A throwaway PostgreSQL "
          f"({f.get('postgres', '15')}; `fsync=off`, password authentication "
          "on 127.0.0.1, `pg_stat_statements` loaded), three `certkeeper run` daemons on this "
          "machine with their own state directories and the same inventory (single-name ECDSA "
          f"certificates, lease {f['lease']}, sync_interval {f['sync_interval']}, max_concurrent "
          "the default 4 per node), the same Pebble as the other scenarios, whose HTTP-01 port "
          "is a Python round-robin TCP forwarder to the three nodes' listeners (a validation "
          "usually reaches a node that did not place the order).", "",
          f"- **Issuance**: the three daemons start together from empty state directories and an "
          f"empty database on {i['certs']} certificates; wall from their start until every node "
          "has every certificate live, the same certificate byte for byte (so the same serial), "
          "polled every 0.2 s; per certificate, the lag from the first node having it live to all "
          "three having that one (0 when all three had it at the same poll). Orders are newOrder requests in Pebble's log.",
          f"- **Growth**: the inventory file is replaced by one of {f['rest_size']:,} certificates "
          "(the first ones unchanged); the daemons reload it and the fleet issues the rest, timed "
          "the same way.",
          f"- **At rest**: {r.get('settle', 15)} s after that, with the three daemons idle and "
          f"nothing due, the fleet's database work is counted over {r.get('seconds', 0):.0f} s: "
          "statements executed by the fleet's role (`pg_stat_statements` calls) and transactions "
          "of its database (`pg_stat_database` xact_commit + xact_rollback; the counting "
          "queries run in another database). Both are PostgreSQL's own counters, but they "
          "count different things: a transaction need not run a statement pg_stat_statements "
          "tracks, and a backend reports its transaction counts up to about 10 s late, so the "
          "two columns need not agree; the statement count is the one to quote. Then the "
          "inventory is replaced by the same one without `sync_interval` (its default, 5 min), "
          "the daemons reload it, and after as long a pause the count is taken again"
          + (f" over {d['seconds']:.0f} s." if d else "."),
          ""]
    rows = [["issuance from empty", str(i["certs"]), fmt_time(i["wall"]), str(i["orders"]),
             f"{i['orders'] / i['certs']:.2f}", str(i["finalized"]), str(i["versions"]),
             str(i["distinct_serials"]), _lags(i)]]
    if g:
        rows.append([f"growth to {f['rest_size']:,}", str(g["certs"]), fmt_time(g["wall"]),
                     str(g["orders"]), f"{g['orders'] / max(g['certs'], 1):.2f}", str(g["finalized"]),
                     str(g["versions"]), "", _lags(g)])
    L += table(["phase", "new certificates", "wall to all 3 nodes in sync", "orders at the CA",
                "orders per certificate", "finalized", "certkeeper_versions rows (total)",
                "distinct serials", "lag first node → all 3, median / max"], rows)
    L += ["", "Versions published per node (issuance from empty): "
          + ", ".join(f"`{p}`" for p in i.get("publishers") or []) + ".", ""]
    if r:
        n = f["nodes"]

        def rest_row(label: str, x: dict) -> list[str]:
            return [label, f"{f['rest_size']:,}", f"{x['seconds']:.0f} s", str(x["statements"]),
                    f"{x['statements_per_min']:.1f}", f"{x['statements_per_min'] / n:.1f}",
                    str(x["xacts"]), f"{x['xacts_per_min']:.1f}", str(x["orders"])]

        rows = [rest_row(f"3 nodes, sync_interval {f['sync_interval']}", r)]
        if d:
            rows.append(rest_row("3 nodes, sync_interval the default (5m)", d))
        L += table(["at rest", "certificates", "period", "statements", "statements per minute",
                    "per node", "transactions", "transactions per minute", "orders"], rows)
        L += ["", f"Database size: {r['db_size'] / 1024 / 1024:.1f} MiB in all; "
              f"`certkeeper_versions` {r['versions_size'] / 1024 / 1024:.1f} MiB for "
              f"{r['versions']:,} versions ({r['versions_size'] / max(r['versions'], 1) / 1024:.1f} KiB "
              "per version, indexes and TOAST included).", ""]
        if r.get("top_statements_since_start"):
            L += ["The fleet's most frequent statements since the database started (all phases; "
                  "calls, then the statement's start):", "", "```",
                  *r["top_statements_since_start"], "```", ""]
    if f.get("config"):
        L += ["A node's inventory (the first certificate of many):", "", "```toml",
              _ports_as_variables(f["config"].strip()), "```", ""]
    return L
