#!/usr/bin/python3
"""End-to-end tests of the balancing methods (issue: balancing methods for AI
servers): round-robin and least-connections spread, load-aware weights,
response times (connect latency, latency-aware weights) and slow start, with
real mock AI servers behind ferryd."""
import json
import signal
import time
import unittest

from test_control import ctl_json
from test_dataplane import E2E_WORKER_SETTINGS, require_root, stats
from topo import PYTHON, Topology

WEIGHTS = (100, 200, 300)
SPREAD_TOLERANCE = 0.05  # the figure: within 5% of the weight shares


def weight_shares(topo):
    total = sum(b.weight for b in topo.backends)
    return {b.id: b.weight / total for b in topo.backends}


def got_shares(servers, topo):
    total = max(1, sum(servers.values()))
    return {b.id: servers.get(b.id, 0) / total for b in topo.backends}


class Schedulers(unittest.TestCase):
    def start(self, t, scheduler, **vip_extra):
        vip = dict(t.default_vips(udp=False, scheduler=scheduler)[0], **vip_extra)
        cfg = t.write_config(workers=1, vips=[vip], worker_settings=E2E_WORKER_SETTINGS)
        t.start_ferryd(cfg)
        t.wait_backends_seen(timeout=30)
        return cfg, vip

    def test_round_robin_spreads_new_connections_by_weight(self):
        require_root()
        with Topology(3, weights=WEIGHTS) as t:
            self.start(t, "round_robin")
            r = t.load(n=300, concurrency=10, new_conn=True)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            got, want = got_shares(r["servers"], t), weight_shares(t)
            print("# round_robin shares " + ", ".join(f"{k} {got[k]:.3f}/{want[k]:.3f}" for k in sorted(want)))
            for k in want:
                self.assertAlmostEqual(got[k], want[k], delta=SPREAD_TOLERANCE, msg=str(got))

    def test_least_conn_spreads_concurrent_streams_by_weight(self):
        require_root()
        with Topology(3, weights=WEIGHTS) as t:
            self.start(t, "least_conn")
            time.sleep(1)  # let the warm-up flows close
            # 60 streams open at once: weighted least-connections places them
            # 10 / 20 / 30 whatever order they arrive in.
            r = t.load(n=60, concurrency=60, new_conn=True, stream=True, max_tokens=150, timeout=60)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            got, want = got_shares(r["servers"], t), weight_shares(t)
            print("# least_conn shares " + ", ".join(f"{k} {got[k]:.3f}/{want[k]:.3f}" for k in sorted(want)))
            for k in want:
                self.assertAlmostEqual(got[k], want[k], delta=SPREAD_TOLERANCE, msg=str(got))

    def test_two_choices_prefers_the_less_loaded(self):
        require_root()
        with Topology(3, weights=(100, 100, 100)) as t:
            self.start(t, "two_choices")
            r = t.load(n=60, concurrency=60, new_conn=True, stream=True, max_tokens=150, timeout=60)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            counts = sorted(r["servers"].get(b.id, 0) for b in t.backends)
            print(f"# two_choices concurrent streams per backend: {counts}")
            self.assertLessEqual(counts[-1] - counts[0], 12, r["servers"])  # random would often be far wider


class LoadAware(unittest.TestCase):
    def test_long_queue_gets_fewer_new_connections(self):
        require_root()
        with Topology(3, weights=(100, 100, 100)) as t:
            vip = dict(t.default_vips(udp=False)[0],
                       load_aware={"enabled": True, "format": "vllm", "interval_ms": 300, "timeout_ms": 200,
                                   "target_queue": 2.0, "smoothing": 1.0})
            t.start_ferryd(t.write_config(workers=1, vips=[vip], worker_settings=E2E_WORKER_SETTINGS))
            t.wait_backends_seen(timeout=30)
            busy = t.backends[0]
            t.backend_admin(0, "/admin/load", json.dumps({"waiting": 40}))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "load factor" not in t.ferryd_log():
                time.sleep(0.3)
            self.assertIn("load factor", t.ferryd_log())
            time.sleep(1.5)
            r = t.load(n=300, concurrency=10, new_conn=True)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            share = r["servers"].get(busy.id, 0) / r["ok"]
            print(f"# load-aware: backend with 40 waiting got {share:.3f} of new connections (fair 0.333)")
            self.assertLess(share, 0.15, r["servers"])
            # Queue gone: back to its share.
            t.backend_admin(0, "/admin/load", json.dumps({"waiting": 0}))
            time.sleep(3)
            r = t.load(n=300, concurrency=10, new_conn=True)
            share = r["servers"].get(busy.id, 0) / r["ok"]
            print(f"# load-aware: after the queue drained it got {share:.3f}")
            self.assertGreater(share, 0.2, r["servers"])


class ResponseTime(unittest.TestCase):
    def test_connect_latency_is_measured_per_backend(self):
        require_root()
        with Topology(3, weights=(100, 100, 100)) as t:
            vip = t.default_vips(udp=False)[0]
            t.start_ferryd(t.write_config(workers=1, vips=[vip], worker_settings=E2E_WORKER_SETTINGS))
            t.wait_backends_seen(timeout=30)
            r = t.load(n=90, concurrency=10, new_conn=True, max_tokens=1)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            deadline = time.monotonic() + 5  # the control thread folds the totals in every 500 ms
            while True:
                rows = ctl_json(t, "backends")["backends"]
                if all((b.get("connect_ms") or 0) > 0 for b in rows) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            print("# connect ms: " + ", ".join(f"{b['address']} {b['connect_ms']} ({b['connect_samples']} SYN-ACKs)"
                                               for b in rows))
            for b in rows:
                self.assertGreater(b["connect_samples"], 0, b)
                self.assertIsNotNone(b["connect_ms"], b)
                self.assertGreater(b["connect_ms"], 0, b)
                self.assertLess(b["connect_ms"], 1000, b)  # a veth handshake, not a second
                self.assertEqual(b["latency_factor"], 1.0, b)  # latency_aware is off
            page = metrics_text(t)
            self.assertIn("ferry_backend_connect_latency_seconds{", page)
            self.assertIn("ferry_backend_handshakes_total{", page)

    def test_slow_tokens_get_fewer_new_connections(self):
        require_root()
        # The third server generates tokens at a quarter of the speed: its TPOT is 4x the others'.
        with Topology(3, weights=(100, 100, 100), speeds=(1.0, 1.0, 0.25)) as t:
            vip = dict(t.default_vips(udp=False)[0],
                       load_aware={"enabled": False, "interval_ms": 300, "timeout_ms": 200},
                       latency_aware={"signal": "tpot", "smoothing": 1.0})
            t.start_ferryd(t.write_config(workers=1, vips=[vip], worker_settings=E2E_WORKER_SETTINGS))
            t.wait_backends_seen(timeout=30)
            slow = t.backends[2]
            # Streams give every server TPOT samples.
            r = t.load(n=30, concurrency=10, new_conn=True, stream=True, max_tokens=6)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "latency factor" not in t.ferryd_log():
                time.sleep(0.3)
            self.assertIn("latency factor", t.ferryd_log())
            time.sleep(1.0)
            rows = {b["address"]: b for b in ctl_json(t, "backends")["backends"]}
            me = rows[f"{slow.address}:8000"]
            print(f"# latency-aware tpot: slow backend tpot {me['tpot_ms']} ms, factor {me['latency_factor']:.2f}, "
                  f"reason: {me['reason']}")
            self.assertLess(me["latency_factor"], 0.5, me)
            self.assertIn("tpot", me["reason"])
            r = t.load(n=300, concurrency=10, new_conn=True, max_tokens=1)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            share = r["servers"].get(slow.id, 0) / r["ok"]
            print(f"# latency-aware tpot: the 4x slower backend got {share:.3f} of new connections (even 0.333)")
            self.assertLess(share, 0.2, r["servers"])


def metrics_text(t):
    """ferryd's Prometheus page, fetched inside its namespace (it listens on that loopback)."""
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    return t.run_in(t.ns_lb, [PYTHON, "-c", fetch, "http://127.0.0.1:9108/metrics"], timeout=20).stdout


class SlowStart(unittest.TestCase):
    def test_added_backend_ramps_and_reaches_full_share_only_at_the_end(self):
        require_root()
        ramp = 12
        with Topology(2, weights=(100, 100)) as t:
            all_backends = t.vip_backends()
            vip = dict(t.default_vips(udp=False)[0], slow_start=ramp, backends=all_backends[:1])
            cfg = t.write_config(workers=1, vips=[vip], worker_settings=E2E_WORKER_SETTINGS)
            t.start_ferryd(cfg)
            t.wait_backends_seen(ids=[t.backends[0].id], timeout=30)
            t.write_config(cfg, workers=1, vips=[dict(vip, backends=all_backends)],
                           worker_settings=E2E_WORKER_SETTINGS)
            t.signal_ferryd(signal.SIGHUP)
            added_at = time.monotonic()
            newcomer = t.backends[1].id
            early = t.load(n=100, concurrency=10, new_conn=True)
            early_at = time.monotonic() - added_at
            early_share = early["servers"].get(newcomer, 0) / max(1, early["ok"])
            time.sleep(max(0.0, ramp + 1.5 - (time.monotonic() - added_at)))
            late = t.load(n=300, concurrency=10, new_conn=True)
            late_share = late["servers"].get(newcomer, 0) / max(1, late["ok"])
            print(f"# slow start {ramp}s: share {early_share:.3f} in the first {early_at:.1f}s, "
                  f"{late_share:.3f} after the ramp (full 0.5)")
            self.assertEqual(early["failed"] + late["failed"], 0)
            # The ramp goes linearly from 10% to 100% of its weight: by early_at its
            # factor is at most f, so its share of new flows at most f / (1 + f).
            self.assertLess(early_at, ramp / 2, "the early load took too long to say anything")
            f = 0.1 + 0.9 * early_at / ramp
            self.assertLess(early_share, f / (1 + f) + 0.08,
                            "a slow-started backend must not get its full share early")
            self.assertLess(early_share, 0.4)
            self.assertAlmostEqual(late_share, 0.5, delta=0.1)
            self.assertIn("slow start done", t.ferryd_log())


if __name__ == "__main__":
    unittest.main()
