#!/usr/bin/python3
"""Open-loop AI chat workload for the balancing evaluation.

Requests arrive at a steady Poisson rate whatever the servers do (unlike a
closed loop, which slows down with the servers and hides queueing). A share
of them are long streamed answers; every request is a new TCP connection, so
the balancer chooses a backend for each. Prints one JSON line: per-server
counts, latency and time-to-first-token percentiles (ms), failures.

    workload.py --vip 10.77.1.100 --rate 8 --duration 30 --long-share 0.2
"""
import argparse
import http.client
import json
import random
import threading
import time

from load_client import RequestFailed, percentile, read_stream, request_body


class Args:
    """What load_client's helpers expect of their argument object."""

    def __init__(self, stream, max_tokens):
        self.stream = stream
        self.max_tokens = max_tokens


def one(vip, port, tokens, timeout, out, lock):
    t0 = time.monotonic()
    try:
        conn = http.client.HTTPConnection(vip, port, timeout=timeout)
        conn.request("POST", "/v1/chat/completions", body=request_body(Args(True, tokens), 0),
                     headers={"Content-Type": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RequestFailed(f"HTTP {resp.status}")
        server, ttft = read_stream(resp, t0, t0 + timeout, tokens)
        conn.close()
        with lock:
            out.append({"server": server, "latency": time.monotonic() - t0, "ttft": ttft, "long": tokens > 32})
    except Exception as exc:  # a failed request is data, not a crash
        with lock:
            out.append({"error": f"{type(exc).__name__}: {exc}"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vip", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--rate", type=float, default=8.0, help="requests per second (Poisson)")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--long-share", type=float, default=0.2)
    p.add_argument("--short-tokens", type=int, default=16)
    p.add_argument("--long-tokens", type=int, default=150)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)
    out, lock, threads = [], threading.Lock(), []
    start = time.monotonic()
    at = start
    while True:
        at += rng.expovariate(a.rate)
        if at - start >= a.duration:
            break
        time.sleep(max(0.0, at - time.monotonic()))
        tokens = a.long_tokens if rng.random() < a.long_share else a.short_tokens
        t = threading.Thread(target=one, args=(a.vip, a.port, tokens, a.timeout, out, lock), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(a.timeout + 5)
    ok = [r for r in out if "error" not in r]
    servers = {}
    for r in ok:
        servers[r["server"]] = servers.get(r["server"], 0) + 1
    lat = [r["latency"] for r in ok]  # seconds; percentile() reports ms
    short = [r["latency"] for r in ok if not r["long"]]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    print(json.dumps({
        "sent": len(out), "ok": len(ok), "failed": len(out) - len(ok),
        "errors": [r["error"] for r in out if "error" in r][:5], "servers": servers,
        "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
        "short_p99_ms": percentile(short, 99),
        "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
    }))


if __name__ == "__main__":
    main()
