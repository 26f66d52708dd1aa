#!/usr/bin/python3
"""Ferry demo: three mock AI servers behind ferryd, weighted 100/200/300.

Builds the e2e topology (tests/e2e/topo.py), starts ferryd with
conf/ferry.conf as-is (hugepages, lcores 0,1), waits until health checks have
brought every backend up, sends ~300 chat requests from the client namespace
(a new connection each, so each is its own flow for Maglev to place), and
prints each server's expected and actual share. Everything is torn down on
exit. scripts/demo.sh is the entry point (deps, build, hugepages); run this
directly only when those are done. --kernel puts the nftables DNAT stand-in
in ferryd's place, to check the demo itself.
"""

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import topo  # noqa: E402

DEFAULT_CONFIG = topo.REPO / "conf" / "ferry.conf"
BACKEND_RE = re.compile(r'\{\s*address\s*=\s*"(10\.77\.2\.(\d+))"\s*;\s*port\s*=\s*(\d+)\s*;'
                        r'\s*weight\s*=\s*(\d+)\s*;')


def config_weights(path):
    """Weights of the first VIP's backends as written in the config, so the
    demo's expectations follow edits to conf/ferry.conf. Backends must be
    10.77.2.11, .12, ... (the topology's addresses), in that order."""
    found = [(addr, int(last), int(weight))
             for addr, last, _port, weight in BACKEND_RE.findall(Path(path).read_text())]
    weights = []
    for i, (addr, last, weight) in enumerate(found):
        if last != 11 + i:
            break  # the next VIP's list starts again at .11
        weights.append(weight)
    if not weights:
        raise SystemExit(f"{path}: found no backends 10.77.2.11.. with a weight")
    return weights


def share_table(topology, result):
    """Rows of server, address, weight, expected share, answered, actual share."""
    total_weight = sum(b.weight for b in topology.backends) or 1
    answered = result.get("servers", {})
    total = sum(answered.values()) or 1
    rows = [("server", "address", "weight", "expected", "answered", "actual")]
    for b in topology.backends:
        n = answered.get(b.id, 0)
        rows.append((b.id, b.address, str(b.weight), f"{100.0 * b.weight / total_weight:.1f}%",
                     str(n), f"{100.0 * n / total:.1f}%"))
    rows.append(("total", "", str(total_weight), "100.0%", str(sum(answered.values())), ""))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(r, widths)))
                     for r in rows)


def start_balancer(t, args):
    if args.kernel:
        t.kernel_lb()
        print("balancer: nftables DNAT in the lb namespace (--kernel)")
        return
    t.start_ferryd(args.config, hugepages=not args.no_huge, lcores=args.lcores)
    print(f"balancer: ferryd (pid {t.ferryd.pid}) with {args.config}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=8, help="tokens per answer")
    p.add_argument("--prefix", default=f"fd{os.getpid()}", help="namespace/DPDK prefix")
    p.add_argument("--lcores", default="0,1", help="EAL -l for ferryd")
    p.add_argument("--no-huge", action="store_true", help="run ferryd without hugepages")
    p.add_argument("--kernel", action="store_true", help="nftables DNAT instead of ferryd")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    weights = config_weights(args.config)
    with topo.Topology(len(weights), weights=weights, prefix=args.prefix) as t:
        print(f"topology {t.prefix}: client {topo.CLIENT_ADDR} -> VIP {topo.VIP}:80 -> "
              + ", ".join(f"{b.id} {b.address}:8000" for b in t.backends), flush=True)
        try:
            start_balancer(t, args)
            print("waiting for health checks to bring every backend up ...", flush=True)
            t.wait_backends_seen(timeout=60)
            print(f"sending {args.requests} chat requests, {args.concurrency} at a time, "
                  "one connection each ...", flush=True)
            result = t.load(n=args.requests, concurrency=args.concurrency, new_conn=True,
                            max_tokens=args.max_tokens)
        except BaseException:
            t.dump_logs()
            raise
        print()
        print(share_table(t, result))
        print(f"\nok {result['ok']}, failed {result['failed']}, "
              f"latency p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms")
        for err in result["errors"]:
            print(f"  error: {err}")
        missing = [b.id for b in t.backends if b.weight and not result["servers"].get(b.id)]
        return 1 if result["failed"] or missing else 0


if __name__ == "__main__":
    sys.exit(main())
