#include "control/telemetry.hpp"

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include <cstdlib>
#include <string>

#include "control/control_plane.hpp"
#include "dataplane/dataplane.hpp"

namespace ferry::control {

namespace {

ControlPlane* g_cp = nullptr;

dp::WorkerCounters sum_workers() {
    dp::WorkerCounters s;
    for (auto& w : dp::dataplane().workers()) {
        const dp::WorkerCounters& c = w->counters;
#define FERRY_SUM(f) s.f += dp::read_relaxed(c.f)
        FERRY_SUM(rx_packets); FERRY_SUM(rx_bytes); FERRY_SUM(tx_packets); FERRY_SUM(tx_bytes);
        FERRY_SUM(forwarded); FERRY_SUM(flows_created); FERRY_SUM(flow_miss_syn); FERRY_SUM(flow_miss_non_syn);
        FERRY_SUM(flow_miss_udp); FERRY_SUM(flows_expired); FERRY_SUM(flows_closed); FERRY_SUM(stateless);
        FERRY_SUM(handoff_out); FERRY_SUM(handoff_in); FERRY_SUM(to_exception); FERRY_SUM(from_exception);
        FERRY_SUM(arp_replies); FERRY_SUM(icmp_echo_replies); FERRY_SUM(neighbour_requests);
        FERRY_SUM(flow_entries);
#undef FERRY_SUM
        for (size_t i = 0; i < dp::kDropCount; ++i) s.drops[i] += dp::read_relaxed(c.drops[i]);
    }
    return s;
}

void add_counters(rte_tel_data* d, const dp::WorkerCounters& c) {
#define FERRY_ADD(f) rte_tel_data_add_dict_u64(d, #f, c.f)
    FERRY_ADD(rx_packets); FERRY_ADD(rx_bytes); FERRY_ADD(tx_packets); FERRY_ADD(tx_bytes);
    FERRY_ADD(forwarded); FERRY_ADD(flows_created); FERRY_ADD(flow_miss_syn); FERRY_ADD(flow_miss_non_syn);
    FERRY_ADD(flow_miss_udp); FERRY_ADD(flows_expired); FERRY_ADD(flows_closed); FERRY_ADD(stateless);
    FERRY_ADD(handoff_out); FERRY_ADD(handoff_in); FERRY_ADD(to_exception); FERRY_ADD(from_exception);
    FERRY_ADD(arp_replies); FERRY_ADD(icmp_echo_replies); FERRY_ADD(neighbour_requests);
    FERRY_ADD(flow_entries);
#undef FERRY_ADD
    uint64_t total = 0;
    for (size_t i = 0; i < dp::kDropCount; ++i) {
        total += c.drops[i];
        std::string key = std::string("drop_") + dp::to_string(dp::Drop(i));
        rte_tel_data_add_dict_u64(d, key.c_str(), c.drops[i]);
    }
    rte_tel_data_add_dict_u64(d, "drops", total);
}

int cmd_stats(const char*, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    add_counters(d, sum_workers());
    rte_tel_data_add_dict_u64(d, "workers", dp::dataplane().worker_count());
    return 0;
}

int cmd_worker(const char*, const char* params, rte_tel_data* d) {
    if (!params || !*params) return -1;
    unsigned long i = strtoul(params, nullptr, 10);
    auto& ws = dp::dataplane().workers();
    if (i >= ws.size()) return -1;
    dp::WorkerCounters c;
    const dp::WorkerCounters& src = ws[i]->counters;
    c = src;  // a racy copy is fine for a report; fields are 64-bit and aligned
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "lcore", ws[i]->lcore);
    add_counters(d, c);
    return 0;
}

int cmd_backends(const char*, const char*, rte_tel_data* d) {
    auto v = g_cp->view();
    rte_tel_data_start_dict(d);
    for (uint32_t id = 0; id < v.backend_endpoints.size(); ++id) {
        std::string key = "b" + std::to_string(id);
        rte_tel_data_add_dict_string(d, key.c_str(), v.backend_endpoints[id].to_string().c_str());
    }
    return 0;
}

int cmd_backend(const char*, const char* params, rte_tel_data* d) {
    if (!params || !*params) return -1;
    unsigned long id = strtoul(params, nullptr, 10);
    auto v = g_cp->view();
    if (id >= v.backend_endpoints.size() || !v.snapshot || id >= v.snapshot->backends.size()) return -1;
    dp::BackendCounters s;
    for (auto& w : dp::dataplane().workers()) {
        const dp::BackendCounters& c = w->backend_counters[id];
        s.packets += dp::read_relaxed(c.packets);
        s.bytes += dp::read_relaxed(c.bytes);
        s.new_flows += dp::read_relaxed(c.new_flows);
        s.active_flows += dp::read_relaxed(c.active_flows);
        s.syn_sent += dp::read_relaxed(c.syn_sent);
        s.synack_seen += dp::read_relaxed(c.synack_seen);
        s.rst_on_syn += dp::read_relaxed(c.rst_on_syn);
    }
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "address", v.backend_endpoints[id].to_string().c_str());
    rte_tel_data_add_dict_string(d, "state", dp::to_string(v.snapshot->backends[id].state));
    rte_tel_data_add_dict_u64(d, "packets", s.packets);
    rte_tel_data_add_dict_u64(d, "bytes", s.bytes);
    rte_tel_data_add_dict_u64(d, "new_flows", s.new_flows);
    rte_tel_data_add_dict_int(d, "active_flows", int(s.active_flows));
    rte_tel_data_add_dict_u64(d, "syn_sent", s.syn_sent);
    rte_tel_data_add_dict_u64(d, "synack_seen", s.synack_seen);
    rte_tel_data_add_dict_u64(d, "rst_on_syn", s.rst_on_syn);
    return 0;
}

int cmd_vips(const char*, const char*, rte_tel_data* d) {
    auto v = g_cp->view();
    rte_tel_data_start_dict(d);
    for (const auto& vip : v.config->vips) {
        std::string key;
        for (char ch : vip.name) key += (isalnum(static_cast<unsigned char>(ch)) || ch == '_') ? ch : '_';
        std::string val = vip.endpoint.to_string() + "/" + to_string(vip.proto) + " " +
                          (vip.mode == ForwardMode::nat ? "nat" : "dnat") + " backends=" +
                          std::to_string(vip.backends.size());
        rte_tel_data_add_dict_string(d, key.c_str(), val.c_str());
    }
    return 0;
}

}  // namespace

void register_telemetry(ControlPlane& cp) {
    g_cp = &cp;
    rte_telemetry_register_cmd("/ferry/stats", cmd_stats, "Ferry counters summed over workers. No parameters");
    rte_telemetry_register_cmd("/ferry/worker", cmd_worker, "One worker's counters. Parameter: worker index");
    rte_telemetry_register_cmd("/ferry/backends", cmd_backends, "Backend ids and addresses. No parameters");
    rte_telemetry_register_cmd("/ferry/backend", cmd_backend, "One backend's state and counters. Parameter: id");
    rte_telemetry_register_cmd("/ferry/vips", cmd_vips, "Configured VIPs. No parameters");
}

}  // namespace ferry::control
