#!/usr/bin/python3
"""Mock AI inference server for Ferry's end-to-end tests and demo.

It speaks just enough of the OpenAI / vLLM HTTP surface for a load balancer
test: answers carry the server's identity (so a client can tell which backend
served it), streams tokens at a fixed rate (so a test can hold a flow open for
as long as it likes), and reports vLLM-style load gauges (so load-aware
scheduling and health checks have something real to read).

Endpoints
  GET  /                      "<id>\\n"
  GET  /health                200 "ok", or 503 when draining / set unhealthy
  GET  /metrics               Prometheus text: vllm:num_requests_running,
                              vllm:num_requests_waiting, vllm:kv_cache_usage_perc,
                              and the histograms
                              vllm:time_to_first_token_seconds (arrival to
                              first token, queueing included) and
                              vllm:time_per_output_token_seconds (time between
                              consecutive tokens), as measured
  GET  /v1/models             OpenAI model list (one model, "mock")
  POST /v1/chat/completions   OpenAI chat completion; "stream": true => SSE
  POST /admin/health          body "200" or "503": sets the /health status
  POST /admin/load            JSON {"waiting": N, "running": N, "kv": 0.x}
                              overrides the reported gauges; a key set to null
                              drops that override, {} drops them all

Concurrency: at most --max-concurrency chat requests generate at once (the
"running" gauge). Further requests wait in a FIFO queue (the "waiting" gauge)
of at most --max-queue entries; beyond that the server answers 429, like a
saturated vLLM behind a gateway would. Queueing (rather than an immediate 429)
is the default because it is what vLLM does and it makes overload visible as
latency and as the waiting gauge, which is what a load-aware balancer reads.

Timing: the first token comes after --prefill-ms, then one token every
1/--token-rate seconds; --speed divides all of it (0.5 = twice as slow).

SIGTERM (and SIGINT) stop the server cleanly with exit status 0. Standard
library only, so it runs with Debian's /usr/bin/python3 inside any namespace.
"""

import argparse
import collections
import json
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "mock"
GAUGE_LABELS = 'model_name="mock",engine="0"'


class Overloaded(Exception):
    """The wait queue is full: the request gets a 429."""


class Admission:
    """FIFO admission control: `limit` running slots plus a bounded wait queue.

    A plain semaphore would not be FIFO and would not let us count waiters,
    and both matter: the waiting count is a reported gauge, and FIFO keeps the
    latency of a queued request predictable for tests.
    """

    def __init__(self, limit, max_queue):
        self.limit = max(1, limit)
        self.max_queue = max(0, max_queue)
        self.running = 0
        self.queue = collections.deque()
        self.cond = threading.Condition()

    def acquire(self):
        """Take a running slot, queueing if needed; raises Overloaded."""
        with self.cond:
            if self.running < self.limit and not self.queue:
                self.running += 1
                return
            if len(self.queue) >= self.max_queue:
                raise Overloaded()
            ticket = object()
            self.queue.append(ticket)
            while self.queue[0] is not ticket or self.running >= self.limit:
                self.cond.wait()
            self.queue.popleft()
            self.running += 1
            self.cond.notify_all()

    def release(self):
        with self.cond:
            self.running -= 1
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return self.running, len(self.queue)


# vLLM's bucket bounds (seconds) for the two latency histograms.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0)


class Histogram:
    """A Prometheus histogram: cumulative buckets, _sum and _count."""

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def observe(self, value):
        with self.lock:
            self.sum += value
            self.count += 1
            for i, bound in enumerate(self.bounds):
                if value <= bound:
                    self.counts[i] += 1
                    break

    def lines(self, name, help_text):
        with self.lock:
            counts, total, count = list(self.counts), self.sum, self.count
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, c in zip(self.bounds, counts):
            running += c
            out.append(f'{name}_bucket{{{GAUGE_LABELS},le="{bound}"}} {float(running)}')
        out.append(f'{name}_bucket{{{GAUGE_LABELS},le="+Inf"}} {float(count)}')
        out.append(f"{name}_sum{{{GAUGE_LABELS}}} {total}")
        out.append(f"{name}_count{{{GAUGE_LABELS}}} {float(count)}")
        return out


class ServerState:
    """Everything the handlers share: identity, timing, health, gauges."""

    def __init__(self, args):
        self.id = args.id
        self.default_tokens = args.tokens
        speed = args.speed if args.speed > 0 else 1.0
        self.token_interval = 1.0 / (args.token_rate * speed)
        self.prefill = args.prefill_ms / 1000.0 / speed
        self.admission = Admission(args.max_concurrency, args.max_queue)
        self.lock = threading.Lock()
        self.health_status = 200
        self.overrides = {}
        self.served = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)

    def gauges(self):
        """Current (running, waiting, kv) with admin overrides applied."""
        running, waiting = self.admission.snapshot()
        kv = min(1.0, running / self.admission.limit)
        with self.lock:
            o = dict(self.overrides)
        return (o.get("running", running), o.get("waiting", waiting),
                o.get("kv", kv))

    def set_overrides(self, patch):
        """Merge an /admin/load body; null values drop an override."""
        with self.lock:
            if not patch:
                self.overrides.clear()
            for key, value in patch.items():
                if key not in ("running", "waiting", "kv"):
                    raise ValueError(f"unknown gauge {key!r}")
                if value is None:
                    self.overrides.pop(key, None)
                else:
                    self.overrides[key] = float(value) if key == "kv" else int(value)

    def count_served(self):
        with self.lock:
            self.served += 1


def metrics_text(state):
    """Prometheus exposition text in the shape vLLM uses."""
    running, waiting, kv = state.gauges()
    rows = [
        ("vllm:num_requests_running", "Number of requests in model execution batches.", running),
        ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting),
        ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv),
    ]
    out = []
    for name, help_text, value in rows:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.append(f"{name}{{{GAUGE_LABELS}}} {float(value)}")
    out += state.ttft.lines("vllm:time_to_first_token_seconds",
                            "Histogram of time to first token in seconds.")
    out += state.tpot.lines("vllm:time_per_output_token_seconds",
                            "Histogram of time per output token in seconds.")
    out.append("# HELP mock:requests_served_total Chat completions finished.")
    out.append("# TYPE mock:requests_served_total counter")
    out.append(f"mock:requests_served_total{{{GAUGE_LABELS}}} {float(state.served)}")
    return "\n".join(out) + "\n"


class TokenClock:
    """Observes one answer's latencies as vLLM does: the time from arrival
    (queueing included) to the first token, then each gap between tokens."""

    def __init__(self, state, arrived):
        self.state = state
        self.last = arrived
        self.first = True

    def token(self):
        now = time.monotonic()
        (self.state.ttft if self.first else self.state.tpot).observe(now - self.last)
        self.first = False
        self.last = now


def token_text(state, i):
    """Token i of an answer; every token names the server, so any chunk of a
    stream is enough to know who is answering."""
    return f"{state.id}:{i} " if i else f"Hello from {state.id}. "


class Handler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; keep-alive works because every answer has a
    Content-Length or is chunked."""

    protocol_version = "HTTP/1.1"
    server_version = "MockAI/1.0"

    @property
    def state(self):
        return self.server.state

    def setup(self):
        """TCP_NODELAY, as real servers set it: headers and body (or tokens)
        go out in separate writes, and Nagle plus the client's delayed ACK
        would hold each second write back by ~40 ms."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        if self.server.verbose:
            super().log_message(fmt, *args)

    # ---- plumbing -------------------------------------------------------

    def send_body(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Backend-Id", self.state.id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status, obj):
        self.send_body(status, json.dumps(obj) + "\n", "application/json")

    def send_error_json(self, status, message):
        self.send_json(status, {"error": {"message": message, "code": status,
                                          "server": self.state.id}})

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def write_chunk(self, data):
        """One HTTP/1.1 chunk; an empty `data` ends the body."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # ---- routes ---------------------------------------------------------

    def do_GET(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.send_body(200, f"{self.state.id}\n")
        elif path == "/health":
            status = self.state.health_status
            self.send_body(status, "ok\n" if status == 200 else "unhealthy\n")
        elif path == "/metrics":
            self.send_body(200, metrics_text(self.state),
                           "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "owned_by": self.state.id}]})
        else:
            self.send_error_json(404, f"no route {path}")

    do_HEAD = do_GET  # noqa: N815

    def do_POST(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        body = self.read_body()
        if path == "/v1/chat/completions":
            self.chat(body)
        elif path == "/admin/health":
            self.admin_health(body)
        elif path == "/admin/load":
            self.admin_load(body)
        else:
            self.send_error_json(404, f"no route {path}")

    def admin_health(self, body):
        text = body.decode(errors="replace").strip()
        if text not in ("200", "503"):
            self.send_error_json(400, 'body must be "200" or "503"')
            return
        self.state.health_status = int(text)
        self.send_body(200, f"health {text}\n")

    def admin_load(self, body):
        try:
            patch = json.loads(body or b"{}")
            if not isinstance(patch, dict):
                raise ValueError("expected a JSON object")
            self.state.set_overrides(patch)
        except (ValueError, TypeError) as exc:
            self.send_error_json(400, str(exc))
            return
        self.send_body(200, metrics_text(self.state))

    # ---- chat -----------------------------------------------------------

    def chat(self, body):
        arrived = time.monotonic()
        try:
            req = json.loads(body or b"{}")
            if not isinstance(req, dict):
                raise ValueError("expected a JSON object")
            tokens = int(req.get("max_tokens") or self.state.default_tokens)
            if tokens < 1:
                raise ValueError("max_tokens must be >= 1")
        except (ValueError, TypeError) as exc:
            self.send_error_json(400, f"bad request: {exc}")
            return
        try:
            self.state.admission.acquire()
        except Overloaded:
            self.send_error_json(429, "server overloaded, queue full")
            return
        try:
            meta = {
                "id": "chatcmpl-" + uuid.uuid4().hex[:24],
                "created": int(time.time()),
                "model": req.get("model") or MODEL,
                "system_fingerprint": self.state.id,
            }
            time.sleep(self.state.prefill)
            clock = TokenClock(self.state, arrived)
            if req.get("stream"):
                self.chat_stream(meta, tokens, clock)
            else:
                self.chat_plain(meta, tokens, clock)
            self.state.count_served()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # client went away mid-answer
        finally:
            self.state.admission.release()

    def chat_plain(self, meta, tokens, clock):
        """Generate all tokens (taking the same time a stream would), then
        answer with one JSON completion."""
        parts = []
        for i in range(tokens):
            if i:
                time.sleep(self.state.token_interval)
            parts.append(token_text(self.state, i))
            clock.token()
        self.send_json(200, dict(meta, object="chat.completion", choices=[{
            "index": 0,
            "message": {"role": "assistant", "content": "".join(parts)},
            "finish_reason": "length",
        }], usage={"prompt_tokens": 1, "completion_tokens": tokens,
                   "total_tokens": tokens + 1}))

    def chat_stream(self, meta, tokens, clock):
        """SSE over chunked encoding: one `data:` event per token, then
        `data: [DONE]`; chunked keeps the connection reusable."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Backend-Id", self.state.id)
        self.end_headers()
        for i in range(tokens):
            if i:
                time.sleep(self.state.token_interval)
            delta = {"content": token_text(self.state, i)}
            if i == 0:
                delta["role"] = "assistant"
            finish = "length" if i == tokens - 1 else None
            event = dict(meta, object="chat.completion.chunk", choices=[
                {"index": 0, "delta": delta, "finish_reason": finish}])
            self.write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            clock.token()
        self.write_chunk(b"data: [DONE]\n\n")
        self.write_chunk(b"")


class Server(ThreadingHTTPServer):
    daemon_threads = True       # streams must not delay shutdown
    allow_reuse_address = True  # restart on the same port right away
    request_queue_size = 128    # bursts of new connections from load tests


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--id", default="mock", help="identity returned in answers")
    p.add_argument("--token-rate", type=float, default=50.0, help="tokens/s")
    p.add_argument("--tokens", type=int, default=16, help="tokens per answer")
    p.add_argument("--max-concurrency", type=int, default=64,
                   help="chat requests generating at once; more wait in a queue")
    p.add_argument("--max-queue", type=int, default=1024,
                   help="waiting requests beyond which the answer is 429")
    p.add_argument("--speed", type=float, default=1.0,
                   help="speed multiplier, e.g. 0.5 for a slow server")
    p.add_argument("--prefill-ms", type=float, default=20.0,
                   help="time to first token at speed 1")
    p.add_argument("--verbose", action="store_true", help="log every request")
    return p.parse_args(argv)


def install_signal_handlers(server):
    """Stop serve_forever from another thread: calling shutdown() from the
    handler itself (which runs on the serving thread) would deadlock."""
    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv=None):
    args = parse_args(argv)
    server = Server((args.host, args.port), Handler)
    server.state = ServerState(args)
    server.verbose = args.verbose
    install_signal_handlers(server)
    print(f"mock_ai_server ready id={args.id} listen={args.host}:{args.port}",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print(f"mock_ai_server {args.id} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
