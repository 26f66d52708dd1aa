#!/usr/bin/python3
"""End-to-end tests of Ferry's data plane (issue: data plane over virtual NICs).

Real HTTP clients and mock AI servers in network namespaces, ferryd on
net_af_packet ports (net_af_xdp for the AfXdp classes). Every class builds
its own topology and tears it down.
"""
import json
import os
import re
import signal
import subprocess
import time
import unittest

from topo import (HOST_ADDRS, CLIENT_ADDR, IF_BACKEND, IF_CLIENT, IF_LB_BACKEND, IF_LB_CLIENT, LB_BACKEND_ADDR,
                  LB_CLIENT_ADDR, PYTHON, VIP, Topology, close_class_topology, ferryctl_path, open_class_topology)

HOST_BACKEND_ADDR = HOST_ADDRS["fe-host-be"].split("/")[0]

# Share of new connections per backend may differ from its weight share by this
# much (absolute): 600 connections hashed over a 65537-slot Maglev table give a
# binomial spread with sigma <= 0.021, so 0.08 is > 3.8 sigma.
SHARE_TOLERANCE = 0.08
N_REQUESTS = 600
# Workers sleep this long after an empty poll: on this 2-core machine the
# clients, servers and ferryd share the cores.
E2E_WORKER_SETTINGS = {"idle_sleep_us": 50}


def require_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (network namespaces, DPDK)")


def stats(topo):
    return topo.telemetry("/ferry/stats")["/ferry/stats"]


def shares(result, topo):
    total = sum(result["servers"].values())
    return {b.id: result["servers"].get(b.id, 0) / total for b in topo.backends}


def expected_shares(topo):
    total = sum(b.weight for b in topo.backends)
    return {b.id: b.weight / total for b in topo.backends}


def scapy_in(topo, ns, script, timeout=60):
    """Runs a scapy script in a namespace; returns its stdout."""
    cp = topo.run_in(ns, [PYTHON, "-c", "from scapy.all import *\nconf.verb = 0\n" + script], timeout=timeout)
    return cp.stdout


def mac_of(topo, ns, ifname):
    out = topo.run_in(ns, ["ip", "-j", "link", "show", ifname]).stdout
    return json.loads(out)[0]["address"]


class BalancedTraffic:
    """Mixin: hundreds of concurrent requests through the VIP all succeed and
    spread by weight. Subclasses set MODE, WORKERS and PMD."""

    MODE = "nat"
    WORKERS = 1
    PMD = "af_packet"

    @classmethod
    def setUpClass(cls):
        require_root()

        def setup(t):
            t.start_ferryd(t.write_config(workers=cls.WORKERS, mode=cls.MODE, worker_settings=E2E_WORKER_SETTINGS),
                           workers=cls.WORKERS)
            t.wait_backends_seen(timeout=30)

        cls.topo = open_class_topology(Topology(3, weights=(100, 200, 300), pmd=cls.PMD), setup)

    @classmethod
    def tearDownClass(cls):
        close_class_topology(cls.topo)

    def test_concurrent_requests_succeed_and_follow_weights(self):
        r = self.topo.load(n=N_REQUESTS, concurrency=40, new_conn=True, timeout=20)
        self.assertEqual(r["failed"], 0, r.get("errors"))
        self.assertEqual(r["ok"], N_REQUESTS)
        got, want = shares(r, self.topo), expected_shares(self.topo)
        print(f"# {self.MODE} {self.WORKERS}w: {N_REQUESTS} requests, shares "
              + ", ".join(f"{k} {got[k]:.3f} (want {want[k]:.3f})" for k in sorted(got)))
        for k in want:
            self.assertAlmostEqual(got[k], want[k], delta=SHARE_TOLERANCE, msg=f"share of {k}: {got}")
        s = stats(self.topo)
        if self.WORKERS > 1:
            self.assertEqual(s["drop_handoff_full"], 0)

    def test_keepalive_requests_stay_on_one_backend_per_connection(self):
        r = self.topo.load(n=200, concurrency=10, new_conn=False, timeout=20)
        self.assertEqual(r["failed"], 0, r.get("errors"))

    def test_udp_flows_are_sticky(self):
        r = self.topo.udp_load(flows=20, count=5)
        self.assertEqual(r["lost"], 0, r)
        self.assertTrue(r["sticky"], r["per_flow"])
        self.assertGreaterEqual(len({ids[0] for ids in r["per_flow"].values()}), 2, "UDP flows not spread")


class NatAfXdpOneWorker(BalancedTraffic, unittest.TestCase):
    """The same traffic over net_af_xdp: an AF_XDP socket on each veth's one
    queue, fed by the XDP program the PMD attaches."""
    MODE, WORKERS, PMD = "nat", 1, "af_xdp"

    def test_ports_run_on_af_xdp(self):
        t = self.topo
        self.assertIn("net_af_xdp0", t.ferryd_log())
        for ifname in (IF_LB_CLIENT, IF_LB_BACKEND):
            link = json.loads(t.run_in(t.ns_lb, ["ip", "-j", "-d", "link", "show", ifname]).stdout)[0]
            self.assertIn("xdp", link, f"{ifname}: no XDP program attached: {link}")
        s = stats(t)
        self.assertGreater(s["rx_packets"], 0)


class NatOneWorker(BalancedTraffic, unittest.TestCase):
    MODE, WORKERS = "nat", 1

    def test_idle_sleep_ends_on_time(self):
        # Linux lets a sleep end up to the thread's timer slack late (50 us by
        # default): the worker lowers its own so idle_sleep_us means what it says.
        self.assertRegex(self.topo.ferryd_log(),
                         r"worker 0: sleeps 50 us after an empty poll \(timer slack 1000 ns\)")

    def test_arp_for_vip_and_ping_to_ferry(self):
        t = self.topo
        t.run_in(t.ns_client, ["ip", "neigh", "flush", "dev", IF_CLIENT])
        t.run_in(t.ns_client, ["ping", "-c", "3", "-i", "0.2", "-W", "2", LB_CLIENT_ADDR])
        t.run_in(t.ns_client, ["ping", "-c", "2", "-i", "0.2", "-W", "2", VIP])
        neigh = json.loads(t.run_in(t.ns_client, ["ip", "-j", "neigh", "show", "dev", IF_CLIENT]).stdout)
        macs = {n["dst"]: n.get("lladdr") for n in neigh}
        ferry_mac = mac_of(t, t.ns_lb, IF_LB_CLIENT)
        self.assertEqual(macs.get(VIP), ferry_mac, neigh)
        self.assertEqual(macs.get(LB_CLIENT_ADDR), ferry_mac, neigh)
        s = stats(t)
        self.assertGreater(s["arp_replies"], 0)
        self.assertGreaterEqual(s["icmp_echo_replies"], 5)

    def test_gratuitous_arp_moves_a_known_neighbour_and_adds_none(self):
        """A failover that moves an address to another MAC announces it by gratuitous ARP:
        Ferry follows it at once for a neighbour it knows, and learns no new one from it."""
        t = self.topo
        b = t.backends[0]
        real, fake, stranger = mac_of(t, b.ns, IF_BACKEND), "02:00:5e:10:20:30", "10.77.2.99"

        def announce(ip, mac):
            scapy_in(t, b.ns, f'sendp(Ether(src="{mac}", dst="ff:ff:ff:ff:ff:ff")/ARP(op=1, hwsrc="{mac}", '
                              f'psrc="{ip}", hwdst="00:00:00:00:00:00", pdst="{ip}"), iface="{IF_BACKEND}")')

        def wait_log(text, timeout=5.0):
            deadline = time.monotonic() + timeout
            while text not in t.ferryd_log():
                self.assertLess(time.monotonic(), deadline, f"ferryd did not log {text!r}")
                time.sleep(0.1)

        r = t.load(n=30, concurrency=3, new_conn=True)  # every backend's MAC is known now
        self.assertEqual(r["failed"], 0, r.get("errors"))
        try:
            announce(b.address, fake)
            wait_log(f"neighbour {b.address} is {fake} on port")
            announce(stranger, fake)
        finally:
            announce(b.address, real)
        wait_log(f"neighbour {b.address} is {real} on port")
        self.assertNotIn(f"neighbour {stranger} ", t.ferryd_log())
        r = t.load(n=60, concurrency=6, new_conn=True)
        self.assertEqual(r["failed"], 0, r.get("errors"))
        self.assertIn(b.id, r["servers"], r)

    def test_fragmentation_needed_reaches_the_backend(self):
        """A router on the client's path sends "fragmentation needed" to the VIP about a
        datagram the VIP sent: Ferry passes it on to the flow's backend, rewritten into one
        about the backend's own datagram (to Ferry's NAT address here), and the backend's
        kernel takes the path MTU from it."""
        t = self.topo
        ferry_mac = mac_of(t, t.ns_lb, IF_LB_CLIENT)
        for b in t.backends:
            t.run_in(b.ns, ["ip", "route", "flush", "cache"])
        before = stats(t)
        script = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{CLIENT_ADDR}", 40100))
s.settimeout(5)
s.sendto(b"x" * 16, ("{VIP}", 5353))
s.recvfrom(2048)  # the flow is open
quoted = IP(src="{VIP}", dst="{CLIENT_ADDR}")/UDP(sport=5353, dport=40100)/Raw(b"y" * 1400)
err = Ether(dst="{ferry_mac}")/IP(src="{CLIENT_ADDR}", dst="{VIP}")/ICMP(type=3, code=4, nexthopmtu=1300)
sendp(err/Raw(bytes(quoted)[:548]), iface="{IF_CLIENT}")
"""
        scapy_in(t, t.ns_client, script)
        deadline = time.monotonic() + 5
        while True:
            learnt = [b.id for b in t.backends
                      if "mtu 1300" in t.run_in(b.ns, ["ip", "route", "get", LB_BACKEND_ADDR]).stdout]
            if learnt or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        after = stats(t)
        for b in t.backends:
            t.run_in(b.ns, ["ip", "route", "flush", "cache"])
        self.assertEqual(after["icmp_errors_forwarded"] - before["icmp_errors_forwarded"], 1, (before, after))
        self.assertEqual(len(learnt), 1, "no backend took the path MTU from the forwarded error")

    def test_exception_path_carries_host_tcp_to_a_backend(self):
        t = self.topo
        # The host's own address lives on the kernel interface ferryd made.
        t.run_in(t.ns_lb, ["ip", "addr", "replace", "10.77.2.254/24", "dev", "fe-host-be"])
        t.run_in(t.ns_lb, ["ip", "link", "set", "fe-host-be", "up"])
        before = stats(t)
        status, body = t.http(t.ns_lb, "GET", f"http://{t.backends[0].address}:8000/health", timeout=10)
        self.assertEqual(status, 200, body)
        after = stats(t)
        self.assertGreater(after["to_exception"], before["to_exception"])
        self.assertGreater(after["from_exception"], before["from_exception"])

    def test_malformed_burst_is_counted_and_forwarding_continues(self):
        t = self.topo
        ferry_mac = mac_of(t, t.ns_lb, IF_LB_CLIENT)
        script = f"""
e = Ether(dst="{ferry_mac}")
ip = IP(src="{CLIENT_ADDR}", dst="{VIP}")
pkts = [
    e/IP(src="{CLIENT_ADDR}", dst="{VIP}", ihl=4)/TCP(dport=80),              # bad_ihl
    e/IP(src="{CLIENT_ADDR}", dst="{VIP}", version=5)/TCP(dport=80),          # bad_ip_version
    Ether(dst="{ferry_mac}", type=0x0800)/Raw(b"0123456789"),                  # truncated_l3
    e/IP(src="{CLIENT_ADDR}", dst="{VIP}", len=1400)/TCP(dport=80),           # bad_total_length
    e/IP(src="{CLIENT_ADDR}", dst="{VIP}", options=[IPOption_NOP()]*4)/TCP(dport=80, flags="S"),  # vip_ip_options
    e/ip/TCP(sport=40001, dport=80, flags="A"),                                # tcp_no_flow
    e/ip/TCP(sport=40002, dport=81, flags="S"),                                # no_vip_port
    e/IP(src="{CLIENT_ADDR}", dst="{VIP}", proto=6)/Raw(b"abcde"),            # truncated_l4
    e/ip/UDP(sport=40003, dport=5353, len=4),                                  # truncated_l4 (UDP length)
    e/Dot1Q(vlan=100)/ip/TCP(sport=40004, dport=80, flags="S"),                # another VLAN's: the host's
]
for p in pkts * 20:
    sendp(p, iface="{IF_CLIENT}")
"""
        before = stats(t)
        scapy_in(t, t.ns_client, script)
        time.sleep(0.5)
        after = stats(t)
        # Fragments cannot be checked here: net_af_packet joins its sockets with
        # PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles them before DPDK
        # sees them (a real NIC delivers them; unit tests cover the parser).
        # Frames shorter than an Ethernet header never cross a veth either.
        for reason, n in [("bad_ihl", 20), ("bad_ip_version", 20), ("truncated_l3", 20), ("bad_total_length", 20),
                          ("vip_ip_options", 20), ("tcp_no_flow", 20), ("no_vip_port", 20), ("truncated_l4", 40)]:
            grew = after[f"drop_{reason}"] - before[f"drop_{reason}"]
            self.assertGreaterEqual(grew, n, f"drop_{reason} grew by {grew}")
        # The tagged SYNs (VLAN 100) opened no flow: they went to the host.
        self.assertEqual(after["flow_miss_syn"] - before["flow_miss_syn"], 0, (before, after))
        self.assertEqual(t.ferryd.poll(), None, "ferryd died")
        r = t.load(n=100, concurrency=10, new_conn=True)
        self.assertEqual(r["failed"], 0, r.get("errors"))


class DnatOneWorker(BalancedTraffic, unittest.TestCase):
    MODE, WORKERS = "dnat", 1


class NatTwoWorkers(BalancedTraffic, unittest.TestCase):
    MODE, WORKERS = "nat", 2


class DnatTwoWorkers(BalancedTraffic, unittest.TestCase):
    MODE, WORKERS = "dnat", 2


class RewrittenHeaders(unittest.TestCase):
    """Packet-level check: capture both sides of real connections and verify
    addresses, ports and checksums byte by byte, in both modes."""

    CAPTURE = """
import sys
pk = sniff(iface="{iface}", timeout={timeout}, filter=None, lfilter=lambda p: TCP in p and (p[TCP].sport in (80, 8000) or p[TCP].dport in (80, 8000)))
wrpcap("{out}", pk)
print(len(pk))
"""

    VERIFY = """
import json
out = []
for p in rdpcap("{pcap}"):
    if IP not in p or TCP not in p or "{host}" in (p[IP].src, p[IP].dst):
        continue  # health probes from the host's own address
    raw_ip, raw_tcp = p[IP].chksum, p[TCP].chksum
    q = Ether(bytes(p))
    del q[IP].chksum
    del q[TCP].chksum
    q = Ether(bytes(q))
    out.append(dict(src=p[IP].src, dst=p[IP].dst, sport=p[TCP].sport, dport=p[TCP].dport,
                    ip_ok=raw_ip == q[IP].chksum, tcp_ok=raw_tcp == q[TCP].chksum, flags=str(p[TCP].flags)))
print(json.dumps(out))
"""

    def run_mode(self, mode):
        require_root()
        with Topology(1, weights=(100,)) as t:
            t.start_ferryd(t.write_config(workers=1, mode=mode, udp=False, worker_settings=E2E_WORKER_SETTINGS))
            t.wait_backends_seen(timeout=30)
            b = t.backends[0]
            caps = {}
            for name, ns, iface in (("client", t.ns_client, IF_CLIENT), ("backend", b.ns, IF_BACKEND)):
                out = str(t.tmpdir / f"{name}.pcap")
                script = "from scapy.all import *\n" + self.CAPTURE.format(iface=iface, timeout=6, out=out)
                caps[name] = (t.ns_exec(ns, [PYTHON, "-c", script], stdout=subprocess.PIPE), out)
            time.sleep(2.0)  # let sniff() start
            r = t.load(n=5, concurrency=1, new_conn=True)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            for proc, _ in caps.values():
                proc.wait(timeout=30)
            seen = {}
            for name, (_, pcap) in caps.items():
                ns = t.ns_client if name == "client" else b.ns
                out = t.run_in(ns, [PYTHON, "-c", "from scapy.all import *\n" + self.VERIFY.format(pcap=pcap, host=HOST_BACKEND_ADDR)]).stdout
                seen[name] = json.loads(out.strip().splitlines()[-1])
            return t, b, seen

    def check_common(self, seen):
        for side in ("client", "backend"):
            self.assertGreaterEqual(len(seen[side]), 5 * 4, f"too few packets captured at {side}")
            for p in seen[side]:
                self.assertTrue(p["ip_ok"], f"bad IPv4 checksum at {side}: {p}")
                self.assertTrue(p["tcp_ok"], f"bad TCP checksum at {side}: {p}")
        # Client side: it only ever talks to the VIP.
        for p in seen["client"]:
            self.assertIn(VIP, (p["src"], p["dst"]), p)
            self.assertIn(80, (p["sport"], p["dport"]), p)

    def test_full_nat_rewrites_both_addresses(self):
        t, b, seen = self.run_mode("nat")
        self.check_common(seen)
        for p in seen["backend"]:
            to_backend = p["dst"] == b.address
            peer = (p["src"], p["sport"]) if to_backend else (p["dst"], p["dport"])
            self.assertEqual(peer[0], LB_BACKEND_ADDR, f"full NAT must hide the client: {p}")
            self.assertGreaterEqual(peer[1], 1024, p)
            self.assertIn(8000, (p["sport"], p["dport"]), p)

    def test_dnat_keeps_the_client_address(self):
        t, b, seen = self.run_mode("dnat")
        self.check_common(seen)
        for p in seen["backend"]:
            self.assertIn(CLIENT_ADDR, (p["src"], p["dst"]), f"dnat must keep the client address: {p}")
            self.assertIn(b.address, (p["src"], p["dst"]), p)


class StreamSurvivesTableChanges(unittest.TestCase):
    """A streamed answer lasting > 20 s completes intact while the VIP's table
    changes underneath it: weights change and a backend is added (reloads)."""

    def test_stream_survives_reweight_and_added_backend(self):
        require_root()
        with Topology(4, weights=(100, 100, 100, 100)) as t:
            first_three = [dict(x) for x in t.vip_backends()[:3]]
            vip = dict(t.default_vips(mode="nat", udp=False)[0], backends=first_three)
            cfg = t.write_config(workers=1, vips=[vip], worker_settings=E2E_WORKER_SETTINGS)
            t.start_ferryd(cfg)
            t.wait_backends_seen(ids=[b.id for b in t.backends[:3]], timeout=30)
            stream = t.load_async(n=1, concurrency=1, stream=True, max_tokens=1100, timeout=60)
            time.sleep(3)
            # Reload 1: new weights. Reload 2: a fourth backend joins.
            first_three[0]["weight"], first_three[1]["weight"] = 1, 500
            t.write_config(cfg, workers=1, vips=[dict(vip, backends=first_three)],
                           worker_settings=E2E_WORKER_SETTINGS)
            t.signal_ferryd(signal.SIGHUP)
            time.sleep(3)
            t.write_config(cfg, workers=1, vips=[dict(vip, backends=first_three + [t.vip_backends()[3]])],
                           worker_settings=E2E_WORKER_SETTINGS)
            t.signal_ferryd(signal.SIGHUP)
            time.sleep(2)
            t.wait_backends_seen(ids=[t.backends[3].id], timeout=30)
            r = t.collect(stream, timeout=90)
            self.assertEqual(r["ok"], 1, r)
            self.assertEqual(r["failed"], 0, r)
            self.assertGreaterEqual(r["latency_p50_ms"], 20000, "the stream should last at least 20 s")
            log = t.ferryd_log()
            self.assertIn("reload:", log)
            self.assertEqual(stats(t)["drop_tcp_no_flow"], 0)


class DnatConnectionSurvivesARestart(unittest.TestCase):
    """dnat: a keep-alive connection goes on across a ferryd restart. The new
    ferryd has no entry for it: the client's next request picks it up (the
    backend from the Maglev table, the one it had) and makes both entries, so
    the backend's answer is turned back into the VIP's. Before, the request was
    forwarded without an entry and the answer went to the host: lost."""

    CLIENT = """
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=15)
for i in range(2):
    c.request("GET", "/health")
    r = c.getresponse()
    r.read()
    print("answer", r.status, flush=True)
    if i == 0:
        sys.stdin.readline()  # the test restarts ferryd meanwhile
"""

    def test_keepalive_connection_survives_a_restart(self):
        require_root()
        with Topology(3) as t:
            vip = t.default_vips(mode="dnat", udp=False)[0]
            cfg = t.write_config(workers=1, vips=[vip], mode="dnat", udp=False, worker_settings=E2E_WORKER_SETTINGS)
            t.start_ferryd(cfg)
            t.wait_backends_seen(timeout=30)
            client = t.ns_exec(t.ns_client, [PYTHON, "-c", self.CLIENT, VIP], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                self.assertEqual(client.stdout.readline().strip(), "answer 200")
                self.assertEqual(t.stop_ferryd(), 0)
                t.start_ferryd(cfg)
                client.stdin.write("go\n")
                client.stdin.flush()
                out, err = client.communicate(timeout=30)
            finally:
                if client.poll() is None:
                    client.kill()
            self.assertEqual(out.strip(), "answer 200", err)
            s = stats(t)
            self.assertGreaterEqual(s["flows_picked_up"], 1, s)


class ClosedConnectionsLeaveAtTheirTimeout(unittest.TestCase):
    """Connections that closed (FIN both ways) leave the flow table when
    tcp_closing (1 s here) has passed, not when the sweep next reaches them:
    a sweep pass over this 4M-entry table takes about 5 s."""

    def test_closed_flows_are_gone_soon_after_tcp_closing(self):
        require_root()
        with Topology(3) as t:
            vip = t.default_vips(mode="nat", udp=False)[0]
            vip["timeouts"] = dict(vip["timeouts"], tcp_closing=1)
            settings = dict(E2E_WORKER_SETTINGS, flow_capacity=4 << 20)
            t.start_ferryd(t.write_config(workers=1, vips=[vip], worker_settings=settings))
            t.wait_backends_seen(timeout=30)
            r = t.load(n=60, concurrency=6, new_conn=True, timeout=20)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            done = time.monotonic()
            samples = []
            while time.monotonic() - done < 8:
                s = stats(t)
                samples.append((round(time.monotonic() - done, 2), s["flow_entries"], s["flows_closing"]))
                if s["flow_entries"] == 0:
                    break
                time.sleep(0.1)
            gone_after = samples[-1][0]
            print(f"# closed flows gone {gone_after} s after the last request; (s, entries, closing): {samples[:3]}...")
            self.assertEqual(samples[-1][1], 0, f"flows still held 8 s later: {samples[-3:]}")
            self.assertLess(gone_after, 3.0, f"closed flows outlived tcp_closing (1 s) by far: {samples}")
            s = stats(t)
            self.assertEqual(s["flows_created"], s["flows_expired"] + s["flows_closed"], s)
            self.assertGreaterEqual(s["flows_created"], 60)
            self.assertEqual((s["flows_closing"], s["closing_overflow"]), (0, 0), s)


class NatAddresses(unittest.TestCase):
    """Full NAT with two nat_addresses on the backend port: new connections
    to one backend leave from the port's address and both NAT addresses in
    turn, and Ferry answers ARP and ping for the NAT addresses. With two
    workers, replies to every address reach the worker owning their flow."""

    NAT_ADDRS = ("10.77.2.2", "10.77.2.3")
    N_REQUESTS = 12

    def test_new_connections_rotate_over_the_nat_addresses(self):
        self.run_workers(1)

    def test_two_workers(self):
        # Each worker rotates on its own; one of them opens at least 6 of the
        # 12 connections, so all three addresses still show up.
        self.run_workers(2)

    def run_workers(self, workers):
        require_root()
        # One backend, so every connection goes to it; --verbose: the mock
        # server logs each request with its peer address.
        with Topology(1, weights=(100,), server_args=["--verbose"]) as t:
            cfg = t.write_config(workers=workers, mode="nat", udp=False, worker_settings=E2E_WORKER_SETTINGS,
                                 ports={"backend": {"nat_addresses": self.NAT_ADDRS}})
            t.start_ferryd(cfg, workers=workers)
            t.wait_backends_seen(timeout=30)
            b = t.backends[0]

            r = t.load(n=self.N_REQUESTS, concurrency=1, new_conn=True, timeout=10)
            self.assertEqual(r["failed"], 0, r.get("errors"))
            self.assertEqual(r["ok"], self.N_REQUESTS)

            # The backend saw every source address (health probes come from the host's own).
            log = t.log_path(f"{b.id}-http.log").read_text(errors="replace")
            peers = re.findall(r"(?m)^(\d+\.\d+\.\d+\.\d+) - - \[", log)
            sources = set(peers) - {HOST_BACKEND_ADDR}
            print(f"# nat_addresses, {workers} worker(s): backend saw sources {sorted(sources)} "
                  f"over {len(peers)} logged requests")
            self.assertEqual(sources, {LB_BACKEND_ADDR, *self.NAT_ADDRS}, log[-2000:])

            # ARP and ICMP echo for a NAT address, from the backend's side.
            t.run_in(b.ns, ["ip", "neigh", "flush", "dev", IF_BACKEND])
            t.run_in(b.ns, ["ping", "-c", "2", "-i", "0.2", "-W", "2", self.NAT_ADDRS[1]])
            neigh = json.loads(t.run_in(b.ns, ["ip", "-j", "neigh", "show", "dev", IF_BACKEND]).stdout)
            macs = {n["dst"]: n.get("lladdr") for n in neigh}
            self.assertEqual(macs.get(self.NAT_ADDRS[1]), mac_of(t, t.ns_lb, IF_LB_BACKEND), neigh)

            # Operators see the list.
            cp = subprocess.run([ferryctl_path(), "--socket", t.control_socket, "--json", "status"],
                                capture_output=True, text=True, timeout=30)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            ports = {p["name"]: p for p in json.loads(cp.stdout)["ports"]}
            self.assertEqual(ports["backend"]["nat_addresses"], list(self.NAT_ADDRS))
            self.assertEqual(ports["client"]["nat_addresses"], [])

            if workers == 1:
                # Not reloadable: a changed list is refused and the running one kept.
                t.write_config(cfg, workers=1, mode="nat", udp=False, worker_settings=E2E_WORKER_SETTINGS,
                               ports={"backend": {"nat_addresses": self.NAT_ADDRS[:1]}})
                t.signal_ferryd(signal.SIGHUP)
                deadline = time.monotonic() + 10
                while "nat_addresses changed" not in t.ferryd_log() and time.monotonic() < deadline:
                    time.sleep(0.2)
                self.assertIn("port 'backend': nat_addresses changed: restart ferryd to apply it", t.ferryd_log())
                r = t.load(n=3, concurrency=1, new_conn=True, timeout=10)
                self.assertEqual(r["failed"], 0, r.get("errors"))

            s = stats(t)
            self.assertEqual(s["drop_nat_ports_exhausted"], 0)
            self.assertEqual(s["drop_tcp_no_flow"], 0)
            self.assertEqual(s["drop_nat_no_flow"], 0)
            self.assertEqual(s["drop_handoff_full"], 0)

            # A NAT address belongs to the data plane alone: a connection to it that
            # matches no flow gets no answer (not the host's RST) and is counted.
            probe = ("import socket\ns = socket.socket()\ns.settimeout(1.5)\n"
                     f"try:\n    s.connect(('{self.NAT_ADDRS[0]}', 9))\n    print('connected')\n"
                     "except OSError as e:\n    print(type(e).__name__)\n")
            out = t.run_in(b.ns, [PYTHON, "-c", probe], timeout=10).stdout.strip()
            self.assertIn(out, ("TimeoutError", "timeout"), out)
            self.assertGreater(stats(t)["drop_nat_no_flow"], 0)
            self.assertEqual(t.stop_ferryd(), 0)


if __name__ == "__main__":
    unittest.main()
