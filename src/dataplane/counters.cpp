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
        default: return "unknown";
    }
}

}  // namespace ferry::dp
