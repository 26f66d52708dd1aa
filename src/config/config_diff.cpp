#include "config/config_diff.hpp"

#include <map>

namespace ferry {

namespace {

std::string vip_label(const VipConfig& v) { return "VIP " + v.name + " (" + v.endpoint.to_string() + "/" + to_string(v.proto) + ")"; }

bool same_health(const HealthCheckConfig& a, const HealthCheckConfig& b) {
    return a.kind == b.kind && a.port == b.port && a.path == b.path && a.expect_status == b.expect_status &&
           a.interval_ms == b.interval_ms && a.timeout_ms == b.timeout_ms && a.rise == b.rise && a.fall == b.fall;
}

// Everything of a port except nat_addresses, which gets its own message.
bool same_port(const PortConfig& a, const PortConfig& b) {
    return a.name == b.name && a.device == b.device && a.devargs == b.devargs && a.address == b.address &&
           a.gateway == b.gateway && a.mtu == b.mtu && a.exception_path == b.exception_path &&
           a.exception_iface == b.exception_iface;
}

void diff_vip(const VipConfig& a, const VipConfig& b, std::vector<std::string>& out) {
    std::string label = vip_label(b);
    auto changed = [&](bool differs, const std::string& what) {
        if (differs) out.push_back(label + ": " + what + " changed");
    };
    changed(a.mode != b.mode, "mode");
    changed(a.scheduler != b.scheduler, "scheduler");
    changed(a.hash != b.hash, "hash");
    changed(a.table_size != b.table_size, "table_size");
    changed(a.timeouts.tcp_syn != b.timeouts.tcp_syn || a.timeouts.tcp_established != b.timeouts.tcp_established ||
                a.timeouts.tcp_closing != b.timeouts.tcp_closing || a.timeouts.udp != b.timeouts.udp,
            "timeouts");
    changed(!same_health(a.health, b.health), "health check");
    changed(a.down_flows != b.down_flows, "down_flows");
    changed(a.drain_timeout_s != b.drain_timeout_s, "drain_timeout");
    changed(a.load_aware != b.load_aware, "load_aware");
    changed(a.latency_aware != b.latency_aware, "latency_aware");
    changed(a.slow_start_s != b.slow_start_s, "slow_start");

    std::map<Endpoint, const BackendConfig*> old_b, new_b;
    for (const auto& x : a.backends) old_b[x.endpoint] = &x;
    for (const auto& x : b.backends) new_b[x.endpoint] = &x;
    for (const auto& [ep, nb] : new_b) {
        auto it = old_b.find(ep);
        if (it == old_b.end()) {
            out.push_back(label + ": backend " + ep.to_string() + " added (weight " + std::to_string(nb->weight) + ")");
            continue;
        }
        const BackendConfig* ob = it->second;
        if (ob->weight != nb->weight)
            out.push_back(label + ": backend " + ep.to_string() + " weight " + std::to_string(ob->weight) + " -> " +
                          std::to_string(nb->weight));
        bool health_differs = ob->health.has_value() != nb->health.has_value() ||
                              (ob->health && !same_health(*ob->health, *nb->health));
        if (health_differs) out.push_back(label + ": backend " + ep.to_string() + " health check changed");
    }
    for (const auto& [ep, ob] : old_b)
        if (!new_b.count(ep)) out.push_back(label + ": backend " + ep.to_string() + " removed (draining)");
}

}  // namespace

ConfigDiff diff_configs(const Config& running, const Config& next) {
    ConfigDiff d;
    bool ports_same = running.ports.size() == next.ports.size();
    for (size_t i = 0; ports_same && i < next.ports.size(); ++i) ports_same = same_port(running.ports[i], next.ports[i]);
    if (!ports_same) {
        d.restart_needed.push_back("ports changed");
    } else {
        // Live flows keep the index of their NAT source address, and workers size their port
        // allocators by the address count at start: the list is fixed until a restart.
        for (size_t i = 0; i < next.ports.size(); ++i)
            if (running.ports[i].nat_addresses != next.ports[i].nat_addresses)
                d.restart_needed.push_back("port '" + next.ports[i].name + "': nat_addresses changed");
    }
    const WorkerConfig &wa = running.workers, &wb = next.workers;
    if (wa.burst_size != wb.burst_size || wa.flow_capacity != wb.flow_capacity ||
        wa.rx_descriptors != wb.rx_descriptors || wa.tx_descriptors != wb.tx_descriptors || wa.mbufs != wb.mbufs ||
        wa.idle_sleep_us != wb.idle_sleep_us)
        d.restart_needed.push_back("workers settings changed");
    if (running.control.socket_path != next.control.socket_path ||
        running.control.socket_group != next.control.socket_group ||
        running.control.metrics_listen != next.control.metrics_listen)
        d.restart_needed.push_back("control settings changed");

    using Key = std::pair<Endpoint, L4Proto>;
    std::map<Key, const VipConfig*> old_v, new_v;
    for (const auto& v : running.vips) old_v[{v.endpoint, v.proto}] = &v;
    for (const auto& v : next.vips) new_v[{v.endpoint, v.proto}] = &v;
    for (const auto& [k, nv] : new_v) {
        auto it = old_v.find(k);
        if (it == old_v.end())
            d.changes.push_back(vip_label(*nv) + " added with " + std::to_string(nv->backends.size()) + " backend(s)");
        else
            diff_vip(*it->second, *nv, d.changes);
    }
    for (const auto& [k, ov] : old_v)
        if (!new_v.count(k)) d.changes.push_back(vip_label(*ov) + " removed");
    return d;
}

}  // namespace ferry
