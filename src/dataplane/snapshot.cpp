#include "dataplane/snapshot.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <set>

#include "balance/least_load.hpp"
#include "balance/maglev.hpp"
#include "balance/round_robin.hpp"

namespace ferry::dp {

const char* to_string(BackendState s) {
    switch (s) {
        case BackendState::up: return "up";
        case BackendState::draining: return "draining";
        case BackendState::down: return "down";
        case BackendState::removed: return "removed";
    }
    return "?";
}

uint32_t IdRegistry::backend_id(const Endpoint& e) {
    auto [it, fresh] = backend_ids_.try_emplace(e, uint32_t(backends_.size()));
    if (fresh) backends_.push_back(e);
    return it->second;
}

uint32_t IdRegistry::vip_id(const Endpoint& e, L4Proto proto) {
    auto key = std::make_pair(e, proto);
    auto [it, fresh] = vip_ids_.try_emplace(key, uint32_t(vips_.size()));
    if (fresh) vips_.push_back(key);
    return it->second;
}

uint32_t IdRegistry::find_backend(const Endpoint& e) const {
    auto it = backend_ids_.find(e);
    return it == backend_ids_.end() ? kNone : it->second;
}

uint32_t IdRegistry::find_vip(const Endpoint& e, L4Proto proto) const {
    auto it = vip_ids_.find({e, proto});
    return it == vip_ids_.end() ? kNone : it->second;
}

IdRegistry::Counts IdRegistry::counts_with(const Config& cfg) const {
    std::set<Endpoint> new_backends;
    std::set<std::pair<Endpoint, L4Proto>> new_vips;
    for (const auto& v : cfg.vips) {
        if (find_vip(v.endpoint, v.proto) == kNone) new_vips.insert({v.endpoint, v.proto});
        for (const auto& b : v.backends)
            if (find_backend(b.endpoint) == kNone) new_backends.insert(b.endpoint);
    }
    return Counts{backend_count() + uint32_t(new_backends.size()), vip_count() + uint32_t(new_vips.size())};
}

void Snapshot::build_index() {
    size_t n = 8;
    while (n < vips.size() * 4) n <<= 1;
    index_.assign(n, IndexSlot{});
    vip_addresses_.clear();
    const uint32_t mask = index_mask_ = uint32_t(n - 1);
    index_shift_ = uint32_t(64 - std::countr_zero(n));
    for (uint32_t id = 0; id < vips.size(); ++id) {
        const VipEntry& v = vips[id];
        if (!v.present) continue;
        const uint64_t key = index_key(v.ip, v.port, v.proto);
        uint32_t i = index_home(key);
        while (index_[i].key != 0) i = (i + 1) & mask;
        index_[i] = IndexSlot{key, id};
        if (std::find(vip_addresses_.begin(), vip_addresses_.end(), v.ip) == vip_addresses_.end())
            vip_addresses_.push_back(v.ip);
    }
}

uint32_t effective_weight(const BackendConfig& b, const BackendHealth* health, const BackendAdmin* admin) {
    if (health && health->state != BackendState::up) return 0;
    uint32_t w = b.weight;
    if (admin) {
        if (admin->drained) return 0;
        if (admin->weight_override) w = *admin->weight_override;
        if (w > 0 && admin->weight_factor < 1.0) {
            double scaled = std::ceil(double(w) * std::max(0.0, admin->weight_factor));
            w = std::max<uint32_t>(1, uint32_t(scaled));
        }
    }
    return w;
}

static flow::Timeouts to_timeouts(const FlowTimeouts& t) {
    flow::Timeouts out;
    out.syn_ms = t.tcp_syn * 1000;
    out.established_ms = t.tcp_established * 1000;
    out.closing_ms = t.tcp_closing * 1000;
    out.udp_ms = t.udp * 1000;
    return out;
}

std::shared_ptr<Snapshot> build_snapshot(const Config& cfg, IdRegistry& ids, const RuntimeState& runtime,
                                         const RouteFn& route, uint64_t generation) {
    auto snap = std::make_shared<Snapshot>();
    snap->generation = generation;

    // Register everything first so both arrays can be sized once.
    for (const auto& v : cfg.vips) {
        ids.vip_id(v.endpoint, v.proto);
        for (const auto& b : v.backends) ids.backend_id(b.endpoint);
    }
    snap->vips.resize(ids.vip_count());
    snap->backends.resize(ids.backend_count());

    // Every backend ever seen stays resolvable: flows may still point at it.
    for (uint32_t id = 0; id < ids.backend_count(); ++id) {
        const Endpoint& e = ids.backend(id);
        BackendEntry& be = snap->backends[id];
        be.ip = e.addr.v4_net();
        be.port = htons(e.port);
        NextHop nh = route(be.ip);
        be.egress_port = nh.port;
        be.nexthop_ip = nh.ok ? nh.ip : 0;
        be.known = true;
        be.state = BackendState::removed;
    }

    // A backend in several VIPs: reported state is the best of its VIPs'
    // checks; its flows are cut only when every VIP using it says so.
    std::vector<uint8_t> in_vip(snap->backends.size(), 0), all_cut(snap->backends.size(), 1);
    for (const auto& v : cfg.vips) {
        uint32_t vid = ids.vip_id(v.endpoint, v.proto);
        VipEntry& ve = snap->vips[vid];
        ve.present = true;
        ve.ip = v.endpoint.addr.v4_net();
        ve.port = htons(v.endpoint.port);
        ve.proto = v.proto == L4Proto::tcp ? IPPROTO_TCP : IPPROTO_UDP;
        ve.mode = v.mode;
        ve.hash = v.hash;
        ve.scheduler = v.scheduler;
        ve.timeouts = to_timeouts(v.timeouts);
        ve.name = v.name;

        std::vector<balance::MaglevBackend> mb;
        for (const auto& b : v.backends) {
            uint32_t bid = ids.backend_id(b.endpoint);
            ve.backend_ids.push_back(bid);
            auto h = runtime.health.find({vid, bid});
            const BackendHealth* health = h == runtime.health.end() ? nullptr : &h->second;
            auto a = runtime.admin.find({vid, bid});
            const BackendAdmin* admin = a == runtime.admin.end() ? nullptr : &a->second;
            BackendState st = health ? health->state : BackendState::up;
            BackendEntry& be = snap->backends[bid];
            if (!in_vip[bid] || st < be.state) be.state = st;  // enum order: up best
            in_vip[bid] = 1;
            bool cut = (admin && admin->cut) || (st == BackendState::down && v.down_flows == DownFlowPolicy::drop);
            if (!cut) all_cut[bid] = 0;
            uint32_t w = effective_weight(b, health, admin);
            if (be.nexthop_ip == 0) w = 0;  // unroutable: never chosen
            mb.push_back({b.endpoint, w});
        }
        // The Maglev table is built for every scheduler: ferryctl trace and
        // dnat connections met mid-stream (picked up, or stateless) use it.
        std::vector<uint32_t> table = balance::build_maglev_table(mb, v.table_size);
        ve.table.resize(table.size());
        for (size_t i = 0; i < table.size(); ++i)
            ve.table[i] = table[i] == balance::kNoBackend ? kNone : ve.backend_ids[table[i]];
        std::vector<uint32_t> weights;
        for (const auto& m : mb) weights.push_back(m.weight);
        if (v.scheduler == SchedulerKind::round_robin) {
            for (uint32_t i : balance::build_swrr_sequence(weights)) ve.rr_sequence.push_back(ve.backend_ids[i]);
        } else if (v.scheduler != SchedulerKind::maglev) {
            for (size_t i = 0; i < weights.size(); ++i)
                if (weights[i] > 0) {
                    ve.cand_ids.push_back(ve.backend_ids[i]);
                    ve.cand_weights.push_back(weights[i]);
                }
            ve.cand_cumulative = balance::build_cumulative_weights(ve.cand_weights);
        }
    }
    for (uint32_t id = 0; id < snap->backends.size(); ++id)
        snap->backends[id].drop_flows = in_vip[id] ? all_cut[id] != 0 : runtime.cut_removed.count(id) != 0;
    snap->build_index();
    return snap;
}

}  // namespace ferry::dp
