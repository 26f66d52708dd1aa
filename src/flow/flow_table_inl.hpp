// Inline and template parts of FlowTable: the hash, the lookups and the sweep
// are on every packet's path, so they are visible to the data plane's
// compiler. Only included from flow/flow_table.hpp.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) && !defined(FERRY_FLOW_NO_SIMD)
#include <emmintrin.h>
#define FERRY_FLOW_SSE2 1
#endif
#if defined(__SSE4_2__) && !defined(FERRY_FLOW_PORTABLE_HASH)
#include <nmmintrin.h>
#define FERRY_FLOW_CRC_HASH 1
#endif

namespace ferry::flow {

namespace detail {

// A read prefetch the compiler keeps. GCC treats __builtin_prefetch as free of
// side effects, so a function doing nothing else (FlowTable::prefetch) is
// found "const" and every call to it is deleted; a volatile asm is kept.
inline void prefetch_read(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const volatile char*>(p)));
#else
    __builtin_prefetch(p);
#endif
}

inline uint64_t load64(const void* p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store64(void* p, uint64_t v) { std::memcpy(p, &v, sizeof v); }

#if !defined(FERRY_FLOW_CRC_HASH) && defined(__SIZEOF_INT128__) && !defined(FERRY_FLOW_PORTABLE_HASH)
__extension__ typedef unsigned __int128 Uint128;

// 64x64 -> 128 multiply folded to 64 bits (as in wyhash): every output bit
// depends on every input bit of both operands.
inline uint64_t mum(uint64_t a, uint64_t b) {
    const Uint128 r = Uint128(a) * b;
    return uint64_t(r) ^ uint64_t(r >> 64);
}
#endif

inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

inline uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

// Map a 32-bit hash onto [0, n) without division (Lemire's fastrange).
inline uint32_t fastrange(uint32_t h, uint32_t n) { return uint32_t((uint64_t(h) * n) >> 32); }

// Bit i set when sigs[i] == v, for the 16 signatures of one bucket (32-byte aligned).
inline uint32_t match_bucket(const uint16_t* sigs, uint16_t v) {
    static_assert(FlowTable::kBucketSlots == 16, "match_bucket handles 16 slots");
#ifdef FERRY_FLOW_SSE2
    const __m128i pat = _mm_set1_epi16(short(v));
    const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(sigs));
    const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(sigs + 8));
    const __m128i eq = _mm_packs_epi16(_mm_cmpeq_epi16(lo, pat), _mm_cmpeq_epi16(hi, pat));
    return uint32_t(_mm_movemask_epi8(eq));
#else
    uint32_t mask = 0;
    for (uint32_t i = 0; i < 16; ++i) mask |= uint32_t(sigs[i] == v) << i;
    return mask;
#endif
}

inline bool key_equal(const FlowKey& a, const FlowKey& b) {
    const uint64_t d = (load64(a.src) ^ load64(b.src)) | (load64(a.src + 8) ^ load64(b.src + 8)) |
                       (load64(a.dst) ^ load64(b.dst)) | (load64(a.dst + 8) ^ load64(b.dst + 8)) |
                       (load64(&a.src_port) ^ load64(&b.src_port));
    return d == 0;
}

inline bool key_equal(const FlowKey& a, const KeyV4& b) {
    const uint64_t d = (load64(a.src) ^ b.src) | load64(a.src + 8) | (load64(a.dst) ^ b.dst) | load64(a.dst + 8) |
                       (load64(&a.src_port) ^ b.rest);
    return d == 0;
}

// Slot in bucket `b` whose signature is in `mask` and key equals `key`, or kNoPeer.
template <typename Key>
inline uint32_t find_in_mask(const FlowEntry* entries, uint32_t b, uint32_t mask, const Key& key) {
    while (mask != 0) {
        const uint32_t slot = b * FlowTable::kBucketSlots + uint32_t(std::countr_zero(mask));
        if (key_equal(entries[slot].key, key)) return slot;
        mask &= mask - 1;
    }
    return kNoPeer;
}

}  // namespace detail

inline KeyV4 KeyV4::of(uint32_t src_ip_net, uint32_t dst_ip_net, uint16_t src_port_net, uint16_t dst_port_net,
                      uint8_t proto) {
    static_assert(std::endian::native == std::endian::little, "FlowKey words assume a little-endian host");
    return KeyV4{src_ip_net, dst_ip_net,
                 uint64_t(src_port_net) | uint64_t(dst_port_net) << 16 | uint64_t(proto) << 32 | uint64_t(4) << 40};
}

inline FlowKey FlowKey::v4(const KeyV4& w) {
    FlowKey k;  // every byte is written: the IPv6 tails and `pad` are zero
    auto* b = reinterpret_cast<unsigned char*>(&k);
    detail::store64(b, w.src);
    detail::store64(b + 8, 0);
    detail::store64(b + 16, w.dst);
    detail::store64(b + 24, 0);
    detail::store64(b + 32, w.rest);
    return k;
}

inline FlowKey FlowKey::v4(uint32_t src_ip_net, uint32_t dst_ip_net, uint16_t src_port_net,
                           uint16_t dst_port_net, uint8_t proto_) {
    return v4(KeyV4::of(src_ip_net, dst_ip_net, src_port_net, dst_port_net, proto_));
}

inline uint32_t FlowKey::src_v4() const {
    uint32_t v;
    std::memcpy(&v, src, 4);
    return v;
}

inline uint32_t FlowKey::dst_v4() const {
    uint32_t v;
    std::memcpy(&v, dst, 4);
    return v;
}

inline bool FlowKey::operator==(const FlowKey& o) const { return detail::key_equal(*this, o); }

inline uint32_t Timeouts::for_state(FlowState s) const {
    switch (s) {
        case FlowState::syn_seen: return syn_ms;
        case FlowState::established: return established_ms;
        case FlowState::closing: return closing_ms;
        case FlowState::udp: return udp_ms;
    }
    return closing_ms;  // corrupt state: the shortest sensible lifetime
}

inline uint32_t FlowTable::hash(const FlowKey& key) {
    return hash_words(detail::load64(key.src), detail::load64(key.src + 8), detail::load64(key.dst),
                      detail::load64(key.dst + 8), detail::load64(&key.src_port));
}

inline uint32_t FlowTable::hash(const KeyV4& k) { return hash_words(k.src, 0, k.dst, 0, k.rest); }

inline uint32_t FlowTable::hash_words(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3, uint64_t w4) {
#if defined(FERRY_FLOW_CRC_HASH)
    // CRC32-C over the five words, one instruction each (SSE4.2, in DPDK's x86
    // baseline), then fmix32: CRC is linear, and the finish spreads every input
    // bit over the high bits that pick the bucket and the low ones that make
    // the signature. As one CRC over the 40-byte key (and fmix32 a
    // bijection), two keys that differ only within 4 consecutive bytes (one
    // IPv4 address, or both ports) never share a hash. About 11 instructions
    // a key, against 38 for the multiply hash below.
    uint64_t c = _mm_crc32_u64(0x9e3779b9u, w0);
    c = _mm_crc32_u64(c, w1);
    c = _mm_crc32_u64(c, w2);
    c = _mm_crc32_u64(c, w3);
    c = _mm_crc32_u64(c, w4);
    return detail::fmix32(uint32_t(c));
#elif defined(__SIZEOF_INT128__) && !defined(FERRY_FLOW_PORTABLE_HASH)
    // Three independent multiplies, then one to fold: short dependency chain.
    const uint64_t a = detail::mum(w0 ^ 0xa0761d6478bd642fULL, w1 ^ 0xe7037ed1a0b428dbULL);
    const uint64_t b = detail::mum(w2 ^ 0x8ebc6af09c88c6e3ULL, w3 ^ 0x589965cc75374cc3ULL);
    const uint64_t c = detail::mum(w4 ^ 0x1d8e4e27c47d124fULL, 0x9e3779b97f4a7c15ULL);
    const uint64_t h = detail::mum(a ^ c ^ 0xd6e8feb86659fd93ULL, b ^ 0xc2b2ae3d27d4eb4fULL);
#else
    const uint64_t h = detail::fmix64(w0 * 0x9e3779b97f4a7c15ULL + std::rotl(w1 * 0xc2b2ae3d27d4eb4fULL, 17) +
                                      std::rotl(w2 * 0x165667b19e3779f9ULL, 31) +
                                      std::rotl(w3 * 0xd6e8feb86659fd93ULL, 43) +
                                      std::rotl(w4 * 0xff51afd7ed558ccdULL, 53));
#endif
#if !defined(FERRY_FLOW_CRC_HASH)
    return uint32_t(h ^ (h >> 32));
#endif
}

// Candidate 0 from the hash's high bits, candidate 1 from the high bits of
// the hash times an odd constant, which depend on all its bits: keys sharing
// one candidate bucket (the same high bits) rarely share the other. One
// multiply, where a full re-mix took ten instructions: a new connection
// computes about ten second candidates (its key's and its reply key's).
inline uint32_t FlowTable::bucket_of(uint32_t h, int which) const {
    return detail::fastrange(which == 0 ? h : h * 0x9e3779b1u, bucket_count_);
}

inline uint32_t FlowTable::home_of(uint32_t h) const {
    return bucket_of(h, 0) * kBucketSlots + (h & (kBucketSlots - 1));
}

inline uint16_t FlowTable::sig_of(uint32_t h) const {
    const auto s = uint16_t(h);
    return s != 0 ? s : uint16_t(1);
}

inline bool FlowTable::occupied(uint32_t slot) const { return slot < slot_count_ && sigs_[slot] != 0; }

inline uint32_t FlowTable::claim(uint32_t h, const FlowValue& value) {
    const uint32_t slot = size_ < capacity_ ? free_slot(h) : kNoPeer;
    if (slot == kNoPeer) {
        ++stats_.insert_full;
        return kNoPeer;
    }
    entries_[slot].value = value;
    sigs_[slot] = sig_of(h);
    ++size_;
    ++stats_.inserts;
    return slot;
}

inline uint32_t FlowTable::insert(const KeyV4& key, uint32_t h, const FlowValue& value) {
    const uint32_t slot = claim(h, value);
    if (slot == kNoPeer) return kNoPeer;
    auto* k = reinterpret_cast<unsigned char*>(&entries_[slot].key);
    detail::store64(k, key.src);
    detail::store64(k + 8, 0);
    detail::store64(k + 16, key.dst);
    detail::store64(k + 24, 0);
    detail::store64(k + 32, key.rest);
    return slot;
}

inline void FlowTable::prefetch(uint32_t h) const {
    detail::prefetch_read(sigs_ + size_t(bucket_of(h, 0)) * kBucketSlots);
    detail::prefetch_read(sigs_ + size_t(bucket_of(h, 1)) * kBucketSlots);
}

inline uint32_t FlowTable::prefetch_entry(uint32_t h) const {
    const uint16_t sig = sig_of(h);
    const uint32_t b1 = bucket_of(h, 0);
    const uint32_t m1 = detail::match_bucket(sigs_ + size_t(b1) * kBucketSlots, sig);
    uint32_t slot = kNoPeer;
    if (m1 != 0) {
        slot = b1 * kBucketSlots + uint32_t(std::countr_zero(m1));
    } else {
        const uint32_t b2 = bucket_of(h, 1);
        const uint32_t m2 = detail::match_bucket(sigs_ + size_t(b2) * kBucketSlots, sig);
        if (m2 == 0) return kNoPeer;
        slot = b2 * kBucketSlots + uint32_t(std::countr_zero(m2));
    }
    detail::prefetch_read(entries_ + slot);
    return slot;
}

inline uint32_t FlowTable::prefetch_home(uint32_t h) const {
    const uint32_t home = home_of(h);
    detail::prefetch_read(entries_ + home);
    return home;
}

inline void FlowTable::prefetch_slot(uint32_t slot) const {
    if (slot >= slot_count_) return;
    detail::prefetch_read(sigs_ + slot);
    detail::prefetch_read(entries_ + slot);
}

inline uint32_t FlowTable::probe_home(const KeyV4& key, uint32_t h, uint32_t home) const {
    if (detail::key_equal(entries_[home].key, key)) return home;  // a free slot's key never matches
    prefetch(h);
    return kNoPeer;
}

// Always inline: it is on every packet's path, and GCC kept it a call
// (saving and restoring registers for the rare lookup_in).
__attribute__((always_inline)) inline uint32_t FlowTable::lookup(const KeyV4& key, uint32_t h, uint32_t hint) const {
    // No signature is read: a free slot's poisoned key matches no key.
    if (hint < slot_count_ && detail::key_equal(entries_[hint].key, key)) return hint;
    return lookup_in(key, h);
}

inline bool FlowTable::maybe_present(uint32_t h) const {
    const uint16_t sig = sig_of(h);
    const uint32_t b1 = bucket_of(h, 0);
    const uint32_t b2 = bucket_of(h, 1);
    return (detail::match_bucket(sigs_ + size_t(b1) * kBucketSlots, sig) |
            detail::match_bucket(sigs_ + size_t(b2) * kBucketSlots, sig)) != 0;
}

inline uint32_t FlowTable::free_slot(uint32_t h) const {
    const uint32_t b1 = bucket_of(h, 0);
    const uint32_t b2 = bucket_of(h, 1);
    const uint32_t free1 = detail::match_bucket(sigs_ + size_t(b1) * kBucketSlots, 0);
    const uint32_t free2 = b2 != b1 ? detail::match_bucket(sigs_ + size_t(b2) * kBucketSlots, 0) : 0;
    const int n1 = std::popcount(free1), n2 = std::popcount(free2);
    // A free home slot is taken unless the table is nearly full and the first
    // bucket is the fuller one: there, power of two choices alone keeps
    // refusals as rare as they were before home slots.
    const uint32_t home = home_of(h);
    if (sigs_[home] == 0 && (n1 >= n2 || size_ < capacity_ - capacity_ / 8)) return home;
    // Power of two choices: the emptier bucket; ties go to the first, where lookups start.
    const bool first = n1 >= n2;
    const uint32_t mask = first ? free1 : free2;
    if (mask == 0) return kNoPeer;
    return (first ? b1 : b2) * kBucketSlots + uint32_t(std::countr_zero(mask));
}


template <typename Key>
inline uint32_t FlowTable::lookup_in(const Key& key, uint32_t h) const {
    const uint16_t sig = sig_of(h);
    const uint32_t b1 = bucket_of(h, 0);
    const uint32_t m1 = detail::match_bucket(sigs_ + size_t(b1) * kBucketSlots, sig);
    const uint32_t s = detail::find_in_mask(entries_, b1, m1, key);
    if (s != kNoPeer) return s;
    const uint32_t b2 = bucket_of(h, 1);
    if (b2 == b1) return kNoPeer;
    const uint32_t m2 = detail::match_bucket(sigs_ + size_t(b2) * kBucketSlots, sig);
    return detail::find_in_mask(entries_, b2, m2, key);
}

inline uint32_t FlowTable::lookup(const FlowKey& key, uint32_t h) const { return lookup_in(key, h); }
inline uint32_t FlowTable::lookup(const KeyV4& key, uint32_t h) const { return lookup_in(key, h); }
inline uint32_t FlowTable::lookup(const FlowKey& key) const { return lookup(key, hash(key)); }

inline void FlowTable::remove(uint32_t slot) {
    if (!occupied(slot)) return;
    sigs_[slot] = 0;
    entries_[slot].key.pad = kRemovedPad;
    entries_[slot].value.peer = kNoPeer;
    --size_;
    ++stats_.removes;
}

inline void FlowTable::remove_with_peer(uint32_t slot) {
    if (!occupied(slot)) return;
    const uint32_t peer = entries_[slot].value.peer;
    remove(slot);
    if (peer != slot && occupied(peer) && entries_[peer].value.peer == slot) remove(peer);
}

inline bool FlowTable::expired(const FlowValue& v, uint32_t now_ms, const Timeouts& t) {
    if (v.is_reply) return false;
    return uint32_t(now_ms - v.last_seen) > t.for_state(FlowState(v.state));
}

template <typename TimeoutsOf, typename OnExpire>
uint32_t FlowTable::expire_slot(uint32_t slot, bool follow_reply, uint32_t now_ms, TimeoutsOf& timeouts_of,
                                OnExpire& on_expire) {
    uint32_t fwd = slot;
    if (entries_[slot].value.is_reply) {
        // Replies go with their forward entry; one whose forward entry is
        // gone (removed without its peer) would otherwise leak forever.
        const uint32_t p = entries_[slot].value.peer;
        if (!occupied(p) || entries_[p].value.is_reply || entries_[p].value.peer != slot) {
            remove(slot);
            return 0;
        }
        if (!follow_reply) return 0;
        fwd = p;
    }
    FlowEntry& e = entries_[fwd];
    if (!expired(e.value, now_ms, timeouts_of(e.value.vip_id))) return 0;
    on_expire(e);
    remove_with_peer(fwd);
    ++stats_.expired;
    return 1;
}

template <typename TimeoutsOf, typename OnExpire>
uint32_t FlowTable::sweep(uint32_t budget, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire) {
    if (budget > slot_count_) budget = slot_count_;
    uint32_t cursor = sweep_cursor_;
    uint32_t removed = 0;
    while (budget != 0) {
        uint32_t n = budget < kSweepChunk ? budget : kSweepChunk;
        if (n > slot_count_ - cursor) n = slot_count_ - cursor;
        const bool orphans = sweep_pass_ % kOrphanPasses == 0;
        // The random loads a chunk will wait on, started for the whole chunk
        // before waiting on any: the peer (reply entry) of each expired
        // forward entry, which is removed with it, and on an orphan pass the
        // peer (forward entry) of each reply entry, which it is checked against.
        for (uint32_t slot = cursor; slot < cursor + n; ++slot) {
            if (sigs_[slot] == 0) continue;
            const FlowValue& v = entries_[slot].value;
            if (v.is_reply ? orphans : expired(v, now_ms, timeouts_of(v.vip_id))) prefetch_slot(v.peer);
        }
        // Reply entries otherwise go with their forward entry.
        for (uint32_t slot = cursor; slot < cursor + n; ++slot)
            if (sigs_[slot] != 0 && (orphans || !entries_[slot].value.is_reply))
                removed += expire_slot(slot, false, now_ms, timeouts_of, on_expire);
        cursor += n;
        if (cursor == slot_count_) {
            cursor = 0;
            ++sweep_pass_;
        }
        budget -= n;
    }
    sweep_cursor_ = cursor;
    return removed;
}

inline ClosingLane& FlowTable::closing_lane_for(uint32_t closing_ms) {
    constexpr uint32_t kNone = kClosingLanes;
    uint32_t empty = kNone;
    uint32_t longer = kNone;  // the shortest timeout above closing_ms
    uint32_t longest = 0;     // the longest timeout of all (every lane is in use when it is taken)
    for (uint32_t i = 0; i < kClosingLanes; ++i) {
        const ClosingLane& lane = closing_lanes_[i];
        if (lane.closing_ms == closing_ms) return closing_lanes_[i];
        if (lane.count == 0) {
            if (empty == kNone) empty = i;
            continue;
        }
        if (lane.closing_ms > closing_ms && (longer == kNone || lane.closing_ms < closing_lanes_[longer].closing_ms))
            longer = i;
        if (lane.closing_ms > closing_lanes_[longest].closing_ms) longest = i;
    }
    if (empty != kNone) {
        closing_lanes_[empty].closing_ms = closing_ms;
        return closing_lanes_[empty];
    }
    if (longer != kNone) return closing_lanes_[longer];
    closing_lanes_[longest].closing_ms = closing_ms;  // it now holds a longer timeout than before
    return closing_lanes_[longest];
}

inline void FlowTable::close_later(uint32_t slot, uint32_t due_ms, uint32_t closing_ms) {
    if (closing_count_ >= closing_room_) {
        ++stats_.closing_overflow;
        return;
    }
    ClosingLane& lane = closing_lane_for(closing_ms);
    if (lane.count == 0 || lane.tail_pos == ClosingChunk::kItems) {
        const uint32_t c = closing_free_;
        if (c == kNoPeer) {  // cannot happen: closing_room_ leaves two chunks a lane to spare
            ++stats_.closing_overflow;
            return;
        }
        closing_free_ = closing_chunks_[c].next;
        closing_chunks_[c].next = kNoPeer;
        if (lane.count == 0) {
            lane.head = c;
            lane.head_pos = 0;
        } else {
            closing_chunks_[lane.tail].next = c;
        }
        lane.tail = c;
        lane.tail_pos = 0;
    }
    closing_chunks_[lane.tail].items[lane.tail_pos++] = ClosingItem{slot, due_ms};
    ++lane.count;
    ++closing_count_;
}

inline ClosingItem FlowTable::pop_closing(ClosingLane& lane) {
    ClosingChunk& head = closing_chunks_[lane.head];
    const ClosingItem item = head.items[lane.head_pos++];
    --lane.count;
    --closing_count_;
    if (lane.count == 0 || lane.head_pos == ClosingChunk::kItems) {
        const uint32_t done = lane.head;
        lane.head = head.next;  // kNoPeer when the lane is now empty
        lane.head_pos = 0;
        head.next = closing_free_;
        closing_free_ = done;
        if (lane.count == 0) lane.tail = kNoPeer;
    }
    return item;
}

template <typename TimeoutsOf, typename OnExpire>
uint32_t FlowTable::expire_closed(uint32_t budget, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire) {
    uint32_t removed = 0;
    if (closing_count_ == 0) return removed;  // the common case between bursts: nothing queued, no lane to visit
    uint32_t slots[kCloseChunk];
    for (ClosingLane& lane : closing_lanes_) {
        while (budget != 0) {
            // Pop the due items of this chunk and start loading their entries.
            uint32_t n = 0;
            while (n < kCloseChunk && n < budget && lane.count != 0 &&
                   int32_t(now_ms - closing_chunks_[lane.head].items[lane.head_pos].due_ms) >= 0) {
                slots[n] = pop_closing(lane).slot;
                detail::prefetch_read(entries_ + slots[n]);
                ++n;
            }
            if (n == 0) break;
            budget -= n;
            // Then the peers (reply entries) of those that will go, then remove.
            // A free slot's poisoned key tells it is empty without its signature.
            for (uint32_t i = 0; i < n; ++i) {
                const FlowEntry& e = entries_[slots[i]];
                if (e.key.pad == 0 && expired(e.value, now_ms, timeouts_of(e.value.vip_id)))
                    prefetch_slot(e.value.peer);
            }
            for (uint32_t i = 0; i < n; ++i) {
                FlowEntry& e = entries_[slots[i]];
                if (e.key.pad != 0 || e.value.is_reply) continue;
                const Timeouts& t = timeouts_of(e.value.vip_id);
                if (expired(e.value, now_ms, t)) {
                    on_expire(e);
                    remove_with_peer(slots[i]);
                    ++stats_.expired;
                    ++removed;
                } else if (e.value.state == uint8_t(FlowState::closing)) {
                    close_later(slots[i], e.value.last_seen + t.closing_ms + 1, t.closing_ms);
                }
            }
        }
    }
    return removed;
}

template <typename TimeoutsOf, typename OnExpire>
uint32_t FlowTable::reclaim(uint32_t h, uint32_t now_ms, TimeoutsOf&& timeouts_of, OnExpire&& on_expire) {
    uint32_t removed = 0;
    const uint32_t b1 = bucket_of(h, 0), b2 = bucket_of(h, 1);
    const uint32_t buckets[2] = {b1, b2};
    for (uint32_t i = 0; i < (b2 != b1 ? 2u : 1u); ++i) {
        const uint32_t first = buckets[i] * kBucketSlots;
        for (uint32_t slot = first; slot < first + kBucketSlots; ++slot)
            if (sigs_[slot] != 0) removed += expire_slot(slot, true, now_ms, timeouts_of, on_expire);
    }
    return removed;
}

template <typename Fn>
void FlowTable::for_each(Fn&& fn) const {
    for (uint32_t slot = 0; slot < slot_count_; ++slot) {
        if (sigs_[slot] != 0) fn(slot, entries_[slot]);
    }
}

}  // namespace ferry::flow
