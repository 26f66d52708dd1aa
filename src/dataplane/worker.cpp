// The worker loop: poll every port's queue of this worker, steer, send.
//
// Per iteration: load the snapshot once, drain hand-offs and the control TX
// ring, RX a burst per port, process each packet, flush TX buffers, sweep a
// slice of the flow table, report quiescence. No locks, no allocation, no
// syscalls (except the optional idle sleep when nothing arrived).
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <netinet/in.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "dataplane/dataplane.hpp"
#include "dataplane/log.hpp"
#include "dataplane/steering.hpp"
#include "packet/packet.hpp"

namespace ferry::dp {

namespace {

__extension__ typedef unsigned __int128 Uint128;

// The flow table is swept for idle entries once per millisecond, not once per
// loop: a slice sized so a whole pass takes about kSweepPassMs, at least
// kMinSweepSlice slots. Per-loop sweeping cost up to 15% of a busy worker.
// Steering::sweep takes larger slices (a pass per second) while the table is
// more than 3/4 full and its last pass found expired flows.
constexpr uint32_t kSweepPassMs = 5000;
constexpr uint32_t kMinSweepSlice = 256;
constexpr uint32_t kPendingMax = 64;        // packets parked while their next hop resolves
constexpr uint32_t kPendingHoldMs = 1000;   // then they are dropped (counted no_neighbour)
// How late the idle sleep may end. Linux lets a thread's timers fire up to its
// timer slack late (50 us by default) to batch wake-ups, which would turn
// idle_sleep_us = 50 into 50-100 us and idle_sleep_us = 10 into 10-60 us.
constexpr unsigned long kIdleSleepSlackNs = 1000;
constexpr uint16_t kVlanIdMask = 0x0fff;  // of the 802.1Q TCI: 0 is a priority tag, no VLAN

// A packet waiting for its next hop's MAC, as Linux keeps a few per neighbour.
struct Pending {
    rte_mbuf* m;
    uint32_t nexthop_ip;
    uint32_t deadline_ms;
    uint16_t port_id;
};

// One packet after the first pass over a burst: parsed, and for TCP/UDP its
// flow key and the key's hash, whose flow-table buckets are already being
// prefetched. The key is built once here and read by the later passes.
struct Preparsed {
    packet::Parsed p;
    packet::ParseResult r;
    flow::KeyV4 key;
    uint32_t hash;
    uint32_t hint;  // the home slot to probe, then the slot probe_home or prefetch_entry found, for the lookup
};

// Per-worker state for one loop iteration plus the helpers that act on it.
class Worker {
public:
    Worker(Dataplane& dp, WorkerContext& w) : dp_(dp), w_(w), c_(w.counters), steer_(steering_parts(dp, w)) {
        const uint64_t hz = std::max<uint64_t>(rte_get_tsc_hz(), 1'000'000);
        us_per_tsc_q32_ = (uint64_t(1'000'000) << 32) / hz;
        for (size_t i = 0; i < dp.ports().size(); ++i) port_index_[dp.ports()[i].port_id] = uint8_t(i);
        n_port_ips_ = uint32_t(dp.ports().size());
        n_local_ = uint32_t(std::min<size_t>(dp.local_ips().size(), kMaxLocalAddresses));
        std::copy_n(dp.local_ips().begin(), n_local_, local_ips_);
        n_workers_ = dp.worker_count();
        idle_sleep_us_ = dp.config().workers.idle_sleep_us;
        sweep_slice_ = std::max(kMinSweepSlice, w.flows->slot_count() / kSweepPassMs + 1);
    }

    void run();

private:
    // `pre` is this packet's parse from the burst's first pass (nullptr: parse here).
    // `port`: the port the packet arrived on.
    void process(rte_mbuf* m, const PortInfo& port, bool handed_off, const struct Preparsed* pre);
    void process_burst(rte_mbuf** pkts, uint16_t n, const PortInfo& port);
    void handle_arp(rte_mbuf* m, const PortInfo& port, const packet::Parsed& p);
    void forward_vip(rte_mbuf* m, const packet::Parsed& p, const flow::KeyV4& key, uint32_t hash, uint32_t hint,
                     uint32_t vip_id, bool handed_off);
    bool reply_flow(rte_mbuf* m, const packet::Parsed& p, uint32_t slot);
    // An ICMP error to a VIP about a packet sent to a client (a router's "fragmentation needed"):
    // passed on to the flow's backend, so its path MTU discovery works. False: not one, no flow.
    bool forward_icmp_error(rte_mbuf* m, const packet::Parsed& p, bool handed_off);
    void to_exception(rte_mbuf* m, const PortInfo& port);
    // A VIP packet's path is inline in process_burst (forward_vip, send_to_backend, transmit, and
    // Steering::to_backend's hit path); what is rare is not (hold_for_neighbour, ...).
    void send(rte_mbuf* m, uint16_t port_id, uint32_t nexthop_ip);
    // send() to a backend's next hop, its MAC read from the neighbour slot
    // the snapshot carries (no hashing or probing).
    void send_to_backend(rte_mbuf* m, const BackendEntry& be);
    // No MAC for the next hop yet: ask the control thread to resolve it and hold the packet.
    void hold_for_neighbour(rte_mbuf* m, uint16_t port_id, uint32_t nexthop_ip);
    void send_to_client(rte_mbuf* m, uint32_t client_ip);
    void handoff(rte_mbuf* m, uint32_t owner);
    void drop(rte_mbuf* m, Drop why) {
        ++c_.drops[size_t(why)];
        rte_pktmbuf_free(m);
    }
    void control_msg(ControlMsg::Kind kind, uint16_t port, uint32_t ip, const uint8_t* mac);
    static SteeringParts steering_parts(Dataplane& dp, WorkerContext& w);
    uint32_t owner_of_client(uint32_t ip, uint16_t port) const {
        uint32_t h = (ip ^ (uint32_t(port) * 0x9e3779b1u)) * 0x85ebca6bu;
        h ^= h >> 16;
        return uint32_t((uint64_t(h) * n_workers_) >> 32);
    }
    // Local address index of `ip` (a port's address or a NAT address), or kNotLocal.
    static constexpr uint32_t kNotLocal = ~0u;
    uint32_t local_index(uint32_t ip) const {
        for (uint32_t i = 0; i < n_local_; ++i)
            if (local_ips_[i] == ip) return i;
        return kNotLocal;
    }
    void flush_tx();
    void retry_pending();
    // mac_word: the next hop's PackedMac word (NeighbourTable::lookup_word).
    void transmit(rte_mbuf* m, uint16_t port_id, uint64_t mac_word);

    Dataplane& dp_;
    WorkerContext& w_;
    WorkerCounters& c_;
    const Snapshot* snap_ = nullptr;
    uint32_t now_ms_ = 0;
    uint64_t us_per_tsc_q32_ = 1;  // microseconds per TSC cycle, 32.32 fixed point (no division per loop)
    uint32_t n_workers_ = 1;
    uint32_t idle_sleep_us_ = 0;
    uint8_t port_index_[RTE_MAX_ETHPORTS] = {};
    // Ferry's addresses by local address index (Dataplane::local_ips), copied flat for the scan
    // of local_index(); the first n_port_ips_ are the ports' own addresses.
    uint32_t local_ips_[kMaxLocalAddresses] = {};
    uint32_t n_local_ = 0;
    uint32_t n_port_ips_ = 0;
    Pending pending_[kPendingMax];
    uint32_t n_pending_ = 0;
    Steering steer_;
    uint32_t last_sweep_ms_ = 0;
    Preparsed pre_[kMaxBurst];
    uint32_t sweep_slice_ = kMinSweepSlice;
};

void Worker::control_msg(ControlMsg::Kind kind, uint16_t port, uint32_t ip, const uint8_t* mac) {
    ControlMsg msg;
    msg.kind = kind;
    msg.port = port;
    msg.ip = ip;
    if (mac) std::memcpy(msg.mac, mac, 6);
    if (kind == ControlMsg::resolve) ++c_.neighbour_requests;
    rte_ring_enqueue_elem(w_.to_control, &msg, sizeof msg);  // full: the control thread will ask again
}

__rte_always_inline void Worker::send(rte_mbuf* m, uint16_t port_id, uint32_t nexthop_ip) {
    const uint64_t mac = dp_.neighbours().lookup_word(nexthop_ip);
    if (likely(mac != 0)) return transmit(m, port_id, mac);
    hold_for_neighbour(m, port_id, nexthop_ip);
}

__rte_always_inline void Worker::send_to_backend(rte_mbuf* m, const BackendEntry& be) {
    static_assert(NeighbourTable::kNoSlot == kNone, "BackendEntry::neighbour_slot holds kNone for no slot");
    const NeighbourTable& nt = dp_.neighbours();
    const uint64_t mac = be.neighbour_slot != kNone ? nt.word_at(be.neighbour_slot) : nt.lookup_word(be.nexthop_ip);
    if (likely(mac != 0)) return transmit(m, be.egress_port, mac);
    hold_for_neighbour(m, be.egress_port, be.nexthop_ip);
}

__rte_noinline void Worker::hold_for_neighbour(rte_mbuf* m, uint16_t port_id, uint32_t nexthop_ip) {
    control_msg(ControlMsg::resolve, port_id, nexthop_ip, nullptr);
    if (n_pending_ == kPendingMax) return drop(m, Drop::no_neighbour);
    pending_[n_pending_++] = Pending{m, nexthop_ip, now_ms_ + kPendingHoldMs, port_id};
}

void Worker::retry_pending() {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n_pending_; ++i) {
        Pending& p = pending_[i];
        if (const uint64_t mac = dp_.neighbours().lookup_word(p.nexthop_ip); mac != 0)
            transmit(p.m, p.port_id, mac);
        else if (int32_t(now_ms_ - p.deadline_ms) >= 0)
            drop(p.m, Drop::no_neighbour);
        else
            pending_[kept++] = p;
    }
    n_pending_ = kept;
}

__rte_always_inline void Worker::transmit(rte_mbuf* m, uint16_t port_id, uint64_t mac_word) {
    static_assert(std::endian::native == std::endian::little, "PackedMac keeps byte i in bits 8i..8i+7");
    const PortInfo& port = dp_.ports()[port_index_[port_id]];
    auto* eth = rte_pktmbuf_mtod(m, uint8_t*);
    std::memcpy(eth, &mac_word, 6);  // the low 6 bytes: the MAC
    std::memcpy(eth + 6, port.mac, 6);
    ++c_.tx_packets;
    c_.tx_bytes += rte_pktmbuf_pkt_len(m);
    rte_eth_tx_buffer(port_id, uint16_t(w_.index), w_.tx[port_id], m);
}

void Worker::send_to_client(rte_mbuf* m, uint32_t client_ip) {
    NextHop nh = dp_.routes().lookup(client_ip);
    if (!nh.ok) {
        drop(m, Drop::no_route);
        return;
    }
    send(m, nh.port, nh.ip);
}

void Worker::to_exception(rte_mbuf* m, const PortInfo& port) {
    if (!port.has_exception) {
        drop(m, Drop::exception_unavailable);
        return;
    }
    ++c_.to_exception;
    rte_eth_tx_buffer(port.exception_port_id, uint16_t(w_.index), w_.tx[port.exception_port_id], m);
}

void Worker::handoff(rte_mbuf* m, uint32_t owner) {
    rte_ring* r = dp_.workers()[owner]->handoff_in[w_.index];
    if (rte_ring_enqueue(r, m) != 0) {
        drop(m, Drop::handoff_full);
        return;
    }
    ++c_.handoff_out;
}

void Worker::handle_arp(rte_mbuf* m, const PortInfo& port, const packet::Parsed& p) {
    packet::Arp arp;
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    if (!packet::parse_arp(data, rte_pktmbuf_data_len(m), p.l3_offset, arp)) {
        drop(m, drop_of(packet::ParseResult::truncated_l3));
        return;
    }
    bool for_us = arp.target_ip == port.ip || snap_->is_vip_address(arp.target_ip) ||
                  std::find(port.nat_ips.begin(), port.nat_ips.end(), arp.target_ip) != port.nat_ips.end();
    if (arp.op == packet::kArpRequest && for_us) {
        if (arp.sender_ip != 0) control_msg(ControlMsg::learn, port.port_id, arp.sender_ip, arp.sender_mac);
        packet::make_arp_reply(data, p.l3_offset, port.mac);
        ++c_.arp_replies;
        ++c_.tx_packets;
        c_.tx_bytes += rte_pktmbuf_pkt_len(m);
        rte_eth_tx_buffer(port.port_id, uint16_t(w_.index), w_.tx[port.port_id], m);
        return;
    }
    if (arp.op == packet::kArpReply && arp.target_ip == port.ip) {
        control_msg(ControlMsg::learn, port.port_id, arp.sender_ip, arp.sender_mac);
        rte_pktmbuf_free(m);
        return;
    }
    // A gratuitous ARP (an address announced by its owner, e.g. moved to another MAC by a failover).
    if (arp.sender_ip != 0 && arp.sender_ip == arp.target_ip)
        control_msg(ControlMsg::refresh, port.port_id, arp.sender_ip, arp.sender_mac);
    to_exception(m, port);  // the host's own ARP (its address lives on the kernel interface)
}

SteeringParts Worker::steering_parts(Dataplane& dp, WorkerContext& w) {
    SteeringParts x;
    x.flows = w.flows.get();
    x.nat_ports = &w.nat_ports;
    x.counters = &w.counters;
    x.backend_counters = w.backend_counters.data();
    x.vip_counters = w.vip_counters.data();
    for (const auto& other : dp.workers()) x.all_backend_counters.push_back(other->backend_counters.data());
    x.index_of_port.assign(RTE_MAX_ETHPORTS, 0);
    for (size_t i = 0; i < dp.ports().size(); ++i) x.index_of_port[dp.ports()[i].port_id] = uint8_t(i);
    x.local_ips = dp.local_ips();
    x.nat_pools.resize(dp.ports().size());
    for (size_t i = 0; i < dp.ports().size(); ++i) {
        const PortInfo& p = dp.ports()[i];
        if (p.nat_ips.empty()) continue;
        x.nat_pools[i].push_back(uint8_t(i));
        for (size_t k = 0; k < p.nat_ips.size(); ++k) x.nat_pools[i].push_back(uint8_t(p.nat_first + k));
    }
    x.worker_index = w.index;
    x.worker_count = dp.worker_count();
    return x;
}

__rte_always_inline void Worker::forward_vip(rte_mbuf* m, const packet::Parsed& p, const flow::KeyV4& key,
                                             uint32_t hash, uint32_t hint, uint32_t vip_id, bool handed_off) {
    const VipEntry& vip = snap_->vips[vip_id];
    if (vip.mode == ForwardMode::dnat && n_workers_ > 1 && !handed_off) {
        uint32_t owner = owner_of_client(p.src_ip, p.src_port);
        if (owner != w_.index) return handoff(m, owner);
    }
    if (p.has_ip_options) return drop(m, Drop::vip_ip_options);
    const ToBackend to = steer_.to_backend(*snap_, vip_id, p, key, hash, rte_pktmbuf_pkt_len(m), now_ms_, hint);
    if (!to.forward()) return drop(m, to.drop);
    const BackendEntry& be = snap_->backends[to.backend_id];
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    if (to.nat_port != 0)
        packet::rewrite_src_dst(data, p, to.nat_ip, to.nat_port, be.ip, be.port);
    else
        packet::rewrite_dst(data, p, be.ip, be.port);
    ++c_.forwarded;
    send_to_backend(m, be);
}

// A packet from a backend that matched a reply entry: restore the VIP (and,
// for full NAT, the client) and send it to the client.
bool Worker::reply_flow(rte_mbuf* m, const packet::Parsed& p, uint32_t slot) {
    ToClient to;
    if (!steer_.to_client(*snap_, p, slot, rte_pktmbuf_pkt_len(m), now_ms_, to)) return false;
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    if (to.full_nat)
        packet::rewrite_src_dst(data, p, to.vip_ip, to.vip_port, to.client_ip, to.client_port);
    else
        packet::rewrite_src(data, p, to.vip_ip, to.vip_port);
    ++c_.forwarded;
    send_to_client(m, to.client_ip);
    return true;
}

__rte_noinline bool Worker::forward_icmp_error(rte_mbuf* m, const packet::Parsed& p, bool handed_off) {
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    packet::IcmpQuote q;
    if (!packet::parse_icmp_error(data, rte_pktmbuf_data_len(m), p, q)) return false;
    const uint32_t vip = snap_->find_vip(q.src_ip, q.src_port, q.proto);
    if (vip == kNone) return false;
    // A dnat flow lives with the worker that owns its client. A full-NAT one with the worker its
    // packets arrive at, which this one is not always (then the error is not found: counted).
    if (snap_->vips[vip].mode == ForwardMode::dnat && n_workers_ > 1 && !handed_off) {
        const uint32_t owner = owner_of_client(q.dst_ip, q.dst_port);
        if (owner != w_.index) {
            handoff(m, owner);
            return true;
        }
    }
    IcmpToBackend to;
    if (!steer_.icmp_to_backend(*snap_, q, to)) return false;
    const BackendEntry& be = snap_->backends[to.backend_id];
    // Full NAT: from Ferry's NAT address, the one source such a backend knows a route back to.
    const uint32_t from = to.full_nat ? to.peer_ip : 0;
    packet::rewrite_icmp_error(data, p, q, from, be.ip, be.ip, be.port, to.peer_ip, to.peer_port);
    ++c_.icmp_errors_forwarded;
    ++c_.forwarded;
    send_to_backend(m, be);
    return true;
}

void Worker::process(rte_mbuf* m, const PortInfo& port, bool handed_off, const Preparsed* pre) {
    auto* data = rte_pktmbuf_mtod(m, uint8_t*);
    packet::Parsed parsed_here;  // a handed-off packet is parsed again here; a received one was in process_burst
    const packet::ParseResult r = pre ? pre->r : packet::parse(data, rte_pktmbuf_data_len(m), parsed_here);
    const packet::Parsed& p = pre ? pre->p : parsed_here;
    // Ferry serves untagged (and priority-tagged) frames; another VLAN's are the host's.
    if (unlikely(p.has_vlan) && (p.vlan_tci & kVlanIdMask) != 0) return to_exception(m, port);
    switch (r) {
        case packet::ParseResult::ok: break;
        case packet::ParseResult::arp: return handle_arp(m, port, p);
        case packet::ParseResult::ipv6:
        case packet::ParseResult::other_ethertype:
        case packet::ParseResult::other_l4: return to_exception(m, port);
        case packet::ParseResult::fragment:
            // Not reassembled: to a VIP or a NAT address (the data plane's alone, the
            // host would discard them) they are dropped and counted.
            if (snap_->is_vip_address(p.dst_ip)) return drop(m, Drop::vip_fragment);
            if (const uint32_t local = local_index(p.dst_ip); local != kNotLocal && local >= n_port_ips_)
                return drop(m, Drop::vip_fragment);
            return to_exception(m, port);  // the host reassembles its own
        default: return drop(m, drop_of(r));
    }

    flow::KeyV4 key_here;  // a handed-off packet's; a received one's was kept with its parse
    const flow::KeyV4& key = pre ? pre->key : (key_here = key_v4(p));
    const uint32_t hash = pre ? pre->hash : flow::FlowTable::hash(key);
    const uint32_t hint = pre ? pre->hint : flow::kNoPeer;
    if (p.proto != IPPROTO_ICMP) {
        uint32_t vip = snap_->find_vip(p.dst_ip, p.dst_port, p.proto);
        if (vip != kNone) return forward_vip(m, p, key, hash, hint, vip, handed_off);
    }
    const uint32_t local = local_index(p.dst_ip);
    if (p.proto == IPPROTO_ICMP) {
        if (local != kNotLocal || snap_->is_vip_address(p.dst_ip)) {
            if (packet::make_icmp_echo_reply(data, rte_pktmbuf_data_len(m), p, port.mac)) {
                ++c_.icmp_echo_replies;
                ++c_.tx_packets;
                c_.tx_bytes += rte_pktmbuf_pkt_len(m);
                rte_eth_tx_buffer(port.port_id, uint16_t(w_.index), w_.tx[port.port_id], m);
                return;
            }
            if (snap_->is_vip_address(p.dst_ip) && forward_icmp_error(m, p, handed_off)) return;
            return drop(m, Drop::icmp_unhandled);
        }
        return to_exception(m, port);
    }
    if (local != kNotLocal) {
        // Full-NAT reply: the local port says which worker owns the flow (every worker has the
        // same share of ports on each local address).
        if (n_workers_ > 1 && !handed_off) {
            uint32_t owner = dp_.nat_port_owner()[ntohs(p.dst_port)];
            if (owner != w_.index) return handoff(m, owner);
        }
        uint32_t slot = w_.flows->lookup(key, hash, hint);
        if (slot != flow::kNoPeer && reply_flow(m, p, slot)) return;
        // The host owns the port's address; a NAT address is the data plane's alone.
        if (local >= n_port_ips_) return drop(m, Drop::nat_no_flow);
        return to_exception(m, port);
    }
    if (snap_->is_vip_address(p.dst_ip)) return drop(m, Drop::no_vip_port);

    // dnat reply (backend -> client) or plain host traffic.
    if (n_workers_ > 1 && !handed_off) {
        uint32_t owner = owner_of_client(p.dst_ip, p.dst_port);
        if (owner != w_.index) return handoff(m, owner);
    }
    uint32_t slot = w_.flows->lookup(key, hash, hint);
    if (slot != flow::kNoPeer && reply_flow(m, p, slot)) return;
    to_exception(m, port);
}

// Passes over a burst: parse every packet and start fetching its flow
// entry's home slot (FlowTable::prefetch_home); check each key at home, and
// for a key not there start fetching its signature lines; for those, start
// fetching the entry whose signature matches; then process every packet.
// Each pass's loads overlap the work on the other packets instead of
// stalling in turn, and a key at home (most) costs one cache line.
// Not inlined into run(): one call a burst, and the function
// scripts/ferryd-instructions.sh has callgrind count.
__rte_noinline void Worker::process_burst(rte_mbuf** pkts, uint16_t n, const PortInfo& port) {
    for (uint16_t i = 0; i < n && i < 4; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
    uint64_t rx_bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (i + 4 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void*));
        Preparsed& pp = pre_[i];
        pp.r = packet::parse(rte_pktmbuf_mtod(pkts[i], const uint8_t*), rte_pktmbuf_data_len(pkts[i]), pp.p);
        pp.hash = 0;
        pp.hint = flow::kNoPeer;
        if (pp.r == packet::ParseResult::ok && pp.p.proto != IPPROTO_ICMP) {
            pp.key = key_v4(pp.p);
            pp.hash = flow::FlowTable::hash(pp.key);
            pp.hint = w_.flows->prefetch_home(pp.hash);  // also where a new flow's entry most likely goes
            if (packet::opens_connection(pp.p)) w_.flows->prefetch(pp.hash);  // it is absent: the signatures tell
        }
        rx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
    }
    c_.rx_packets += n;  // once a burst, not once a packet
    c_.rx_bytes += rx_bytes;
    // The home entries of the first packets have arrived by now.
    for (uint16_t i = 0; i < n; ++i)
        if (pre_[i].hash != 0) pre_[i].hint = w_.flows->probe_home(pre_[i].key, pre_[i].hash, pre_[i].hint);
    for (uint16_t i = 0; i < n; ++i)
        if (pre_[i].hash != 0 && pre_[i].hint == flow::kNoPeer) pre_[i].hint = w_.flows->prefetch_entry(pre_[i].hash);
    for (uint16_t i = 0; i < n; ++i) process(pkts[i], port, false, &pre_[i]);
}

void Worker::flush_tx() {
    for (const auto& p : dp_.ports()) {
        rte_eth_tx_buffer_flush(p.port_id, uint16_t(w_.index), w_.tx[p.port_id]);
        if (p.has_exception)
            rte_eth_tx_buffer_flush(p.exception_port_id, uint16_t(w_.index), w_.tx[p.exception_port_id]);
    }
}

void Worker::run() {
    const uint32_t burst = std::min<uint32_t>(dp_.config().workers.burst_size, kMaxBurst);
    rte_mbuf* pkts[kMaxBurst];
    rte_rcu_qsbr_thread_online(dp_.rcu(), w_.index);
    if (idle_sleep_us_ != 0) {
        (void)prctl(PR_SET_TIMERSLACK, kIdleSleepSlackNs);
        FERRY_LOG(INFO, "worker %u: sleeps %u us after an empty poll (timer slack %d ns)", w_.index, idle_sleep_us_,
                  prctl(PR_GET_TIMERSLACK));
    }
    // Count TX drops (queue full) without touching the fast path.
    for (auto* b : w_.tx)
        if (b) rte_eth_tx_buffer_set_err_callback(b, rte_eth_tx_buffer_count_callback, &c_.drops[size_t(Drop::tx_full)]);

    while (!dp_.quit.load(std::memory_order_relaxed)) {
        snap_ = dp_.snapshot();
        const uint64_t tsc = rte_get_tsc_cycles();
        const auto now_us = uint64_t((Uint128(tsc) * us_per_tsc_q32_) >> 32);
        now_ms_ = uint32_t(now_us / 1000);
        steer_.set_now_us(uint32_t(now_us));  // handshake times (connect latency)
        uint32_t work = 0;
        uint64_t stamp = tsc;  // end of the last timed stage; the clock is read only in polls that move packets

        // Frames the control thread wants sent (ARP requests, gratuitous ARP).
        unsigned n = rte_ring_dequeue_burst(w_.from_control, reinterpret_cast<void**>(pkts), burst, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            uint16_t port = pkts[i]->port;
            ++c_.tx_packets;
            c_.tx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
            rte_eth_tx_buffer(port, uint16_t(w_.index), w_.tx[port], pkts[i]);
        }
        work += n;

        // Packets other workers received for flows this worker owns.
        for (rte_ring* r : w_.handoff_in) {
            if (!r) continue;
            n = rte_ring_dequeue_burst(r, reinterpret_cast<void**>(pkts), burst, nullptr);
            c_.handoff_in += n;
            for (unsigned i = 0; i < n; ++i) process(pkts[i], dp_.ports()[port_index_[pkts[i]->port]], true, nullptr);
            work += n;
        }

        for (const auto& port : dp_.ports()) {
            uint16_t nb = rte_eth_rx_burst(port.port_id, uint16_t(w_.index), pkts, uint16_t(burst));
            work += nb;
            if (nb) {
                const uint64_t received = rte_rdtsc();
                c_.cycles_rx += received - stamp;
                process_burst(pkts, nb, port);
                stamp = rte_rdtsc();
                c_.cycles_process += stamp - received;
            }
            if (port.has_exception) {
                // What the host's kernel sends leaves through the port unchanged.
                nb = rte_eth_rx_burst(port.exception_port_id, uint16_t(w_.index), pkts, uint16_t(burst));
                work += nb;
                for (uint16_t i = 0; i < nb; ++i) {
                    ++c_.from_exception;
                    ++c_.tx_packets;
                    c_.tx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
                    rte_eth_tx_buffer(port.port_id, uint16_t(w_.index), w_.tx[port.port_id], pkts[i]);
                }
            }
        }
        if (n_pending_) retry_pending();
        flush_tx();
        if (work) {
            const uint64_t sent = rte_rdtsc();
            c_.cycles_tx += sent - stamp;
            stamp = sent;
        }

        c_.flows_expired += steer_.expire_closed(*snap_, now_ms_);
        if (now_ms_ != last_sweep_ms_) {
            last_sweep_ms_ = now_ms_;
            c_.flows_expired += steer_.sweep(*snap_, sweep_slice_, now_ms_);
            c_.flow_entries = w_.flows->size();
            c_.flows_closing = w_.flows->closing_queued();
            c_.closing_overflow = w_.flows->stats().closing_overflow;
        }

        rte_rcu_qsbr_quiescent(dp_.rcu(), w_.index);
        if (work) {
            ++c_.busy_polls;
            c_.cycles_other += rte_rdtsc() - stamp;
        } else if (idle_sleep_us_ != 0) {
            usleep(idle_sleep_us_);
        }
    }
    for (uint32_t i = 0; i < n_pending_; ++i) rte_pktmbuf_free(pending_[i].m);
    n_pending_ = 0;
    flush_tx();
    rte_rcu_qsbr_thread_offline(dp_.rcu(), w_.index);
}

}  // namespace

int worker_main(void* arg) {
    auto* ctx = static_cast<WorkerContext*>(arg);
    Worker worker(dataplane(), *ctx);
    worker.run();
    return 0;
}

}  // namespace ferry::dp
