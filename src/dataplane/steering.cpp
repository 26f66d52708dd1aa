#include "dataplane/steering.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <utility>

#include "balance/hash.hpp"
#include "balance/least_load.hpp"
#include "balance/maglev.hpp"
#include "balance/round_robin.hpp"

namespace ferry::dp {

namespace {
constexpr uint8_t kSynAck = packet::kTcpSyn | packet::kTcpAck;
}  // namespace

Steering::Steering(SteeringParts parts) : x_(std::move(parts)) {
    rng_ += uint64_t(x_.worker_index + 1) * 0xbf58476d1ce4e5b9ull;
    if (x_.worker_count == 0) x_.worker_count = 1;
    std::copy_n(x_.local_ips.begin(), std::min(x_.local_ips.size(), local_ip_of_.size()), local_ip_of_.begin());
}

uint32_t Steering::pick_by_table(const VipEntry& vip, const packet::Parsed& p) {
    if (vip.table.empty()) return kNone;
    return vip.table[vip.table_slot_of(p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.proto)];
}

uint32_t Steering::pick_backend(const Snapshot& snap, uint32_t vip_id, const VipEntry& vip, const packet::Parsed& p) {
    switch (vip.scheduler) {
        case SchedulerKind::maglev: break;
        case SchedulerKind::round_robin: {
            const uint32_t len = uint32_t(vip.rr_sequence.size());
            if (len == 0) return kNone;
            // Each worker walks the same smooth sequence from its own offset.
            if (rr_generation_[vip_id] != snap.generation) {
                rr_generation_[vip_id] = snap.generation;
                rr_cursor_[vip_id] = balance::swrr_start_offset(x_.worker_index, x_.worker_count, len);
            }
            const uint32_t pos = rr_cursor_[vip_id];
            rr_cursor_[vip_id] = pos + 1 == len ? 0 : pos + 1;
            return vip.rr_sequence[pos];
        }
        case SchedulerKind::least_conn:
        case SchedulerKind::two_choices: {
            const uint32_t n = uint32_t(vip.cand_ids.size());
            if (n == 0) return kNone;
            // Active flows of every worker, read as they are (at most a burst old).
            for (uint32_t i = 0; i < n; ++i) {
                int64_t sum = 0;
                for (const BackendCounters* w : x_.all_backend_counters)
                    sum += read_relaxed(w[vip.cand_ids[i]].active_flows);
                active_scratch_[i] = sum;
            }
            rng_ ^= rng_ << 13;
            rng_ ^= rng_ >> 7;
            rng_ ^= rng_ << 17;
            const uint32_t i =
                vip.scheduler == SchedulerKind::least_conn
                    ? balance::pick_least_conn(vip.cand_weights.data(), active_scratch_.data(), n, uint32_t(rng_))
                    : balance::pick_two_choices(vip.cand_cumulative.data(), vip.cand_weights.data(),
                                                active_scratch_.data(), n, rng_);
            return i == balance::kNoPick ? kNone : vip.cand_ids[i];
        }
    }
    return pick_by_table(vip, p);
}

void Steering::release(const flow::FlowEntry& e) {
    // A full-NAT port needs no release: the reply entry that held it is
    // removed with the flow (see flow/nat_ports.hpp).
    if (!e.value.is_reply && e.value.backend_id < kMaxBackends) --x_.backend_counters[e.value.backend_id].active_flows;
}

void Steering::close(const Snapshot& snap, flow::FlowValue& v, uint32_t slot, uint32_t now_ms) {
    if (v.state == uint8_t(flow::FlowState::closing)) return;  // queued already
    v.state = uint8_t(flow::FlowState::closing);
    const uint32_t closing_ms = timeouts_of(snap)(v.vip_id).closing_ms;
    x_.flows->close_later(slot, now_ms + closing_ms + 1, closing_ms);
}

void Steering::end_flow(uint32_t slot) {
    flow::FlowTable& t = *x_.flows;
    const flow::FlowEntry& e = t.entry(slot);
    const uint32_t fwd = e.value.is_reply ? e.value.peer : slot;
    if (fwd == flow::kNoPeer) {
        t.remove(slot);
        return;
    }
    release(t.entry(fwd));
    t.remove_with_peer(fwd);
}

bool Steering::pick_nat_port(const Snapshot& snap, uint32_t backend_id, const BackendEntry& be, uint8_t nat_addr,
                             uint8_t proto, uint32_t now_ms, uint16_t& port_net) {
    const uint32_t local_ip = x_.local_ips[nat_addr];
    flow::FlowTable& t = *x_.flows;
    uint16_t port = 0;
    // Free towards this backend while no reply entry backend -> local:port
    // exists, or once the flow holding it has expired (the sweep has not
    // reached it yet) and gave way. Surely free when no signature in the
    // reply key's buckets matches: a taken random candidate then costs its
    // (prefetched) signature lines, not its entry and its forward entry.
    auto reply_key = [&](uint16_t candidate) {
        return flow::KeyV4::of(be.ip, local_ip, be.port, htons(candidate), proto);
    };
    const bool ok = (*x_.nat_ports)[nat_addr].pick_ahead(
        [&](uint16_t candidate) {
            const uint32_t h = flow::FlowTable::hash(reply_key(candidate));
            t.prefetch(h);  // both signature lines at once: a free port misses in both
            return h;
        },
        [&](uint16_t, uint32_t h) { return !t.maybe_present(h); },
        [&](uint16_t candidate, uint32_t h) { return t.lookup(reply_key(candidate), h) == flow::kNoPeer; },
        [&](uint16_t candidate, uint32_t h) {
            const uint32_t slot = t.lookup(reply_key(candidate), h);
            if (slot == flow::kNoPeer) return true;
            x_.counters->flows_expired +=
                t.reclaim_slot(slot, now_ms, timeouts_of(snap), [&](const flow::FlowEntry& e) { release(e); });
            return !t.occupied(slot);
        },
        port, backend_id);
    // The next connection to this backend on this address starts with the port
    // now at its cursor: load that reply key's signature lines now, so the
    // check then finds them in cache instead of waiting on DRAM, and its home
    // entry, where the reply entry then most likely goes.
    t.prefetch_insert(flow::FlowTable::hash(reply_key((*x_.nat_ports)[nat_addr].peek(backend_id))));
    port_net = htons(port);
    return ok;
}

bool Steering::pick_nat_source(const Snapshot& snap, uint32_t backend_id, const BackendEntry& be, uint8_t home,
                               uint8_t proto, uint32_t now_ms, uint8_t& nat_addr, uint16_t& port_net) {
    const uint32_t n_local = uint32_t(x_.local_ips.size());
    if (home >= x_.nat_pools.size() || x_.nat_pools[home].empty()) {
        nat_addr = home;
        return home < n_local && pick_nat_port(snap, backend_id, be, home, proto, now_ms, port_net);
    }
    const std::vector<uint8_t>& pool = x_.nat_pools[home];
    const uint32_t n = uint32_t(pool.size());
    uint32_t k = 0;
    if (backend_id < nat_turn_.size()) {
        uint8_t& turn = nat_turn_[backend_id];
        k = turn < n ? turn : 0;
        turn = uint8_t(k + 1 == n ? 0 : k + 1);
    }
    for (uint32_t tried = 0; tried < n; ++tried, k = k + 1 == n ? 0 : k + 1) {
        const uint8_t a = pool[k];
        if (a < n_local && pick_nat_port(snap, backend_id, be, a, proto, now_ms, port_net)) {
            nat_addr = a;
            return true;
        }
    }
    return false;
}

ToBackend Steering::open_flow(const Snapshot& snap, uint32_t vip_id, const VipEntry& vip, const packet::Parsed& p,
                              const flow::KeyV4& key, uint32_t hash, uint32_t now_ms, uint32_t prior) {
    WorkerCounters& c = *x_.counters;
    VipCounters& vc = x_.vip_counters[vip_id];
    const bool tcp = p.proto == IPPROTO_TCP;
    const bool syn = packet::opens_connection(p);
    ToBackend out;
    if (tcp && !syn) {
        ++c.flow_miss_non_syn;
        if (vip.mode == ForwardMode::nat) {
            out.drop = Drop::tcp_no_flow;
            return out;
        }
    } else {
        ++(tcp ? c.flow_miss_syn : c.flow_miss_udp);
    }
    // A TCP packet without SYN (dnat) has no entry to follow: it goes to the
    // backend an expired entry of its tuple named, else by the Maglev table,
    // the one choice that is the same on every worker and instance. The flow
    // is picked up: its entries are made as for a SYN, so it stays on this
    // backend and its replies find their way back to the client. It starts
    // with the SYN timeout and becomes established when the backend answers
    // (to_client), so stray ACKs do not hold entries for long.
    const bool pickup = tcp && !syn;
    out.backend_id = !pickup ? pick_backend(snap, vip_id, vip, p) : prior != kNone ? prior : pick_by_table(vip, p);
    if (out.backend_id == kNone || out.backend_id >= snap.backends.size()) {
        ++vc.no_backend;
        out.drop = Drop::no_backend;
        return out;
    }
    if (pickup && (p.tcp_flags & (packet::kTcpRst | packet::kTcpFin)) != 0) {
        ++c.stateless;  // an ending connection: forwarded, nothing picked up
        return out;
    }

    const BackendEntry& be = snap.backends[out.backend_id];
    const bool nat = vip.mode == ForwardMode::nat;
    uint8_t nat_addr = 0;
    if (nat) {
        const uint8_t home = be.egress_port < x_.index_of_port.size() ? x_.index_of_port[be.egress_port] : 0;
        if (!pick_nat_source(snap, out.backend_id, be, home, p.proto, now_ms, nat_addr, out.nat_port)) {
            out.drop = Drop::nat_ports_exhausted;
            return out;
        }
        out.nat_ip = x_.local_ips[nat_addr];
    }

    flow::FlowTable& t = *x_.flows;
    flow::FlowValue fv;
    fv.backend_id = out.backend_id;
    fv.vip_id = uint16_t(vip_id);
    fv.nat_port = out.nat_port;
    fv.nat_addr = nat_addr;
    fv.state = uint8_t(tcp ? flow::FlowState::syn_seen : flow::FlowState::udp);
    fv.flags = pickup ? kPickedUp : 0;
    fv.last_seen = now_ms;
    fv.created = now_ms;
    const flow::KeyV4 rwords = nat ? flow::KeyV4::of(be.ip, out.nat_ip, be.port, out.nat_port, p.proto)
                                   : flow::KeyV4::of(be.ip, p.src_ip, be.port, p.src_port, p.proto);
    const uint32_t rhash = flow::FlowTable::hash(rwords);
    uint32_t fwd = insert(snap, key, hash, fv, now_ms);
    if (fwd != flow::kNoPeer) {
        flow::FlowValue rv;
        rv.backend_id = out.backend_id;
        rv.vip_id = uint16_t(vip_id);
        rv.is_reply = 1;
        rv.peer = fwd;
        rv.created = now_us_;  // the SYN-ACK's arrival gives the backend's connect time
        if (!nat) {
            // A reply key still held by an older flow (the same client port
            // reused quickly) is taken over by the new flow. In full NAT the
            // port was chosen because no such entry exists.
            const uint32_t old = t.lookup(rwords, rhash);
            if (old != flow::kNoPeer) end_flow(old);
        }
        const uint32_t rev = insert(snap, rwords, rhash, rv, now_ms);
        if (rev == flow::kNoPeer) {
            t.remove(fwd);
            fwd = flow::kNoPeer;
        } else {
            t.entry(fwd).value.peer = rev;
        }
    }
    if (fwd == flow::kNoPeer) {
        if (nat) {
            out.drop = Drop::flow_table_full;
            return out;
        }
        ++c.stateless;  // dnat: forwarded by hash alone, no entry to restore its replies
        return out;
    }
    out.slot = fwd;
    if (pickup) ++c.flows_picked_up;
    ++c.flows_created;
    ++vc.new_flows;
    BackendCounters& bc = x_.backend_counters[out.backend_id];
    ++bc.new_flows;
    ++bc.active_flows;
    return out;
}

ToBackend Steering::to_backend_miss(const Snapshot& snap, uint32_t vip_id, const packet::Parsed& p,
                                    const flow::KeyV4& key, uint32_t hash, uint32_t pkt_len, uint32_t now_ms,
                                    uint32_t stale_slot) {
    // The backend an idle-expired entry of this tuple still names: a connection picked up again
    // goes back there (not where the table points now, nor another scheduler's choice).
    uint32_t prior = kNone;
    if (stale_slot != flow::kNoPeer) {
        const flow::FlowValue& v = x_.flows->entry(stale_slot).value;
        if (!v.is_reply && v.state != uint8_t(flow::FlowState::closing) && v.backend_id < snap.backends.size() &&
            !snap.backends[v.backend_id].drop_flows)
            prior = v.backend_id;
        end_flow(stale_slot);
        ++x_.counters->flows_closed;
    }
    ToBackend out = open_flow(snap, vip_id, snap.vips[vip_id], p, key, hash, now_ms, prior);
    if (out.forward()) count_to_backend(out.backend_id, p, pkt_len);
    return out;
}

bool Steering::to_client(const Snapshot& snap, const packet::Parsed& p, uint32_t slot, uint32_t pkt_len,
                         uint32_t now_ms, ToClient& out) {
    flow::FlowTable& t = *x_.flows;
    const flow::FlowEntry& r = t.entry(slot);
    if (!r.value.is_reply || r.value.peer == flow::kNoPeer) return false;
    const uint32_t fwd = r.value.peer;
    flow::FlowEntry& f = t.entry(fwd);
    f.value.last_seen = now_ms;
    const uint32_t bid = f.value.backend_id;
    if (bid < kMaxBackends) {
        BackendCounters& bc = x_.backend_counters[bid];
        ++bc.packets;
        bc.bytes += pkt_len;
        if (p.proto == IPPROTO_TCP) {
            const bool picked_up = (f.value.flags & kPickedUp) != 0;
            if ((p.tcp_flags & kSynAck) == kSynAck && f.value.state == uint8_t(flow::FlowState::syn_seen) &&
                !picked_up) {
                f.value.state = uint8_t(flow::FlowState::established);
                ++bc.synack_seen;
                bc.connect_us_sum += uint32_t(now_us_ - r.value.created);  // wrap-safe
                ++bc.connect_samples;
            } else if (picked_up && f.value.state == uint8_t(flow::FlowState::syn_seen) &&
                       (p.tcp_flags & packet::kTcpRst) == 0) {
                f.value.state = uint8_t(flow::FlowState::established);  // the backend knows the connection
            }
            if (p.tcp_flags & packet::kTcpRst) {
                if (f.value.state == uint8_t(flow::FlowState::syn_seen) && !picked_up) ++bc.rst_on_syn;
                close(snap, f.value, fwd, now_ms);
            } else if (p.tcp_flags & packet::kTcpFin) {
                f.value.flags |= kFinFromServer;
                if (f.value.flags & kFinFromClient) close(snap, f.value, fwd, now_ms);
            }
        }
    }
    if (f.value.vip_id < kMaxVips) {
        VipCounters& vc = x_.vip_counters[f.value.vip_id];
        ++vc.packets;
        vc.bytes += pkt_len;
    }
    const flow::FlowKey& client = f.key;  // client -> VIP
    out.client_ip = client.src_v4();
    out.client_port = client.src_port;
    out.vip_ip = client.dst_v4();
    out.vip_port = client.dst_port;
    out.full_nat = f.value.nat_port != 0;
    return true;
}

bool Steering::icmp_to_backend(const Snapshot& snap, const packet::IcmpQuote& q, IcmpToBackend& out) const {
    // The quoted packet went VIP -> client: the flow's forward key is client -> VIP.
    const flow::KeyV4 key = flow::KeyV4::of(q.dst_ip, q.src_ip, q.dst_port, q.src_port, q.proto);
    const flow::FlowTable& t = *x_.flows;
    const uint32_t slot = t.lookup(key, flow::FlowTable::hash(key), flow::kNoPeer);
    if (slot == flow::kNoPeer) return false;
    const flow::FlowValue& v = t.entry(slot).value;
    if (v.is_reply || v.backend_id >= snap.backends.size()) return false;
    out.backend_id = v.backend_id;
    if (v.nat_port != 0) {
        out.peer_ip = local_ip_of_[v.nat_addr];
        out.peer_port = v.nat_port;
        out.full_nat = true;
    } else {
        out.peer_ip = q.dst_ip;
        out.peer_port = q.dst_port;
    }
    return true;
}

uint32_t Steering::sweep(const Snapshot& snap, uint32_t slice, uint32_t now_ms) {
    flow::FlowTable& t = *x_.flows;
    const bool hurry = sweep_finds_ && t.size() > t.capacity() / 4 * 3;
    const uint32_t pass = t.sweep_passes();
    const uint32_t removed = t.sweep(hurry ? slice * kSweepHurry : slice, now_ms, timeouts_of(snap),
                                     [&](const flow::FlowEntry& e) { release(e); });
    swept_this_pass_ += removed;
    if (t.sweep_passes() != pass) {  // a pass ended in this slice
        sweep_finds_ = swept_this_pass_ >= t.capacity() / kSweepFinds;
        swept_this_pass_ = 0;
    }
    return removed;
}

uint32_t Steering::expire_closed(const Snapshot& snap, uint32_t now_ms) {
    return x_.flows->expire_closed(kCloseBudget, now_ms, timeouts_of(snap),
                                   [&](const flow::FlowEntry& e) { release(e); });
}

uint32_t Steering::insert(const Snapshot& snap, const flow::KeyV4& key, uint32_t hash, const flow::FlowValue& v,
                          uint32_t now_ms) {
    flow::FlowTable& t = *x_.flows;
    const uint32_t slot = t.insert(key, hash, v);
    if (slot != flow::kNoPeer) return slot;
    // No room: flows that expired but the sweep has not reached yet give way.
    const uint32_t freed =
        t.reclaim(hash, now_ms, timeouts_of(snap), [&](const flow::FlowEntry& e) { release(e); });
    x_.counters->flows_expired += freed;
    return freed != 0 ? t.insert(key, hash, v) : flow::kNoPeer;
}

}  // namespace ferry::dp
