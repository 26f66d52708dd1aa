#!/usr/bin/python3
"""Load client for Ferry's end-to-end tests; prints ONE JSON line.

HTTP mode (default): N chat completions to http://VIP:PORT/v1/chat/completions
from C threads, each answer checked (status 200, server id present, for
streams every token and the final [DONE]). Result keys:
    mode total ok failed errors servers status elapsed_s rps
    latency_p50_ms latency_p99_ms ttft_p50_ms ttft_p99_ms
`servers` counts successful answers per server id (from system_fingerprint).
TTFT is the first streamed token; without --stream it is the arrival of the
response headers (which the mock server sends after the last token).

    ip netns exec fe123-cl /usr/bin/python3 load_client.py --vip 10.77.1.100 \\
        -n 200 -c 20 [--stream] [--max-tokens 1000] [--new-conn] [--duration 30]

UDP mode (--udp): K datagrams (--count) from each of F source ports
(--flows) to a udp_echo VIP, one at a time per flow, each reply checked to be
"<id> <our payload>". Result keys:
    mode flows sent answered lost bad sticky per_flow servers errors
`per_flow` maps source port -> sorted ids that answered; `sticky` is true
when every flow was answered by exactly one id.

Standard library only; meant for Debian's /usr/bin/python3.
"""

import argparse
import http.client
import itertools
import json
import math
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MAX_ERRORS = 5
CHAT_PATH = "/v1/chat/completions"


class RequestFailed(Exception):
    """One request's answer was wrong or incomplete."""


def percentile(values, pct):
    """Nearest-rank percentile in ms, None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100.0 * len(ordered)) - 1))
    return round(ordered[rank] * 1000.0, 2)


class Tally:
    """Thread-safe collection of per-request outcomes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.total = self.ok = self.failed = 0
        self.errors = []
        self.servers = {}
        self.status = {}
        self.latency = []
        self.ttft = []

    def success(self, server, latency, ttft):
        with self.lock:
            self.total += 1
            self.ok += 1
            self.servers[server] = self.servers.get(server, 0) + 1
            self.status["200"] = self.status.get("200", 0) + 1
            self.latency.append(latency)
            if ttft is not None:
                self.ttft.append(ttft)

    def failure(self, error, status=None):
        with self.lock:
            self.total += 1
            self.failed += 1
            key = str(status) if status is not None else "none"
            self.status[key] = self.status.get(key, 0) + 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(error)

    def result(self, elapsed):
        return {
            "mode": "http", "total": self.total, "ok": self.ok, "failed": self.failed,
            "errors": self.errors, "servers": dict(sorted(self.servers.items())),
            "status": self.status, "elapsed_s": round(elapsed, 3),
            "rps": round(self.total / elapsed, 1) if elapsed > 0 else None,
            "latency_p50_ms": percentile(self.latency, 50),
            "latency_p99_ms": percentile(self.latency, 99),
            "ttft_p50_ms": percentile(self.ttft, 50),
            "ttft_p99_ms": percentile(self.ttft, 99),
        }


class HttpStatusError(RequestFailed):
    def __init__(self, status, text):
        super().__init__(f"HTTP {status}: {text[:120]}")
        self.status = status


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

def request_body(args, seq):
    body = {"model": "mock", "stream": args.stream,
            "messages": [{"role": "user", "content": f"request {seq} from pid {os.getpid()}"}]}
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    return json.dumps(body).encode()


def read_stream(resp, t0, deadline, expect_tokens):
    """Consume an SSE answer; returns (server_id, ttft). Every token counts,
    and the stream must end with [DONE]: a flow broken mid-answer fails."""
    server, ttft, tokens = None, None, 0
    while True:
        if time.monotonic() > deadline:
            raise RequestFailed(f"timeout mid-stream after {tokens} tokens")
        line = resp.readline()
        if not line:
            raise RequestFailed(f"stream ended without [DONE] after {tokens} tokens")
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            resp.read()  # the closing chunk, or the next request on this connection fails
            break
        event = json.loads(data)
        server = server or event.get("system_fingerprint")
        if event["choices"][0]["delta"].get("content"):
            tokens += 1
            if ttft is None:
                ttft = time.monotonic() - t0
    if expect_tokens and tokens != expect_tokens:
        raise RequestFailed(f"got {tokens} tokens, expected {expect_tokens}")
    return server, ttft


def read_plain(resp):
    answer = json.loads(resp.read())
    if not answer["choices"][0]["message"]["content"]:
        raise RequestFailed("empty completion")
    return answer.get("system_fingerprint")


def do_request(conn, args, seq):
    """One chat completion on `conn`; returns (server, latency, ttft)."""
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    headers = {"Content-Type": "application/json"}
    if args.new_conn:
        headers["Connection"] = "close"
    conn.request("POST", CHAT_PATH, body=request_body(args, seq), headers=headers)
    resp = conn.getresponse()
    headers_at = time.monotonic() - t0
    if resp.status != 200:
        raise HttpStatusError(resp.status, resp.read().decode(errors="replace"))
    if args.stream:
        server, ttft = read_stream(resp, t0, deadline, args.max_tokens)
    else:
        server, ttft = read_plain(resp), headers_at
    if not server:
        raise RequestFailed("answer carries no server id")
    return server, time.monotonic() - t0, ttft


class Work:
    """Hands out request numbers until -n is reached or --duration is over."""

    def __init__(self, n, duration):
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.n = n
        self.stop_at = time.monotonic() + duration if duration else None

    def next(self):
        if self.stop_at and time.monotonic() >= self.stop_at:
            return None
        with self.lock:
            seq = next(self.counter)
        return seq if self.n is None or seq < self.n else None


def http_worker(args, work, tally):
    """One client thread: keep-alive connection unless --new-conn; after any
    error the connection is dropped and a new one opened."""
    conn = None
    while (seq := work.next()) is not None:
        if conn is None:
            conn = http.client.HTTPConnection(args.vip, args.port, timeout=args.timeout)
        try:
            tally.success(*do_request(conn, args, seq))
        except HttpStatusError as exc:
            tally.failure(str(exc), exc.status)
            conn.close()
            conn = None
        except Exception as exc:  # any broken answer is a failed request, never a dead thread
            tally.failure(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = None
        if args.new_conn and conn is not None:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def run_http(args):
    tally = Tally()
    n = args.requests if args.requests > 0 else None
    if n is None and not args.duration:
        n = 100
    work = Work(n, args.duration)
    t0 = time.monotonic()
    threads = [threading.Thread(target=http_worker, args=(args, work, tally), daemon=True)
               for _ in range(max(1, args.concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally.result(time.monotonic() - t0)


# --------------------------------------------------------------------------
# UDP
# --------------------------------------------------------------------------

def udp_flow(args, flow, nonce):
    """All datagrams of one flow (one source port), each awaited in turn, so
    a reply always matches the last payload sent. Returns a dict."""
    out = {"sport": None, "ids": set(), "sent": 0, "answered": 0, "bad": 0, "errors": []}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((args.bind, 0))
        s.settimeout(args.timeout)
        out["sport"] = s.getsockname()[1]
        for seq in range(args.count):
            payload = f"{nonce}:{flow}:{seq}".encode()
            ident = udp_exchange(s, (args.vip, args.port), payload, args.retries, out)
            if ident is not None:
                out["answered"] += 1
                out["ids"].add(ident)
    return out


def udp_exchange(sock, dest, payload, retries, out):
    """Send payload, wait for "<id> <payload>"; retransmit on timeout. Replies
    to an earlier retransmission are skipped, other garbage counts as bad."""
    for _ in range(retries + 1):
        sock.sendto(payload, dest)
        out["sent"] += 1
        try:
            while True:
                reply, _peer = sock.recvfrom(65535)
                ident, _, echoed = reply.partition(b" ")
                if echoed == payload:
                    return ident.decode(errors="replace")
                if not echoed.startswith(payload.split(b":")[0] + b":"):
                    out["bad"] += 1
                    if len(out["errors"]) < MAX_ERRORS:
                        out["errors"].append(f"unexpected reply {reply[:80]!r}")
        except socket.timeout:
            continue
        except OSError as exc:  # e.g. ICMP port unreachable -> ECONNREFUSED
            if len(out["errors"]) < MAX_ERRORS:
                out["errors"].append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.1)
    return None


def run_udp(args):
    nonce = f"{os.getpid()}-{int(time.time() * 1000) % 100000}"
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(args.flows, args.concurrency))) as pool:
        flows = list(pool.map(lambda f: udp_flow(args, f, nonce), range(args.flows)))
    per_flow = {str(f["sport"]): sorted(f["ids"]) for f in flows}
    servers = {}
    for ids in per_flow.values():
        for ident in ids:
            servers[ident] = servers.get(ident, 0) + 1
    answered = sum(f["answered"] for f in flows)
    expected = args.flows * args.count
    return {
        "mode": "udp", "flows": args.flows, "count": args.count,
        "sent": sum(f["sent"] for f in flows), "answered": answered,
        "lost": expected - answered, "bad": sum(f["bad"] for f in flows),
        "sticky": all(len(ids) == 1 for ids in per_flow.values()),
        "per_flow": per_flow, "servers": dict(sorted(servers.items())),
        "errors": [e for f in flows for e in f["errors"]][:MAX_ERRORS],
        "elapsed_s": round(time.monotonic() - t0, 3),
    }


# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vip", default="10.77.1.100")
    p.add_argument("--port", type=int, default=None, help="default 80, or 5353 with --udp")
    p.add_argument("-n", "--requests", type=int, default=100,
                   help="requests to send (0 = until --duration)")
    p.add_argument("-c", "--concurrency", type=int, default=10, help="client threads")
    p.add_argument("--stream", action="store_true", help="ask for SSE streaming")
    p.add_argument("--max-tokens", type=int, default=None, help="tokens per answer")
    p.add_argument("--new-conn", action="store_true",
                   help="new TCP connection per request (default: keep-alive per thread)")
    p.add_argument("--duration", type=float, default=None,
                   help="stop starting new requests after this many seconds")
    p.add_argument("--timeout", type=float, default=None,
                   help="hard limit per request (default 30 s) or per UDP datagram (1 s)")
    p.add_argument("--udp", action="store_true", help="UDP echo stickiness mode")
    p.add_argument("--flows", type=int, default=10, help="UDP: distinct source ports")
    p.add_argument("--count", type=int, default=5, help="UDP: datagrams per flow")
    p.add_argument("--retries", type=int, default=2, help="UDP: retransmissions per datagram")
    p.add_argument("--bind", default="0.0.0.0", help="UDP: local address")
    args = p.parse_args(argv)
    if args.port is None:
        args.port = 5353 if args.udp else 80
    if args.timeout is None:
        args.timeout = 1.0 if args.udp else 30.0
    return args


def main(argv=None):
    args = parse_args(argv)
    result = run_udp(args) if args.udp else run_http(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
