// Local source ports of one worker for full NAT, per local address.
//
// A full-NAT connection reaches its backend as (local address, local port) ->
// (backend address, backend port), so a local port only has to be unique per
// backend, not across all of them: every backend gets the worker's whole
// share of 1024..65535, and a worker holds up to that many connections per
// backend and local address (not that many in all).
//
// The flow table is the one record of which ports are taken: a port is in use
// towards a backend while the reply entry backend -> local:port exists. So
// nothing is freed when a flow ends and no per-backend state is kept; the
// caller's `is_free` looks the reply key up.
//
// pick() first offers the port at the backend's own cursor (a "lane" per
// backend), which moves on by one with each of that backend's connections, so
// a port comes back to the same backend only after all the others have been
// offered to it: as late as possible, for the backend's TIME_WAIT (with one
// cursor for all backends, a port would come back after 64,512 connections
// in all, not per backend). When that one is taken it tries ports at random
// positions, up to kMaxProbes in all: walking on from the cursor instead would
// grow runs of taken ports per backend (the clustering of linear probing) and
// refuse connections long before a backend's ports run out. With random
// probes a pick fails only with probability (share of taken ports)^32, e.g.
// about 1e-11 at 45%, 1e-5 at 70%, 1e-3 at 80% (the caller counts
// nat_ports_exhausted).
#pragma once

#include <cstdint>
#include <vector>

namespace ferry::flow {

// One worker's full-NAT source ports on one local address: a fixed list, a
// cursor per lane (backend) and a PRNG. Hot path: no allocation, no division, at most
// kMaxProbes calls of is_free.
class NatPortAllocator {
public:
    static constexpr uint32_t kMaxProbes = 32;
    static constexpr uint32_t kLookahead = 4;  // pick_ahead: random candidates in flight at once

    // ports: host-order port numbers this worker owns (duplicates are dropped,
    // order kept). `start` picks the first position (e.g. a random number),
    // so restarts and workers do not all begin at the same port; it also
    // seeds the random probes. `lanes`: how many cursors (backend ids
    // 0..lanes-1); each starts at its own position.
    explicit NatPortAllocator(std::vector<uint16_t> ports, uint32_t start = 0, uint32_t lanes = 1);

    // Stores in `port` (host order) the next port of `lane` (the backend id;
    // lanes beyond the last share lane 0) for which is_free(port) is true,
    // trying at most kMaxProbes ports. False when none of them was free
    // (counted in exhausted()) or the list is empty.
    template <typename IsFree>
    bool pick(IsFree&& is_free, uint16_t& port, uint32_t lane = 0) {
        const auto no = [](uint16_t, uint32_t) { return false; };
        return pick_ahead([](uint16_t) { return 0u; }, [&](uint16_t c, uint32_t) { return is_free(c); }, no, no, port,
                          lane);
    }

    // The same candidates, for a caller whose test waits on memory
    // (flow-table lookups) and has a quick answer for most ports:
    //   start(candidate) -> token      begins the work (prefetches);
    //   surely_free(candidate, token)  true only if the port is free, from
    //                                  what start() fetched (signatures);
    //   not_held(candidate, token)     true when no entry holds the port
    //                                  (a lookup, one more cache miss);
    //   is_free(candidate, token)      the full answer, which may also make
    //                                  a port free (reclaim an expired flow).
    // The cursor's port is asked surely_free, then (after kLookahead random
    // candidates are started, so its miss overlaps theirs) not_held: a port
    // that only looked taken, through another key's signature, still goes out
    // in cursor order, so a backend's ports are all handed out before any
    // comes back. Past it, random candidates are asked surely_free, kLookahead
    // of them in flight. Only when every candidate looked taken does a second
    // pass ask is_free of each, the cursor's port first. The cursor's port is
    // not asked in full at once: while it is held (about half the picks at 1M
    // flows) that cost two more dependent misses (the holder's forward entry's
    // signature and entry) only to learn whether the holder expired, and the
    // sweep frees such ports anyway.
    template <typename Start, typename SurelyFree, typename NotHeld, typename IsFree>
    bool pick_ahead(Start&& start, SurelyFree&& surely_free, NotHeld&& not_held, IsFree&& is_free, uint16_t& port,
                    uint32_t lane = 0) {
        const uint32_t n = uint32_t(ports_.size());
        if (n == 0) {
            ++exhausted_;
            return false;
        }
        uint16_t cand[kMaxProbes];
        uint32_t token[kMaxProbes];
        uint32_t& cursor = cursors_[lane_index(lane)];
        cand[0] = ports_[cursor];
        if (++cursor == n) cursor = 0;
        token[0] = start(cand[0]);
        if (surely_free(cand[0], token[0])) {
            port = cand[0];
            return true;
        }
        uint32_t started = 1;
        for (; started < kMaxProbes && started <= kLookahead; ++started) {
            cand[started] = random_port(n);
            token[started] = start(cand[started]);
        }
        if (not_held(cand[0], token[0])) {
            port = cand[0];
            return true;
        }
        for (uint32_t i = 1; i < kMaxProbes; ++i) {
            if (surely_free(cand[i], token[i])) {
                port = cand[i];
                return true;
            }
            if (started < kMaxProbes) {
                cand[started] = random_port(n);
                token[started] = start(cand[started]);
                ++started;
            }
        }
        for (uint32_t i = 0; i < kMaxProbes; ++i) {
            if (is_free(cand[i], token[i])) {
                port = cand[i];
                return true;
            }
        }
        ++exhausted_;
        return false;
    }

    // The port `lane`'s next pick offers first (its cursor), without moving
    // it; 0 when the list is empty. Lets a caller prefetch for the next pick.
    uint16_t peek(uint32_t lane = 0) const { return ports_.empty() ? 0 : ports_[cursors_[lane_index(lane)]]; }

    uint32_t size() const { return uint32_t(ports_.size()); }
    uint64_t exhausted() const { return exhausted_; }  // failed picks

private:
    uint32_t lane_index(uint32_t lane) const { return lane < cursors_.size() ? lane : 0; }

    uint16_t random_port(uint32_t n) {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return ports_[uint32_t((uint64_t(uint32_t(rng_)) * n) >> 32)];
    }

    std::vector<uint16_t> ports_;
    std::vector<uint32_t> cursors_;         // by lane; at least one
    uint64_t rng_ = 0x9e3779b97f4a7c15ull;  // xorshift64 state, never 0
    uint64_t exhausted_ = 0;
};

// Splits [first, last] among `workers` so no two workers share a port:
// worker w gets the ports p with (p % workers) == w (ascending). Empty when
// workers == 0, worker >= workers or first > last.
std::vector<uint16_t> ports_for_worker(uint16_t first, uint16_t last, uint32_t workers, uint32_t worker);

}  // namespace ferry::flow
