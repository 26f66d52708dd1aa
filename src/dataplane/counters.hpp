// Per-worker counters. Each worker increments only its own copy (plain adds,
// no atomics on the packet path); readers on other threads sum the copies with
// relaxed loads, so a read may be one burst behind but never torn on x86-64.
#pragma once

#include <array>
#include <cstdint>

#include "packet/packet.hpp"

namespace ferry::dp {

// Why the data path dropped a packet. Names are stable: they are metric labels.
enum class Drop : uint8_t {
    parse_first_ = 0,  // values [0, ParseResult::count_) mirror packet::ParseResult
    no_vip_port = uint8_t(packet::ParseResult::count_),  // VIP address, port not configured
    vip_fragment,          // fragment addressed to a VIP (no ports to steer by)
    vip_ip_options,        // IPv4 options on VIP traffic
    no_backend,            // VIP has no usable backend
    tcp_no_flow,           // non-SYN TCP with no flow entry (nat mode)
    flow_table_full,       // new flow refused by a full flow table (nat mode)
    nat_ports_exhausted,   // no free local port
    no_route,              // no route to the destination
    no_neighbour,          // next hop MAC not resolved yet (resolution requested)
    tx_full,               // TX queue refused the packet
    handoff_full,          // ring to the owning worker was full
    exception_unavailable, // host traffic but no exception interface on that port
    icmp_unhandled,        // ICMP to Ferry other than echo request
    nat_no_flow,           // TCP/UDP to a NAT address (nat_addresses) that matches no flow
    count_
};
inline constexpr size_t kDropCount = size_t(Drop::count_);
const char* to_string(Drop d);
inline Drop drop_of(packet::ParseResult r) { return Drop(uint8_t(r)); }

// Every plain counter of a worker, for code that sums or prints them all:
// X(name) once per field of WorkerCounters except the drops array.
// clang-format off
#define FERRY_WORKER_COUNTERS(X)                                                                       \
    X(rx_packets) X(rx_bytes) X(tx_packets) X(tx_bytes) X(forwarded) X(flows_created) X(flow_miss_syn) \
    X(flow_miss_non_syn) X(flow_miss_udp) X(flows_picked_up) X(flows_expired) X(flows_closed)          \
    X(stateless) X(handoff_out) X(handoff_in) X(to_exception) X(from_exception) X(arp_replies)         \
    X(icmp_echo_replies) X(icmp_errors_forwarded)                                                      \
    X(neighbour_requests) X(flow_entries) X(flows_closing) X(closing_overflow) X(busy_polls)            \
    X(cycles_rx) X(cycles_process) X(cycles_tx) X(cycles_other)
// clang-format on

// Counters of one worker lcore, one cache line apart from the next worker's.
struct alignas(64) WorkerCounters {
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;
    uint64_t forwarded = 0;        // VIP traffic sent to a backend or back to a client
    uint64_t flows_created = 0;
    uint64_t flow_miss_syn = 0;    // new flows (first packet a SYN)
    uint64_t flow_miss_non_syn = 0;// non-SYN TCP without an entry
    uint64_t flow_miss_udp = 0;    // new UDP flows
    uint64_t flows_picked_up = 0;  // dnat: flows entered mid-stream (a non-SYN without an entry)
    uint64_t flows_expired = 0;
    uint64_t flows_closed = 0;     // ended early: tuple reused after close, backend's flows cut
    uint64_t stateless = 0;        // dnat: forwarded by hash without an entry
    uint64_t handoff_out = 0;      // packets passed to the owning worker
    uint64_t handoff_in = 0;
    uint64_t to_exception = 0;     // host traffic to the kernel interface
    uint64_t from_exception = 0;   // kernel traffic sent out of a port
    uint64_t arp_replies = 0;      // ARP requests we answered
    uint64_t icmp_echo_replies = 0;
    uint64_t icmp_errors_forwarded = 0;  // ICMP errors about a flow passed on to its backend
    uint64_t neighbour_requests = 0;
    uint64_t flow_entries = 0;     // gauge: occupied flow-table slots
    uint64_t flows_closing = 0;    // gauge: closed flows queued to leave at their closing timeout
    uint64_t closing_overflow = 0; // closes the queue had no room for (the sweep removes those later)
    // Where a poll-mode worker's time goes (it shows 100% CPU whether busy or
    // not): TSC cycles of the polls that moved at least one packet, by stage.
    uint64_t busy_polls = 0;
    uint64_t cycles_rx = 0;       // polling and receiving, up to the end of each burst that brought packets
    uint64_t cycles_process = 0;  // Ferry's own work on received bursts: parse, steer, rewrite, queue for TX
    uint64_t cycles_tx = 0;       // after the last processed burst: empty polls of later ports, sending
    uint64_t cycles_other = 0;    // housekeeping after sending: closed-flow expiry, the idle sweep, RCU
    std::array<uint64_t, kDropCount> drops{};

    // Adds another worker's counters, read with relaxed loads.
    void add_relaxed(const WorkerCounters& o);
    uint64_t total_drops() const;
};

// Busy cycles per packet received, by stage (all 0 before the first packet).
struct CyclesPerPacket {
    double rx = 0, process = 0, tx = 0, other = 0, total = 0;
};
CyclesPerPacket cycles_per_packet(const WorkerCounters& c);

// Per-backend counters of one worker; indexed by stable backend id.
struct BackendCounters {
    uint64_t packets = 0;       // both directions
    uint64_t bytes = 0;
    uint64_t new_flows = 0;
    int64_t active_flows = 0;   // this worker's share; may go negative alone, sums are exact
    uint64_t syn_sent = 0;      // SYNs forwarded (passive checks)
    uint64_t synack_seen = 0;   // SYN-ACKs returned
    uint64_t rst_on_syn = 0;    // RST answering a SYN
    uint64_t connect_us_sum = 0;   // SYN forwarded to SYN-ACK returned, microseconds, summed
    uint64_t connect_samples = 0;  // handshakes in connect_us_sum
    void add_relaxed(const BackendCounters& o);
};

// Per-VIP counters of one worker; indexed by stable VIP id.
struct VipCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t new_flows = 0;
    uint64_t no_backend = 0;
    void add_relaxed(const VipCounters& o);
};

template <typename T>
inline T read_relaxed(const T& v) {
    return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

}  // namespace ferry::dp
