#!/usr/bin/python3
"""Balancing evaluation: the same AI workload through Ferry once per
scheduler, on one fleet where one server runs at half speed.

    scripts/eval_balancing.py [--utilization 0.75 | --rate 6] [--duration 60] [--only NAME ...] [--out FILE]

Fleet: four mock AI servers of equal weight, each generating at most
--max-concurrency answers at once (more wait in its queue, reported as
vllm:num_requests_waiting); the last one runs at half speed. Workload:
Poisson arrivals, --long-share long streamed answers, the rest short; a new
connection per request. The arrival rate is given directly (--rate) or as
the fleet's utilisation (--utilization: arrival rate x mean service demand /
total capacity, with the demand the mock servers' own timing). Per method it
reports requests per server, p50/p99 latency, p99 of short requests and
p50/p99 time to first token. Run as root after building (FERRYD defaults to
build/src/ferryd/ferryd).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
from topo import PYTHON, VIP, Topology  # noqa: E402

WORKLOAD = HERE.parent / "tests" / "e2e" / "workload.py"

# The mock servers' timing (scripts/mock_ai_server.py defaults) and the workload's answer lengths
# (tests/e2e/workload.py defaults): what one request costs a server slot at full speed.
PREFILL_S = 0.020
TOKEN_RATE = 50.0
SHORT_TOKENS = 16
LONG_TOKENS = 150
SPEEDS = (1.0, 1.0, 1.0, 0.5)

# Scraping every 500 ms for every method that reads the servers' metrics. The latency-aware
# rows leave load_aware off (its group only sets where and how often to scrape).
SCRAPE = {"format": "vllm", "interval_ms": 500, "timeout_ms": 400}
RUNS = [
    ("maglev", {"scheduler": "maglev"}),
    ("round_robin", {"scheduler": "round_robin"}),
    ("least_conn", {"scheduler": "least_conn"}),
    ("two_choices", {"scheduler": "two_choices"}),
    ("maglev + load_aware", {"scheduler": "maglev",
                             "load_aware": dict(SCRAPE, enabled=True, target_queue=1.0)}),
    ("maglev + load_aware (target_queue 4)", {"scheduler": "maglev", "load_aware": dict(SCRAPE, enabled=True)}),
    ("maglev + latency_aware ttft", {"scheduler": "maglev", "load_aware": dict(SCRAPE, enabled=False),
                                     "latency_aware": {"signal": "ttft"}}),
    ("maglev + latency_aware tpot", {"scheduler": "maglev", "load_aware": dict(SCRAPE, enabled=False),
                                     "latency_aware": {"signal": "tpot"}}),
    ("maglev + latency_aware connect", {"scheduler": "maglev", "latency_aware": {"signal": "connect"}}),
    ("maglev + load_aware + latency_aware ttft", {"scheduler": "maglev",
                                                  "load_aware": dict(SCRAPE, enabled=True, target_queue=1.0),
                                                  "latency_aware": {"signal": "ttft"}}),
]


def service_demand_s(long_share):
    """Mean time one request holds a slot of a full-speed server."""
    def one(tokens):
        return PREFILL_S + (tokens - 1) / TOKEN_RATE
    return long_share * one(LONG_TOKENS) + (1 - long_share) * one(SHORT_TOKENS)


def capacity_slots(max_concurrency):
    """Full-speed slot-seconds the fleet serves per second."""
    return max_concurrency * sum(SPEEDS)


def run_one(t, name, overrides, args):
    vip = dict(t.default_vips(udp=False)[0], **overrides)
    vip["health"] = {"type": "http", "path": "/health", "interval_ms": 1000, "timeout_ms": 500,
                     "rise": 1, "fall": 3}
    cfg = t.write_config(workers=1, vips=[vip], worker_settings={"idle_sleep_us": 50})
    t.start_ferryd(cfg)
    try:
        t.wait_backends_seen(timeout=30)
        time.sleep(2)
        argv = [PYTHON, str(WORKLOAD), "--vip", VIP, "--rate", str(args.rate), "--duration", str(args.duration),
                "--long-share", str(args.long_share), "--seed", str(args.seed)]
        cp = t.run_in(t.ns_client, argv, timeout=args.duration + 200)
        result = json.loads(cp.stdout.strip().splitlines()[-1])
        result["backends"] = backends_now(t)
        result["lowest_factor"] = lowest_factors(t)
    finally:
        t.stop_ferryd()
        time.sleep(1)
    result["name"] = name
    return result


FERRYCTL = HERE.parent / "build" / "src" / "ferryctl" / "ferryctl"


def backends_now(t):
    """`ferryctl backends --json` at the end of the run: latencies and factors per backend."""
    try:
        cp = subprocess.run([str(FERRYCTL), "--socket", t.control_socket, "--json", "backends"],
                            capture_output=True, text=True, timeout=10)
        rows = json.loads(cp.stdout)
        rows = rows.get("backends", rows) if isinstance(rows, dict) else rows
        keep = ("address", "effective_weight", "connect_ms", "ttft_ms", "tpot_ms", "load_factor", "latency_factor")
        return [{k: r.get(k) for k in keep} for r in rows]
    except Exception as exc:  # a report without it is still a report
        return [{"error": str(exc)}]


FACTOR_LINE = re.compile(r"backend (\S+)(?: in VIP \S+)? (load|latency) factor [0-9.]+ -> ([0-9.]+)")


def lowest_factors(t):
    """The lowest load and latency factor each backend reached, from ferryd's log."""
    by_addr = {f"{b.address}:8000": b.id for b in t.backends}
    low = {}
    for m in FACTOR_LINE.finditer(t.ferryd_log()):
        bid = by_addr.get(m.group(1), m.group(1))
        key = f"{bid} {m.group(2)}"
        low[key] = min(low.get(key, 1.0), float(m.group(3)))
    return low


def table(results, t):
    ids = [b.id for b in t.backends]
    slow = ids[-1]
    head = ("| method | " + " | ".join(f"{i}" for i in ids) +
            f" | failed | p50 ms | p99 ms | short p99 ms | TTFT p50 ms | TTFT p99 ms | {slow} lowest factor |")
    lines = [head, "|" + "---|" * (len(ids) + 8)]
    for r in results:
        total = max(1, sum(r["servers"].values()))
        shares = " | ".join(f"{100 * r['servers'].get(i, 0) / total:.0f}%" for i in ids)
        low = [f"{kind} {v:.2f}" for kind in ("load", "latency")
               for k, v in r.get("lowest_factor", {}).items() if k == f"{slow} {kind}"]
        lines.append(f"| {r['name']} | {shares} | {r['failed']} | {r['latency_p50_ms']} | {r['latency_p99_ms']} | "
                     f"{r['short_p99_ms']} | {r['ttft_p50_ms']} | {r['ttft_p99_ms']} | {', '.join(low) or '-'} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, help="arrivals per second (default: from --utilization)")
    p.add_argument("--utilization", type=float, default=0.75,
                   help="fleet utilisation the arrival rate is chosen for (default 0.75)")
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=7, help="workload seed, the same for every method")
    p.add_argument("--long-share", type=float, default=0.2)
    p.add_argument("--max-concurrency", type=int, default=4)
    p.add_argument("--only", nargs="*", help="scheduler names to run")
    p.add_argument("--out", help="write the report (markdown) here")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("eval_balancing: run as root (namespaces, DPDK)")
    demand = service_demand_s(args.long_share)
    capacity = capacity_slots(args.max_concurrency)
    if args.rate is None:
        args.rate = round(args.utilization * capacity / demand, 2)
    util = args.rate * demand / capacity
    slow_share = SPEEDS[-1] / sum(SPEEDS)
    slow_util_even = args.rate / len(SPEEDS) * demand / SPEEDS[-1] / args.max_concurrency
    load_line = (f"Load: {args.rate}/s x {demand:.3f} s mean demand / {capacity:.0f} slot-s/s capacity = "
                 f"{100 * util:.0f}% fleet utilisation; the half-speed server has {100 * slow_share:.0f}% of the "
                 f"capacity, so an even split runs it at {100 * slow_util_even:.0f}%.")
    print("# " + load_line, flush=True)
    results = []
    with Topology(4, weights=(100, 100, 100, 100), speeds=SPEEDS,
                  server_args=("--max-concurrency", str(args.max_concurrency))) as t:
        for name, overrides in RUNS:
            if args.only and name not in args.only:
                continue
            print(f"# {name} ...", flush=True)
            r = run_one(t, name, overrides, args)
            print(json.dumps(r), flush=True)
            results.append(r)
        report = table(results, t)
    print(report)
    if args.out:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        Path(args.out).write_text(
            "# Balancing methods compared\n\n"
            "Generated by `scripts/eval_balancing.py` on " + when + ", " + cpu + f", {os.cpu_count()} cores, "
            + platform.release() + ".\n\n"
            f"Fleet: four mock AI servers, equal weights, at most {args.max_concurrency} answers generating at once "
            "each (more queue), the fourth (ai-4) at half speed. Workload: Poisson arrivals at "
            f"{args.rate}/s for {args.duration:.0f} s, {100 * args.long_share:.0f}% long streamed answers, a new "
            f"connection per request, one ferryd worker, the same seed ({args.seed}) for every run.\n\n" + load_line + "\n\n"
            + report + "\n")


if __name__ == "__main__":
    main()
