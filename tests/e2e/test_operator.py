#!/usr/bin/python3
"""End-to-end tests of Ferry's operator interface (issue: operator interface).

Every ferryctl command against a running ferryd in the namespace topology,
in both output formats (aligned tables and --json), its exit codes (1 error,
2 usage, 3 not running, 4 permission), DPDK telemetry, and the Prometheus
/metrics page, with counters checked against the traffic actually sent.
ferryctl runs on the host: the control socket is a Unix socket in the
topology's temp dir, not in a network namespace.
"""
import json
import os
import random
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from topo import CLIENT_ADDR, PYTHON, VIP, Topology, close_class_topology, ferryctl_path, open_class_topology

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONF = REPO / "conf" / "ferry.conf"
E2E_WORKER_SETTINGS = {"idle_sleep_us": 50}
METRICS_URL = "http://127.0.0.1:9108/metrics"
# Label names Ferry's metrics may use.
FERRY_LABELS = {"vip", "backend", "worker", "reason", "kind", "port", "state", "stage"}


FERRYCTL = ferryctl_path()


def require_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (network namespaces, DPDK)")


def require_ferryctl():
    if not os.access(FERRYCTL, os.X_OK):
        raise unittest.SkipTest(f"ferryctl not built at {FERRYCTL} (set FERRYCTL)")


def run_ferryctl(socket_path, *args, as_nobody=False, timeout=30, wrap=()):
    argv = [*wrap, FERRYCTL, "--socket", str(socket_path), *map(str, args)]
    if as_nobody:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def broken_copy(text, good, bad):
    """`text` with the first `good` replaced by `bad`; (new text, line of it)."""
    assert good in text, good
    new = text.replace(good, bad, 1)
    line = next(i for i, l in enumerate(new.splitlines(), 1) if bad in l)
    return new, line


# --------------------------------------------------------------------------
# Prometheus text format 0.0.4: a strict parser (promtool is not installed)
# --------------------------------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf)|NaN")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ExpositionError(AssertionError):
    pass


def parse_labels(body, where):
    labels, pos = {}, 0
    while pos < len(body):
        m = LABEL_PAIR.match(body, pos)
        if not m:
            raise ExpositionError(f"{where}: bad label at {body[pos:]!r}")
        name, value = m.group(1), m.group(2)
        if name in labels:
            raise ExpositionError(f"{where}: label {name} given twice")
        if name.startswith("__"):
            raise ExpositionError(f"{where}: reserved label name {name}")
        labels[name] = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                raise ExpositionError(f"{where}: expected ',' between labels in {body!r}")
            pos += 1
    return labels


def parse_exposition(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}};
    raises ExpositionError naming the line for anything Prometheus would
    reject: bad names, labels, escapes or values, TYPE/HELP twice or after
    samples, a family's samples not together, a series given twice, no final
    newline."""
    if not text.endswith("\n"):
        raise ExpositionError("the page does not end with a newline")
    families, series, closed = {}, set(), set()
    current = None

    def family(name, where):
        nonlocal current
        if name != current:
            if name in closed:
                raise ExpositionError(f"{where}: samples of {name} are not together")
            if current is not None:
                closed.add(current)
            current = name
        return families.setdefault(name, {"type": None, "help": None, "samples": []})

    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.fullmatch(name):
                    raise ExpositionError(f"{where}: bad metric name {name!r}")
                fam = family(name, where)
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if fam["type"] is not None:
                        raise ExpositionError(f"{where}: second TYPE for {name}")
                    if fam["samples"]:
                        raise ExpositionError(f"{where}: TYPE of {name} after its samples")
                    if rest not in TYPES:
                        raise ExpositionError(f"{where}: unknown type {rest!r}")
                    fam["type"] = rest
                else:
                    if fam["help"] is not None:
                        raise ExpositionError(f"{where}: second HELP for {name}")
                    if "\\" in re.sub(r"\\[\\n]", "", rest):
                        raise ExpositionError(f"{where}: bad escape in HELP {rest!r}")
                    fam["help"] = rest
            continue
        m = SAMPLE.fullmatch(line)
        if not m:
            raise ExpositionError(f"{where}: not a sample line: {line!r}")
        name, body, value = m.group(1), m.group(2) or "", m.group(3)
        labels = parse_labels(body, where)
        if not NUMBER.fullmatch(value):
            raise ExpositionError(f"{where}: bad value {value!r}")
        fam_name = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and families.get(base, {}).get("type") in ("histogram", "summary"):
                fam_name = base
        fam = family(fam_name, where)
        key = (name, frozenset(labels.items()))
        if key in series:
            raise ExpositionError(f"{where}: series {name}{labels} given twice")
        series.add(key)
        fam["samples"].append((name, labels, float(value.replace("Inf", "inf"))))
    return families


def metric_sum(families, name, **match):
    fam = families.get(name)
    if fam is None:
        raise AssertionError(f"no metric {name}; families: {sorted(families)}")
    return sum(v for _, labels, v in fam["samples"] if all(labels.get(k) == w for k, w in match.items()))


# Fetches a URL from inside a namespace: status, Content-Type and body.
FETCH = r"""
import http.client, json, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
try:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.request("GET", u.path)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "type": r.getheader("Content-Type"), "body": r.read().decode()}))
except Exception as e:
    print(json.dumps({"status": None, "type": None, "body": f"{type(e).__name__}: {e}"}))
"""

# Requests from chosen source ports: {port: server id or "error ..."}.
BOUND_REQUESTS = r"""
import http.client, json, sys
out = {}
body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "trace"}]}).encode()
for port in map(int, sys.argv[3:]):
    c = http.client.HTTPConnection(sys.argv[1], 80, timeout=10, source_address=(sys.argv[2], port))
    try:
        c.request("POST", "/v1/chat/completions", body=body,
                  headers={"Content-Type": "application/json", "Connection": "close"})
        r = c.getresponse()
        out[port] = json.loads(r.read()).get("system_fingerprint")
    except Exception as e:
        out[port] = f"error {type(e).__name__}: {e}"
    finally:
        c.close()
print(json.dumps(out))
"""


class WithoutFerryd(unittest.TestCase):
    """Exit codes and check-config when no ferryd runs (no topology)."""

    @classmethod
    def setUpClass(cls):
        require_ferryctl()
        cls.tmp = Path(tempfile.mkdtemp(prefix="ferry-operator-"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_not_running_exits_3(self):
        missing = self.tmp / "nobody-home.sock"
        for fmt in ((), ("--json",)):
            cp = run_ferryctl(missing, *fmt, "status")
            self.assertEqual(cp.returncode, 3, cp.stderr)
            self.assertIn(f"ferryd is not running (no socket at {missing}", cp.stderr)
        # A socket file nobody listens on (a ferryd that died): also 3.
        stale = self.tmp / "stale.sock"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(stale))
        s.close()
        cp = run_ferryctl(stale, "vips")
        self.assertEqual(cp.returncode, 3, cp.stderr)
        self.assertIn("nothing listens", cp.stderr)

    def test_usage_errors_exit_2(self):
        sock = self.tmp / "x.sock"
        for args in (("frobnicate",), ("trace", "10.0.0.1", "10.77.1.100:80", "tcp"),
                     ("trace", "10.0.0.1:5", "10.77.1.100:80", "icmp"), ("weight", "chat", "10.77.2.11:8000", "70000"),
                     ("drain", "chat", "not-an-endpoint"), ()):
            cp = run_ferryctl(sock, *args)
            self.assertEqual(cp.returncode, 2, f"ferryctl {args}: {cp.stderr}")

    def test_check_config_locally_when_ferryd_is_not_running(self):
        sock = self.tmp / "x.sock"
        cp = run_ferryctl(sock, "check-config", EXAMPLE_CONF)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("configuration is valid", cp.stdout)
        self.assertIn("checked locally", cp.stdout)
        cp = run_ferryctl(sock, "--json", "check-config", EXAMPLE_CONF)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(json.loads(cp.stdout)["ok"], True)
        # The example with a misspelt key added at its end (robust to edits of the example).
        text = EXAMPLE_CONF.read_text().rstrip("\n") + "\nwieght = 200;\n"
        line = len(text.splitlines())
        bad = self.tmp / "broken.conf"
        bad.write_text(text)
        for fmt in ((), ("--json",)):
            cp = run_ferryctl(sock, *fmt, "check-config", bad)
            self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
            self.assertIn(f"{bad}:{line}: unknown key 'wieght'", cp.stderr)
            if fmt:
                answer = json.loads(cp.stdout)
                self.assertFalse(answer["ok"])
                self.assertTrue(any(e.startswith(f"{bad}:{line}:") for e in answer["errors"]), answer)


class Operator(unittest.TestCase):
    """ferryctl, telemetry and metrics against one running ferryd: three
    backends (weights 100/200/300), a tcp VIP "chat" and a udp VIP "echo"."""

    @classmethod
    def setUpClass(cls):
        require_root()
        require_ferryctl()

        def setup(t):
            cls.cfg = t.write_config(workers=1, worker_settings=E2E_WORKER_SETTINGS)
            cls.cfg_text = cls.cfg.read_text()
            t.start_ferryd(cls.cfg)
            t.wait_backends_seen(timeout=30)

        cls.topo = Topology(3, weights=(100, 200, 300))
        open_class_topology(cls.topo, setup)

    @classmethod
    def tearDownClass(cls):
        close_class_topology(cls.topo)

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            self.topo.dump_logs(lines=60)
        return out

    # ---- helpers -----------------------------------------------------------

    def ctl(self, *args, rc=0, **kw):
        cp = run_ferryctl(self.topo.control_socket, *args, **kw)
        if rc is not None:
            self.assertEqual(cp.returncode, rc, f"ferryctl {' '.join(map(str, args))}:\n{cp.stdout}{cp.stderr}")
        return cp

    def json(self, *args):
        answer = json.loads(self.ctl("--json", *args).stdout)
        self.assertIs(answer["ok"], True, answer)
        return answer

    def addr(self, i, port=8000):
        return f"{self.topo.backends[i].address}:{port}"

    def ids_by_address(self):
        t = self.topo
        return {**{f"{b.address}:8000": b.id for b in t.backends}, **{f"{b.address}:5353": b.id for b in t.backends}}

    def table_rows(self, text):
        """Lines of an aligned table split on runs of 2+ spaces."""
        return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]

    # ---- exit code 4 ---------------------------------------------------------

    def test_permission_denied_for_non_root_exits_4(self):
        t = self.topo
        mode = stat.S_IMODE(os.stat(t.control_socket).st_mode)
        self.assertEqual(mode, 0o600, f"control socket mode {oct(mode)}")
        # Let `nobody` reach the socket file itself: its own mode must refuse.
        old = stat.S_IMODE(os.stat(t.tmpdir).st_mode)
        os.chmod(t.tmpdir, 0o711)
        try:
            for fmt in ((), ("--json",)):
                cp = self.ctl(*fmt, "status", rc=4, as_nobody=True)
                self.assertIn(f"permission denied on {t.control_socket}", cp.stderr)
        finally:
            os.chmod(t.tmpdir, old)

    # ---- read-only commands --------------------------------------------------

    def test_status(self):
        s = self.json("status")
        self.assertTrue(s["version"])
        self.assertGreaterEqual(s["uptime_s"], 0)
        self.assertEqual(s["workers"], 1)
        self.assertEqual(s["config_file"], str(self.cfg))
        self.assertEqual([p["name"] for p in s["ports"]], ["client", "backend"])
        self.assertEqual([p["device"] for p in s["ports"]], ["net_af_packet0", "net_af_packet1"])
        self.assertTrue(all(re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", p["mac"]) for p in s["ports"]), s)
        out = self.ctl("status").stdout
        self.assertRegex(out, rf"(?m)^Version:\s+{re.escape(s['version'])}$")
        self.assertRegex(out, rf"(?m)^Config file:\s+{re.escape(str(self.cfg))}$")
        self.assertRegex(out, r"(?m)^Workers:\s+1$")
        self.assertRegex(out, r"(?m)^PORTS$")
        self.assertRegex(out, r"(?m)^client\s+net_af_packet0\s+10\.77\.1\.1/24\s")
        self.assertRegex(out, r"(?m)^backend\s+net_af_packet1\s+10\.77\.2\.1/24\s")
        self.assertIn("fe-host-cl", out)  # the port's kernel (exception) interface

    def test_vips(self):
        v = {x["name"]: x for x in self.json("vips")["vips"]}
        self.assertEqual(set(v), {"chat", "echo"})
        self.assertEqual({k: v["chat"][k] for k in ("address", "port", "proto", "mode", "scheduler", "backends")},
                         {"address": VIP, "port": 80, "proto": "tcp", "mode": "nat", "scheduler": "maglev",
                          "backends": 3})
        self.assertEqual((v["echo"]["port"], v["echo"]["proto"]), (5353, "udp"))
        self.assertGreater(v["chat"]["new_flows"], 0)
        rows = self.table_rows(self.ctl("vips").stdout)
        self.assertEqual(rows[0][:6], ["NAME", "ADDRESS", "PORT", "PROTO", "MODE", "SCHEDULER"])
        self.assertIn(["chat", VIP, "80", "tcp", "nat", "maglev", "3"], [r[:7] for r in rows])
        self.assertIn(["echo", VIP, "5353", "udp", "nat", "maglev", "3"], [r[:7] for r in rows])

    def test_backends_all_and_per_vip(self):
        everything = self.json("backends")["backends"]
        self.assertEqual(len(everything), 6, everything)
        chat = self.json("backends", "chat")["backends"]
        self.assertEqual([b["address"] for b in chat], [self.addr(i) for i in range(3)])
        self.assertEqual([b["weight"] for b in chat], [100, 200, 300])
        for b in chat:
            self.assertEqual((b["vip"], b["state"]), ("chat", "up"), b)
            self.assertEqual(b["effective_weight"], b["weight"], b)
            self.assertIsNotNone(b["rtt_ms"], b)  # up by its probes: a round trip measured
            self.assertGreater(b["rtt_ms"], 0, b)
        rows = self.table_rows(self.ctl("backends", "chat").stdout)
        self.assertEqual(rows[0][:5], ["VIP", "ADDRESS", "STATE", "WEIGHT", "EFFECTIVE WEIGHT"])
        self.assertEqual([r[:5] for r in rows[1:]],
                         [["chat", self.addr(i), "up", str(w), str(w)] for i, w in enumerate((100, 200, 300))])
        cp = self.ctl("backends", "nonesuch", rc=1)
        self.assertIn("no VIP 'nonesuch'", cp.stderr)

    def test_stats_once_and_watch(self):
        s = self.json("stats")
        for key in ("rx_packets", "tx_packets", "forwarded", "flows_created", "flow_entries"):
            self.assertIn(key, s["counters"])
        self.assertIn("tcp_no_flow", s["drops"])
        self.assertEqual(len(s["workers"]), 1)
        out = self.ctl("stats").stdout
        for title in ("COUNTERS", "DROPS", "CYCLES PER PACKET", "WORKERS"):
            self.assertRegex(out, rf"(?m)^{title}$")
        self.assertRegex(out, r"(?m)^flows_created\s+\d+$")
        self.assertRegex(out, r"(?m)^tcp_no_flow\s+\d+$")
        # --watch for ~2.5 s with traffic flowing: samples every second with rates.
        t = self.topo
        load = t.load_async(n=0, concurrency=4, new_conn=True, duration=6, timeout=10)
        try:
            time.sleep(0.5)
            wrap = ("timeout", "--preserve-status", "-s", "INT", "2.5")
            cp = self.ctl("stats", "--watch", "--interval", "1", wrap=wrap)
            samples = cp.stdout.count("ferryd stats every 1s")
            self.assertGreaterEqual(samples, 2, cp.stdout)
            self.assertIn("RATE/S", cp.stdout)
            rates = re.findall(r"(?m)^rx_packets\s+\d+\s+(\S+)$", cp.stdout)
            self.assertTrue(rates and float(rates[-1]) > 0, f"no rx_packets rate: {cp.stdout[-1500:]}")
            cp = self.ctl("--json", "stats", "--watch", "--interval", "1", wrap=wrap)
            lines = [json.loads(line) for line in cp.stdout.splitlines() if line.strip()]
            self.assertGreaterEqual(len(lines), 2, cp.stdout)
            self.assertNotIn("rates", lines[0])
            self.assertGreater(lines[-1]["rates"]["counters"]["rx_packets"], 0, lines[-1].get("rates"))
            self.assertAlmostEqual(lines[-1]["interval_s"], 1.0, delta=0.5)
        finally:
            r = t.collect(load, timeout=60)
        self.assertEqual(r["failed"], 0, r.get("errors"))

    def test_flows_listing_and_limit(self):
        t = self.topo
        stream = t.load_async(n=1, concurrency=1, stream=True, max_tokens=200, timeout=30)
        try:
            time.sleep(1.5)
            flows = self.json("flows", "--limit", "10000")["flows"]
            mine = [f for f in flows if f["client"].startswith(CLIENT_ADDR + ":") and f["vip"] == f"{VIP}:80"
                    and f["state"] == "established"]
            self.assertEqual(len(mine), 1, flows)
            f = mine[0]
            self.assertIn(f["backend"], [self.addr(i) for i in range(3)])
            self.assertEqual((f["proto"], f["worker"]), ("tcp", 0))
            self.assertGreaterEqual(f["age_s"], 0)
            # Full NAT: the source the backend sees is one of Ferry's addresses, with its port.
            ours = {a.split("/")[0] for p in self.json("status")["ports"] for a in [p["address"], *p["nat_addresses"]]}
            self.assertRegex(f["local"] or "", r"^[0-9.]+:[0-9]+$", f)
            self.assertIn(f["local"].rsplit(":", 1)[0], ours, f)
            # Filters: by VIP, by backend (option and positional).
            def clients(*args):
                return {x["client"]: x["backend"] for x in self.json("flows", *args, "--limit", "10000")["flows"]}
            self.assertEqual(clients("--vip", "chat").get(f["client"]), f["backend"])
            self.assertEqual(clients(f["backend"]).get(f["client"]), f["backend"])
            self.assertEqual(clients("--backend", f["backend"]).get(f["client"]), f["backend"])
            self.assertNotIn(f["client"], clients("echo"))
            other = next(self.addr(i) for i in range(3) if self.addr(i) != f["backend"])
            self.assertNotIn(f["client"], clients(other))
            self.assertLessEqual(len(self.json("flows", "--limit", "1")["flows"]), 1)
            rows = self.table_rows(self.ctl("flows", "--limit", "10000").stdout)
            self.assertEqual(rows[0][:4], ["CLIENT", "VIP", "BACKEND", "STATE"])
            self.assertIn([f["client"], f["vip"], f["backend"], "established"], [r[:4] for r in rows])
            if len(flows) >= 2:
                out = self.ctl("flows", "--limit", "1").stdout
                self.assertIn("--limit N to see more", out)
        finally:
            s = t.collect(stream, timeout=60)
        self.assertEqual((s["ok"], s["failed"]), (1, 0), s)
        self.assertEqual(list(s["servers"]), [self.ids_by_address()[f["backend"]]],
                         "the stream was answered by another backend than its flow shows")

    # ---- trace agrees with where packets went --------------------------------

    def test_trace_existing_tcp_flow_matches_the_stream(self):
        t = self.topo
        stream = t.load_async(n=1, concurrency=1, stream=True, max_tokens=200, timeout=30)
        try:
            time.sleep(1.5)
            flows = [f for f in self.json("flows", "--vip", "chat", "--limit", "10000")["flows"]
                     if f["state"] == "established"]
            self.assertEqual(len(flows), 1, flows)
            f = flows[0]
            tr = self.json("trace", f["client"], f"{VIP}:80", "tcp")
            self.assertEqual((tr["vip"], tr["backend"]), ("chat", f["backend"]), tr)
            self.assertIn("existing flow", tr["reason"])
            out = self.ctl("trace", f["client"], f"{VIP}:80", "tcp").stdout
            self.assertRegex(out, rf"(?m)^Backend:\s+{re.escape(f['backend'])}$")
            self.assertRegex(out, r"(?m)^Reason:\s+existing flow")
        finally:
            s = t.collect(stream, timeout=60)
        self.assertEqual((s["ok"], s["failed"]), (1, 0), s)
        self.assertEqual(list(s["servers"]), [self.ids_by_address()[f["backend"]]], (s, tr))

    def test_trace_new_flow_predicts_the_backend_that_answers(self):
        t = self.topo
        predicted = {}
        for port in random.sample(range(20000, 60000), 40):
            tr = self.json("trace", f"{CLIENT_ADDR}:{port}", f"{VIP}:80", "tcp")
            if tr["reason"].startswith("new flow"):
                self.assertIn("maglev table slot", tr["reason"])
                self.assertIsInstance(tr["slot"], int)
                predicted[port] = self.ids_by_address()[tr["backend"]]
            if len(predicted) == 8:
                break
        cp = t.run_in(t.ns_client, [PYTHON, "-c", BOUND_REQUESTS, VIP, CLIENT_ADDR, *predicted], timeout=120)
        answered = {int(k): v for k, v in json.loads(cp.stdout.strip().splitlines()[-1]).items()}
        usable = {p: v for p, v in answered.items() if not v.startswith("error OSError: [Errno 98]")}
        self.assertGreaterEqual(len(usable), 5, answered)
        self.assertEqual(usable, {p: predicted[p] for p in usable}, "trace predicted other backends")
        self.assertGreaterEqual(len(set(usable.values())), 2, "all predictions on one backend: a weak check")
        # Now they are flows: trace says so, with the same backend.
        port = next(iter(usable))
        tr = self.json("trace", f"{CLIENT_ADDR}:{port}", f"{VIP}:80", "tcp")
        self.assertIn("existing flow", tr["reason"])
        self.assertEqual(self.ids_by_address()[tr["backend"]], usable[port])

    def test_trace_udp_flows_and_non_vip(self):
        t = self.topo
        r = t.udp_load(flows=6, count=3)
        self.assertEqual(r["lost"], 0, r)
        for sport, ids in r["per_flow"].items():
            tr = self.json("trace", f"{CLIENT_ADDR}:{sport}", f"{VIP}:5353", "udp")
            self.assertEqual(tr["vip"], "echo")
            self.assertIn("existing flow", tr["reason"])
            self.assertEqual([self.ids_by_address()[tr["backend"]]], ids, (sport, tr))
        tr = self.json("trace", f"{CLIENT_ADDR}:1234", f"{VIP}:81", "tcp")
        self.assertIsNone(tr["backend"])
        self.assertIn("no VIP", tr["reason"])
        out = self.ctl("trace", f"{CLIENT_ADDR}:1234", f"{VIP}:81", "tcp").stdout
        self.assertRegex(out, r"(?m)^Backend:\s+-$")

    # ---- commands that change state -------------------------------------------

    def test_weight(self):
        t = self.topo
        b0 = t.backends[0]
        try:
            out = self.ctl("weight", "chat", self.addr(0), "0").stdout
            self.assertIn(f"{self.addr(0)} in chat: weight 0", out)
            self.assertRegex(out, r"(?m)^effective_weight\s+0$")
            row = {b["address"]: b for b in self.json("backends", "chat")["backends"]}[self.addr(0)]
            self.assertEqual((row["weight"], row["effective_weight"]), (0, 0), row)
            self.assertEqual(row["reason"], "weight set by operator")
            r = t.load(n=100, concurrency=10, new_conn=True, timeout=10)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            self.assertNotIn(b0.id, r["servers"], r)
            cp = self.ctl("weight", "chat", "10.77.2.99:8000", "5", rc=1)
            self.assertIn("has no backend 10.77.2.99:8000", cp.stderr)
        finally:
            answer = self.json("weight", "chat", self.addr(0), "100")
        self.assertEqual((answer["backend"]["weight"], answer["backend"]["effective_weight"]), (100, 100), answer)
        t.wait_backends_seen(ids=[b0.id], timeout=15)

    def test_drain_and_undrain(self):
        t = self.topo
        b1 = t.backends[1]
        try:
            out = self.ctl("drain", "chat", self.addr(1)).stdout
            self.assertIn(f"{self.addr(1)} in chat: draining", out)
            self.assertRegex(out, r"(?m)^state\s+drained$")
            self.assertRegex(out, r"(?m)^effective_weight\s+0$")
            r = t.load(n=100, concurrency=10, new_conn=True, timeout=10)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            self.assertNotIn(b1.id, r["servers"], r)
            row = {b["address"]: b for b in self.json("backends", "chat")["backends"]}[self.addr(1)]
            self.assertEqual((row["state"], row["reason"]), ("drained", "drained by operator"), row)
        finally:
            answer = self.json("undrain", "chat", self.addr(1))
        self.assertEqual((answer["backend"]["state"], answer["backend"]["effective_weight"]), ("up", 200), answer)
        out = self.ctl("--json", "drain", "chat", self.addr(1)).stdout
        self.assertEqual(json.loads(out)["backend"]["state"], "drained")
        out = self.ctl("undrain", "chat", self.addr(1)).stdout
        self.assertIn("taking new flows", out)
        t.wait_backends_seen(ids=[b1.id], timeout=15)

    def test_reload(self):
        try:
            out = self.ctl("reload").stdout
            self.assertIn("configuration reloaded", out)
            self.assertIn("(no changes)", out)
            self.cfg.write_text(self.cfg_text.replace("weight = 300;", "weight = 150;"))
            answer = self.json("reload")
            self.assertTrue(answer["changes"], answer)
            self.assertTrue(any("10.77.2.13" in str(c) for c in answer["changes"]), answer)
            self.assertGreaterEqual(answer["apply_ms"], 0)
            print(f"# ferryctl reload apply_ms={answer['apply_ms']}", flush=True)
            row = {b["address"]: b for b in self.json("backends", "chat")["backends"]}[self.addr(2)]
            self.assertEqual(row["weight"], 150, row)
            text, line = broken_copy(self.cfg_text, 'scheduler = "maglev";', 'scheduler = "maglve";')
            self.cfg.write_text(text)
            for fmt in ((), ("--json",)):
                cp = self.ctl(*fmt, "reload", rc=1)
                self.assertIn(f"{self.cfg}:{line}:", cp.stderr)
                self.assertIn("maglve", cp.stderr)
            row = {b["address"]: b for b in self.json("backends", "chat")["backends"]}[self.addr(2)]
            self.assertEqual(row["weight"], 150, "a refused reload changed the running config")
        finally:
            self.cfg.write_text(self.cfg_text)
            self.ctl("reload", rc=None)
        row = {b["address"]: b for b in self.json("backends", "chat")["backends"]}[self.addr(2)]
        self.assertEqual(row["weight"], 300, row)

    def test_check_config_through_ferryd(self):
        out = self.ctl("check-config", self.cfg).stdout
        self.assertIn(f"{self.cfg}: configuration is valid", out)
        self.assertNotIn("checked locally", out)
        answer = self.json("check-config", self.cfg)
        self.assertEqual(answer["vips"], 2)
        text, line = broken_copy(self.cfg_text, "interval_ms = 1000;", "interval_ms = 1000; intervall = 5;")
        bad = self.topo.tmpdir / "broken.conf"
        bad.write_text(text)
        for fmt in ((), ("--json",)):
            cp = self.ctl(*fmt, "check-config", bad, rc=1)
            self.assertIn(f"{bad}:{line}: unknown key 'intervall'", cp.stderr)
            if fmt:
                answer = json.loads(cp.stdout)
                self.assertTrue(any(e.startswith(f"{bad}:{line}:") for e in answer["errors"]), answer)
        # Checking a file never touches the running config.
        self.assertEqual(len(self.json("backends", "chat")["backends"]), 3)
        # The control thread reads the file: one that is not a regular file (a FIFO would block it
        # until a writer came) is refused at once, and the thread goes on answering.
        fifo = self.topo.tmpdir / "ferry.fifo"
        os.mkfifo(fifo)
        cp = self.ctl("check-config", fifo, rc=1, timeout=10)
        self.assertIn(f"{fifo}: not a regular file", cp.stderr)
        self.assertEqual(len(self.json("backends", "chat")["backends"]), 3)

    # ---- counters against traffic: ferryctl, telemetry, metrics ----------------

    def test_counters_match_traffic_sent(self):
        t = self.topo
        n = 120
        ctl0, tel0 = self.json("stats")["counters"], t.telemetry("/ferry/stats")["/ferry/stats"]
        be0 = {b["address"]: b["new_flows"] for b in self.json("backends", "chat")["backends"]}
        vip0 = {v["name"]: v["new_flows"] for v in self.json("vips")["vips"]}
        r = t.load(n=n, concurrency=10, new_conn=True, timeout=10)
        self.assertEqual((r["ok"], r["failed"]), (n, 0), r.get("errors"))
        time.sleep(0.3)
        ctl1, tel1 = self.json("stats")["counters"], t.telemetry("/ferry/stats")["/ferry/stats"]
        be1 = {b["address"]: b["new_flows"] for b in self.json("backends", "chat")["backends"]}
        vip1 = {v["name"]: v["new_flows"] for v in self.json("vips")["vips"]}
        grown = {
            "ferryctl flows_created": ctl1["flows_created"] - ctl0["flows_created"],
            "telemetry flows_created": tel1["flows_created"] - tel0["flows_created"],
            "backends new_flows": sum(be1.values()) - sum(be0.values()),
            "vips chat new_flows": vip1["chat"] - vip0["chat"],
        }
        print(f"# {n} new connections: {grown}", flush=True)
        for what, d in grown.items():
            self.assertGreaterEqual(d, n, what)
        ids = self.ids_by_address()
        for addr, after in be1.items():
            self.assertGreaterEqual(after - be0[addr], r["servers"].get(ids[addr], 0), f"new_flows of {addr}")
        self.assertGreaterEqual(ctl1["rx_packets"] - ctl0["rx_packets"], n * 5)
        # The worker timed the polls that moved this traffic, stage by stage.
        for key in ("busy_polls", "cycles_rx", "cycles_process", "cycles_tx", "cycles_other"):
            self.assertGreater(ctl1[key] - ctl0[key], 0, key)
            self.assertGreater(tel1[key] - tel0[key], 0, key)
        s = self.json("stats")
        cpp = s["cycles_per_packet"]
        print(f"# busy cycles per packet: {cpp}", flush=True)
        self.assertGreater(cpp["tsc_hz"], 0)
        self.assertGreater(cpp["process"], 0, cpp)
        self.assertAlmostEqual(cpp["total"], cpp["rx"] + cpp["process"] + cpp["tx"] + cpp["other"], delta=0.05)
        self.assertGreater(s["workers"][0]["cycles_per_packet"], 0, s["workers"])

    def test_telemetry_socket(self):
        t = self.topo
        before = self.json("stats")["counters"]
        tel = t.telemetry("/ferry/stats")["/ferry/stats"]
        after = self.json("stats")["counters"]
        for key in ("rx_packets", "flows_created", "drop_tcp_no_flow", "workers"):
            self.assertIn(key, tel)
        self.assertEqual(tel["workers"], 1)
        for key in ("rx_packets", "flows_created"):
            self.assertLessEqual(before[key], tel[key])
            self.assertLessEqual(tel[key], after[key])
        commands = t.telemetry("/")["/"]
        self.assertIn("/ferry/stats", commands)

    def test_dpdk_telemetry_script(self):
        script = shutil.which("dpdk-telemetry.py") or next(
            (p for p in ("/usr/share/dpdk/usertools/dpdk-telemetry.py", "/usr/bin/dpdk-telemetry.py")
             if os.path.exists(p)), None)
        if not script:
            self.skipTest("dpdk-telemetry.py not installed (Debian package dpdk-dev)")
        cp = subprocess.run([script, "-f", self.topo.prefix], input="/ferry/stats\n", capture_output=True,
                            text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        decoder, found, pos = json.JSONDecoder(), None, 0
        while (pos := cp.stdout.find("{", pos)) >= 0:
            try:
                obj, end = decoder.raw_decode(cp.stdout, pos)
            except ValueError:
                pos += 1
                continue
            if isinstance(obj, dict) and "/ferry/stats" in obj:
                found = obj["/ferry/stats"]
            pos = end
        self.assertIsNotNone(found, cp.stdout[-2000:])
        self.assertIn("flows_created", found)

    def fetch_metrics(self):
        t = self.topo
        cp = t.run_in(t.ns_lb, [PYTHON, "-c", FETCH, METRICS_URL], timeout=20)
        res = json.loads(cp.stdout)
        if res["status"] is None and "Connection refused" in res["body"]:
            self.skipTest(f"no Prometheus endpoint on {METRICS_URL} yet ({res['body']})")
        self.assertEqual(res["status"], 200, res["body"][:500])
        return res

    def test_metrics(self):
        t = self.topo
        res = self.fetch_metrics()
        self.assertTrue(res["type"] and res["type"].startswith("text/plain"), res["type"])
        self.assertIn("version=0.0.4", res["type"])
        promtool = shutil.which("promtool")
        if promtool:
            cp = subprocess.run([promtool, "check", "metrics"], input=res["body"], capture_output=True,
                                text=True, timeout=30)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        fams = parse_exposition(res["body"])
        label_names = set()
        for name, fam in fams.items():
            self.assertTrue(name.startswith("ferry_"), name)
            self.assertIsNotNone(fam["type"], f"{name} has no TYPE")
            self.assertTrue(fam["help"], f"{name} has no HELP")
            self.assertEqual(fam["type"] == "counter", name.endswith("_total"),
                             f"{name}: counters, and only counters, end in _total")
            for sample, labels, value in fam["samples"]:
                label_names |= set(labels)
                if fam["type"] == "counter":
                    self.assertGreaterEqual(value, 0, f"{sample}{labels}")
                if "backend" in labels:
                    self.assertRegex(labels["backend"], r"^\d+\.\d+\.\d+\.\d+:\d+$")
                if "vip" in labels:
                    self.assertIn(labels["vip"], ("chat", "echo"))
                if "worker" in labels:
                    self.assertEqual(labels["worker"], "0")
        self.assertTrue({"vip", "backend", "worker", "reason"} <= label_names, label_names)
        self.assertTrue(label_names <= FERRY_LABELS, f"unexpected labels {label_names - FERRY_LABELS}")
        reasons = {l["reason"] for _, l, _ in fams["ferry_drops_total"]["samples"]}
        stages = {l["stage"] for _, l, _ in fams["ferry_worker_busy_seconds_total"]["samples"]}
        self.assertEqual(stages, {"rx", "process", "tx", "other"})
        self.assertTrue({"tcp_no_flow", "no_backend", "no_neighbour"} <= reasons, reasons)
        backends = {l.get("backend") for _, l, _ in fams["ferry_backend_new_flows_total"]["samples"]}
        self.assertTrue({self.addr(i) for i in range(3)} <= backends, backends)
        # Counters follow the traffic sent, and agree with ferryctl's.
        n = 100
        m0 = fams
        r = t.load(n=n, concurrency=10, new_conn=True, timeout=10)
        self.assertEqual((r["ok"], r["failed"]), (n, 0), r.get("errors"))
        time.sleep(0.3)
        c1 = self.json("stats")["counters"]
        m1 = parse_exposition(self.fetch_metrics()["body"])
        c2 = self.json("stats")["counters"]
        grown = {name: metric_sum(m1, name) - metric_sum(m0, name)
                 for name in ("ferry_flows_created_total", "ferry_backend_new_flows_total",
                              "ferry_backend_syns_total", "ferry_backend_synacks_total")}
        grown["ferry_vip_new_flows_total{vip=chat}"] = (metric_sum(m1, "ferry_vip_new_flows_total", vip="chat")
                                                       - metric_sum(m0, "ferry_vip_new_flows_total", vip="chat"))
        print(f"# metrics after {n} new connections: {grown}", flush=True)
        for name, d in grown.items():
            self.assertGreaterEqual(d, n, name)
        ids = self.ids_by_address()
        for i in range(3):
            got = (metric_sum(m1, "ferry_backend_new_flows_total", backend=self.addr(i))
                   - metric_sum(m0, "ferry_backend_new_flows_total", backend=self.addr(i)))
            self.assertGreaterEqual(got, r["servers"].get(ids[self.addr(i)], 0), self.addr(i))
        created = metric_sum(m1, "ferry_flows_created_total")
        self.assertTrue(c1["flows_created"] <= created <= c2["flows_created"], (c1, created, c2))
        up = {l["backend"]: v for _, l, v in m1["ferry_backend_up"]["samples"] if l.get("vip") == "chat"}
        self.assertEqual(up, {self.addr(i): 1 for i in range(3)})


if __name__ == "__main__":
    unittest.main()
