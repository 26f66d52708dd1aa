// Per-worker connection table: 5-tuple -> chosen backend and TCP state.
//
// Each worker owns one table and is its only reader and writer, so nothing
// here is atomic or locked. Pure code (no EAL): tested and benchmarked alone.
//
// Layout: `slots` = capacity * 1.2 rounded up to whole buckets of 16 slots
// (the load stays <= ~83%); a key hashes to two candidate buckets
// (hash-derived, multiply-shift so the bucket count need not be a power of
// two) and lives in any free slot of the less loaded one (power of two
// choices). Entries never move once placed (no cuckoo displacement), so a
// slot index is a stable handle: a full-NAT flow stores two entries (forward
// key and reply key) that point at each other through `peer`. Each slot is one
// 64-byte entry; a separate 16-bit signature array (0 = empty) makes a miss
// cost one cache line per candidate bucket.
//
// Home slot: one slot of the first bucket, picked by the hash, is a key's
// home; insert() puts the key there when it is free (above 7/8 of capacity
// only if that bucket is also the emptier one, so refusals stay as rare as
// with power of two choices alone). About 1 - load/2 of the keys of a table
// filled once sit at home, 1 - load under steady churn. A lookup of a key at
// home needs only its entry's cache line, not the signature lines first
// (prefetch_home + probe_home): one miss instead of three at 1M flows. A
// removed entry's key is poisoned (`pad` != 0), so an entry line alone tells
// whether it holds a live key.
//
// Why 16 x 1.2 and not 8 x 1.1: without displacement, 8-slot buckets at 1.1x
// refuse ~0.5% of new flows already at 80% of capacity and ~25% at capacity
// under churn; 16-slot buckets at 1.2x refuse none below ~90% and ~0.1% at
// capacity, for ~9% more memory (8M flows: ~635 MB).
//
// When full: insert() refuses (returns kNoPeer) if size() == capacity() or
// both candidate buckets are full, and counts it in stats().insert_full. The
// table never evicts a live entry to make room. What happens to the refused
// flow is the data plane's choice (dnat: forwarded statelessly by the
// consistent hash; full NAT: dropped).
//
// Hot path (lookup, insert, remove, sweep): no allocation, no exceptions, no
// system calls, no division.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/ip_address.hpp"

namespace ferry::flow {

struct KeyV4;

// The connection key, IPv6-ready (IPv4 uses the first 4 bytes of each address).
// Every byte is defined (unused address bytes and `pad` are zero), so keys hash
// and compare as 40 raw bytes.
struct FlowKey {
    uint8_t src[16];
    uint8_t dst[16];
    uint16_t src_port;   // network order, as in the packet
    uint16_t dst_port;   // network order
    uint8_t proto;       // IPPROTO_TCP / IPPROTO_UDP
    uint8_t family;      // 4 or 6
    uint16_t pad;        // zero in every live key, so keys compare with memcmp;
                         // FlowTable stores kRemovedPad in a free slot's key

    static FlowKey v4(uint32_t src_ip_net, uint32_t dst_ip_net, uint16_t src_port_net,
                      uint16_t dst_port_net, uint8_t proto);
    static FlowKey v4(const KeyV4& words);
    uint32_t src_v4() const;  // network order
    uint32_t dst_v4() const;
    bool operator==(const FlowKey& o) const;
};
static_assert(sizeof(FlowKey) == 40);

// An IPv4 FlowKey as the 64-bit words it is hashed and compared by (src, 0,
// dst, 0, rest = ports | proto | family), held in registers. The packet path
// hashes and looks up with it and builds a FlowKey only to insert: a key
// written in 2- and 4-byte pieces and read back as 8-byte words stalls on
// store forwarding (it was ~30% of an established packet's time).
struct KeyV4 {
    uint64_t src, dst, rest;
    static KeyV4 of(uint32_t src_ip_net, uint32_t dst_ip_net, uint16_t src_port_net, uint16_t dst_port_net,
                    uint8_t proto);
};

// TCP connection state as far as an L4 middlebox can tell; drives timeouts.
enum class FlowState : uint8_t {
    syn_seen = 0,   // client SYN forwarded, handshake not complete
    established,    // SYN-ACK seen (or first UDP packet / mid-stream ACK accepted)
    closing,        // FIN or RST seen in either direction
    udp,            // UDP flow
};

inline constexpr uint32_t kNoPeer = 0xffffffffu;
// FlowKey::pad of a free slot: no live key equals it (see FlowTable).
inline constexpr uint16_t kRemovedPad = 0xffff;

// What a flow entry remembers. Forward entries (client -> VIP) hold the
// decision; reply entries (backend -> Ferry, only for return traffic that
// cannot be matched otherwise) hold `peer` = the forward entry's slot.
struct FlowValue {
    uint32_t backend_id = 0;     // stable backend id (control plane registry)
    uint32_t peer = kNoPeer;     // slot of the paired entry, or kNoPeer
    uint32_t last_seen = 0;      // coarse time in ms (caller's clock, wraps)
    uint16_t vip_id = 0;         // index of the VIP in the snapshot that created it
    uint16_t nat_port = 0;       // full NAT: local source port (network order)
    uint8_t state = 0;           // FlowState
    uint8_t is_reply = 0;        // 1 on reply entries
    uint8_t nat_addr = 0;        // full NAT: index of the local address used
    uint8_t flags = 0;           // caller's bits (e.g. FIN seen per direction)
    uint32_t created = 0;        // forward: ms, for flow age in ferryctl; reply: us of the
                                 // first SYN (TCP), for the SYN to SYN-ACK time (wraps)
};
static_assert(sizeof(FlowValue) == 24);

// One slot of the table: key and value in exactly one cache line.
struct FlowEntry {
    FlowKey key;
    FlowValue value;
};
static_assert(sizeof(FlowEntry) == 64);

// Timeouts by state, in milliseconds (from the VIP config, in seconds).
// An idle flow expires when (now - last_seen) > the timeout of its state.
struct Timeouts {
    uint32_t syn_ms = 10'000;
    uint32_t established_ms = 900'000;
    uint32_t closing_ms = 10'000;
    uint32_t udp_ms = 30'000;
    uint32_t for_state(FlowState s) const;
};

// Counters the table keeps about itself (per worker; readers sum).
struct FlowTableStats {
    uint64_t inserts = 0;
    uint64_t insert_full = 0;    // no free slot in either bucket, or at capacity
    uint64_t removes = 0;
    uint64_t expired = 0;
    uint64_t closing_overflow = 0;  // close_later() found its queue full (the sweep takes the flow)
};

// A closed flow waiting for its closing timeout (FlowTable::close_later).
struct ClosingItem {
    uint32_t slot;    // its forward entry
    uint32_t due_ms;  // first millisecond at which it is expired
};

// A piece of a closing lane: items in queue order, and the next piece of the
// lane (or of the free list). Lanes grow and shrink by whole chunks from one
// pool, so lanes share the queue's room instead of each holding all of it.
struct ClosingChunk {
    static constexpr uint32_t kItems = 63;  // 512 bytes a chunk
    uint32_t next;
    uint32_t unused;
    ClosingItem items[kItems];
};

// One FIFO of closed flows that share a closing timeout, so a flow never
// waits behind one whose timeout is longer (FlowTable::close_later).
struct ClosingLane {
    uint32_t head = kNoPeer;  // chunk the next item is popped from; kNoPeer when empty
    uint32_t tail = kNoPeer;  // chunk the next item is pushed to
    uint32_t head_pos = 0;    // next item to pop in `head`
    uint32_t tail_pos = 0;    // next free item in `tail`
    uint32_t count = 0;
    uint32_t closing_ms = 0;  // the longest closing timeout of what it holds (its tag)
};

// The table itself: fixed capacity, allocated once, stable slot handles.
class FlowTable {
public:
    static constexpr uint32_t kBulkMax = 64;       // most keys per lookup_bulk() call
    static constexpr uint32_t kBucketSlots = 16;   // slots per bucket
    static constexpr uint32_t kSweepChunk = 32;    // sweep(): slots whose peers are prefetched together
    static constexpr uint32_t kOrphanPasses = 8;   // sweep(): one pass in this many checks reply entries
    static constexpr uint32_t kCloseChunk = 16;    // expire_closed(): items whose entries are prefetched together
    static constexpr uint32_t kClosingLanes = 4;   // distinct closing timeouts queued without waiting on another

    // capacity: most entries it will hold (>= 1024). Allocates everything now;
    // insert/lookup/remove never allocate. Throws std::bad_alloc / invalid_argument.
    // closing_queue false: no closing queue (close_later() counts every close
    // as overflow, the sweep removes closed flows), for benchmarks to compare.
    explicit FlowTable(uint32_t capacity, bool closing_queue = true);
    ~FlowTable();
    FlowTable(const FlowTable&) = delete;
    FlowTable& operator=(const FlowTable&) = delete;

    static uint32_t hash(const FlowKey& key);  // exposed for bulk callers and tests
    static uint32_t hash(const KeyV4& key);    // == hash(FlowKey::v4(key))

    // Slot of the entry with this key, or kNoPeer. Does not check expiry.
    uint32_t lookup(const FlowKey& key) const;
    uint32_t lookup(const FlowKey& key, uint32_t hash) const;
    uint32_t lookup(const KeyV4& key, uint32_t hash) const;
    // Bulk lookup with prefetch: out[i] = slot or kNoPeer. n <= 64.
    void lookup_bulk(const FlowKey* const keys[], uint32_t n, uint32_t out[]) const;
    // Pipelined lookups for callers that handle a burst: prefetch(hash) starts
    // loading the key's two signature lines; once they have had time to
    // arrive, prefetch_entry(hash) starts loading the entry whose signature
    // matches (the first one found), so the later lookup() hits the cache.
    void prefetch(uint32_t hash) const;
    // Returns the slot it prefetched (kNoPeer: no signature matched, the key
    // is absent): a hint for lookup(key, hash, hint).
    uint32_t prefetch_entry(uint32_t hash) const;
    // lookup(key, hash), checking the slot prefetch_entry() returned first:
    // no bucket is searched again when the key is there. Any hint is safe
    // (an empty or other key's slot falls back to the full lookup).
    uint32_t lookup(const KeyV4& key, uint32_t hash, uint32_t hint) const;
    // The one-line lookup of a key at its home slot (see top). prefetch_home
    // starts loading that entry and returns its slot; probe_home, given that
    // slot once the entry has had time to arrive, returns it if the key is
    // there, and otherwise starts loading the two signature lines and returns
    // kNoPeer (then prefetch_entry and lookup find the key anywhere, or tell
    // it is absent). The slot is passed on, not computed twice: a worker
    // probes every packet.
    uint32_t prefetch_home(uint32_t hash) const;
    uint32_t probe_home(const KeyV4& key, uint32_t hash, uint32_t home) const;
    // For a key about to be inserted: its signature lines (insert reads them)
    // and its home entry (where insert most likely writes it).
    void prefetch_insert(uint32_t hash) const {
        prefetch(hash);
        prefetch_home(hash);
    }
    // Starts loading the signature and the entry of `slot` (any value: out of
    // range is ignored), for a caller about to visit it, such as the peer of
    // an entry it is removing.
    void prefetch_slot(uint32_t slot) const;
    // False when no key with this hash is in the table: no signature in its
    // two buckets matches (reads only the signature lines). True means
    // "perhaps": lookup() tells.
    bool maybe_present(uint32_t hash) const;

    // Inserts a new entry (the key must not be present: not checked). Returns
    // its slot, or kNoPeer when full (counted in stats().insert_full; see top).
    uint32_t insert(const FlowKey& key, const FlowValue& value);
    uint32_t insert(const FlowKey& key, uint32_t hash, const FlowValue& value);  // hash == hash(key)
    // The same from an IPv4 key's words: the key is stored from registers,
    // not copied from a FlowKey written on the stack in smaller pieces (its
    // wider loads would wait on store forwarding).
    uint32_t insert(const KeyV4& key, uint32_t hash, const FlowValue& value);
    // Removes the entry in `slot` (not its peer). An empty slot is a no-op.
    void remove(uint32_t slot);
    // Removes the entry and, if it has one, its peer (only if the peer still
    // points back at `slot`, so a reused peer slot is never removed by mistake).
    void remove_with_peer(uint32_t slot);

    FlowEntry& entry(uint32_t slot) { return entries_[slot]; }
    const FlowEntry& entry(uint32_t slot) const { return entries_[slot]; }
    bool occupied(uint32_t slot) const;

    // True when a forward entry's idle time exceeds its state's timeout at `now_ms`
    // (wrap-safe: uint32 (now_ms - last_seen)). Always false for reply entries.
    static bool expired(const FlowValue& v, uint32_t now_ms, const Timeouts& t);

    // Incremental sweep: visits the next `budget` slots from an internal cursor
    // and removes expired forward entries (with their peers). For each removed
    // forward entry calls on_expire(entry) first (the caller frees NAT ports,
    // decrements active counts; it must not modify the table).
    // `timeouts_of(vip_id)` gives each VIP's Timeouts. A budget larger than
    // slot_count() is clamped to one full pass. Reply entries are never
    // expired themselves; an orphaned reply entry (its forward peer is gone)
    // is removed without a callback, by the first pass and then every
    // kOrphanPasses-th (the check is a random load per reply entry, and
    // orphans only come from removing one entry of a pair alone). Each
    // removed forward entry counts in stats().expired. Returns the number of
    // forward entries removed.
    template <typename TimeoutsOf, typename OnExpire>
    uint32_t sweep(uint32_t budget, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire);

    // Removes the expired flows that occupy the two candidate buckets of
    // `hash` (forward entries, and reply entries whose forward entry expired),
    // with the same callback and counting as sweep(). For a caller whose
    // insert() found no room: entries the sweep has not reached yet need not
    // refuse a new flow. Returns the number of flows removed.
    template <typename TimeoutsOf, typename OnExpire>
    uint32_t reclaim(uint32_t hash, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire);
    // The same for the one occupied `slot`: removes its flow if expired (a
    // reply entry answers for its forward entry), or the entry alone if it is
    // an orphaned reply. Returns the number of flows removed (0 or 1).
    template <typename TimeoutsOf, typename OnExpire>
    uint32_t reclaim_slot(uint32_t slot, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire) {
        return expire_slot(slot, true, now_ms, timeouts_of, on_expire);
    }

    // Closed flows leave when their closing timeout ends, not when the sweep
    // next comes by (a full pass takes seconds): under connection churn they
    // would otherwise make up most of the table (at ~210k new connections/s
    // and a 1 s closing timeout: 1.3-1.5M entries instead of 0.4-0.55M),
    // taking cache and free slots from live flows. close_later() queues the
    // forward entry in `slot`, which has just entered FlowState::closing, to
    // be removed at due_ms (its last_seen + closing_ms + 1, closing_ms its
    // VIP's closing timeout). Items are kept in kClosingLanes FIFO lanes, one
    // per closing timeout, so an item never waits behind a later-due one of a
    // longer timeout. With more distinct timeouts than lanes, an item goes to
    // the lane of the shortest timeout at least as long as its own (it may be
    // late by the difference, and holds up no one), or, longer than all, to
    // the longest lane, which then holds up its shorter items by at most the
    // difference. Room for capacity()/2 + 1 items in all (a closed flow holds
    // two entries), shared by the lanes in chunks; when it is full the item is
    // not queued (counted in stats().closing_overflow) and the sweep removes
    // the flow as before.
    void close_later(uint32_t slot, uint32_t due_ms, uint32_t closing_ms);
    // Pops up to `budget` items due at now_ms, oldest first, and removes each
    // one's flow if it has expired (as sweep() does: on_expire, counted in
    // stats().expired). An item is only a hint, so every check is made on the
    // slot as it is now: empty, or a reply entry -> dropped; a forward entry
    // that is not expired (traffic after the close, or the slot now holds
    // another flow) -> queued again for its own due time if closing, else
    // dropped. Items are loaded in chunks with prefetch, their peers too.
    // Returns the number of flows removed. The lanes are served in turn, each
    // up to what is due or the budget left.
    template <typename TimeoutsOf, typename OnExpire>
    uint32_t expire_closed(uint32_t budget, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire);
    uint32_t closing_queued() const { return closing_count_; }
    // Items close_later() surely takes from empty (chunks may hold up to
    // kClosingLanes * 2 more partly used ones' worth).
    uint32_t closing_room() const { return closing_room_; }

    // Visits every occupied slot: fn(slot, entry). Control/debug use only.
    template <typename Fn>
    void for_each(Fn&& fn) const;

    uint32_t size() const { return size_; }
    uint32_t capacity() const { return capacity_; }
    uint32_t slot_count() const { return slot_count_; }
    uint32_t sweep_passes() const { return sweep_pass_; }  // full passes sweep() has finished
    size_t memory_bytes() const;
    const FlowTableStats& stats() const { return stats_; }

private:
    // Sweep and reclaim of one occupied slot: removes an orphaned reply entry,
    // or the flow if its forward entry (this slot, or with `follow_reply` the
    // forward entry of a reply in this slot) has expired. Returns 1 when a
    // flow was removed.
    template <typename TimeoutsOf, typename OnExpire>
    uint32_t expire_slot(uint32_t slot, bool follow_reply, uint32_t now_ms, TimeoutsOf& timeouts_of,
                         OnExpire& on_expire);
    template <typename Key>
    uint32_t lookup_in(const Key& key, uint32_t hash) const;
    // The slot insert() fills for `hash`: the first free slot of the emptier
    // candidate bucket; kNoPeer when both are full.
    uint32_t free_slot(uint32_t hash) const;
    // The common part of both insert()s: takes that slot (or counts
    // insert_full), stores the value and the signature; the caller then
    // stores the key. kNoPeer when full.
    uint32_t claim(uint32_t hash, const FlowValue& value);
    static uint32_t hash_words(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3, uint64_t w4);
    uint32_t bucket_of(uint32_t hash, int which) const;
    // The key's home slot: in its first bucket, at a position from the
    // hash's low bits (the bucket comes from the high bits).
    uint32_t home_of(uint32_t hash) const;
    uint16_t sig_of(uint32_t hash) const;

    uint32_t capacity_ = 0;
    uint32_t bucket_count_ = 0;
    uint32_t slot_count_ = 0;      // bucket_count_ * kBucketSlots
    uint32_t size_ = 0;
    uint32_t sweep_cursor_ = 0;
    uint32_t sweep_pass_ = 0;       // full passes done; orphans are looked for when % kOrphanPasses == 0
    FlowEntry* entries_ = nullptr;  // slot_count_ entries, 64-byte aligned
    uint16_t* sigs_ = nullptr;      // slot_count_ signatures; 0 = empty slot
    // The lane close_later() puts an item of this closing timeout in.
    ClosingLane& closing_lane_for(uint32_t closing_ms);
    // Pops the head item of a non-empty lane; a chunk it empties goes back to the free list.
    ClosingItem pop_closing(ClosingLane& lane);

    // close_later()'s lanes, in chunks of closing_chunks_ (closing_chunk_count_ of them;
    // closing_free_ heads the free ones).
    ClosingChunk* closing_chunks_ = nullptr;
    uint32_t closing_chunk_count_ = 0;
    uint32_t closing_free_ = kNoPeer;
    uint32_t closing_room_ = 0;
    uint32_t closing_count_ = 0;  // items in all lanes
    ClosingLane closing_lanes_[kClosingLanes];
    FlowTableStats stats_;
};

}  // namespace ferry::flow

#include "flow/flow_table_inl.hpp"
