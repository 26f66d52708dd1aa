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

void add_counters(rte_tel_data* d, const dp::WorkerCounters& c) {
#define FERRY_ADD(f) rte_tel_data_add_dict_u64(d, #f, c.f);
    FERRY_WORKER_COUNTERS(FERRY_ADD)
#undef FERRY_ADD
    for (size_t i = 0; i < dp::kDropCount; ++i) {
        std::string key = std::string("drop_") + dp::to_string(dp::Drop(i));
        rte_tel_data_add_dict_u64(d, key.c_str(), c.drops[i]);
    }
    rte_tel_data_add_dict_u64(d, "drops", c.total_drops());
}

int cmd_stats(const char*, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    add_counters(d, dp::dataplane().worker_totals());
    rte_tel_data_add_dict_u64(d, "workers", dp::dataplane().worker_count());
    return 0;
}

int cmd_worker(const char*, const char* params, rte_tel_data* d) {
    if (!params || !*params) return -1;
    unsigned long i = strtoul(params, nullptr, 10);
    auto& ws = dp::dataplane().workers();
    if (i >= ws.size()) return -1;
    dp::WorkerCounters c;
    c.add_relaxed(ws[i]->counters);
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
    dp::BackendCounters s = dp::dataplane().backend_totals(uint32_t(id));
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
    rte_tel_data_add_dict_u64(d, "connect_us_sum", s.connect_us_sum);
    rte_tel_data_add_dict_u64(d, "connect_samples", s.connect_samples);
    // Smoothed latencies in microseconds (0: not measured yet).
    auto lat = v.latency.find(uint32_t(id));
    auto us = [&](std::optional<double> ControlPlane::BackendLatency::*f) -> uint64_t {
        if (lat == v.latency.end() || !(lat->second.*f)) return 0;
        return uint64_t(*(lat->second.*f) * 1e6 + 0.5);
    };
    rte_tel_data_add_dict_u64(d, "connect_us", us(&ControlPlane::BackendLatency::connect_s));
    rte_tel_data_add_dict_u64(d, "ttft_us", us(&ControlPlane::BackendLatency::ttft_s));
    rte_tel_data_add_dict_u64(d, "tpot_us", us(&ControlPlane::BackendLatency::tpot_s));
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
