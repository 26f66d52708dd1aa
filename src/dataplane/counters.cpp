#include "dataplane/counters.hpp"

namespace ferry::dp {

const char* to_string(Drop d) {
    if (uint8_t(d) < uint8_t(packet::ParseResult::count_)) return packet::to_string(packet::ParseResult(uint8_t(d)));
    switch (d) {
        case Drop::no_vip_port: return "no_vip_port";
        case Drop::vip_fragment: return "vip_fragment";
        case Drop::vip_ip_options: return "vip_ip_options";
        case Drop::no_backend: return "no_backend";
        case Drop::tcp_no_flow: return "tcp_no_flow";
        case Drop::flow_table_full: return "flow_table_full";
        case Drop::nat_ports_exhausted: return "nat_ports_exhausted";
        case Drop::no_route: return "no_route";
        case Drop::no_neighbour: return "no_neighbour";
        case Drop::tx_full: return "tx_full";
        case Drop::handoff_full: return "handoff_full";
        case Drop::exception_unavailable: return "exception_unavailable";
        case Drop::icmp_unhandled: return "icmp_unhandled";
        case Drop::nat_no_flow: return "nat_no_flow";
        default: return "unknown";
    }
}

void WorkerCounters::add_relaxed(const WorkerCounters& o) {
#define FERRY_ADD_ONE(f) f += read_relaxed(o.f);
    FERRY_WORKER_COUNTERS(FERRY_ADD_ONE)
#undef FERRY_ADD_ONE
    for (size_t i = 0; i < kDropCount; ++i) drops[i] += read_relaxed(o.drops[i]);
}

uint64_t WorkerCounters::total_drops() const {
    uint64_t n = 0;
    for (uint64_t d : drops) n += d;
    return n;
}

CyclesPerPacket cycles_per_packet(const WorkerCounters& c) {
    CyclesPerPacket r;
    if (c.rx_packets == 0) return r;
    const double n = double(c.rx_packets);
    r.rx = double(c.cycles_rx) / n;
    r.process = double(c.cycles_process) / n;
    r.tx = double(c.cycles_tx) / n;
    r.other = double(c.cycles_other) / n;
    r.total = r.rx + r.process + r.tx + r.other;
    return r;
}

void BackendCounters::add_relaxed(const BackendCounters& o) {
    packets += read_relaxed(o.packets);
    bytes += read_relaxed(o.bytes);
    new_flows += read_relaxed(o.new_flows);
    active_flows += read_relaxed(o.active_flows);
    syn_sent += read_relaxed(o.syn_sent);
    synack_seen += read_relaxed(o.synack_seen);
    rst_on_syn += read_relaxed(o.rst_on_syn);
    connect_us_sum += read_relaxed(o.connect_us_sum);
    connect_samples += read_relaxed(o.connect_samples);
}

void VipCounters::add_relaxed(const VipCounters& o) {
    packets += read_relaxed(o.packets);
    bytes += read_relaxed(o.bytes);
    new_flows += read_relaxed(o.new_flows);
    no_backend += read_relaxed(o.no_backend);
}

}  // namespace ferry::dp
