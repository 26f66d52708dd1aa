"""Self-test of the e2e harness, with the kernel (nftables DNAT) in Ferry's place.

If this passes, a failing ferryd e2e test points at ferryd, not at the
namespaces, veths, servers or load client. Needs root, ip, ethtool, nft.

    cd /work/main && /usr/bin/python3 -m unittest tests/e2e/test_harness.py -v
"""

import os
import shutil
import signal
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import topo  # noqa: E402

WEIGHTS = (100, 200, 300)


def require_environment():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (network namespaces)")
    missing = [t for t in ("ip", "ethtool", "nft", "setpriv") if not shutil.which(t)]
    if missing:
        raise unittest.SkipTest(f"missing tools: {missing}")


def leftover_namespaces(prefix):
    return [ns for ns in topo.list_namespaces() if ns.startswith(prefix + "-")]


class KernelLbTest(unittest.TestCase):
    """One topology (3 backends behind an nftables DNAT VIP) for all cases."""

    @classmethod
    def setUpClass(cls):
        require_environment()
        cls.topo = topo.Topology(3, weights=WEIGHTS)
        cls.topo.__enter__()
        try:
            cls.topo.kernel_lb()
        except BaseException:
            cls.topo.teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        prefix = cls.topo.prefix
        servers = [p for b in cls.topo.backends for p in b.procs.values()]
        tmpdir = cls.topo.tmpdir
        cls.topo.__exit__(None, None, None)
        assert not leftover_namespaces(prefix), leftover_namespaces(prefix)
        assert all(p.poll() is not None for p in servers), "a server survived teardown"
        assert not tmpdir.exists(), f"{tmpdir} survived teardown"

    def setUp(self):
        self.addCleanup(self.dump_logs_on_failure)

    def dump_logs_on_failure(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result and any(t is self for t, _ in result.failures + result.errors):
            self.topo.dump_logs()

    def test_topology_shape(self):
        """Ferry's veths have no address and no IPv6 until kernel_lb adds
        them; every backend has its address and default route."""
        t = self.topo
        out = t.run_in(t.ns_lb, ["ip", "-o", "-6", "addr"]).stdout
        self.assertEqual(out.strip(), "", "IPv6 should be off in the lb namespace")
        for b in t.backends:
            addrs = t.run_in(b.ns, ["ip", "-o", "-4", "addr", "show", "dev", topo.IF_BACKEND]).stdout
            self.assertIn(f"{b.address}/24", addrs)
            routes = t.run_in(b.ns, ["ip", "route"]).stdout
            self.assertIn(f"default via {topo.LB_BACKEND_ADDR}", routes)
        features = t.run_in(t.ns_client, ["ethtool", "-k", topo.IF_CLIENT]).stdout
        for feature in ("tcp-segmentation-offload: off", "generic-segmentation-offload: off",
                        "rx-checksumming: off", "tx-checksumming: off"):
            self.assertIn(feature, features)

    def test_http_200_requests_all_backends(self):
        res = self.topo.load(n=200, concurrency=20, new_conn=True)
        self.assertEqual(res["ok"], 200, res)
        self.assertEqual(res["failed"], 0, res)
        self.assertEqual(set(res["servers"]), {b.id for b in self.topo.backends}, res)

    def test_http_keepalive(self):
        res = self.topo.load(n=40, concurrency=4)
        self.assertEqual(res["ok"], 40, res)

    def test_stream(self):
        res = self.topo.load(n=3, concurrency=3, stream=True, max_tokens=25)
        self.assertEqual(res["ok"], 3, res)
        self.assertIsNotNone(res["ttft_p50_ms"])
        # 25 tokens at 50 tokens/s: the answer really is streamed over ~0.5 s.
        self.assertGreater(res["latency_p50_ms"], 400, res)
        self.assertLess(res["ttft_p50_ms"], res["latency_p50_ms"] / 2, res)

    def test_udp_echo_sticky(self):
        res = self.topo.udp_load(flows=12, count=5)
        self.assertEqual(res["lost"], 0, res)
        self.assertEqual(res["bad"], 0, res)
        self.assertTrue(res["sticky"], res)
        self.assertEqual(len(res["per_flow"]), 12, res)

    def test_backend_admin(self):
        t = self.topo
        self.assertEqual(t.backend_admin(2, "/admin/health", "503")[0], 200)
        try:
            self.assertEqual(t.backend_get(2, "/health")[0], 503)
        finally:
            t.backend_admin(2, "/admin/health", "200")
        self.assertEqual(t.backend_get(2, "/health"), (200, "ok\n"))
        t.backend_admin(1, "/admin/load", '{"waiting": 7, "kv": 0.25}')
        try:
            status, metrics = t.backend_get(1, "/metrics")
            self.assertEqual(status, 200)
            self.assertIn('vllm:num_requests_waiting{model_name="mock",engine="0"} 7.0', metrics)
            self.assertIn('vllm:kv_cache_usage_perc{model_name="mock",engine="0"} 0.25', metrics)
            self.assertIn("# TYPE vllm:num_requests_running gauge", metrics)
        finally:
            t.backend_admin(1, "/admin/load", "{}")

    def test_stop_and_restart_backend(self):
        """A stopped backend exits cleanly on SIGTERM; restarting it works."""
        t = self.topo
        proc = t.backends[0].procs["http"]
        t.stop_backend(0)
        self.assertEqual(proc.returncode, 0, "mock server should exit 0 on SIGTERM")
        status, _ = t.backend_get(0, "/health")
        self.assertIsNone(status)
        t.start_backend(0)
        self.assertEqual(t.backend_get(0, "/health")[0], 200)


class TeardownTest(unittest.TestCase):
    def setUp(self):
        require_environment()

    def test_exception_inside_with_cleans_up(self):
        holder = {}
        with self.assertRaises(RuntimeError):
            with topo.Topology(2) as t:
                holder["t"] = t
                holder["procs"] = [p for b in t.backends for p in b.procs.values()]
                self.assertEqual(len(leftover_namespaces(t.prefix)), 5)
                raise RuntimeError("boom")
        t = holder["t"]
        self.assertEqual(leftover_namespaces(t.prefix), [])
        self.assertTrue(all(p.poll() is not None for p in holder["procs"]))
        self.assertFalse(t.tmpdir.exists())

    def test_sigterm_inside_with_cleans_up(self):
        """SIGTERM becomes SystemExit inside the with block, so teardown runs."""
        holder = {}
        with self.assertRaises(SystemExit):
            with topo.Topology(1, start_servers=False) as t:
                holder["t"] = t
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises SystemExit in here
                self.fail("SIGTERM did not interrupt")
        self.assertEqual(leftover_namespaces(holder["t"].prefix), [])
        self.assertIs(signal.getsignal(signal.SIGTERM), signal.SIG_DFL)

    def test_lcore_args(self):
        self.assertEqual(topo.lcore_args(2, cpus=[0, 1]), ["-l", "0-1"])
        self.assertEqual(topo.lcore_args(3, cpus=[0, 1]), ["--lcores", "0@0,1@1,2@0"])
        self.assertEqual(topo.lcore_args(2, cpus=[2, 3]), ["--lcores", "0@2,1@3"])

    def test_write_config(self):
        with topo.Topology(3, weights=WEIGHTS, start_servers=False) as t:
            path = t.write_config(workers=2, mode="dnat")
            text = path.read_text()
        self.assertIn('devargs = "net_af_packet0,iface=fe-lb-cl,qpairs=2";', text)
        self.assertIn('devargs = "net_af_packet1,iface=fe-lb-be,qpairs=2";', text)
        self.assertIn('mode = "dnat";', text)
        self.assertIn('address = "10.77.2.13";', text)
        self.assertIn("weight = 300;", text)
        self.assertIn(f'socket = "{t.tmpdir}/ferryd.sock";', text)

    @unittest.skipUnless(os.access(os.environ.get("FERRYD", str(topo.DEFAULT_FERRYD)), os.X_OK),
                         "ferryd not built")
    def test_written_config_passes_ferryd_check(self):
        ferryd = os.environ.get("FERRYD", str(topo.DEFAULT_FERRYD))
        with topo.Topology(3, weights=WEIGHTS, start_servers=False) as t:
            for kw in ({}, {"workers": 2, "mode": "dnat", "udp": False}):
                path = t.write_config(**kw)
                cp = topo.run([ferryd, "--check-config", path], check=False)
                self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr + path.read_text())


if __name__ == "__main__":
    unittest.main()
