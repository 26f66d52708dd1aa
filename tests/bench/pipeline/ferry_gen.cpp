// ferry-gen: a small DPDK traffic generator for the pipeline benchmark
// (scripts/bench.sh). Not part of ferryd; hot-path rules do not apply.
//
//   ferry-gen [EAL options] -- --vip 10.77.1.100 --vport 80 --flows 100000
//             [--new-pct 10] [--duration 5] [--burst 32] [--dst-mac MAC] [--my-ip 10.77.1.2]
//             [--hold-until FILE] [--wait-scale N] [--rate MPPS]
//
// Port 0 is the "client" side: it sends TCP segments of K distinct flows
// (source address/port vary) to the VIP, with the load balancer's MAC as
// destination (learnt by ARP for the VIP, or --dst-mac). Port 1 is the
// "backend" side: it answers every ARP request with its own MAC (so the load
// balancer resolves any backend or gateway to it) and counts what comes out
// of the load balancer.
//
// Phases:
//   1. learn the destination MAC (ARP for the VIP on port 0), unless --dst-mac;
//   2. warm: one SYN per flow (the first 48 alone, then a pause, so the load
//      balancer resolves its backends before the rest arrive), then wait until
//      nothing more comes out;
//   3. measure for --duration seconds: flows in turn, one ACK each. With
//      --new-pct P, every (100/P)th pick retires the flow (RST for the old
//      tuple) and opens a new one in its place (SYN from a fresh source
//      port/address): about P% of picks are new connections, the active set
//      stays K;
//   4. drain: stop sending, keep counting for 300 ms.
//
// Sending waits for room in the TX ring (memif has no wire to overrun):
// "offered" is what the load balancer's RX ring accepted. "lost" is offered
// minus what came out on port 1 during the measurement and the drain.
// One line per second, then a RESULT line with key=value pairs for scripts.
//
// With --hold-until FILE the links stay up, idle, after RESULT until FILE
// exists (at most 60 s, x --wait-scale): the script stops the forwarder first. A memif server
// that sees its client leave unmaps the shared region while its data thread
// may still be polling it (DPDK 22.11's memif PMD); a zero-copy client's exit
// could crash the forwarder that way.
//
// --rate MPPS paces the measurement's sends to at most MPPS million packets
// a second (default: as fast as the forwarder takes them). Below both
// forwarders' capacity, it compares their busy cycles per packet at the same
// load, with the receive ring no longer full (scripts/bench.sh --gen-rate).
//
// --wait-scale N multiplies the waits for the links and for the warm-up's
// replies by N: for a forwarder that runs tens of times slower than usual
// (ferryd under callgrind, scripts/ferryd-instructions.sh).
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#include <rte_tcp.h>

#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr uint16_t kClientPort = 0;
constexpr uint16_t kBackendPort = 1;
constexpr uint16_t kMaxBurst = 256;
constexpr uint32_t kPortsPerAddr = 64512;  // source ports 1024..65535 per source address
constexpr uint32_t kSrcBase = 0x0a800000;  // 10.128.0.0: client sources (never replied to)

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

struct Options {
    uint32_t vip = 0;  // host order
    uint16_t vport = 80;
    uint32_t flows = 1000;
    uint32_t new_pct = 0;
    double duration = 5.0;
    uint16_t burst = 32;
    bool have_mac = false;
    rte_ether_addr dst_mac{};
    uint32_t my_ip = 0x0a4d0102;  // 10.77.1.2
    bool no_warm = false;
    const char* hold_until = nullptr;  // a file: keep the links up until it exists
    uint32_t wait_scale = 1;           // waits (links up, warm-up replies) x this: a forwarder under valgrind
    double rate_mpps = 0;              // measurement's pace; 0: unpaced
};

struct Counters {
    uint64_t tx = 0, tx_syn = 0, tx_rst = 0;
    uint64_t rx_fwd = 0, rx_syn = 0, rx_other = 0, arp_replies_sent = 0;
};

struct Gen {
    Options o;
    rte_mempool* pool = nullptr;
    rte_ether_addr mac[2]{};
    std::vector<uint64_t> flow_gen;  // per active slot: the generation number its tuple derives from
    uint64_t next_gen = 0;
    uint32_t cursor = 0;
    uint32_t pick = 0;
    uint32_t renew_every = 0;  // 0: never
    Counters c;
    uint64_t hz = 1;

    static void tuple(uint64_t gen, uint32_t& ip, uint16_t& port) {
        ip = kSrcBase + uint32_t(gen / kPortsPerAddr);
        port = uint16_t(1024 + gen % kPortsPerAddr);
    }

    rte_mbuf* build(uint64_t gen, uint8_t flags) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        if (!m) return nullptr;
        constexpr uint16_t len = RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN;  // 60
        auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
        if (!d) {
            rte_pktmbuf_free(m);
            return nullptr;
        }
        std::memset(d, 0, len);
        auto* eth = reinterpret_cast<rte_ether_hdr*>(d);
        eth->dst_addr = o.dst_mac;
        eth->src_addr = mac[kClientPort];
        eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
        auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
        uint32_t sip;
        uint16_t sport;
        tuple(gen, sip, sport);
        ip->version_ihl = RTE_IPV4_VHL_DEF;
        ip->total_length = rte_cpu_to_be_16(40);
        ip->time_to_live = 64;
        ip->next_proto_id = IPPROTO_TCP;
        ip->src_addr = rte_cpu_to_be_32(sip);
        ip->dst_addr = rte_cpu_to_be_32(o.vip);
        ip->hdr_checksum = rte_ipv4_cksum(ip);
        auto* tcp = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
        tcp->src_port = rte_cpu_to_be_16(sport);
        tcp->dst_port = rte_cpu_to_be_16(o.vport);
        tcp->sent_seq = rte_cpu_to_be_32(uint32_t(gen) * 2654435761u);
        tcp->recv_ack = flags & RTE_TCP_ACK_FLAG ? rte_cpu_to_be_32(1) : 0;
        tcp->data_off = 5 << 4;
        tcp->tcp_flags = flags;
        tcp->rx_win = rte_cpu_to_be_16(65535);
        tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
        if (flags & RTE_TCP_SYN_FLAG) ++c.tx_syn;
        if (flags & RTE_TCP_RST_FLAG) ++c.tx_rst;
        return m;
    }

    // Answers ARP requests with the receiving port's MAC; learns the VIP's MAC
    // from a reply on the client port. Returns true when the frame was ARP
    // (and consumed).
    bool handle_arp(uint16_t port, rte_mbuf* m) {
        auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
        if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) return false;
        if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) {
            rte_pktmbuf_free(m);
            return true;
        }
        auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
        uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
        if (op == RTE_ARP_OP_REPLY && port == kClientPort && rte_be_to_cpu_32(arp->arp_data.arp_sip) == o.vip &&
            !o.have_mac) {
            o.dst_mac = arp->arp_data.arp_sha;
            o.have_mac = true;
        }
        if (op == RTE_ARP_OP_REQUEST) {
            uint32_t target = arp->arp_data.arp_tip;
            arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
            arp->arp_data.arp_tha = arp->arp_data.arp_sha;
            arp->arp_data.arp_tip = arp->arp_data.arp_sip;
            arp->arp_data.arp_sha = mac[port];
            arp->arp_data.arp_sip = target;
            eth->dst_addr = eth->src_addr;
            eth->src_addr = mac[port];
            if (rte_eth_tx_burst(port, 0, &m, 1) == 1) {
                ++c.arp_replies_sent;
                return true;
            }
        }
        rte_pktmbuf_free(m);
        return true;
    }

    void poll_rx() {
        rte_mbuf* pkts[kMaxBurst];
        for (uint16_t port : {kClientPort, kBackendPort}) {
            uint16_t n = rte_eth_rx_burst(port, 0, pkts, kMaxBurst);
            for (uint16_t i = 0; i < n; ++i) {
                rte_mbuf* m = pkts[i];
                if (handle_arp(port, m)) continue;
                auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
                bool counted = false;
                if (port == kBackendPort && eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) &&
                    rte_pktmbuf_data_len(m) >= sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_tcp_hdr)) {
                    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
                    if (ip->next_proto_id == IPPROTO_TCP) {
                        auto* tcp = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
                        ++c.rx_fwd;
                        if (tcp->tcp_flags & RTE_TCP_SYN_FLAG) ++c.rx_syn;
                        counted = true;
                    }
                }
                if (!counted) ++c.rx_other;
                rte_pktmbuf_free(m);
            }
        }
    }

    // Sends all n packets, waiting for room (and counting what arrives meanwhile).
    // Gives up (and stops the run) when the ring stays full for 2 s: the peer is gone.
    void send_all(rte_mbuf** pkts, uint16_t n) {
        uint16_t sent = 0;
        uint64_t since = 0;
        while (sent < n) {
            uint16_t k = rte_eth_tx_burst(kClientPort, 0, pkts + sent, uint16_t(n - sent));
            sent = uint16_t(sent + k);
            if (sent == n) break;
            poll_rx();
            uint64_t now = rte_get_tsc_cycles();
            if (k != 0 || since == 0) since = now;
            if (g_stop.load(std::memory_order_relaxed) || now - since > 2 * hz) {
                if (!g_stop.load()) std::fprintf(stderr, "ferry-gen: TX ring full for 2 s, stopping\n");
                g_stop.store(true);
                rte_pktmbuf_free_bulk(pkts + sent, n - sent);
                break;
            }
        }
        c.tx += sent;
    }

    // Fills a burst for the measurement phase.
    uint16_t fill_burst(rte_mbuf** pkts) {
        uint16_t n = 0;
        while (n < o.burst) {
            uint32_t slot = cursor;
            cursor = cursor + 1 == o.flows ? 0 : cursor + 1;
            if (renew_every && pick + 1 == renew_every) {
                if (n + 2 > o.burst) {
                    cursor = slot;  // this pick opens the next burst
                    break;
                }
                pick = 0;
                rte_mbuf* rst = build(flow_gen[slot], RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG);
                if (!rst) break;
                pkts[n++] = rst;
                flow_gen[slot] = next_gen++;
                rte_mbuf* syn = build(flow_gen[slot], RTE_TCP_SYN_FLAG);
                if (!syn) break;
                pkts[n++] = syn;
                continue;
            }
            ++pick;
            rte_mbuf* m = build(flow_gen[slot], RTE_TCP_ACK_FLAG);
            if (!m) break;
            pkts[n++] = m;
        }
        return n;
    }

    void wait_quiet(uint64_t quiet_ms, uint64_t max_ms) {
        uint64_t start = rte_get_tsc_cycles(), last_change = start, seen = c.rx_fwd;
        while (!g_stop.load()) {
            poll_rx();
            uint64_t now = rte_get_tsc_cycles();
            if (c.rx_fwd != seen) {
                seen = c.rx_fwd;
                last_change = now;
            }
            if (now - last_change > quiet_ms * hz / 1000 || now - start > max_ms * hz / 1000) break;
        }
    }

    bool learn_mac() {
        if (o.have_mac) return true;
        uint64_t start = rte_get_tsc_cycles(), last = 0;
        while (!o.have_mac && !g_stop.load()) {
            uint64_t now = rte_get_tsc_cycles();
            if (now - start > 10 * hz) return false;
            if (last == 0 || now - last > hz / 2) {
                last = now;
                rte_mbuf* m = rte_pktmbuf_alloc(pool);
                if (!m) return false;
                auto* eth = reinterpret_cast<rte_ether_hdr*>(
                    rte_pktmbuf_append(m, sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr) + 18));
                if (!eth) {
                    rte_pktmbuf_free(m);
                    return false;
                }
                std::memset(eth, 0, rte_pktmbuf_data_len(m));
                std::memset(&eth->dst_addr, 0xff, 6);
                eth->src_addr = mac[kClientPort];
                eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
                auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
                arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
                arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
                arp->arp_hlen = 6;
                arp->arp_plen = 4;
                arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
                arp->arp_data.arp_sha = mac[kClientPort];
                arp->arp_data.arp_sip = rte_cpu_to_be_32(o.my_ip);
                arp->arp_data.arp_tip = rte_cpu_to_be_32(o.vip);
                if (rte_eth_tx_burst(kClientPort, 0, &m, 1) != 1) rte_pktmbuf_free(m);
            }
            poll_rx();
        }
        return o.have_mac;
    }

    int run() {
        hz = rte_get_tsc_hz();
        renew_every = o.new_pct ? std::max<uint32_t>(1, 100 / o.new_pct) : 0;
        flow_gen.resize(o.flows);
        for (uint32_t i = 0; i < o.flows; ++i) flow_gen[i] = i;
        next_gen = o.flows;

        if (!learn_mac()) {
            std::fprintf(stderr, "ferry-gen: no ARP reply for the VIP in 10 s (pass --dst-mac)\n");
            return 1;
        }
        char mbuf[RTE_ETHER_ADDR_FMT_SIZE];
        rte_ether_format_addr(mbuf, sizeof mbuf, &o.dst_mac);
        std::printf("ferry-gen: destination MAC %s, %u flows, %u%% new, %.1f s\n", mbuf, o.flows, o.new_pct,
                    o.duration);

        rte_mbuf* pkts[kMaxBurst];
        uint64_t t0 = rte_get_tsc_cycles();
        if (!o.no_warm) {
            // Warm: one SYN per flow; the first few alone so next hops resolve.
            uint32_t i = 0;
            while (i < o.flows && !g_stop.load()) {
                uint16_t n = 0;
                uint32_t limit = i < 48 ? std::min<uint32_t>(48, o.flows) : o.flows;
                while (n < o.burst && i < limit) {
                    rte_mbuf* m = build(flow_gen[i], RTE_TCP_SYN_FLAG);
                    if (!m) break;
                    pkts[n++] = m;
                    ++i;
                }
                send_all(pkts, n);
                poll_rx();
                if (i == std::min<uint32_t>(48, o.flows)) wait_quiet(300 * o.wait_scale, 3000 * o.wait_scale);
            }
            wait_quiet(300 * o.wait_scale, 10000 * o.wait_scale);
            double secs = double(rte_get_tsc_cycles() - t0) / double(hz);
            std::printf("warm: %lu SYN sent, %lu came out (%.2f s)\n", (unsigned long)c.tx, (unsigned long)c.rx_fwd,
                        secs);
            std::printf("WARM flows=%u syn_sent=%lu syn_out=%lu seconds=%.3f\n", o.flows, (unsigned long)c.tx,
                        (unsigned long)c.rx_syn, secs);
        }

        Counters base = c;
        Counters prev = c;
        uint64_t start = rte_get_tsc_cycles();
        uint64_t end = start + uint64_t(o.duration * double(hz));
        uint64_t next_report = start + hz;
        uint64_t now = start;
        std::printf("%6s %10s %10s %12s %12s\n", "sec", "offered", "forwarded", "new conn/s", "lost so far");
        const double tsc_per_packet = o.rate_mpps > 0 ? double(hz) / (o.rate_mpps * 1e6) : 0;
        while (!g_stop.load(std::memory_order_relaxed) && (now = rte_get_tsc_cycles()) < end) {
            if (tsc_per_packet > 0 && double(now - start) < double(c.tx - base.tx) * tsc_per_packet) {
                poll_rx();  // ahead of the pace: only count what comes out
                continue;
            }
            uint16_t n = fill_burst(pkts);
            send_all(pkts, n);
            poll_rx();
            if (now >= next_report) {
                double dt = double(now - next_report + hz) / double(hz);
                std::printf("%6.1f %9.3fM %9.3fM %12.0f %12ld\n", double(now - start) / double(hz),
                            double(c.tx - prev.tx) / dt / 1e6, double(c.rx_fwd - prev.rx_fwd) / dt / 1e6,
                            double(c.rx_syn - prev.rx_syn) / dt, long(c.tx - base.tx) - long(c.rx_fwd - base.rx_fwd));
                std::fflush(stdout);
                prev = c;
                next_report = now + hz;
            }
        }
        uint64_t stop = rte_get_tsc_cycles();
        uint64_t sent_during = c.tx - base.tx;
        uint64_t out_during = c.rx_fwd - base.rx_fwd;  // before the drain: for the rate
        wait_quiet(300, 2000);
        double secs = double(stop - start) / double(hz);
        uint64_t out_total = c.rx_fwd - base.rx_fwd;
        long lost = long(sent_during) - long(out_total);
        std::printf(
            "RESULT flows=%u new_pct=%u seconds=%.3f offered=%lu forwarded=%lu lost=%ld offered_mpps=%.4f "
            "forwarded_mpps=%.4f syn_sent=%lu syn_out=%lu new_cps=%.0f rst_sent=%lu rx_other=%lu arp_replies=%lu\n",
            o.flows, o.new_pct, secs, (unsigned long)sent_during, (unsigned long)out_total, lost,
            double(sent_during) / secs / 1e6, double(out_during) / secs / 1e6, (unsigned long)(c.tx_syn - base.tx_syn),
            (unsigned long)(c.rx_syn - base.rx_syn), double(c.rx_syn - base.rx_syn) / secs,
            (unsigned long)(c.tx_rst - base.tx_rst), (unsigned long)c.rx_other, (unsigned long)c.arp_replies_sent);
        std::fflush(stdout);
        return 0;
    }
};

bool parse_ip(const char* s, uint32_t& out) {
    in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) return false;
    out = ntohl(a.s_addr);
    return true;
}

int parse_args(int argc, char** argv, Options& o) {
    static const option longopts[] = {{"vip", required_argument, nullptr, 'v'},
                                      {"vport", required_argument, nullptr, 'p'},
                                      {"flows", required_argument, nullptr, 'f'},
                                      {"new-pct", required_argument, nullptr, 'n'},
                                      {"duration", required_argument, nullptr, 'd'},
                                      {"burst", required_argument, nullptr, 'b'},
                                      {"dst-mac", required_argument, nullptr, 'm'},
                                      {"my-ip", required_argument, nullptr, 'i'},
                                      {"no-warm", no_argument, nullptr, 'W'},
                                      {"hold-until", required_argument, nullptr, 'H'},
                                      {"wait-scale", required_argument, nullptr, 'S'},
                                      {"rate", required_argument, nullptr, 'R'},
                                      {nullptr, 0, nullptr, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (c) {
            case 'v': if (!parse_ip(optarg, o.vip)) return -1; break;
            case 'p': o.vport = uint16_t(std::atoi(optarg)); break;
            case 'f': o.flows = uint32_t(std::strtoul(optarg, nullptr, 0)); break;
            case 'n': o.new_pct = uint32_t(std::atoi(optarg)); break;
            case 'd': o.duration = std::atof(optarg); break;
            case 'R': o.rate_mpps = std::atof(optarg); break;
            case 'b': o.burst = uint16_t(std::atoi(optarg)); break;
            case 'm':
                if (rte_ether_unformat_addr(optarg, &o.dst_mac) != 0) return -1;
                o.have_mac = true;
                break;
            case 'i': if (!parse_ip(optarg, o.my_ip)) return -1; break;
            case 'W': o.no_warm = true; break;
            case 'H': o.hold_until = optarg; break;
            case 'S': o.wait_scale = uint32_t(std::strtoul(optarg, nullptr, 0)); break;
            default: return -1;
        }
    }
    if (o.vip == 0 || o.flows == 0 || o.wait_scale == 0 || o.wait_scale > 100 || o.burst < 2 || o.burst > kMaxBurst ||
        o.new_pct > 50 || o.duration <= 0)
        return -1;
    return 0;
}

// DPDK 22.11's memif PMD, as a zero-copy client, hands the server each memseg
// list's file descriptor (EAL's own, rte_memseg_get_fd) and closes it once that
// link connects. A second link that sends its regions after that sends a closed
// number or, as memfd_create takes the lowest free one, its own 36 KiB ring
// region under the buffers' 40 MiB size: the server maps it so and dies of
// SIGBUS at its first copy past 36 KiB (ferryd in memif_tx, 2026-11-29, with the
// core file to show it). So the links start one at a time, and after each
// connects EAL's descriptors are put back from copies taken before.
class MemsegFds {
public:
    MemsegFds() {
        rte_memseg_walk(
            [](const rte_memseg_list*, const rte_memseg* ms, void* arg) {
                auto& fds = *static_cast<std::vector<std::pair<int, int>>*>(arg);
                int fd = rte_memseg_get_fd_thread_unsafe(ms);  // -1 without hugepage files (--no-huge)
                for (const auto& f : fds)
                    if (f.first == fd) return 0;
                if (fd >= 0) fds.emplace_back(fd, dup(fd));
                return 0;
            },
            &fds_);
    }
    ~MemsegFds() {
        for (const auto& f : fds_)
            if (f.second >= 0) close(f.second);
    }
    MemsegFds(const MemsegFds&) = delete;
    MemsegFds& operator=(const MemsegFds&) = delete;
    void restore() const {
        for (const auto& f : fds_)
            if (f.second >= 0) dup2(f.second, f.first);
    }

private:
    std::vector<std::pair<int, int>> fds_;  // (EAL's descriptor, our copy)
};

bool link_up(uint16_t port) {
    rte_eth_link l{};
    rte_eth_link_get_nowait(port, &l);
    return l.link_status != 0;
}

int setup_port(uint16_t port, rte_mempool* pool) {
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(port, 1, 1, &conf) != 0) return -1;
    uint16_t nb_rx = 1024, nb_tx = 1024;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rx, &nb_tx);
    if (rte_eth_rx_queue_setup(port, 0, nb_rx, unsigned(rte_socket_id()), nullptr, pool) != 0) return -1;
    if (rte_eth_tx_queue_setup(port, 0, nb_tx, unsigned(rte_socket_id()), nullptr) != 0) return -1;
    if (rte_eth_dev_start(port) != 0) return -1;
    rte_eth_promiscuous_enable(port);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int n = rte_eal_init(argc, argv);
    if (n < 0) {
        std::fprintf(stderr, "ferry-gen: EAL init failed\n");
        return 1;
    }
    Gen g;
    if (parse_args(argc - n, argv + n, g.o) != 0) {
        std::fprintf(stderr,
                     "usage: ferry-gen [EAL] -- --vip IP [--vport 80] [--flows K] [--new-pct P (<=50)] "
                     "[--duration S] [--burst N] [--dst-mac MAC] [--my-ip IP] [--no-warm] [--hold-until FILE] "
                     "[--wait-scale N] [--rate MPPS]\n");
        rte_eal_cleanup();
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = 0;
    if (rte_eth_dev_count_avail() < 2) {
        std::fprintf(stderr, "ferry-gen: need two ports (client, backend), have %u\n", rte_eth_dev_count_avail());
        rc = 1;
    } else {
        g.pool = rte_pktmbuf_pool_create("gen_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
        const MemsegFds memseg_fds;  // after the pool: the memory it took is what memif exports
        // One link at a time, each up (memif: the peer connected) before the next starts.
        uint64_t deadline = rte_get_tsc_cycles() + 10 * g.o.wait_scale * rte_get_tsc_hz();
        bool up = g.pool != nullptr, setup_failed = g.pool == nullptr;
        for (uint16_t port : {kClientPort, kBackendPort}) {
            if (!up) break;
            if (setup_port(port, g.pool) != 0) {
                setup_failed = true;
                up = false;
                break;
            }
            while (!(up = link_up(port)) && rte_get_tsc_cycles() < deadline && !g_stop.load()) rte_delay_ms(10);
            memseg_fds.restore();
        }
        if (setup_failed) {
            std::fprintf(stderr, "ferry-gen: port setup failed\n");
            rc = 1;
        } else {
            rte_eth_macaddr_get(kClientPort, &g.mac[kClientPort]);
            rte_eth_macaddr_get(kBackendPort, &g.mac[kBackendPort]);
            if (!up) {
                std::fprintf(stderr, "ferry-gen: links not up after %u s\n", 10 * g.o.wait_scale);
                rc = 1;
            } else {
                rc = g.run();
            }
            // Idle (no polling) until the forwarder has gone; see the top.
            for (uint32_t i = 0; g.o.hold_until != nullptr && i < 6000 * g.o.wait_scale && !g_stop.load(); ++i) {
                if (access(g.o.hold_until, F_OK) == 0) break;
                usleep(10'000);
            }
            rte_eth_dev_stop(kClientPort);
            rte_eth_dev_stop(kBackendPort);
            rte_eth_dev_close(kClientPort);
            rte_eth_dev_close(kBackendPort);
        }
        rte_mempool_free(g.pool);
    }
    rte_eal_cleanup();
    return rc;
}
