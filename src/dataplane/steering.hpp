// A worker's per-flow decisions, free of DPDK: which backend a VIP packet
// goes to (its flow entry, or a scheduler's pick that creates one), which
// client a backend's reply goes back to, each flow's TCP state, and expiry.
//
// The worker (worker.cpp) does the I/O around it: receiving, parsing,
// hand-offs between workers, rewriting headers and sending. Keeping the
// decisions here, on plain memory, lets the unit tests and the new-connection
// micro-benchmark run the very code the worker runs, without EAL.
//
// Hot path: no allocation, no locks, no system calls, nothing thrown.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/snapshot.hpp"
#include "flow/flow_table.hpp"
#include "flow/nat_ports.hpp"
#include "packet/packet.hpp"

namespace ferry::dp {

inline constexpr uint32_t kMaxBackends = 16384;  // stable backend ids per process
inline constexpr uint32_t kMaxVips = 1024;       // stable VIP ids per process

// A parsed IPv4 packet's flow key, in registers (see flow::KeyV4).
inline flow::KeyV4 key_v4(const packet::Parsed& p) {
    return flow::KeyV4::of(p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.proto);
}

// Where a VIP packet goes, from Steering::to_backend(). 16 bytes, so it is
// returned in two registers rather than through memory.
struct ToBackend {
    uint32_t backend_id = kNone;
    uint32_t nat_ip = 0;            // full NAT: local source address (network order)
    uint32_t slot = flow::kNoPeer;  // the flow's forward entry; kNoPeer when stateless
    uint16_t nat_port = 0;          // full NAT: local source port (network order); 0 = dnat
    Drop drop = Drop::count_;       // count_: forward it; anything else: drop it for this reason
    bool forward() const { return drop == Drop::count_; }
};
static_assert(sizeof(ToBackend) == 16);

// Where a backend's reply goes, from Steering::to_client().
struct ToClient {
    uint32_t client_ip = 0;  // network order
    uint32_t vip_ip = 0;
    uint16_t client_port = 0;  // network order
    uint16_t vip_port = 0;
    bool full_nat = false;  // restore the client as destination too
};

// Where an ICMP error about a packet Ferry sent from a VIP to a client goes:
// the flow's backend, and the peer the backend itself sent that packet to
// (the client in dnat, Ferry's NAT address and port in full NAT).
struct IcmpToBackend {
    uint32_t backend_id = kNone;
    uint32_t peer_ip = 0;  // network order
    uint16_t peer_port = 0;
    bool full_nat = false;  // the peer is Ferry's NAT source, not the client
};

// What one Steering works on: its worker's table, ports and counters, and
// read-only views of the other workers' backend counters (least_conn).
struct SteeringParts {
    flow::FlowTable* flows = nullptr;
    std::vector<flow::NatPortAllocator>* nat_ports = nullptr;  // by local address index
    WorkerCounters* counters = nullptr;
    BackendCounters* backend_counters = nullptr;               // kMaxBackends entries
    VipCounters* vip_counters = nullptr;                       // kMaxVips entries
    std::vector<const BackendCounters*> all_backend_counters;  // every worker's, this one's included
    std::vector<uint32_t> local_ips;                           // by local address index, network order
    std::vector<uint8_t> index_of_port;                        // DPDK port id -> local address index
    // Full-NAT source addresses of each port (nat_addresses), by the port's own local address
    // index: that index first, then those of its NAT addresses. New full-NAT flows to a backend
    // rotate over them. No entry, or an empty one: the port's own address alone.
    std::vector<std::vector<uint8_t>> nat_pools;
    uint32_t worker_index = 0;
    uint32_t worker_count = 1;
};

class Steering {
public:
    explicit Steering(SteeringParts parts);

    // A packet to a VIP (vip_id from snap.find_vip): looks its flow up by
    // `key` (key_v4(p), which the worker builds once a packet) and `hash`
    // (FlowTable::hash(key)), ends a stale entry, creates one
    // for a SYN or a new UDP flow (scheduler pick, full-NAT source port),
    // follows TCP state, counts. The caller rewrites and sends on forward().
    // `hint`: what FlowTable::prefetch_entry(hash) returned, if the caller has it.
    // Inline (below) for a live flow's packet, nearly every packet; the rest
    // is in to_backend_miss().
    ToBackend to_backend(const Snapshot& snap, uint32_t vip_id, const packet::Parsed& p, const flow::KeyV4& key,
                         uint32_t hash, uint32_t pkt_len, uint32_t now_ms, uint32_t hint = flow::kNoPeer);

    // An ICMP error quoting a packet from a VIP to a client: its flow in this
    // worker's table, if any. Changes nothing (an error keeps no flow alive).
    bool icmp_to_backend(const Snapshot& snap, const packet::IcmpQuote& q, IcmpToBackend& out) const;

    // A packet whose 5-tuple matched `slot`: if it is a reply entry, follows
    // TCP state, counts and says whom to send it to; false otherwise.
    bool to_client(const Snapshot& snap, const packet::Parsed& p, uint32_t slot, uint32_t pkt_len, uint32_t now_ms,
                   ToClient& out);

    // Removes idle flows: a slice of `slice` slots (see FlowTable::sweep), or
    // kSweepHurry times that while the table is more than 3/4 full and the
    // last full pass removed at least 1/kSweepFinds of its capacity: under
    // churn with short timeouts, flows that expired but wait for the sweep
    // would otherwise fill the table, and every new flow would pay for
    // reclaiming room in its buckets (FlowTable::reclaim). A table crowded
    // with live flows is not swept faster for nothing (at 1M established
    // flows the hurried sweep cost the worker 23-60 cycles a packet).
    static constexpr uint32_t kSweepHurry = 5;
    static constexpr uint32_t kSweepFinds = 64;
    uint32_t sweep(const Snapshot& snap, uint32_t slice, uint32_t now_ms);

    // Removes closed flows whose closing timeout has passed (up to `budget`;
    // FlowTable::expire_closed). Called every loop iteration: cheap when
    // none is due.
    static constexpr uint32_t kCloseBudget = 64;
    uint32_t expire_closed(const Snapshot& snap, uint32_t now_ms);

    // Ends the flow in `slot` (forward or reply entry) and its pair.
    void end_flow(uint32_t slot);

    // The worker's microsecond clock (wraps every ~71 min), set once per loop
    // iteration: a new flow's reply entry keeps it in `created`, and the
    // SYN-ACK adds the difference to the backend's connect_us_sum and
    // connect_samples (the SYN to SYN-ACK time).
    void set_now_us(uint32_t now_us) { now_us_ = now_us; }

private:
    // FlowValue::flags bits: the FIN seen from each side (both: closing).
    static constexpr uint8_t kFinFromClient = 0x01, kFinFromServer = 0x02;
    // The flow was picked up mid-stream (dnat, no SYN seen): no handshake to time.
    static constexpr uint8_t kPickedUp = 0x04;
    // to_backend() for a packet without a live flow: ends the stale entry in
    // `stale_slot` (kNoPeer: none), then opens a flow or drops.
    ToBackend to_backend_miss(const Snapshot& snap, uint32_t vip_id, const packet::Parsed& p, const flow::KeyV4& key,
                              uint32_t hash, uint32_t pkt_len, uint32_t now_ms, uint32_t stale_slot);
    void count_to_backend(uint32_t backend_id, const packet::Parsed& p, uint32_t pkt_len) {
        BackendCounters& bc = x_.backend_counters[backend_id];
        ++bc.packets;
        bc.bytes += pkt_len;
        if (packet::opens_connection(p)) ++bc.syn_sent;
    }
    uint32_t pick_backend(const Snapshot& snap, uint32_t vip_id, const VipEntry& vip, const packet::Parsed& p);
    static uint32_t pick_by_table(const VipEntry& vip, const packet::Parsed& p);
    // `prior`: for a flow picked up mid-stream, the backend an expired entry of its tuple named (kNone: none).
    ToBackend open_flow(const Snapshot& snap, uint32_t vip_id, const VipEntry& vip, const packet::Parsed& p,
                        const flow::KeyV4& key, uint32_t hash, uint32_t now_ms, uint32_t prior);
    bool pick_nat_port(const Snapshot& snap, uint32_t backend_id, const BackendEntry& be, uint8_t nat_addr,
                       uint8_t proto, uint32_t now_ms, uint16_t& port_net);
    // A full-NAT source (local address index, port) for a new flow to `be` leaving through the
    // port whose own local address index is `home`: its address pool's next address for this
    // backend first, the others if that one has no free port.
    bool pick_nat_source(const Snapshot& snap, uint32_t backend_id, const BackendEntry& be, uint8_t home, uint8_t proto,
                         uint32_t now_ms, uint8_t& nat_addr, uint16_t& port_net);
    void release(const flow::FlowEntry& e);
    // The forward entry `v` in `slot` has seen RST, or FIN both ways: it
    // becomes closing and is queued for removal at its closing timeout.
    void close(const Snapshot& snap, flow::FlowValue& v, uint32_t slot, uint32_t now_ms);
    // FlowTable::insert, reclaiming expired flows in the key's buckets when full.
    uint32_t insert(const Snapshot& snap, const flow::KeyV4& key, uint32_t hash, const flow::FlowValue& v,
                    uint32_t now_ms);
    // Each VIP's timeouts by id, for the sweep and reclaim.
    auto timeouts_of(const Snapshot& snap) const {
        return [&snap, this](uint16_t vip_id) -> const flow::Timeouts& {
            return vip_id < snap.vips.size() && snap.vips[vip_id].present ? snap.vips[vip_id].timeouts
                                                                          : default_timeouts_;
        };
    }

    SteeringParts x_;
    flow::Timeouts default_timeouts_;
    // Scheduler state of this worker: round-robin cursors per VIP (restarted
    // when a new snapshot arrives), scratch for active-flow counts, a PRNG.
    std::vector<uint32_t> rr_cursor_ = std::vector<uint32_t>(kMaxVips, 0);
    std::vector<uint64_t> rr_generation_ = std::vector<uint64_t>(kMaxVips, ~0ull);
    std::vector<int64_t> active_scratch_ = std::vector<int64_t>(kMaxBackends, 0);
    // Per backend: the position in its port's NAT address pool the next new flow starts at, so a
    // backend's flows rotate over the addresses and a source (address, port) comes back to it
    // only after pool size x port share of its connections (its TIME_WAIT reuse distance).
    std::vector<uint8_t> nat_turn_ = std::vector<uint8_t>(kMaxBackends, 0);
    // x_.local_ips, 0 past its end: a flow's nat_addr (one byte) indexes it
    // with no bounds check on a live flow's packet.
    std::array<uint32_t, 256> local_ip_of_{};
    static_assert(sizeof(flow::FlowValue::nat_addr) == 1);
    uint64_t rng_ = 0x9e3779b97f4a7c15ull;
    uint32_t now_us_ = 0;
    // What the sweep's current pass has removed, and whether the last full
    // pass found enough to hurry (true until a first pass has shown otherwise).
    uint32_t swept_this_pass_ = 0;
    bool sweep_finds_ = true;
};

// Always inline: GCC keeps it a call in the worker's loop (saving and
// restoring registers and returning through memory on every packet).
__attribute__((always_inline)) inline ToBackend Steering::to_backend(const Snapshot& snap, uint32_t vip_id,
                                                                     const packet::Parsed& p, const flow::KeyV4& key,
                                                                     uint32_t hash, uint32_t pkt_len, uint32_t now_ms,
                                                                     uint32_t hint) {
    const VipEntry& vip = snap.vips[vip_id];
    VipCounters& vc = x_.vip_counters[vip_id];
    ++vc.packets;
    vc.bytes += pkt_len;

    flow::FlowTable& t = *x_.flows;
    const uint32_t slot = t.lookup(key, hash, hint);
    if (slot == flow::kNoPeer) return to_backend_miss(snap, vip_id, p, key, hash, pkt_len, now_ms, flow::kNoPeer);
    flow::FlowValue& v = t.entry(slot).value;
    // Stale: idle past its timeout, a SYN reusing a closed or picked-up
    // flow's tuple (a new connection), or its backend is down with its flows cut.
    if (flow::FlowTable::expired(v, now_ms, vip.timeouts) ||
        (packet::opens_connection(p) && (v.state == uint8_t(flow::FlowState::closing) || (v.flags & kPickedUp) != 0)) ||
        (v.backend_id < snap.backends.size() && snap.backends[v.backend_id].drop_flows))
        return to_backend_miss(snap, vip_id, p, key, hash, pkt_len, now_ms, slot);

    v.last_seen = now_ms;
    ToBackend out;
    out.slot = slot;
    out.backend_id = v.backend_id;
    out.nat_port = v.nat_port;
    if (v.nat_port != 0) out.nat_ip = local_ip_of_[v.nat_addr];
    if ((p.tcp_flags & (packet::kTcpRst | packet::kTcpFin)) != 0) {  // never set but in TCP (packet::Parsed)
        if (p.tcp_flags & packet::kTcpRst) {
            close(snap, v, slot, now_ms);
        } else {
            v.flags |= kFinFromClient;
            if (v.flags & kFinFromServer) close(snap, v, slot, now_ms);
        }
    }
    count_to_backend(out.backend_id, p, pkt_len);
    return out;
}

}  // namespace ferry::dp
