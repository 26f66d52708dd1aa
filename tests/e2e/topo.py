#!/usr/bin/python3
"""End-to-end test topology for Ferry, built from network namespaces.

    <prefix>-cl            <prefix>-lb (ferryd)              <prefix>-sw       <prefix>-b<i>
    fe-cl0 10.77.1.2 ---- fe-lb-cl   [DPDK]   fe-lb-be ---- sw-lb  br0  sw-b<i> ---- fe-b0 10.77.2.(11+i)
    gw 10.77.1.1                                                                   gw 10.77.2.1
                                                                                   mock_ai_server :8000
                                                                                   udp_echo       :5353

Ferry's two ports are the veth ends fe-lb-cl and fe-lb-be: UP, no address,
IPv6 off, read and written by DPDK's net_af_packet (default) or, with
Topology(pmd="af_xdp"), by net_af_xdp: an AF_XDP socket per queue, fed by the
XDP program the PMD attaches to the veth (native veth XDP, copy mode: veth has
no zero-copy). Ferry itself answers ARP for 10.77.1.1, 10.77.2.1 and the VIP
10.77.1.100.

Use it as a context manager; teardown always runs and kills every process the
harness started (by PID), deletes every namespace it made (which deletes the
veths too), and removes its temp dir and the DPDK runtime dir:

    with Topology(backends=3, weights=(100, 200, 300)) as topo:
        cfg = topo.write_config(workers=1)
        topo.start_ferryd(cfg)
        print(topo.load(n=100, new_conn=True))
        print(topo.telemetry("/ferry/stats"))

Everything runs as root through `ip netns exec`, which exec()s its command, so
the PID of every Popen here is the PID of the real program.

`/usr/bin/python3 tests/e2e/topo.py --cleanup PREFIX` removes what a killed run
left behind; `--up` builds a topology and waits for Ctrl-C, for poking by hand.
"""

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"  # Debian's; the pyenv python on PATH lacks scapy
MOCK_SERVER = REPO / "scripts" / "mock_ai_server.py"
UDP_ECHO = REPO / "scripts" / "udp_echo.py"
LOAD_CLIENT = Path(__file__).resolve().with_name("load_client.py")
DEFAULT_FERRYD = REPO / "build" / "src" / "ferryd" / "ferryd"
DPDK_RUN_DIR = Path("/var/run/dpdk")

CLIENT_ADDR = "10.77.1.2"
LB_CLIENT_ADDR = "10.77.1.1"      # Ferry's address on the client port
LB_BACKEND_ADDR = "10.77.2.1"     # Ferry's address on the backend port
VIP = "10.77.1.100"
# The gateway host's own addresses, on the kernel interfaces ferryd creates for
# its exception path: health probes and host traffic (SSH, BGP) use them.
HOST_ADDRS = {"fe-host-cl": "10.77.1.254/24", "fe-host-be": "10.77.2.254/24"}
VIP_HTTP_PORT = 80
VIP_UDP_PORT = 5353
HTTP_PORT = 8000
UDP_PORT = 5353

# Interface names (each only needs to be unique inside its namespace).
IF_CLIENT = "fe-cl0"
IF_LB_CLIENT = "fe-lb-cl"
IF_LB_BACKEND = "fe-lb-be"
IF_SW_LB = "sw-lb"
IF_BACKEND = "fe-b0"
BRIDGE = "br0"

PMDS = ("af_packet", "af_xdp")
NGINX = "/usr/sbin/nginx"
IPERF3 = "/usr/bin/iperf3"
IPERF3_PORT = 5201

# Offloads off on every veth end: otherwise af_packet reads frames whose
# checksums are not filled in yet (CHECKSUM_PARTIAL) and 64 KB GSO/GRO frames.
OFFLOADS_OFF = ["rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off"]

_instance_counter = itertools.count()


class TopologyError(RuntimeError):
    """A setup step failed; the message carries the command and its stderr."""


def backend_address(i):
    return f"10.77.2.{11 + i}"


# --------------------------------------------------------------------------
# Small process helpers
# --------------------------------------------------------------------------

def run(argv, check=True, timeout=30, input=None):
    """Run a host command, capturing text output; raise TopologyError with
    stderr on failure so setup problems are readable in a test report."""
    try:
        cp = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                            timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise TopologyError(f"timed out after {timeout}s: {' '.join(map(str, argv))}") from exc
    if check and cp.returncode != 0:
        raise TopologyError(f"command failed ({cp.returncode}): {' '.join(map(str, argv))}\n"
                            f"{cp.stderr.strip()}")
    return cp


def ns_argv(ns, argv):
    return ["ip", "netns", "exec", ns, *[str(a) for a in argv]]


def list_namespaces():
    """Names of all network namespaces (`ip netns list` adds " (id: N)")."""
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def stop_process(proc, sig=signal.SIGTERM, grace=5.0):
    """Signal one process by PID, SIGKILL it after `grace` s; return its status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


def kill_pids(pids, grace=3.0):
    """SIGTERM then SIGKILL a list of PIDs we know belong to our namespaces."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                alive.append(pid)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if Path(f"/proc/{p}").exists()]
            time.sleep(0.05)
        pids = alive
        if not pids:
            return


def namespace_pids(ns):
    cp = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in cp.stdout.split() if p.isdigit()]


def tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def lcore_args(n_lcores, cpus=None):
    """EAL lcore arguments for n lcores (main + workers) on the CPUs we may use.

    `-l 0-N` needs N+1 real CPUs; on a small machine (2 cores, 3 lcores) map
    lcore ids onto CPUs round-robin with --lcores, e.g. 0@0,1@1,2@0.
    """
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else sorted(cpus)
    if n_lcores <= len(cpus) and cpus[:n_lcores] == list(range(n_lcores)):
        return ["-l", f"0-{n_lcores - 1}"]
    return ["--lcores", ",".join(f"{i}@{cpus[i % len(cpus)]}" for i in range(n_lcores))]


def remove_dpdk_state(prefix):
    """Remove DPDK's runtime dir and any hugepage files of this file-prefix
    (a SIGKILLed primary leaves both behind)."""
    shutil.rmtree(DPDK_RUN_DIR / prefix, ignore_errors=True)
    for mount in hugetlbfs_mounts():
        for f in Path(mount).glob(f"{prefix}map_*"):
            with contextlib.suppress(OSError):
                f.unlink()


def hugetlbfs_mounts():
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    return [ln.split()[1] for ln in lines if len(ln.split()) > 2 and ln.split()[2] == "hugetlbfs"]


def cleanup_stale(prefix):
    """Remove namespaces named `<prefix>-*` and DPDK state of `prefix` left by a
    run that was SIGKILLed; processes inside them are killed by PID."""
    removed = []
    for ns in list_namespaces():
        if ns.startswith(prefix + "-"):
            kill_pids(namespace_pids(ns))
            run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
    remove_dpdk_state(prefix)
    return removed


# --------------------------------------------------------------------------
# libconfig writer
# --------------------------------------------------------------------------

def libconfig_value(value, indent=0):
    """Render a Python value as libconfig: dict -> group, list -> list,
    tuple -> array, bool/int/float/str -> scalars."""
    pad = "  " * (indent + 1)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -2**31 <= value < 2**31 else f"{value}L"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        body = "".join(f"{pad}{k} = {libconfig_value(v, indent + 1)};\n" for k, v in value.items())
        return "{\n" + body + "  " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "()"
        items = ",\n".join(pad + libconfig_value(v, indent + 1) for v in value)
        return "(\n" + items + "\n" + "  " * indent + ")"
    if isinstance(value, tuple):
        return "[ " + ", ".join(libconfig_value(v, indent) for v in value) + " ]"
    raise TypeError(f"cannot write {type(value).__name__} to libconfig")


def libconfig_text(root, header=""):
    lines = [f"# {h}" for h in header.splitlines()] + [""] if header else []
    lines += [f"{k} = {libconfig_value(v)};\n" for k, v in root.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The topology
# --------------------------------------------------------------------------

@dataclass
class Backend:
    """One AI server namespace and the servers the harness runs in it."""
    index: int
    id: str
    weight: int
    speed: float
    address: str
    ns: str
    procs: dict = field(default_factory=dict)   # "http" / "udp" -> Popen


class Topology:
    """Namespaces, veths, bridge, servers and (optionally) ferryd for one test.

    Parameters: `backends` (count), `weights`/`speeds`/`ids` (per backend;
    defaults 100, 1.0, "ai-<i+1>"), `prefix` (namespace and DPDK file-prefix;
    default "fe<pid>", unique per process and instance), `start_servers`
    (start mock_ai_server + udp_echo in each backend), `server_args` (extra
    mock_ai_server options for all backends), `isolate_lb` (drop frames at
    the kernel's ingress of Ferry's veths so only DPDK sees them, like a NIC
    bound to vfio-pci; see _isolate_lb_kernel), `pmd` (the DPDK driver
    write_config puts on Ferry's ports: "af_packet", the default, or
    "af_xdp").
    """

    def __init__(self, backends=3, *, weights=None, speeds=None, ids=None, prefix=None,
                 start_servers=True, server_args=(), isolate_lb=True, pmd="af_packet"):
        if pmd not in PMDS:
            raise TopologyError(f"pmd must be one of {PMDS}, not {pmd!r}")
        n = next(_instance_counter)
        self.prefix = prefix or (f"fe{os.getpid()}" if n == 0 else f"fe{os.getpid()}n{n}")
        self.ns_client = f"{self.prefix}-cl"
        self.ns_lb = f"{self.prefix}-lb"
        self.ns_switch = f"{self.prefix}-sw"
        self.backends = [
            Backend(index=i,
                    id=ids[i] if ids else f"ai-{i + 1}",
                    weight=weights[i] if weights else 100,
                    speed=speeds[i] if speeds else 1.0,
                    address=backend_address(i),
                    ns=f"{self.prefix}-b{i}")
            for i in range(backends)]
        self.start_servers = start_servers
        self.server_args = [str(a) for a in server_args]
        self.isolate_lb = isolate_lb
        self.pmd = pmd
        self.tmpdir = None
        self.config_path = None
        self.control_socket = None
        self.ferryd = None
        self.ferryd_log_path = None
        self._created_ns = []
        self._procs = []
        self._logs = []
        self._dpdk_used = False
        self._old_sigterm = None

    # ---- lifecycle ------------------------------------------------------

    @property
    def namespaces(self):
        return [self.ns_client, self.ns_lb, self.ns_switch] + [b.ns for b in self.backends]

    def __enter__(self):
        self._install_sigterm_handler()
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()
        return False

    def build(self):
        """Create everything; on error the caller (__enter__) tears down."""
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"ferry-{self.prefix}-"))
        self._make_namespaces()
        self._wire()
        self._configure_client()
        self._configure_lb()
        self._configure_switch()
        for b in self.backends:
            self._configure_backend(b)
        if self.start_servers:
            for b in self.backends:
                self.start_backend(b.index)

    def teardown(self):
        """Undo everything, best effort, each step independent of the others.
        Ctrl-C/SIGTERM arriving meanwhile are held and re-raised afterwards,
        so a second Ctrl-C cannot leave namespaces behind."""
        old_term, self._old_sigterm = self._old_sigterm, None
        with _signals_deferred(term_handler=old_term):
            errors = []
            for step in (self.stop_ferryd, self._stop_all_processes,
                         self._delete_namespaces, self._remove_files):
                try:
                    step()
                except Exception as exc:  # keep tearing down
                    errors.append(f"{step.__name__}: {exc}")
            for e in errors:
                print(f"topo teardown: {e}", file=sys.stderr)

    def _install_sigterm_handler(self):
        """Turn SIGTERM into SystemExit so `with` blocks unwind and teardown
        runs (the default action would kill us with namespaces left over)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def on_term(signum, frame):
                raise SystemExit(128 + signum)
            self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def _stop_all_processes(self):
        for proc in reversed(self._procs):
            stop_process(proc, grace=3.0)
        self._procs.clear()
        for b in self.backends:
            b.procs.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()

    def _delete_namespaces(self):
        """Kill stragglers (processes a test started in our namespaces by other
        means) by PID, then delete the namespaces, which deletes the veths."""
        for ns in reversed(self._created_ns):
            kill_pids(namespace_pids(ns))
            run(["ip", "netns", "del", ns], check=False)
        self._created_ns.clear()

    def _remove_files(self):
        if self._dpdk_used:
            remove_dpdk_state(self.prefix)
        if self.tmpdir and self.tmpdir.exists():
            if os.environ.get("FERRY_E2E_KEEP"):
                print(f"topo: kept logs in {self.tmpdir}", file=sys.stderr)
            else:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # ---- building -------------------------------------------------------

    def _make_namespaces(self):
        existing = set(list_namespaces())
        clash = [ns for ns in self.namespaces if ns in existing]
        if clash:
            raise TopologyError(f"namespaces already exist: {clash}; a killed run? "
                                f"try: {PYTHON} {__file__} --cleanup {self.prefix}")
        for ns in self.namespaces:
            run(["ip", "netns", "add", ns])
            self._created_ns.append(ns)
            # "all" also sets "default", so veths created later get IPv6 off too.
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 1)
            self.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", 1)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _wire(self):
        self._veth(self.ns_client, IF_CLIENT, self.ns_lb, IF_LB_CLIENT)
        self._veth(self.ns_lb, IF_LB_BACKEND, self.ns_switch, IF_SW_LB)
        for b in self.backends:
            self._veth(b.ns, IF_BACKEND, self.ns_switch, f"sw-b{b.index}")

    def _veth(self, ns_a, if_a, ns_b, if_b):
        """A veth pair created directly in its two namespaces, so names need
        only be unique per namespace and nothing ever touches the host's."""
        run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth",
             "peer", "name", if_b, "netns", ns_b])
        for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
            run(["ip", "-n", ns, "link", "set", ifname, "mtu", "1500"])
            run(ns_argv(ns, ["ethtool", "-K", ifname, *OFFLOADS_OFF]))

    def _configure_client(self):
        ns = self.ns_client
        run(["ip", "-n", ns, "addr", "add", f"{CLIENT_ADDR}/24", "dev", IF_CLIENT])
        run(["ip", "-n", ns, "link", "set", IF_CLIENT, "up"])
        run(["ip", "-n", ns, "route", "add", "default", "via", LB_CLIENT_ADDR])
        # Many short connections (--new-conn load) from one address.
        self.sysctl(ns, "net.ipv4.tcp_tw_reuse", 1)
        self.sysctl(ns, "net.ipv4.ip_local_port_range", "1024 65535")

    def _configure_lb(self):
        for ifname in (IF_LB_CLIENT, IF_LB_BACKEND):
            self.sysctl(self.ns_lb, f"net.ipv6.conf.{ifname}.disable_ipv6", 1)
            run(["ip", "-n", self.ns_lb, "link", "set", ifname, "up"])
        if self.isolate_lb:
            self._isolate_lb_kernel()

    def _isolate_lb_kernel(self):
        """Drop every frame at netfilter's netdev ingress of Ferry's veths.

        af_packet sockets (DPDK's rx) get frames before the ingress hook, and
        XDP (net_af_xdp) runs before both, so Ferry still sees everything, but
        the lb namespace's kernel does not:
        otherwise, once ferryd gives its exception interface (a TAP) an
        address, the kernel (weak host model) would also answer ARP for it on
        fe-lb-cl and RST TCP segments meant for Ferry, unlike a NIC that DPDK
        owns through vfio-pci. kernel_lb() removes this table.
        """
        chains = "".join(
            f"  chain in_{i} {{ type filter hook ingress device \"{ifname}\" priority 0; policy drop; }}\n"
            for i, ifname in enumerate((IF_LB_CLIENT, IF_LB_BACKEND)))
        self.nft(self.ns_lb, f"table netdev ferry_isolate {{\n{chains}}}\n")

    def _configure_switch(self):
        ns = self.ns_switch
        # forward_delay 0: ports forward at once (no 15 s listening/learning).
        run(["ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge",
             "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"])
        for port in [IF_SW_LB] + [f"sw-b{b.index}" for b in self.backends]:
            run(["ip", "-n", ns, "link", "set", port, "master", BRIDGE])
            run(["ip", "-n", ns, "link", "set", port, "up"])
        run(["ip", "-n", ns, "link", "set", BRIDGE, "up"])

    def _configure_backend(self, b):
        run(["ip", "-n", b.ns, "addr", "add", f"{b.address}/24", "dev", IF_BACKEND])
        run(["ip", "-n", b.ns, "link", "set", IF_BACKEND, "up"])
        run(["ip", "-n", b.ns, "route", "add", "default", "via", LB_BACKEND_ADDR])

    # ---- running things in namespaces ------------------------------------

    def sysctl(self, ns, key, value):
        run(ns_argv(ns, ["sysctl", "-qw", f"{key}={value}"]))

    def nft(self, ns, ruleset):
        return run(ns_argv(ns, ["nft", "-f", "-"]), input=ruleset)

    def ns_exec(self, ns, argv, *, log=None, pdeathsig=True, **popen):
        """Start argv inside `ns` and track it for teardown; returns the Popen.

        `log`: file name in the temp dir for stdout+stderr (else inherited or
        whatever `popen` says). `pdeathsig`: the process gets SIGTERM if the
        thread that started it dies, so a SIGKILLed test leaves no server
        running (start long-lived processes from the main thread). The child
        gets its own session so a terminal's Ctrl-C reaches only us and we
        stop it in order.
        """
        full = ns_argv(ns, (["setpriv", "--pdeathsig", "TERM", "--"] if pdeathsig else []) + list(argv))
        if log:
            f = open(self.log_path(log), "ab")
            self._logs.append(f)
            popen.setdefault("stdout", f)
            popen.setdefault("stderr", subprocess.STDOUT)
        popen.setdefault("stdin", subprocess.DEVNULL)
        popen.setdefault("start_new_session", True)
        proc = subprocess.Popen(full, **popen)
        self._procs.append(proc)
        return proc

    def run_in(self, ns, argv, check=True, timeout=60, input=None):
        """Run argv inside `ns` to completion; CompletedProcess with text output."""
        return run(ns_argv(ns, argv), check=check, timeout=timeout, input=input)

    def log_path(self, name):
        return self.tmpdir / name

    def wait_for_log(self, proc, log, needle, timeout):
        """Wait until `needle` appears in log file `log`; fail early if proc dies."""
        path = self.log_path(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if needle in path.read_text(errors="replace"):
                    return
            if proc.poll() is not None:
                raise TopologyError(f"{log}: process exited ({proc.returncode}) before "
                                    f"'{needle}':\n{tail(path)}")
            time.sleep(0.05)
        raise TopologyError(f"{log}: no '{needle}' within {timeout}s:\n{tail(path)}")

    def dump_logs(self, stream=sys.stderr, lines=40):
        """Print the tail of every log (call it when a test fails)."""
        for path in sorted(self.tmpdir.glob("*.log")) if self.tmpdir else []:
            print(f"===== {path.name} =====\n{tail(path, lines)}", file=stream)

    def http(self, ns, method, url, body=None, timeout=5.0):
        """One HTTP request from inside `ns`: (status, text); status is None
        and text the error when no answer came."""
        cp = self.run_in(ns, [PYTHON, "-c", _HTTP_SNIPPET, method, url, body or "", str(timeout)],
                         timeout=timeout + 10)
        res = json.loads(cp.stdout)
        return res["status"], res["body"]

    # ---- backends -------------------------------------------------------

    def start_backend(self, i, wait=True):
        """Start (or restart) mock_ai_server :8000 and udp_echo :5353 in b<i>."""
        b = self.backends[i]
        specs = {
            "http": [PYTHON, MOCK_SERVER, "--port", HTTP_PORT, "--id", b.id,
                     "--speed", b.speed, *self.server_args],
            "udp": [PYTHON, UDP_ECHO, "--port", UDP_PORT, "--id", b.id],
        }
        for kind, argv in specs.items():
            if b.procs.get(kind) and b.procs[kind].poll() is None:
                continue
            log = f"{b.id}-{kind}.log"
            with contextlib.suppress(OSError):
                self.log_path(log).unlink()  # so wait_for_log sees only this run
            b.procs[kind] = self.ns_exec(b.ns, argv, log=log)
            if wait:
                self.wait_for_log(b.procs[kind], log, "ready", timeout=10)

    def start_nginx(self, i, port=HTTP_PORT, cpus=None, timeout=10.0):
        """Serve b<i>'s HTTP port with nginx instead of mock_ai_server, for
        benchmarks where the Python server would be the bottleneck: one
        process (master_process off, 1 worker), no access log, keep-alive
        without a request limit. GET /health answers 200 "ok"; POST
        /v1/chat/completions a fixed completion carrying the backend id, so
        load() and wait_backends_seen() work. cpus: a taskset CPU list.
        Tracked as procs["http"]."""
        b = self.backends[i]
        d = self.tmpdir / f"nginx-{b.id}"
        d.mkdir(exist_ok=True)
        answer = json.dumps({"choices": [{"message": {"content": "ok"}}], "system_fingerprint": b.id})
        temp = "".join(f"  {k}_temp_path {d}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = (f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
                f"error_log stderr warn;\nevents {{ worker_connections 16384; }}\n"
                f"http {{\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 60s;\n{temp}"
                f"  server {{\n    listen {port} backlog=4096;\n"
                f"    location = /health {{ default_type text/plain; return 200 \"ok\\n\"; }}\n"
                f"    location = /v1/chat/completions {{ default_type application/json; return 200 '{answer}'; }}\n"
                f"    location / {{ return 404; }}\n  }}\n}}\n")
        (d / "nginx.conf").write_text(conf)
        prefix = ["taskset", "-c", cpus] if cpus is not None else []
        proc = self.ns_exec(b.ns, [*prefix, NGINX, "-p", d, "-c", d / "nginx.conf"], log=f"{b.id}-nginx.log")
        b.procs["http"] = proc
        self._wait_listening(b.ns, proc, port, f"{b.id}-nginx.log", timeout)
        return proc

    def start_iperf3(self, i, port=IPERF3_PORT, cpus=None, timeout=10.0):
        """An iperf3 server in b<i> on `port`; tracked as procs["iperf3"]."""
        b = self.backends[i]
        prefix = ["taskset", "-c", cpus] if cpus is not None else []
        proc = self.ns_exec(b.ns, [*prefix, IPERF3, "-s", "-p", port], log=f"{b.id}-iperf3.log")
        b.procs["iperf3"] = proc
        self._wait_listening(b.ns, proc, port, f"{b.id}-iperf3.log", timeout)
        return proc

    def _wait_listening(self, ns, proc, port, log, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise TopologyError(f"{log}: exited ({proc.returncode}):\n{tail(self.log_path(log))}")
            if self.run_in(ns, ["ss", "-Hltn", f"sport = :{port}"]).stdout.strip():
                return
            time.sleep(0.05)
        raise TopologyError(f"{log}: nothing listens on :{port} after {timeout}s:\n{tail(self.log_path(log))}")

    def stop_backend(self, i, sig=signal.SIGTERM, udp=True):
        """Stop backend i's servers (by PID) with `sig` (SIGKILL = crash)."""
        b = self.backends[i]
        for kind in ("http", "udp") if udp else ("http",):
            proc = b.procs.pop(kind, None)
            if proc:
                stop_process(proc, sig)

    def backend_link(self, i, up):
        """Take backend i's link down/up: a silent failure, no RST, no FIN."""
        run(["ip", "-n", self.backends[i].ns, "link", "set", IF_BACKEND, "up" if up else "down"])

    def backend_admin(self, i, path, body=""):
        """POST to backend i's server from inside its namespace, e.g.
        backend_admin(0, "/admin/health", "503") or
        backend_admin(1, "/admin/load", '{"waiting": 40}'). Returns (status, text)."""
        return self.http(self.backends[i].ns, "POST", f"http://127.0.0.1:{HTTP_PORT}{path}", body)

    def backend_get(self, i, path):
        return self.http(self.backends[i].ns, "GET", f"http://127.0.0.1:{HTTP_PORT}{path}")

    # ---- kernel stand-in for ferryd --------------------------------------

    def kernel_lb(self, vip=VIP, backends=None, services=None, method="random"):
        """Make the lb namespace's kernel do Ferry's job: addresses on the two
        veths, ip_forward, VIP as a local /32 (so the kernel answers its ARP),
        and an nftables weighted DNAT per service.

        backends: [(address, weight)] (default: the topology's). services:
        [(proto, vip_port, backend_port)] (default tcp 80->8000, udp
        5353->5353). method: "random" (numgen) or "jhash" (5-tuple hash).
        conntrack keeps each flow on the backend chosen by its first packet.
        Backends keep their default route via 10.77.2.1, so this is DNAT mode
        (client address preserved). Returns the ruleset text.
        """
        if backends is None:
            backends = [(b.address, b.weight) for b in self.backends]
        if services is None:
            services = [("tcp", VIP_HTTP_PORT, HTTP_PORT), ("udp", VIP_UDP_PORT, UDP_PORT)]
        ns = self.ns_lb
        run(ns_argv(ns, ["nft", "delete", "table", "netdev", "ferry_isolate"]), check=False)
        run(["ip", "-n", ns, "addr", "add", f"{LB_CLIENT_ADDR}/24", "dev", IF_LB_CLIENT])
        run(["ip", "-n", ns, "addr", "add", f"{vip}/32", "dev", IF_LB_CLIENT])
        run(["ip", "-n", ns, "addr", "add", f"{LB_BACKEND_ADDR}/24", "dev", IF_LB_BACKEND])
        self.sysctl(ns, "net.ipv4.ip_forward", 1)
        self.sysctl(ns, "net.ipv4.conf.all.rp_filter", 0)
        ruleset = kernel_lb_ruleset(vip, backends, services, method)
        self.nft(ns, ruleset)
        return ruleset

    # ---- ferryd ---------------------------------------------------------

    def vip_backends(self, port=HTTP_PORT):
        return [{"address": b.address, "port": port, "weight": b.weight} for b in self.backends]

    def default_vips(self, mode="nat", scheduler="maglev", health=None, udp=True):
        """The example config's "chat" VIP (tcp 80 -> 8000, http health) plus,
        if udp, an "echo" VIP (udp 5353 -> 5353, health via the HTTP server)."""
        health = health or {"type": "http", "path": "/health", "expect_status": 200,
                            "interval_ms": 1000, "timeout_ms": 500, "rise": 2, "fall": 3}
        chat = {"name": "chat", "address": VIP, "port": VIP_HTTP_PORT, "protocol": "tcp",
                "mode": mode, "scheduler": scheduler, "hash": "5-tuple", "table_size": 65537,
                "timeouts": {"tcp_syn": 10, "tcp_established": 900, "tcp_closing": 10, "udp": 30},
                "health": dict(health), "down_flows": "keep", "drain_timeout": 600,
                "backends": self.vip_backends(HTTP_PORT)}
        vips = [chat]
        if udp:
            echo_health = dict(health, port=HTTP_PORT) if health.get("type") != "none" else dict(health)
            vips.append(dict(chat, name="echo", port=VIP_UDP_PORT, protocol="udp",
                             health=echo_health, backends=self.vip_backends(UDP_PORT)))
        return vips

    def write_config(self, path=None, *, vips=None, workers=1, mode="nat", scheduler="maglev",
                     health=None, udp=True, exception_path=True, ports=None,
                     worker_settings=None, control=None, pmd=None):
        """Write a Ferry config (format of conf/ferry.conf) for this topology.

        vips: list of VIP dicts as in the file (default: default_vips(mode,
        scheduler, health, udp)); a VIP dict without "mode" gets `mode`.
        workers: qpairs per port (= worker lcores). ports / worker_settings /
        control: dicts merged over the defaults ({"client": {...}} for ports).
        The control socket lives in the temp dir. flow_capacity is 65536
        rather than the example's 1M: a 1M-entry table per worker takes many
        seconds to set up under --no-huge on a loaded 2-core box. pmd: the
        ports' DPDK driver, "af_packet" or "af_xdp" (default: the topology's;
        af_xdp only with workers=1). Returns the path.
        """
        pmd = pmd or self.pmd
        if pmd not in PMDS:
            raise TopologyError(f"pmd must be one of {PMDS}, not {pmd!r}")
        path = Path(path) if path else self.tmpdir / "ferry.conf"
        vips = vips if vips is not None else self.default_vips(mode, scheduler, health, udp)
        vips = [v if "mode" in v else dict(v, mode=mode) for v in vips]
        if pmd == "af_xdp" and workers != 1:
            # DPDK 22.11's af_xdp PMD sizes queue_count by the device's
            # "combined" channels (ETHTOOL_GCHANNELS); veth has separate rx/tx
            # channels only, so the PMD refuses anything above 1: "Specified
            # queue count 2 is larger than combined queue count 1."
            raise TopologyError("net_af_xdp on a veth has one queue: use workers=1 (or af_packet)")
        port_list = [
            {"name": name, **port_device(pmd, n, ifname, workers),
             "address": addr, "mtu": 1500, "exception_path": exception_path,
             "exception_iface": f"fe-host-{short}"}
            for n, (name, short, ifname, addr) in enumerate((
                ("client", "cl", IF_LB_CLIENT, f"{LB_CLIENT_ADDR}/24"),
                ("backend", "be", IF_LB_BACKEND, f"{LB_BACKEND_ADDR}/24")))]
        for p in port_list:
            p.update((ports or {}).get(p["name"], {}))
        self.control_socket = str(self.tmpdir / "ferryd.sock")
        root = {
            "ports": port_list,
            "workers": dict({"burst_size": 32, "flow_capacity": 65536, "rx_descriptors": 1024,
                             "tx_descriptors": 1024, "mbufs": 16383}, **(worker_settings or {})),
            "control": dict({"socket": self.control_socket, "metrics_listen": "127.0.0.1:9108"},
                            **(control or {})),
            "vips": vips,
        }
        path.write_text(libconfig_text(root, f"Generated by tests/e2e/topo.py for {self.prefix}"))
        self.config_path = path
        return path

    def start_ferryd(self, config_path=None, workers=1, *, hugepages=False, lcores=None,
                     mem_mb=1024, extra_eal=(), extra_args=(), ready_timeout=None, host_addresses=True):
        """Run ferryd in the lb namespace and wait for "ferryd ready" in its log.

        EAL: lcores for 1 main + `workers` (lcore_args; or `lcores`, an -l
        string such as "0,1"), --no-huge -m mem_mb unless hugepages,
        --file-prefix <prefix> --no-pci --log-level=lib.eal:error. FERRYD
        env var overrides the binary. ready_timeout: default 20 s, or env
        FERRY_E2E_READY_TIMEOUT (a loaded CI box). Returns the Popen; log:
        ferryd_log().
        """
        if ready_timeout is None:
            ready_timeout = float(os.environ.get("FERRY_E2E_READY_TIMEOUT", "20"))
        binary = os.environ.get("FERRYD", str(DEFAULT_FERRYD))
        if not os.access(binary, os.X_OK):
            raise TopologyError(f"ferryd not found or not executable: {binary} (set FERRYD)")
        if self.ferryd and self.ferryd.poll() is None:
            raise TopologyError("ferryd is already running; stop_ferryd() first")
        config_path = config_path or self.config_path
        eal = ["-l", lcores] if lcores else lcore_args(workers + 1)
        if not hugepages:
            eal += ["--no-huge", "-m", str(mem_mb)]
        eal += ["--file-prefix", self.prefix, "--no-pci", "--log-level=lib.eal:error", *extra_eal]
        argv = [binary, *eal, "--", "-c", str(config_path), *extra_args]
        log = "ferryd.log"
        with contextlib.suppress(OSError):
            self.log_path(log).unlink()
        self.ferryd_log_path = self.log_path(log)
        self._dpdk_used = True
        self.ferryd = self.ns_exec(self.ns_lb, argv, log=log)
        self.wait_for_log(self.ferryd, log, "ferryd ready", ready_timeout)
        if host_addresses:
            self.configure_host_interfaces()
        return self.ferryd

    def configure_host_interfaces(self):
        """Give the host its addresses on ferryd's exception interfaces, as an
        operator's network config would on a gateway where DPDK owns the NICs."""
        links = {l["ifname"] for l in json.loads(self.run_in(self.ns_lb, ["ip", "-j", "link"]).stdout)}
        for ifname, addr in HOST_ADDRS.items():
            if ifname in links:
                self.run_in(self.ns_lb, ["ip", "addr", "replace", addr, "dev", ifname])
                self.run_in(self.ns_lb, ["ip", "link", "set", ifname, "up"])

    def stop_ferryd(self, timeout=10.0):
        """SIGTERM ferryd, SIGKILL after `timeout` s, remove its DPDK runtime
        dir. Returns its exit status (None if it was not started)."""
        if not self.ferryd:
            return None
        rc = stop_process(self.ferryd, signal.SIGTERM, grace=timeout)
        with contextlib.suppress(ValueError):
            self._procs.remove(self.ferryd)
        self.ferryd = None
        remove_dpdk_state(self.prefix)
        return rc

    def signal_ferryd(self, sig=signal.SIGHUP):
        """Send ferryd a signal by PID (SIGHUP = reload the config)."""
        self.ferryd.send_signal(sig)

    def ferryd_log(self):
        return self.ferryd_log_path.read_text(errors="replace") if self.ferryd_log_path else ""

    def telemetry(self, cmd, timeout=5.0):
        """One DPDK telemetry command (e.g. "/ferry/stats" or "/ethdev/stats,0");
        returns the parsed JSON, whose top-level key is the command."""
        return dpdk_telemetry(self.prefix, cmd, timeout)

    # ---- load -----------------------------------------------------------

    def load_argv(self, n=100, concurrency=10, *, vip=VIP, port=VIP_HTTP_PORT, stream=False,
                  max_tokens=None, new_conn=False, duration=None, timeout=30.0, extra=()):
        argv = [PYTHON, LOAD_CLIENT, "--vip", vip, "--port", port, "-n", n,
                "-c", concurrency, "--timeout", timeout]
        if stream:
            argv.append("--stream")
        if max_tokens:
            argv += ["--max-tokens", max_tokens]
        if new_conn:
            argv.append("--new-conn")
        if duration:
            argv += ["--duration", duration]
        return argv + list(extra)

    def load(self, n=100, concurrency=10, **kw):
        """Run load_client.py in the client namespace; returns its JSON result
        (keys: total ok failed errors servers status latency_p50_ms ...)."""
        limit = kw.get("duration") or 0
        cp = self.run_in(self.ns_client, self.load_argv(n, concurrency, **kw),
                         timeout=limit + kw.get("timeout", 30.0) * (n / max(1, concurrency) + 2) + 30)
        return parse_last_json(cp.stdout, cp.stderr)

    def load_async(self, n=100, concurrency=10, **kw):
        """Start load_client.py in the background (e.g. a 20 s stream while a
        test reloads or kills something); finish with collect(proc)."""
        return self.ns_exec(self.ns_client, self.load_argv(n, concurrency, **kw),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def collect(self, proc, timeout=120.0):
        out, err = proc.communicate(timeout=timeout)
        return parse_last_json(out.decode(), err.decode())

    def udp_load(self, flows=10, count=5, *, vip=VIP, port=VIP_UDP_PORT, timeout=1.0, extra=()):
        """UDP echo load: `count` datagrams from each of `flows` source ports;
        result has per_flow {sport: [ids]} and sticky (one id per flow)."""
        argv = [PYTHON, LOAD_CLIENT, "--udp", "--vip", vip, "--port", port,
                "--flows", flows, "--count", count, "--timeout", timeout, *extra]
        cp = self.run_in(self.ns_client, argv, timeout=flows * count * timeout * 3 + 30)
        return parse_last_json(cp.stdout, cp.stderr)

    def wait_backends_seen(self, ids=None, timeout=30.0, **load_kw):
        """Send small new-connection loads until every id in `ids` (default:
        all backends) has answered, e.g. after start_ferryd while health
        checks bring the backends up. Returns the last result."""
        want = set(ids if ids is not None else (b.id for b in self.backends))
        deadline = time.monotonic() + timeout
        kw = dict({"n": 30, "concurrency": 5, "new_conn": True, "timeout": 3.0}, **load_kw)
        result = None
        while time.monotonic() < deadline:
            result = self.load(**kw)
            if want <= set(result.get("servers", {})):
                return result
            time.sleep(0.5)
        raise TopologyError(f"backends {sorted(want)} not all seen within {timeout}s: {result}")


def open_class_topology(topo, setup):
    """For a test class that shares one topology: enter `topo`, run
    setup(topo) (write a config, start ferryd, wait for backends); if that
    fails, dump the logs and tear everything down before re-raising."""
    topo.__enter__()
    try:
        setup(topo)
    except BaseException:
        topo.dump_logs()
        topo.__exit__(None, None, None)
        raise
    return topo


def close_class_topology(topo):
    """Stop ferryd (it must exit 0 on SIGTERM) and tear the topology down."""
    rc = topo.stop_ferryd()
    topo.__exit__(None, None, None)
    assert rc == 0, f"ferryd exited with {rc} on SIGTERM"


# --------------------------------------------------------------------------
# Helpers used by Topology that are useful on their own
# --------------------------------------------------------------------------

def kernel_lb_ruleset(vip, backends, services, method="random"):
    """nftables text for a weighted DNAT of `vip` to `backends` [(addr, weight)].
    Weights become ranges of a `mod total` map, e.g. {0-99: b1, 100-299: b2}."""
    ranges, start = [], 0
    for addr, weight in backends:
        if weight > 0:
            ranges.append(f"{start}-{start + weight - 1} : {addr}")
            start += weight
    if not ranges:
        raise TopologyError("kernel_lb needs at least one backend with weight > 0")
    rules = []
    for proto, vport, bport in services:
        key = "numgen random" if method == "random" else f"jhash ip saddr . {proto} sport"
        rules.append(f"    ip daddr {vip} {proto} dport {vport} dnat to {key} mod {start} "
                     f"map {{ {', '.join(ranges)} }} : {bport}")
    return ("table ip ferry_kernel_lb {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            + "\n".join(rules) + "\n  }\n}\n")


def ferryctl_path():
    """FERRYCTL, else the ferryctl next to FERRYD's build tree, else build/."""
    if os.environ.get("FERRYCTL"):
        return os.environ["FERRYCTL"]
    if os.environ.get("FERRYD"):
        guess = Path(os.environ["FERRYD"]).resolve().parents[1] / "ferryctl" / "ferryctl"
        if guess.exists():
            return str(guess)
    return str(REPO / "build" / "src" / "ferryctl" / "ferryctl")


def port_device(pmd, n, ifname, queues):
    """`device` and `devargs` of Ferry's port number n on veth `ifname`.

    af_xdp: one AF_XDP socket per queue from queue 0. The PMD loads libxdp's
    default program (without bpffs mounted, libxdp loads it without its
    multi-program dispatcher); veth runs it natively (`ip link` shows "xdp",
    not "xdpgeneric"), in copy mode: veth has no zero-copy AF_XDP."""
    if pmd == "af_xdp":
        return {"device": f"net_af_xdp{n}",
                "devargs": f"net_af_xdp{n},iface={ifname},start_queue=0,queue_count={queues}"}
    return {"device": f"net_af_packet{n}", "devargs": f"net_af_packet{n},iface={ifname},qpairs={queues}"}


def dpdk_telemetry(prefix, cmd, timeout=5.0):
    """Query a DPDK primary's telemetry socket (v2 protocol: the server sends
    a JSON greeting with max_output_len, then one JSON answer per command)."""
    path = DPDK_RUN_DIR / prefix / "dpdk_telemetry.v2"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        greeting = json.loads(s.recv(1 << 16).decode())
        s.send(cmd.encode())
        size = max(int(greeting.get("max_output_len", 16384)), 1 << 16)
        return json.loads(s.recv(size).decode())


def parse_last_json(stdout, stderr=""):
    """load_client prints exactly one JSON line; take the last one."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise TopologyError(f"load client printed no JSON.\nstdout: {stdout[-2000:]}\n"
                        f"stderr: {stderr[-2000:]}")


@contextlib.contextmanager
def _signals_deferred(term_handler=None):
    """Hold SIGINT/SIGTERM during a critical section, re-raise afterwards.
    term_handler: what SIGTERM's handler should be afterwards (default: as
    before)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    if term_handler is not None:
        old[signal.SIGTERM] = term_handler
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if pending:
            raise KeyboardInterrupt if pending[0] == signal.SIGINT else SystemExit(128 + pending[0])


# Tiny HTTP client run inside a namespace (argv: method url body timeout).
_HTTP_SNIPPET = r"""
import http.client, json, sys, urllib.parse
method, url, body, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
u = urllib.parse.urlsplit(url)
try:
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    c.request(method, (u.path or "/") + ("?" + u.query if u.query else ""),
              body=body.encode() if body else None)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode(errors="replace")}))
except Exception as e:
    print(json.dumps({"status": None, "body": f"{type(e).__name__}: {e}"}))
"""


# --------------------------------------------------------------------------
# Command line: cleanup after a killed run, or a topology to poke at by hand
# --------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description="Ferry e2e topology helper")
    p.add_argument("--cleanup", metavar="PREFIX", help="remove namespaces PREFIX-* and DPDK state")
    p.add_argument("--up", action="store_true", help="build a topology and wait for Ctrl-C")
    p.add_argument("--backends", type=int, default=3)
    p.add_argument("--kernel-lb", action="store_true", help="with --up: nftables DNAT VIP")
    p.add_argument("--prefix")
    args = p.parse_args(argv)
    if args.cleanup:
        print("removed:", " ".join(cleanup_stale(args.cleanup)) or "nothing")
        return 0
    if args.up:
        with Topology(args.backends, prefix=args.prefix) as topo:
            if args.kernel_lb:
                topo.kernel_lb()
            print(f"namespaces: {' '.join(topo.namespaces)}\nlogs: {topo.tmpdir}\n"
                  f"try: ip netns exec {topo.ns_client} curl -s http://{VIP}/\nCtrl-C to tear down",
                  flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    p.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
