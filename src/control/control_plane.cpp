#include "control/control_plane.hpp"

#include <rte_cycles.h>

#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <set>

#include "balance/load_factor.hpp"
#include "config/config_diff.hpp"
#include "config/config_loader.hpp"
#include "dataplane/log.hpp"
#include "ops/idle_backoff.hpp"
#include "packet/packet.hpp"

namespace ferry::control {

namespace {
constexpr uint64_t kRefreshMs = 30'000;        // re-confirm a neighbour this often
constexpr uint64_t kRetryMs = 1'000;           // between unanswered requests
constexpr uint32_t kMaxUnanswered = 3;         // then the entry expires
constexpr uint64_t kResolveHoldMs = 200;       // one on-demand request per hop per this

std::string ip_str(uint32_t ip_net) { return IpAddr::v4_net(ip_net).to_string(); }
}  // namespace

uint64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1'000'000;
}

ControlPlane::ControlPlane(dp::Dataplane& dp, std::shared_ptr<const Config> cfg) : dp_(dp), cfg_(std::move(cfg)) {}

ControlPlane::~ControlPlane() {
    if (metrics_) metrics_->stop();
    if (server_) server_->stop();
    checker_.stop();
    load_scraper_.stop();
    reclaim(true);
}

const dp::PortInfo* ControlPlane::port_for(uint32_t ip) const {
    IpAddr a = IpAddr::v4_net(ip);
    for (size_t i = 0; i < cfg_->ports.size(); ++i)
        if (cfg_->ports[i].address.contains(a)) return &dp_.ports()[i];
    return nullptr;
}

void ControlPlane::publish() {
    auto route = [this](uint32_t ip) { return dp_.routes().lookup(ip); };
    // Checked before anything is registered: ids are never given back, so a refused config must
    // not spend any, or every later publish (a health change, a drain) would be refused too.
    const dp::IdRegistry::Counts n = ids_.counts_with(*cfg_);
    if (n.backends > dp::kMaxBackends || n.vips > dp::kMaxVips)
        throw std::runtime_error("the config needs " + std::to_string(n.backends) + " backend and " +
                                 std::to_string(n.vips) + " VIP ids, over this process's limit of " +
                                 std::to_string(dp::kMaxBackends) + " and " + std::to_string(dp::kMaxVips) +
                                 " (each backend and VIP ever configured keeps its id until ferryd restarts)");
    std::unique_lock<std::mutex> lock(view_mutex_);  // ids_ and current_ are read by view()
    auto next = dp::build_snapshot(*cfg_, ids_, runtime_, route, generation_ + 1);
    for (auto& be : next->backends) {
        if (!be.known || be.nexthop_ip == 0) continue;
        want_neighbour(be.nexthop_ip, be.egress_port);
        be.neighbour_slot = dp_.neighbours().slot_of(be.nexthop_ip);
    }
    ++generation_;
    rows_.clear();
    for (const auto& v : cfg_->vips) {
        uint32_t vid = ids_.vip_id(v.endpoint, v.proto);
        for (const auto& b : v.backends) {
            uint32_t bid = ids_.backend_id(b.endpoint);
            auto h = runtime_.health.find({vid, bid});
            auto a = runtime_.admin.find({vid, bid});
            const dp::BackendHealth* health = h == runtime_.health.end() ? nullptr : &h->second;
            const dp::BackendAdmin* admin = a == runtime_.admin.end() ? nullptr : &a->second;
            std::string state = dp::to_string(health ? health->state : dp::BackendState::up);
            if (admin && admin->drained) state = "drained";
            uint32_t weight = admin && admin->weight_override ? *admin->weight_override : b.weight;
            BackendRow row{v.name, b.endpoint.to_string(), state, weight, dp::effective_weight(b, health, admin)};
            if (auto lf = load_factor_.find(bid); v.load_aware.enabled && lf != load_factor_.end())
                row.load_factor = lf->second;
            if (auto lt = latency_.find({vid, bid}); lt != latency_.end()) row.latency_factor = lt->second.factor.published();
            rows_.push_back(std::move(row));
        }
    }
    dp_.publish(next.get());
    if (current_) retired_.emplace_back(std::move(current_), dp_.rcu_token());
    current_ = std::move(next);
    lock.unlock();
    reclaim(false);
}

void ControlPlane::reclaim(bool wait_all) {
    auto it = retired_.begin();
    while (it != retired_.end()) {
        if (wait_all || dp_.rcu_done(it->second)) {
            it = retired_.erase(it);  // no worker can still hold it
        } else {
            ++it;
        }
    }
}

void ControlPlane::want_neighbour(uint32_t ip, uint16_t port) {
    auto [it, fresh] = neighbours_.try_emplace(ip);
    if (fresh) {
        it->second.port = port;
        dp_.neighbours().add_unresolved(ip);
    }
}

void ControlPlane::send_arp_request(uint16_t port_id, uint32_t target_ip) {
    const dp::PortInfo* port = dp_.port_by_id(port_id);
    if (!port) return;
    uint8_t frame[64];
    size_t len = packet::build_arp_request(frame, port->mac, port->ip, target_ip);
    dp_.send_from_control(port_id, frame, len);
}

void ControlPlane::announce() {
    // Gratuitous ARP for our addresses (the port's own and its NAT addresses)
    // and the VIPs in each port's subnet, so peers that cached another MAC (a
    // previous instance) move at once.
    for (size_t i = 0; i < cfg_->ports.size(); ++i) {
        const dp::PortInfo& port = dp_.ports()[i];
        const auto gratuitous = [&](uint32_t ip) {  // sender and target: the announced address
            uint8_t frame[64];
            size_t len = packet::build_arp_request(frame, port.mac, ip, ip);
            dp_.send_from_control(port.port_id, frame, len);
        };
        gratuitous(port.ip);
        for (uint32_t nat : port.nat_ips) gratuitous(nat);
        for (const auto& v : cfg_->vips)
            if (cfg_->ports[i].address.contains(v.endpoint.addr)) gratuitous(v.endpoint.addr.v4_net());
    }
}

void ControlPlane::start() {
    loaded_at_ = std::chrono::system_clock::now();
    for (size_t i = 0; i < cfg_->ports.size(); ++i)
        if (cfg_->ports[i].gateway) want_neighbour(cfg_->ports[i].gateway->v4_net(), dp_.ports()[i].port_id);
    publish();
    announce();
    checker_.set_targets(*cfg_);
    checker_.start();
    load_scraper_.set_targets(*cfg_);
    load_scraper_.start();
    if (!cfg_->control.socket_path.empty()) {
        server_ = std::make_unique<ops::ControlServer>(
            cfg_->control, [this](const nlohmann::json& req) { return handle(req); }, ops::ControlServer::Limits{},
            [](const std::string& msg) { FERRY_LOG(WARNING, "control socket: %s", msg.c_str()); });
        server_->start();
    }
    if (!cfg_->control.metrics_listen.empty()) {
        metrics_ = std::make_unique<ops::MetricsServer>(cfg_->control.metrics_listen,
                                                        [this] { return render_metrics(); });
        metrics_->start();
        FERRY_LOG(INFO, "Prometheus metrics on http://%s/metrics", cfg_->control.metrics_listen.c_str());
    }
}

std::vector<dp::VipBackend> ControlPlane::pairs_of(const health::TargetKey& key) const {
    std::vector<dp::VipBackend> out;
    for (const auto& v : cfg_->vips)
        for (const auto& b : v.backends)
            if (health::make_target_key(b, v) == key)
                out.emplace_back(ids_.find_vip(v.endpoint, v.proto),
                                 ids_.find_backend(b.endpoint));
    return out;
}

static dp::BackendState to_backend_state(health::State s) {
    switch (s) {
        case health::State::draining: return dp::BackendState::draining;
        case health::State::down: return dp::BackendState::down;
        default: return dp::BackendState::up;
    }
}

void ControlPlane::tick_health(uint64_t) {
    bool changed = false;
    for (const auto& ev : checker_.take_events()) {
        dp::BackendState next = to_backend_state(ev.to);
        for (const auto& pair : pairs_of(ev.target)) {
            dp::BackendState& cur = runtime_.health[pair].state;
            health_reason_[pair] = ev.reason;
            if (cur == next) continue;
            FERRY_LOG(NOTICE, "backend %s in VIP %s: %s -> %s (%s: %s)", ids_.backend(pair.second).to_string().c_str(),
                      current_->vips[pair.first].name.c_str(), dp::to_string(cur), dp::to_string(next),
                      ev.target.to_string().c_str(), ev.reason.c_str());
            if (next == dp::BackendState::up) begin_slow_start(pair, "recovered");
            cur = next;
            changed = true;
        }
    }
    if (changed) publish();
}

// Passive checks: the data plane counts, per backend, SYNs forwarded, SYN-ACKs
// returned and RSTs answering a SYN. A second with several SYNs and no SYN-ACK
// (or several RSTs) counts as one failed check of every target of that backend.
void ControlPlane::tick_passive(uint64_t now_ms) {
    if (now_ms - last_passive_ms_ < 1000) return;
    last_passive_ms_ = now_ms;
    constexpr uint64_t kMinSyns = 3;
    for (const auto& v : cfg_->vips) {
        if (v.proto != L4Proto::tcp) continue;
        for (const auto& b : v.backends) {
            uint32_t bid = ids_.backend_id(b.endpoint);
            auto [it, fresh] = passive_.try_emplace(bid);
            dp::BackendCounters c = dp_.backend_totals(bid);
            PassiveSample& last = it->second;
            if (!fresh) {
                uint64_t syns = c.syn_sent - last.syn_sent, acks = c.synack_seen - last.synack_seen,
                         rsts = c.rst_on_syn - last.rst_on_syn;
                std::string reason;
                if (syns >= kMinSyns && acks == 0)
                    reason = "passive: " + std::to_string(syns) + " SYNs without a SYN-ACK in 1 s";
                else if (rsts >= kMinSyns)
                    reason = "passive: " + std::to_string(rsts) + " RSTs answering SYNs in 1 s";
                if (!reason.empty()) checker_.report_passive_failure(health::make_target_key(b, v), reason);
            }
            last = PassiveSample{c.syn_sent, c.synack_seen, c.rst_on_syn};
        }
    }
}

// Drops an operator must hear about, logged at most once per 10 s each, with
// how many happened since the last line.
void ControlPlane::tick_drop_warnings(uint64_t now_ms) {
    static constexpr struct {
        dp::Drop drop;
        const char* advice;
    } kWatched[] = {
        {dp::Drop::nat_ports_exhausted, "no free full-NAT source port: add addresses/workers or shorten timeouts"},
        {dp::Drop::flow_table_full, "flow table full: raise workers.flow_capacity or shorten timeouts"},
        {dp::Drop::handoff_full, "hand-off ring between workers full: workers are overloaded"},
        {dp::Drop::no_neighbour, "next hop did not answer ARP in time"},
        {dp::Drop::no_backend, "a VIP has no usable backend"},
    };
    if (now_ms - last_drop_check_ms_ < 10'000) return;
    last_drop_check_ms_ = now_ms;
    for (const auto& wd : kWatched) {
        uint64_t total = 0;
        for (auto& w : dp_.workers()) total += dp::read_relaxed(w->counters.drops[size_t(wd.drop)]);
        uint64_t& last = last_drop_totals_[size_t(wd.drop)];
        if (total > last)
            FERRY_LOG(WARNING, "%lu packet(s) dropped (%s) in the last 10 s: %s", (unsigned long)(total - last),
                      dp::to_string(wd.drop), wd.advice);
        last = total;
    }
}

// Load-aware weights: take the scraper's new factors (by backend endpoint).
void ControlPlane::tick_load(uint64_t) {
    for (const auto& ev : load_scraper_.take_events()) {
        uint32_t bid = ids_.find_backend(ev.backend);
        if (bid == dp::kNone) continue;
        double old = load_factor_.count(bid) ? load_factor_[bid] : 1.0;
        load_factor_[bid] = ev.factor;
        load_reason_[bid] = ev.reason;
        // Scraped for latency only (load_aware off): the factor is not used, so not logged.
        bool used = false;
        for (const auto& v : cfg_->vips)
            if (v.load_aware.enabled)
                for (const auto& b : v.backends) used = used || b.endpoint == ev.backend;
        if (used && std::abs(old - ev.factor) >= 0.01)
            FERRY_LOG(INFO, "backend %s load factor %.2f -> %.2f (%s)", ev.backend.to_string().c_str(), old, ev.factor,
                      ev.reason.c_str());
    }
}

const VipConfig* ControlPlane::vip_config(uint32_t vid) const {
    for (const auto& v : cfg_->vips)
        if (ids_.find_vip(v.endpoint, v.proto) == vid) return &v;
    return nullptr;
}

void ControlPlane::begin_slow_start(dp::VipBackend pair, const char* why) {
    const VipConfig* v = vip_config(pair.first);
    if (!v || v->slow_start_s == 0) return;
    slow_start_since_[pair] = monotonic_ms();
    FERRY_LOG(INFO, "backend %s in VIP %s %s: slow start over %u s", ids_.backend(pair.second).to_string().c_str(),
              v->name.c_str(), why, v->slow_start_s);
}

// The latency of one backend by the signal a VIP chose, seconds.
std::optional<double> ControlPlane::latency_of(LatencySignal signal, const VipConfig& v, const BackendConfig& b) const {
    switch (signal) {
        case LatencySignal::connect: {
            auto it = connect_.find(ids_.find_backend(b.endpoint));
            return it == connect_.end() ? std::nullopt : it->second.value();
        }
        case LatencySignal::probe: {
            auto st = checker_.status(health::make_target_key(b, v));
            if (!st || st->last_rtt_us == 0) return std::nullopt;
            return double(st->last_rtt_us) / 1e6;
        }
        case LatencySignal::ttft:
        case LatencySignal::tpot: {
            auto st = load_scraper_.status(health::make_load_target_key(b, v));
            if (!st) return std::nullopt;
            return signal == LatencySignal::ttft ? st->ttft_s : st->tpot_s;
        }
    }
    return std::nullopt;
}

// Every latency known for a backend (the server-reported ones from any VIP that scrapes it).
ControlPlane::BackendLatency ControlPlane::latency_of(const BackendConfig& b) const {
    BackendLatency out;
    if (auto it = connect_.find(ids_.find_backend(b.endpoint)); it != connect_.end()) out.connect_s = it->second.value();
    if (auto st = load_scraper_.status(b.endpoint)) {
        out.ttft_s = st->ttft_s;
        out.tpot_s = st->tpot_s;
    }
    return out;
}

// Response times: the data plane's SYN to SYN-ACK totals become a smoothed
// connect latency per backend; for every VIP with latency_aware on, each
// backend's latency by the chosen signal against the VIP's reference (lower
// median of its healthy backends) gives its latency factor.
void ControlPlane::tick_latency(uint64_t) {
    std::set<uint32_t> seen;
    for (const auto& v : cfg_->vips) {
        if (v.proto != L4Proto::tcp) continue;
        for (const auto& b : v.backends) {
            uint32_t bid = ids_.backend_id(b.endpoint);
            if (!seen.insert(bid).second) continue;
            dp::BackendCounters c = dp_.backend_totals(bid);
            auto [it, fresh] = connect_.try_emplace(bid, balance::kDefaultLatencySmoothing);
            it->second.update_totals(double(c.connect_us_sum) / 1e6, double(c.connect_samples));
        }
    }
    std::map<dp::VipBackend, LatencyState> next;
    for (const auto& v : cfg_->vips) {
        if (!v.latency_aware.enabled) continue;
        uint32_t vid = ids_.vip_id(v.endpoint, v.proto);
        const char* signal = to_string(v.latency_aware.signal);
        std::vector<std::pair<uint32_t, std::optional<double>>> own;
        std::vector<double> healthy;
        for (const auto& b : v.backends) {
            uint32_t bid = ids_.backend_id(b.endpoint);
            auto lat = latency_of(v.latency_aware.signal, v, b);
            own.emplace_back(bid, lat);
            auto h = runtime_.health.find({vid, bid});
            auto a = runtime_.admin.find({vid, bid});
            bool up = (h == runtime_.health.end() || h->second.state == dp::BackendState::up) &&
                      (a == runtime_.admin.end() || !a->second.drained);
            if (up && lat) healthy.push_back(*lat);
        }
        auto ref = balance::reference_latency(healthy);
        for (const auto& [bid, lat] : own) {
            dp::VipBackend pair{vid, bid};
            auto old = latency_.find(pair);
            balance::LatencyFactorConfig fc;
            fc.floor = v.latency_aware.floor;
            fc.sensitivity = v.latency_aware.sensitivity;
            fc.tolerance = v.latency_aware.tolerance_ms / 1000.0;
            fc.alpha = v.latency_aware.smoothing;
            fc.hysteresis = v.latency_aware.hysteresis;
            LatencyState st = old != latency_.end() && old->second.cfg == v.latency_aware
                                  ? std::move(old->second)
                                  : LatencyState{v.latency_aware, balance::LatencyFactor(fc), ""};
            double before = st.factor.published();
            st.factor.update(ref, lat);
            st.reason = st.factor.reason(signal);
            if (std::abs(before - st.factor.published()) >= 0.01)
                FERRY_LOG(INFO, "backend %s in VIP %s latency factor %.2f -> %.2f (%s)",
                          ids_.backend(bid).to_string().c_str(), v.name.c_str(), before, st.factor.published(),
                          st.reason.c_str());
            next.insert_or_assign(pair, std::move(st));
        }
    }
    latency_ = std::move(next);
    std::map<uint32_t, BackendLatency> view;
    for (const auto& v : cfg_->vips)
        for (const auto& b : v.backends) view[ids_.backend_id(b.endpoint)] = latency_of(b);
    std::lock_guard<std::mutex> lock(view_mutex_);
    latency_view_ = std::move(view);
}

// Weight factors: slow start ramps and load-aware factors, multiplied, into
// each (VIP, backend)'s admin entry; a snapshot is published when one moved.
void ControlPlane::tick_factors(uint64_t now_ms) {
    if (now_ms - last_factor_ms_ < 500) return;
    last_factor_ms_ = now_ms;
    tick_latency(now_ms);
    bool changed = false;
    for (const auto& v : cfg_->vips) {
        uint32_t vid = ids_.vip_id(v.endpoint, v.proto);
        for (const auto& b : v.backends) {
            uint32_t bid = ids_.backend_id(b.endpoint);
            dp::VipBackend pair{vid, bid};
            double factor = 1.0;
            auto ss = slow_start_since_.find(pair);
            if (ss != slow_start_since_.end()) {
                auto elapsed = std::chrono::milliseconds(now_ms - ss->second);
                factor = balance::slow_start_factor(elapsed, std::chrono::seconds(v.slow_start_s));
                if (factor >= 1.0) {
                    slow_start_since_.erase(ss);
                    FERRY_LOG(INFO, "backend %s in VIP %s: slow start done, full weight", b.endpoint.to_string().c_str(),
                              v.name.c_str());
                }
            }
            if (v.load_aware.enabled) {
                auto lf = load_factor_.find(bid);
                if (lf != load_factor_.end()) factor *= lf->second;
            }
            if (auto lt = latency_.find(pair); lt != latency_.end()) factor *= lt->second.factor.published();
            auto a = runtime_.admin.find(pair);
            double old = a == runtime_.admin.end() ? 1.0 : a->second.weight_factor;
            if (std::abs(old - factor) < 1e-9) continue;
            runtime_.admin[pair].weight_factor = factor;
            changed = true;
        }
    }
    if (changed) publish();
}

void ControlPlane::tick_drains(uint64_t now_ms) {
    bool changed = false;
    for (const auto& [pair, since] : drain_started_) {
        dp::BackendAdmin& a = runtime_.admin[pair];
        if (a.cut) continue;
        uint32_t timeout_s = 0;
        for (const auto& v : cfg_->vips)
            if (ids_.vip_id(v.endpoint, v.proto) == pair.first) timeout_s = v.drain_timeout_s;
        if (now_ms - since < uint64_t(timeout_s) * 1000) continue;
        a.cut = true;
        changed = true;
        FERRY_LOG(NOTICE, "drain of %s in VIP %s timed out after %u s: its remaining flows are cut",
                  ids_.backend(pair.second).to_string().c_str(), current_->vips[pair.first].name.c_str(), timeout_s);
    }
    for (const auto& [bid, since] : removed_since_) {
        if (runtime_.cut_removed.count(bid)) continue;
        uint32_t timeout_s = removed_timeout_s_[bid];
        if (now_ms - since < uint64_t(timeout_s) * 1000) continue;
        runtime_.cut_removed.insert(bid);
        changed = true;
        FERRY_LOG(NOTICE, "removed backend %s: drain timeout (%u s) passed, its remaining flows are cut",
                  ids_.backend(bid).to_string().c_str(), timeout_s);
    }
    if (changed) publish();
}

// After a reload: new health targets, and drains for backends that left.
void ControlPlane::on_config_applied(const Config& old) {
    checker_.set_targets(*cfg_);
    std::set<uint32_t> now_used;
    for (const auto& v : cfg_->vips)
        for (const auto& b : v.backends) now_used.insert(ids_.backend_id(b.endpoint));
    uint64_t now = monotonic_ms();
    for (const auto& v : old.vips)
        for (const auto& b : v.backends) {
            uint32_t bid = ids_.backend_id(b.endpoint);
            if (now_used.count(bid) || removed_since_.count(bid)) continue;
            removed_since_[bid] = now;
            removed_timeout_s_[bid] = v.drain_timeout_s;
            FERRY_LOG(NOTICE, "backend %s left the config: draining, existing flows kept up to %u s",
                      b.endpoint.to_string().c_str(), v.drain_timeout_s);
        }
    std::map<dp::VipBackend, uint32_t> before;  // -> weight in the old file
    for (const auto& v : old.vips)
        for (const auto& b : v.backends) before[{ids_.vip_id(v.endpoint, v.proto), ids_.backend_id(b.endpoint)}] = b.weight;
    // An operator's `ferryctl weight` holds until the file changes that weight.
    for (const auto& v : cfg_->vips)
        for (const auto& b : v.backends) {
            dp::VipBackend pair{ids_.vip_id(v.endpoint, v.proto), ids_.backend_id(b.endpoint)};
            auto it = before.find(pair);
            auto a = runtime_.admin.find(pair);
            if (it != before.end() && it->second != b.weight && a != runtime_.admin.end() && a->second.weight_override) {
                a->second.weight_override.reset();
                FERRY_LOG(INFO, "backend %s in VIP %s: the file's new weight %u replaces the operator's", 
                          b.endpoint.to_string().c_str(), v.name.c_str(), b.weight);
            }
        }
    for (const auto& v : cfg_->vips)
        for (const auto& b : v.backends) {
            dp::VipBackend pair{ids_.vip_id(v.endpoint, v.proto), ids_.backend_id(b.endpoint)};
            if (!before.count(pair)) begin_slow_start(pair, "added");
        }
    load_scraper_.set_targets(*cfg_);
    for (uint32_t bid : now_used) {
        removed_since_.erase(bid);
        removed_timeout_s_.erase(bid);
        runtime_.cut_removed.erase(bid);
    }
}

std::string ControlPlane::reason_of(uint32_t vid, uint32_t bid) const {
    auto a = runtime_.admin.find({vid, bid});
    if (a != runtime_.admin.end()) {
        if (a->second.cut) return "drain timed out: flows cut";
        if (a->second.drained) return "drained by operator";
        if (a->second.weight_override) return "weight set by operator";
        if (a->second.weight_factor < 1.0) {
            std::string why;
            if (slow_start_since_.count({vid, bid})) why = "slow start";
            auto lr = load_reason_.find(bid);
            const VipConfig* v = vip_config(vid);
            if (v && v->load_aware.enabled && lr != load_reason_.end() && load_factor_.count(bid) &&
                load_factor_.at(bid) < 1.0)
                why += (why.empty() ? "" : "; ") + lr->second;
            auto lt = latency_.find({vid, bid});
            if (lt != latency_.end() && lt->second.factor.published() < 1.0)
                why += (why.empty() ? "" : "; ") + lt->second.reason;
            // Each part names its own factor; this is their product on the weight.
            char buf[48];
            snprintf(buf, sizeof buf, "%sweight x%.2f", why.empty() ? "" : "; ", a->second.weight_factor);
            return why + buf;
        }
    }
    auto r = health_reason_.find({vid, bid});
    return r == health_reason_.end() ? "" : r->second;
}

std::optional<double> ControlPlane::rtt_ms_of(uint32_t vid, uint32_t bid) const {
    for (const auto& v : cfg_->vips) {
        if (ids_.find_vip(v.endpoint, v.proto) != vid) continue;
        for (const auto& b : v.backends)
            if (ids_.find_backend(b.endpoint) == bid) {
                auto st = checker_.status(health::make_target_key(b, v));
                if (!st || st->last_rtt_us == 0) return std::nullopt;
                return st->last_rtt_us / 1000.0;
            }
    }
    return std::nullopt;
}

unsigned ControlPlane::handle_messages(uint64_t now_ms) {
    dp::ControlMsg msgs[256];
    unsigned n, handled = 0;
    while ((n = dp_.poll_control(msgs, 256)) > 0) {
        handled += n;
        for (unsigned i = 0; i < n; ++i) {
            const dp::ControlMsg& m = msgs[i];
            if (m.kind == dp::ControlMsg::learn || m.kind == dp::ControlMsg::refresh) {
                const dp::PortInfo* p = port_for(m.ip);
                if (!p || p->port_id != m.port) continue;  // not on-link there: never trust it
                uint8_t old[6];
                bool had = dp_.neighbours().lookup(m.ip, old);
                if (m.kind == dp::ControlMsg::refresh && !had) continue;  // gratuitous: known neighbours only
                if (!dp_.neighbours().update(m.ip, m.mac)) continue;
                auto& st = neighbours_[m.ip];
                st.port = m.port;
                st.confirmed_ms = now_ms;
                st.unanswered = 0;
                if (!had || std::memcmp(old, m.mac, 6) != 0)
                    FERRY_LOG(INFO, "neighbour %s is %02x:%02x:%02x:%02x:%02x:%02x on port %u", ip_str(m.ip).c_str(),
                              m.mac[0], m.mac[1], m.mac[2], m.mac[3], m.mac[4], m.mac[5], m.port);
                st.resolved = true;
            } else if (m.kind == dp::ControlMsg::resolve) {
                const dp::PortInfo* p = port_for(m.ip);
                if (!p) continue;
                auto& st = neighbours_[m.ip];
                st.port = p->port_id;
                if (now_ms - st.requested_ms >= kResolveHoldMs) {
                    st.requested_ms = now_ms;
                    send_arp_request(p->port_id, m.ip);
                }
            }
        }
    }
    return handled;
}

void ControlPlane::tick_neighbours(uint64_t now_ms) {
    for (auto& [ip, st] : neighbours_) {
        bool stale = !st.resolved || now_ms - st.confirmed_ms >= kRefreshMs;
        if (!stale || now_ms - st.requested_ms < kRetryMs) continue;
        if (st.resolved && st.unanswered >= kMaxUnanswered) {
            dp_.neighbours().invalidate(ip);
            st.resolved = false;
            FERRY_LOG(WARNING, "neighbour %s stopped answering ARP; entry expired", ip_str(ip).c_str());
        }
        st.requested_ms = now_ms;
        ++st.unanswered;
        send_arp_request(st.port, ip);
    }
}

void ControlPlane::set_config(std::shared_ptr<const Config> cfg) {
    std::lock_guard<std::mutex> lock(view_mutex_);  // view() copies cfg_ from other threads
    cfg_ = std::move(cfg);
}

ReloadResult ControlPlane::reload_config() {
    ReloadResult out;
    uint64_t t0 = monotonic_ms();
    ConfigLoadResult r = load_config_file(cfg_->file);
    for (const auto& e : r.errors) out.errors.push_back(e.to_string());
    if (r.ok()) {
        ConfigDiff d = diff_configs(*cfg_, *r.config);
        for (const auto& what : d.restart_needed)
            out.errors.push_back(cfg_->file + ": " + what + ": restart ferryd to apply it");
        out.changes = std::move(d.changes);
    }
    if (!out.errors.empty()) {
        FERRY_LOG(ERR, "reload of %s refused, still serving the running config:", cfg_->file.c_str());
        for (const auto& p : out.errors) FERRY_LOG(ERR, "  %s", p.c_str());
        return out;
    }
    auto old = cfg_;
    set_config(r.config);
    try {
        publish();
    } catch (const std::exception& e) {
        set_config(old);
        out.errors.push_back(cfg_->file + ": " + e.what());
        out.changes.clear();
        FERRY_LOG(ERR, "reload of %s refused, still serving the running config:", cfg_->file.c_str());
        FERRY_LOG(ERR, "  %s", out.errors.back().c_str());
        return out;
    }
    on_config_applied(*old);
    {
        std::lock_guard<std::mutex> lock(view_mutex_);
        loaded_at_ = std::chrono::system_clock::now();
    }
    out.ok = true;
    out.apply_ms = monotonic_ms() - t0;
    if (out.changes.empty())
        FERRY_LOG(INFO, "reloaded %s: no changes", cfg_->file.c_str());
    for (const auto& c : out.changes) FERRY_LOG(INFO, "reload: %s", c.c_str());
    FERRY_LOG(INFO, "reloaded %s in %lu ms: %zu change(s), generation %lu", cfg_->file.c_str(),
              (unsigned long)out.apply_ms, out.changes.size(), (unsigned long)generation_);
    return out;
}

ControlPlane::View ControlPlane::view() const {
    std::lock_guard<std::mutex> lock(view_mutex_);
    View v;
    v.config = cfg_;
    v.snapshot = current_;
    for (uint32_t id = 0; id < ids_.backend_count(); ++id) v.backend_endpoints.push_back(ids_.backend(id));
    for (const auto& vip : cfg_->vips) {
        uint32_t id = ids_.find_vip(vip.endpoint, vip.proto);
        if (id != dp::kNone) v.vip_ids[vip.name] = id;
    }
    v.backends = rows_;
    v.latency = latency_view_;
    v.generation = generation_;
    v.loaded_at = loaded_at_;
    return v;
}

void ControlPlane::run(const std::atomic<bool>& stop, std::atomic<bool>& reload) {
    uint64_t last_tick = 0;
    ops::IdleBackoff backoff;
    while (!stop.load(std::memory_order_acquire)) {
        uint64_t now = monotonic_ms();
        std::size_t work = handle_messages(now);
        if (now - last_tick >= 100) {
            tick_neighbours(now);
            tick_health(now);
            tick_passive(now);
            tick_drains(now);
            tick_load(now);
            tick_factors(now);
            tick_drop_warnings(now);
            reclaim(false);
            last_tick = now;
        }
        if (server_) work += server_->poll();
        if (reload.exchange(false)) {
            reload_config();
            ++work;
        }
        const std::chrono::microseconds sleep{backoff.next(work != 0)};
        if (server_) {
            server_->wait(sleep);  // a control request ends it at once
        } else {
            usleep(uint32_t(sleep.count()));
        }
    }
}

}  // namespace ferry::control
