// The control API's commands (ferryctl's server side). Runs on the control
// thread, called from ControlServer::poll(), so it may read and change the
// control plane's state directly. Flow listings read the workers' tables
// without stopping them: an entry changing under the read may show a mix of
// old and new values, which is acceptable for a diagnostic listing.
#include <netinet/in.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "config/config_loader.hpp"
#include "control/control_plane.hpp"

namespace ferry::control {

using nlohmann::json;

namespace {

double round2(double v) { return std::round(v * 100) / 100; }

const char* mode_name(ForwardMode m) { return m == ForwardMode::nat ? "nat" : "dnat"; }

const char* scheduler_name(SchedulerKind k) {
    switch (k) {
        case SchedulerKind::maglev: return "maglev";
        case SchedulerKind::round_robin: return "round_robin";
        case SchedulerKind::least_conn: return "least_conn";
        case SchedulerKind::two_choices: return "two_choices";
    }
    return "?";
}

const char* state_name(uint8_t s) {
    switch (flow::FlowState(s)) {
        case flow::FlowState::syn_seen: return "syn_seen";
        case flow::FlowState::established: return "established";
        case flow::FlowState::closing: return "closing";
        case flow::FlowState::udp: return "udp";
    }
    return "?";
}

std::optional<Endpoint> parse_endpoint(const std::string& text) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    auto addr = IpAddr::parse(text.substr(0, colon));
    if (!addr) return std::nullopt;
    try {
        size_t used = 0;
        unsigned long port = std::stoul(text.substr(colon + 1), &used);
        if (used != text.size() - colon - 1 || port == 0 || port > 65535) return std::nullopt;
        return Endpoint{*addr, uint16_t(port)};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string get_string(const json& req, const char* key) {
    auto it = req.find(key);
    if (it == req.end() || !it->is_string()) throw std::runtime_error(std::string("missing argument '") + key + "'");
    return it->get<std::string>();
}

}  // namespace

const VipConfig& ControlPlane::find_vip_config(const std::string& name) const {
    for (const auto& v : cfg_->vips) {
        std::string full = v.endpoint.to_string() + "/" + to_string(v.proto);
        if (v.name == name || full == name || v.endpoint.to_string() == name) return v;
    }
    throw std::runtime_error("no VIP '" + name + "' (give its name or ADDRESS:PORT)");
}

const BackendConfig& ControlPlane::find_backend_config(const VipConfig& vip, const std::string& backend) const {
    auto ep = parse_endpoint(backend);
    if (!ep) throw std::runtime_error("bad backend '" + backend + "': expected ADDRESS:PORT");
    for (const auto& b : vip.backends)
        if (b.endpoint == *ep) return b;
    throw std::runtime_error("VIP " + vip.name + " has no backend " + backend);
}

json ControlPlane::backend_json(const VipConfig& v, uint32_t vid, const BackendConfig& b) {
    uint32_t bid = ids_.backend_id(b.endpoint);
    auto h = runtime_.health.find({vid, bid});
    auto a = runtime_.admin.find({vid, bid});
    const dp::BackendHealth* health = h == runtime_.health.end() ? nullptr : &h->second;
    const dp::BackendAdmin* admin = a == runtime_.admin.end() ? nullptr : &a->second;
    dp::BackendCounters c = dp_.backend_totals(bid);
    json j;
    j["vip"] = v.name;
    j["address"] = b.endpoint.to_string();
    std::string state = dp::to_string(health ? health->state : dp::BackendState::up);
    if (admin && admin->drained) state = "drained";
    j["state"] = state;
    j["weight"] = admin && admin->weight_override ? *admin->weight_override : b.weight;
    j["effective_weight"] = dp::effective_weight(b, health, admin);
    j["reason"] = reason_of(vid, bid);
    j["active_flows"] = c.active_flows;
    j["new_flows"] = c.new_flows;
    j["packets"] = c.packets;
    j["bytes"] = c.bytes;
    // Response times in ms, null until measured.
    const std::optional<double> rtt = rtt_ms_of(vid, bid);
    j["rtt_ms"] = rtt ? json(*rtt) : json(nullptr);
    BackendLatency lat = latency_of(b);
    auto ms = [](const std::optional<double>& s) { return s ? json(std::round(*s * 1e6) / 1e3) : json(nullptr); };
    j["connect_ms"] = ms(lat.connect_s);
    j["ttft_ms"] = ms(lat.ttft_s);
    j["tpot_ms"] = ms(lat.tpot_s);
    j["connect_samples"] = c.connect_samples;
    auto lf = load_factor_.find(bid);
    j["load_factor"] = v.load_aware.enabled && lf != load_factor_.end() ? lf->second : 1.0;
    auto lt = latency_.find({vid, bid});
    j["latency_factor"] = lt != latency_.end() ? lt->second.factor.published() : 1.0;
    return j;
}

json ControlPlane::handle(const json& req) {
    std::string cmd = get_string(req, "cmd");
    json out = {{"ok", true}};

    if (cmd == "status") {
        auto now = std::chrono::steady_clock::now();
        out["version"] = FERRY_VERSION;
        out["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(now - started_).count();
        out["workers"] = dp_.worker_count();
        json ports = json::array();
        for (size_t i = 0; i < dp_.ports().size(); ++i) {
            const auto& p = dp_.ports()[i];
            char mac[18];
            snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4],
                     p.mac[5]);
            json nat = json::array();
            for (const auto& a : cfg_->ports[i].nat_addresses) nat.push_back(a.to_string());
            ports.push_back({{"name", p.name},
                             {"device", cfg_->ports[i].device},
                             {"address", cfg_->ports[i].address.to_string()},
                             {"nat_addresses", nat},
                             {"mac", mac},
                             {"host_interface", p.has_exception ? p.exception_iface : ""}});
        }
        out["ports"] = ports;
        out["config_file"] = cfg_->file;
        out["config_loaded_at"] = std::chrono::duration_cast<std::chrono::seconds>(loaded_at_.time_since_epoch()).count();
        out["generation"] = generation_;
        return out;
    }
    if (cmd == "vips") {
        json vips = json::array();
        for (const auto& v : cfg_->vips) {
            uint32_t vid = ids_.vip_id(v.endpoint, v.proto);
            dp::VipCounters vc = dp_.vip_totals(vid);
            uint64_t new_flows = vc.new_flows, packets = vc.packets;
            int64_t active = 0;
            for (const auto& b : v.backends) active += dp_.backend_totals(ids_.backend_id(b.endpoint)).active_flows;
            vips.push_back({{"name", v.name},
                            {"address", v.endpoint.addr.to_string()},
                            {"port", v.endpoint.port},
                            {"proto", to_string(v.proto)},
                            {"mode", mode_name(v.mode)},
                            {"scheduler", scheduler_name(v.scheduler)},
                            {"backends", v.backends.size()},
                            {"active_flows", active},
                            {"new_flows", new_flows},
                            {"packets", packets}});
        }
        out["vips"] = vips;
        return out;
    }
    if (cmd == "backends") {
        json list = json::array();
        std::string only = req.value("vip", "");
        for (const auto& v : cfg_->vips) {
            if (!only.empty() && &find_vip_config(only) != &v) continue;
            uint32_t vid = ids_.vip_id(v.endpoint, v.proto);
            for (const auto& b : v.backends) list.push_back(backend_json(v, vid, b));
        }
        out["backends"] = list;
        return out;
    }
    if (cmd == "stats") {
        json counters = json::object(), drops = json::object(), workers = json::array();
        for (auto& w : dp_.workers()) {
            dp::WorkerCounters c;
            c.add_relaxed(w->counters);
            workers.push_back({{"worker", w->index},
                               {"lcore", w->lcore},
                               {"rx_packets", c.rx_packets},
                               {"tx_packets", c.tx_packets},
                               {"flow_entries", c.flow_entries},
                               {"handoff_in", c.handoff_in},
                               {"handoff_out", c.handoff_out},
                               {"drops", c.total_drops()},
                               {"cycles_per_packet", round2(dp::cycles_per_packet(c).total)}});
        }
        dp::WorkerCounters total = dp_.worker_totals();
        const dp::CyclesPerPacket cpp = dp::cycles_per_packet(total);
        out["cycles_per_packet"] = {{"rx", round2(cpp.rx)},       {"process", round2(cpp.process)},
                                    {"tx", round2(cpp.tx)},       {"other", round2(cpp.other)},
                                    {"total", round2(cpp.total)}, {"tsc_hz", rte_get_tsc_hz()}};
#define FERRY_PUT(f) counters[#f] = total.f;
        FERRY_WORKER_COUNTERS(FERRY_PUT)
#undef FERRY_PUT
        for (size_t i = 0; i < dp::kDropCount; ++i) drops[dp::to_string(dp::Drop(i))] = total.drops[i];
        out["counters"] = counters;
        out["drops"] = drops;
        out["workers"] = workers;
        return out;
    }
    if (cmd == "flows") {
        size_t limit = req.value("limit", 100u);
        std::string vip_filter = req.value("vip", ""), backend_filter = req.value("backend", "");
        std::optional<uint32_t> vid_only, bid_only;
        if (!vip_filter.empty()) {
            const VipConfig& v = find_vip_config(vip_filter);
            vid_only = ids_.vip_id(v.endpoint, v.proto);
        }
        if (!backend_filter.empty()) {
            auto ep = parse_endpoint(backend_filter);
            if (!ep) throw std::runtime_error("bad backend '" + backend_filter + "': expected ADDRESS:PORT");
            bid_only = ids_.find_backend(*ep);
        }
        uint32_t now = uint32_t(rte_get_tsc_cycles() / (rte_get_tsc_hz() / 1000));
        json flows = json::array();
        const std::vector<uint32_t>& local_ips = dp_.local_ips();
        for (auto& w : dp_.workers()) {
            w->flows->for_each([&](uint32_t, const flow::FlowEntry& e) {
                if (flows.size() >= limit || e.value.is_reply) return;
                if (vid_only && e.value.vip_id != *vid_only) return;
                if (bid_only && e.value.backend_id != *bid_only) return;
                IpAddr client = IpAddr::v4_net(e.key.src_v4()), vip = IpAddr::v4_net(e.key.dst_v4());
                std::string backend = e.value.backend_id < ids_.backend_count()
                                          ? ids_.backend(e.value.backend_id).to_string()
                                          : "?";
                json local = nullptr;  // full NAT: the source the backend sees (a Ferry address and port)
                if (e.value.nat_port != 0 && e.value.nat_addr < local_ips.size())
                    local = Endpoint{IpAddr::v4_net(local_ips[e.value.nat_addr]), ntohs(e.value.nat_port)}.to_string();
                flows.push_back({{"client", Endpoint{client, ntohs(e.key.src_port)}.to_string()},
                                 {"vip", Endpoint{vip, ntohs(e.key.dst_port)}.to_string()},
                                 {"proto", e.key.proto == IPPROTO_TCP ? "tcp" : "udp"},
                                 {"backend", backend},
                                 {"state", state_name(e.value.state)},
                                 {"local", local},
                                 {"age_s", (now - e.value.created) / 1000},
                                 {"idle_s", (now - e.value.last_seen) / 1000},
                                 {"worker", w->index}});
            });
        }
        out["flows"] = flows;
        return out;
    }
    if (cmd == "trace") {
        auto src = parse_endpoint(get_string(req, "src")), dst = parse_endpoint(get_string(req, "dst"));
        std::string proto = req.value("proto", "tcp");
        if (!src || !dst || !src->addr.is_v4() || !dst->addr.is_v4())
            throw std::runtime_error("trace needs SRC:PORT DST:PORT with IPv4 addresses");
        if (proto != "tcp" && proto != "udp") throw std::runtime_error("protocol must be tcp or udp");
        uint8_t p = proto == "tcp" ? IPPROTO_TCP : IPPROTO_UDP;
        const dp::Snapshot* snap = current_.get();
        uint32_t vid = snap->find_vip(dst->addr.v4_net(), htons(dst->port), p);
        out["vip"] = vid == dp::kNone ? json(nullptr) : json(snap->vips[vid].name);
        if (vid == dp::kNone) {
            out["backend"] = nullptr;
            out["reason"] = "no VIP at " + dst->to_string() + "/" + proto + ": not balanced (host traffic)";
            return out;
        }
        flow::FlowKey key = flow::FlowKey::v4(src->addr.v4_net(), dst->addr.v4_net(), htons(src->port),
                                              htons(dst->port), p);
        for (auto& w : dp_.workers()) {
            uint32_t slot = w->flows->lookup(key);
            if (slot == flow::kNoPeer) continue;
            const flow::FlowEntry& e = w->flows->entry(slot);
            // Read while the worker may change it: the id is read once and checked before it is used.
            const uint32_t bid = e.value.backend_id;
            out["backend"] = bid < ids_.backend_count() ? json(ids_.backend(bid).to_string()) : json(nullptr);
            out["reason"] = "existing flow on worker " + std::to_string(w->index) + " (" +
                            state_name(e.value.state) + "): a connection stays on its backend";
            out["worker"] = w->index;
            return out;
        }
        const dp::VipEntry& v = snap->vips[vid];
        const uint32_t slot = v.table.empty() ? 0
                                              : v.table_slot_of(src->addr.v4_net(), dst->addr.v4_net(),
                                                                htons(src->port), htons(dst->port), p);
        const uint32_t bid = v.table.empty() ? dp::kNone : v.table[slot];
        out["slot"] = slot;
        out["backend"] = bid == dp::kNone ? json(nullptr) : json(ids_.backend(bid).to_string());
        out["reason"] = bid == dp::kNone ? "no usable backend: new flows are dropped"
                                         : "new flow: maglev table slot " + std::to_string(slot) + " of " +
                                               std::to_string(v.table.size()) +
                                               (v.hash == HashKey::source_ip ? " (source-ip hash)" : " (5-tuple hash)");
        return out;
    }
    if (cmd == "weight" || cmd == "drain" || cmd == "undrain") {
        const VipConfig& v = find_vip_config(get_string(req, "vip"));
        const BackendConfig& b = find_backend_config(v, get_string(req, "backend"));
        uint32_t vid = ids_.vip_id(v.endpoint, v.proto), bid = ids_.backend_id(b.endpoint);
        dp::BackendAdmin& a = runtime_.admin[{vid, bid}];
        // Kept to put back if the change cannot be published: a refused command changes nothing.
        const dp::BackendAdmin admin_before = a;
        const auto started = drain_started_.find({vid, bid});
        const std::optional<uint64_t> drain_started_before =
            started == drain_started_.end() ? std::nullopt : std::optional<uint64_t>(started->second);
        if (cmd == "weight") {
            auto it = req.find("weight");
            if (it == req.end() || !it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 65535)
                throw std::runtime_error("weight must be an integer 0..65535");
            a.weight_override = uint32_t(it->get<int64_t>());
            FERRY_LOG(INFO, "weight of %s in VIP %s set to %u by operator", b.endpoint.to_string().c_str(),
                      v.name.c_str(), *a.weight_override);
        } else if (cmd == "drain") {
            if (!a.drained) {
                a.drained = true;
                drain_started_[{vid, bid}] = monotonic_ms();
                FERRY_LOG(INFO, "drain of %s in VIP %s started by operator: no new flows; existing flows kept up to %u s",
                          b.endpoint.to_string().c_str(), v.name.c_str(), v.drain_timeout_s);
            }
        } else {
            a.drained = false;
            a.cut = false;
            drain_started_.erase({vid, bid});
            FERRY_LOG(INFO, "drain of %s in VIP %s ended by operator", b.endpoint.to_string().c_str(), v.name.c_str());
        }
        try {
            publish();
        } catch (...) {
            a = admin_before;
            if (drain_started_before)
                drain_started_[{vid, bid}] = *drain_started_before;
            else
                drain_started_.erase({vid, bid});
            throw;
        }
        out["backend"] = backend_json(v, vid, b);
        return out;
    }
    if (cmd == "reload") {
        ReloadResult r = reload_config();
        out["ok"] = r.ok;
        out["changes"] = r.changes;
        out["apply_ms"] = r.apply_ms;
        if (!r.ok) {
            out["error"] = "reload refused; still serving the running configuration";
            out["errors"] = r.errors;
        }
        return out;
    }
    if (cmd == "check_config") {
        std::string file = req.value("file", cfg_->file);
        ConfigLoadResult r = load_config_file(file);
        if (!r.ok()) {
            out["ok"] = false;
            out["error"] = file + ": configuration refused";
            json errs = json::array();
            for (const auto& e : r.errors) errs.push_back(e.to_string());
            out["errors"] = errs;
        } else {
            out["file"] = file;
            out["vips"] = r.config->vips.size();
        }
        return out;
    }
    throw std::runtime_error("unknown command '" + cmd + "'");
}

}  // namespace ferry::control
