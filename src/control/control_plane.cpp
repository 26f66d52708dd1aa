#include "control/control_plane.hpp"

#include <rte_cycles.h>

#include <time.h>
#include <unistd.h>

#include "config/config_loader.hpp"
#include "dataplane/log.hpp"
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

ControlPlane::~ControlPlane() { reclaim(true); }

const dp::PortInfo* ControlPlane::port_for(uint32_t ip) const {
    IpAddr a = IpAddr::v4_net(ip);
    for (size_t i = 0; i < cfg_->ports.size(); ++i)
        if (cfg_->ports[i].address.contains(a)) return &dp_.ports()[i];
    return nullptr;
}

void ControlPlane::publish() {
    auto route = [this](uint32_t ip) { return dp_.routes().lookup(ip); };
    if (ids_.backend_count() > dp::kMaxBackends || ids_.vip_count() > dp::kMaxVips)
        throw std::runtime_error("too many backends or VIPs for this process; restart ferryd");
    std::unique_lock<std::mutex> lock(view_mutex_);  // ids_ and current_ are read by view()
    auto next = dp::build_snapshot(*cfg_, ids_, runtime_, route, generation_ + 1);
    if (next->backends.size() > dp::kMaxBackends || next->vips.size() > dp::kMaxVips)
        throw std::runtime_error("too many backends or VIPs for this process; restart ferryd");
    for (const auto& be : next->backends)
        if (be.known && be.nexthop_ip) want_neighbour(be.nexthop_ip, be.egress_port);
    ++generation_;
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
    // Gratuitous ARP for our addresses and the VIPs in each port's subnet, so
    // peers that cached another MAC (a previous instance) move at once.
    for (size_t i = 0; i < cfg_->ports.size(); ++i) {
        const dp::PortInfo& port = dp_.ports()[i];
        send_arp_request(port.port_id, port.ip);
        for (const auto& v : cfg_->vips)
            if (cfg_->ports[i].address.contains(v.endpoint.addr)) {
                uint8_t frame[64];
                uint32_t vip = v.endpoint.addr.v4_net();
                size_t len = packet::build_arp_request(frame, port.mac, vip, vip);
                dp_.send_from_control(port.port_id, frame, len);
            }
    }
}

void ControlPlane::start() {
    loaded_at_ = std::chrono::system_clock::now();
    for (size_t i = 0; i < cfg_->ports.size(); ++i)
        if (cfg_->ports[i].gateway) want_neighbour(cfg_->ports[i].gateway->v4_net(), dp_.ports()[i].port_id);
    publish();
    announce();
}

void ControlPlane::handle_messages(uint64_t now_ms) {
    dp::ControlMsg msgs[256];
    unsigned n;
    while ((n = dp_.poll_control(msgs, 256)) > 0) {
        for (unsigned i = 0; i < n; ++i) {
            const dp::ControlMsg& m = msgs[i];
            if (m.kind == dp::ControlMsg::learn) {
                const dp::PortInfo* p = port_for(m.ip);
                if (!p || p->port_id != m.port) continue;  // not on-link there: never trust it
                uint8_t old[6];
                bool had = dp_.neighbours().lookup(m.ip, old);
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

std::vector<std::string> ControlPlane::reload_config() {
    ConfigLoadResult r = load_config_file(cfg_->file);
    std::vector<std::string> problems;
    for (const auto& e : r.errors) problems.push_back(e.to_string());
    if (r.ok()) {
        const Config& next = *r.config;
        bool ports_same = next.ports.size() == cfg_->ports.size();
        for (size_t i = 0; ports_same && i < next.ports.size(); ++i) {
            const PortConfig &a = next.ports[i], &b = cfg_->ports[i];
            ports_same = a.name == b.name && a.device == b.device && a.devargs == b.devargs &&
                         a.address == b.address && a.gateway == b.gateway && a.mtu == b.mtu &&
                         a.exception_path == b.exception_path && a.exception_iface == b.exception_iface;
        }
        if (!ports_same) problems.push_back(cfg_->file + ": ports changed: restart ferryd to apply them");
        const WorkerConfig &wa = next.workers, &wb = cfg_->workers;
        if (wa.flow_capacity != wb.flow_capacity || wa.rx_descriptors != wb.rx_descriptors ||
            wa.tx_descriptors != wb.tx_descriptors || wa.mbufs != wb.mbufs || wa.burst_size != wb.burst_size ||
            wa.idle_sleep_us != wb.idle_sleep_us)
            problems.push_back(cfg_->file + ": workers settings changed: restart ferryd to apply them");
    }
    if (!problems.empty()) {
        for (const auto& p : problems) FERRY_LOG(ERR, "reload refused: %s", p.c_str());
        return problems;
    }
    auto old = cfg_;
    cfg_ = r.config;
    try {
        publish();
    } catch (const std::exception& e) {
        cfg_ = old;
        problems.push_back(cfg_->file + ": " + e.what());
        FERRY_LOG(ERR, "reload refused: %s", e.what());
        return problems;
    }
    {
        std::lock_guard<std::mutex> lock(view_mutex_);
        loaded_at_ = std::chrono::system_clock::now();
    }
    FERRY_LOG(INFO, "reloaded %s: %zu VIP(s), generation %lu", cfg_->file.c_str(), cfg_->vips.size(),
              (unsigned long)generation_);
    return problems;
}

ControlPlane::View ControlPlane::view() const {
    std::lock_guard<std::mutex> lock(view_mutex_);
    View v;
    v.config = cfg_;
    v.snapshot = current_;
    for (uint32_t id = 0; id < ids_.backend_count(); ++id) v.backend_endpoints.push_back(ids_.backend(id));
    v.loaded_at = loaded_at_;
    return v;
}

void ControlPlane::run(const std::atomic<bool>& stop, std::atomic<bool>& reload) {
    uint64_t last_tick = 0;
    while (!stop.load(std::memory_order_acquire)) {
        uint64_t now = monotonic_ms();
        handle_messages(now);
        if (now - last_tick >= 100) {
            tick_neighbours(now);
            reclaim(false);
            last_tick = now;
        }
        if (reload.exchange(false)) reload_config();
        usleep(200);
    }
}

}  // namespace ferry::control
