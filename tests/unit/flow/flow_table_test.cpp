#include "flow/flow_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <random>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace ferry::flow {
namespace {

// Sanitizers make big loops ~10x slower: scale them down there.
#if defined(__SANITIZE_ADDRESS__)
constexpr uint32_t kManyKeys = 200'000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr uint32_t kManyKeys = 200'000;
#else
constexpr uint32_t kManyKeys = 1'000'000;
#endif
#else
constexpr uint32_t kManyKeys = 1'000'000;
#endif

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

FlowKey key_n(uint32_t n) {
    // Distinct for every n: the client address and port carry it.
    return FlowKey::v4(0x0a000000u + (n >> 10), 0xc0a80101u, uint16_t(1024 + (n & 1023)), 80, kTcp);
}

FlowValue value_of(uint32_t backend, uint32_t now = 0, FlowState st = FlowState::established) {
    FlowValue v;
    v.backend_id = backend;
    v.last_seen = now;
    v.created = now;
    v.state = uint8_t(st);
    return v;
}

// Random keys for the big tests (96 random bits: collisions are negligible).
std::vector<FlowKey> random_keys(uint32_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<FlowKey> keys;
    keys.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        const uint64_t r = rng();
        const uint64_t r2 = rng();
        keys.push_back(FlowKey::v4(uint32_t(r), uint32_t(r >> 32), uint16_t(r2), uint16_t(r2 >> 16),
                                   (r2 >> 32) & 1 ? kTcp : kUdp));
    }
    return keys;
}

TEST(FlowKey, V4ZeroesUnusedBytes) {
    const FlowKey a = FlowKey::v4(0x0100000au, 0x0200000au, 0x5000, 0x1f90, kTcp);
    const FlowKey b = FlowKey::v4(0x0100000au, 0x0200000au, 0x5000, 0x1f90, kTcp);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
    EXPECT_TRUE(a == b);
    for (int i = 4; i < 16; ++i) {
        EXPECT_EQ(a.src[i], 0) << i;
        EXPECT_EQ(a.dst[i], 0) << i;
    }
    EXPECT_EQ(a.pad, 0);
    EXPECT_EQ(a.family, 4);
    EXPECT_EQ(a.proto, kTcp);
    EXPECT_EQ(a.src_v4(), 0x0100000au);
    EXPECT_EQ(a.dst_v4(), 0x0200000au);
    EXPECT_EQ(a.src_port, 0x5000);
    EXPECT_EQ(a.dst_port, 0x1f90);
    // Network order in, bytes as on the wire.
    EXPECT_EQ(a.src[0], 0x0a);
    EXPECT_EQ(a.src[3], 0x01);

    // Built over garbage memory, the result is still all-defined.
    alignas(FlowKey) unsigned char raw[sizeof(FlowKey)];
    std::memset(raw, 0xab, sizeof raw);
    FlowKey* c = new (raw) FlowKey(FlowKey::v4(0x0100000au, 0x0200000au, 0x5000, 0x1f90, kTcp));
    EXPECT_EQ(std::memcmp(c, &a, sizeof a), 0);
    EXPECT_EQ(FlowTable::hash(*c), FlowTable::hash(a));
}

// KeyV4 works from the fields; its hash and lookups must agree with hashing the built key
// byte for byte, or a packet hashed one way would miss the entry inserted the other.
TEST(FlowTable, HashV4MatchesHashOfTheBuiltKey) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 10000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const auto src = uint32_t(x), dst = uint32_t(x >> 32);
        const auto sp = uint16_t(x >> 7), dp = uint16_t(x >> 23);
        const uint8_t proto = (i & 1) ? kTcp : 17;
        const FlowKey k = FlowKey::v4(src, dst, sp, dp, proto);
        const KeyV4 w = KeyV4::of(src, dst, sp, dp, proto);
        ASSERT_EQ(FlowTable::hash(w), FlowTable::hash(k)) << i;
        ASSERT_TRUE(k == FlowKey::v4(w));
        ASSERT_EQ(k.src_v4(), src);
        ASSERT_EQ(k.dst_v4(), dst);
        ASSERT_EQ(k.src_port, sp);
        ASSERT_EQ(k.dst_port, dp);
        ASSERT_EQ(k.proto, proto);
        ASSERT_EQ(k.family, 4);
        ASSERT_EQ(k.pad, 0);
    }
}

// Every byte of the key reaches the hash, and two keys that differ only within
// 4 consecutive bytes (one IPv4 address, both ports, proto and family) never
// share one: the CRC hash's guarantee (flow_table_inl.hpp). A hash that
// skipped a word or a byte would fail at that byte.
TEST(FlowTable, KeysDifferingWithinFourBytesNeverShareAHash) {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 20000; ++i) {
        FlowKey a;
        for (auto& x : a.src) x = uint8_t(rng());
        for (auto& x : a.dst) x = uint8_t(rng());
        a.src_port = uint16_t(rng()), a.dst_port = uint16_t(rng());
        a.proto = uint8_t(rng()), a.family = uint8_t(rng()), a.pad = 0;
        FlowKey b = a;
        auto* bytes = reinterpret_cast<uint8_t*>(&b);
        const size_t at = rng() % (sizeof(FlowKey) - 3);
        uint32_t flip = 0;
        while (flip == 0) flip = uint32_t(rng()) >> (rng() % 32);  // any nonzero pattern in the 4 bytes
        for (size_t k = 0; k < 4; ++k) bytes[at + k] ^= uint8_t(flip >> (8 * k));
        ASSERT_NE(FlowTable::hash(a), FlowTable::hash(b)) << "key " << i << ", bytes " << at << "..." << at + 3;
    }
}

TEST(FlowTable, LooksUpByKeyV4) {
    FlowTable t(4096);
    const KeyV4 w = KeyV4::of(0x0100000au, 0x0200000au, 0x5000, 0x1f90, kTcp);
    const uint32_t s = t.insert(FlowKey::v4(w), FlowTable::hash(w), FlowValue{});  // the caller's hash
    ASSERT_NE(s, kNoPeer);
    EXPECT_EQ(t.lookup(FlowKey::v4(w)), s);
    EXPECT_EQ(t.lookup(w, FlowTable::hash(w)), s);
    KeyV4 other = w;
    other.rest ^= uint64_t(1) << 16;  // another destination port
    EXPECT_EQ(t.lookup(other, FlowTable::hash(other)), kNoPeer);
}

TEST(FlowTable, InsertByKeyV4StoresTheSameEntryAsByFlowKey) {
    // Two tables filled in the same order, one through each insert: the same
    // slots, the same 64 bytes in each, and both refuse once full.
    FlowTable a(1024), b(1024);
    std::mt19937 rng(3);
    uint32_t inserted = 0;
    for (uint32_t i = 0; i < 2000; ++i) {
        const KeyV4 w = KeyV4::of(rng(), rng(), uint16_t(rng()), uint16_t(rng()), i % 2 ? kTcp : 17);
        FlowValue v = value_of(i, i * 7, FlowState::established);
        v.nat_port = uint16_t(i);
        v.flags = uint8_t(i);
        const uint32_t sa = a.insert(FlowKey::v4(w), FlowTable::hash(w), v);
        const uint32_t sb = b.insert(w, FlowTable::hash(w), v);
        ASSERT_EQ(sa, sb) << i;
        if (sb == kNoPeer) continue;
        ++inserted;
        EXPECT_EQ(std::memcmp(&a.entry(sa), &b.entry(sb), sizeof(FlowEntry)), 0) << i;
        EXPECT_EQ(b.lookup(w, FlowTable::hash(w)), sb);
    }
    EXPECT_EQ(b.size(), b.capacity()) << "filled up";
    EXPECT_EQ(inserted, b.capacity());
    EXPECT_EQ(a.stats().insert_full, b.stats().insert_full);
    EXPECT_GT(b.stats().insert_full, 0u);
}

TEST(FlowTable, LookupWithAHintIsRightWhateverTheHint) {
    // prefetch_entry returns the slot it loaded; lookup(key, hash, hint)
    // checks it first. The hint can be stale (the worker's earlier packets of
    // the same burst insert and remove): every wrong hint still gives the
    // right answer.
    FlowTable t(4096);
    std::vector<KeyV4> keys;
    std::vector<uint32_t> slots;
    std::mt19937 rng(11);
    for (uint32_t i = 0; i < 3000; ++i) {
        const KeyV4 w = KeyV4::of(rng(), rng(), uint16_t(rng()), uint16_t(rng()), kTcp);
        const uint32_t s = t.insert(w, FlowTable::hash(w), value_of(i));
        if (s == kNoPeer) continue;
        keys.push_back(w);
        slots.push_back(s);
    }
    ASSERT_GT(keys.size(), 2900u);
    uint32_t hinted_right = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
        const uint32_t h = FlowTable::hash(keys[i]);
        const uint32_t hint = t.prefetch_entry(h);
        hinted_right += hint == slots[i];
        EXPECT_EQ(t.lookup(keys[i], h, hint), slots[i]);
        EXPECT_EQ(t.lookup(keys[i], h, kNoPeer), slots[i]);
        EXPECT_EQ(t.lookup(keys[i], h, slots[(i + 1) % slots.size()]), slots[i]) << "another key's slot";
        EXPECT_EQ(t.lookup(keys[i], h, t.slot_count() + 5), slots[i]) << "out of range";
    }
    EXPECT_GT(hinted_right, keys.size() * 99 / 100) << "the first signature match is nearly always the key";
    // A removed entry keeps its addresses and ports: its slot as a hint must not find it.
    const KeyV4 gone = keys[7];
    const uint32_t gone_slot = slots[7];
    t.remove(gone_slot);
    EXPECT_EQ(t.lookup(gone, FlowTable::hash(gone), gone_slot), kNoPeer);
    // An absent key: prefetch_entry says so (no signature matched) or points elsewhere.
    const KeyV4 absent = KeyV4::of(1, 2, 3, 4, kTcp);
    const uint32_t ha = FlowTable::hash(absent);
    EXPECT_EQ(t.lookup(absent, ha, t.prefetch_entry(ha)), kNoPeer);
}

TEST(FlowTable, MostKeysLiveAtTheirHomeSlotAndProbeHomeNeverLies) {
    // probe_home answers from the home entry alone: the key's slot when it is
    // there, kNoPeer otherwise (then the signature path finds it). Filled to
    // about half its slots, at least 60% of the keys sit at home (about 75%
    // expected: a key finds its home free with the odds of the load when it
    // arrives), and a table filled in one go puts the first key at home.
    auto probe = [](const FlowTable& tab, const KeyV4& k, uint32_t h) {
        return tab.probe_home(k, h, tab.prefetch_home(h));
    };
    FlowTable t(100'000);
    std::vector<KeyV4> keys;
    std::vector<uint32_t> slots;
    std::mt19937 rng(5);
    while (t.size() < t.slot_count() / 2) {
        const KeyV4 w = KeyV4::of(rng(), rng(), uint16_t(rng()), 443, kUdp);
        const uint32_t h = FlowTable::hash(w);
        if (t.lookup(w, h) != kNoPeer) continue;
        const uint32_t s = t.insert(w, h, value_of(1));
        ASSERT_NE(s, kNoPeer);
        if (keys.empty()) {
            EXPECT_EQ(probe(t, w, h), s) << "an empty table's first key is at home";
        }
        keys.push_back(w);
        slots.push_back(s);
    }
    size_t at_home = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
        const uint32_t h = FlowTable::hash(keys[i]);
        const uint32_t home = probe(t, keys[i], h);
        if (home != kNoPeer) {
            EXPECT_EQ(home, slots[i]);
            ++at_home;
            continue;
        }
        EXPECT_EQ(t.lookup(keys[i], h, t.prefetch_entry(h)), slots[i]);
    }
    EXPECT_GT(at_home, keys.size() * 6 / 10);
    EXPECT_LT(at_home, keys.size()) << "some homes are shared at this load";
    // A removed key is not found at home even though its addresses and ports
    // are still in the slot; a new key takes the freed home.
    size_t i = 0;
    while (probe(t, keys[i], FlowTable::hash(keys[i])) == kNoPeer) ++i;
    const uint32_t h = FlowTable::hash(keys[i]);
    t.remove(slots[i]);
    EXPECT_EQ(probe(t, keys[i], h), kNoPeer);
    EXPECT_EQ(t.lookup(keys[i], h), kNoPeer);
    EXPECT_EQ(t.insert(keys[i], h, value_of(2)), slots[i]) << "its home was free again";
    EXPECT_EQ(probe(t, keys[i], h), slots[i]);
    // No key matches a slot that never held one (all-zero key bytes included).
    FlowTable fresh(4096);
    const KeyV4 zero{0, 0, 0};
    EXPECT_EQ(probe(fresh, zero, FlowTable::hash(zero)), kNoPeer);
    EXPECT_EQ(fresh.lookup(FlowKey{}), kNoPeer);
}

TEST(FlowTable, RejectsTinyCapacityAndSizesMemory) {
    EXPECT_THROW(FlowTable(1023), std::invalid_argument);
    EXPECT_THROW(FlowTable(0), std::invalid_argument);
    FlowTable t(100'000);
    EXPECT_EQ(t.capacity(), 100'000u);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_GE(t.slot_count(), 120'000u);
    EXPECT_LT(t.slot_count(), 120'000u + FlowTable::kBucketSlots);
    EXPECT_EQ(t.slot_count() % FlowTable::kBucketSlots, 0u);
    // Entries and signatures, and the closing queue: an 8-byte item per two entries of capacity,
    // in chunks (8 bytes of each for the link), with two spare chunks a lane.
    const size_t expected = size_t(t.slot_count()) * (sizeof(FlowEntry) + 2) + (100'000 / 2 + 1) * sizeof(ClosingItem);
    EXPECT_GE(t.memory_bytes(), expected);
    EXPECT_LT(t.memory_bytes(), expected + (100'000 / 2 + 1) / ClosingChunk::kItems * 8 +
                                    (2 * FlowTable::kClosingLanes + 1) * sizeof(ClosingChunk) + 4096);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&t.entry(0)) % 64, 0u);
}

TEST(FlowTable, InsertLookupRemove) {
    FlowTable t(1024);
    const FlowKey k = key_n(7);
    EXPECT_EQ(t.lookup(k), kNoPeer);
    FlowValue v = value_of(42, 1000);
    v.vip_id = 3;
    v.nat_port = 0x1234;
    v.flags = 5;
    const uint32_t s = t.insert(k, v);
    ASSERT_NE(s, kNoPeer);
    EXPECT_LT(s, t.slot_count());
    EXPECT_TRUE(t.occupied(s));
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(t.lookup(k), s);
    EXPECT_EQ(t.lookup(k, FlowTable::hash(k)), s);
    const FlowEntry& e = t.entry(s);
    EXPECT_TRUE(e.key == k);
    EXPECT_EQ(e.value.backend_id, 42u);
    EXPECT_EQ(e.value.vip_id, 3);
    EXPECT_EQ(e.value.nat_port, 0x1234);
    EXPECT_EQ(e.value.flags, 5);
    EXPECT_EQ(e.value.peer, kNoPeer);

    // The entry is writable in place through its handle.
    t.entry(s).value.backend_id = 43;
    EXPECT_EQ(t.entry(t.lookup(k)).value.backend_id, 43u);

    t.remove(s);
    EXPECT_FALSE(t.occupied(s));
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.lookup(k), kNoPeer);
    t.remove(s);  // removing an empty slot is harmless
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.stats().inserts, 1u);
    EXPECT_EQ(t.stats().removes, 1u);
    EXPECT_FALSE(t.occupied(kNoPeer));
}

TEST(FlowTable, AbsentKeys) {
    FlowTable t(4096);
    for (uint32_t i = 0; i < 3000; ++i) ASSERT_NE(t.insert(key_n(i), value_of(i)), kNoPeer);
    for (uint32_t i = 3000; i < 20'000; ++i) EXPECT_EQ(t.lookup(key_n(i)), kNoPeer) << i;
    EXPECT_EQ(t.lookup(FlowKey{}), kNoPeer);
}

TEST(FlowTable, KeysDifferingInOneByteDoNotCollide) {
    FlowTable t(4096);
    const FlowKey base = FlowKey::v4(0x0100000au, 0x0200000au, 0x5000, 0x1f90, kTcp);
    std::vector<FlowKey> keys{base};
    // Every byte of every field (addresses incl. the IPv6 tail, ports, proto, family, pad),
    // with single-bit and whole-byte changes.
    for (size_t i = 0; i < sizeof(FlowKey); ++i) {
        for (uint8_t x : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
            FlowKey k = base;
            reinterpret_cast<unsigned char*>(&k)[i] ^= x;
            keys.push_back(k);
        }
    }
    // Field-wise too: swapped direction and neighbouring ports.
    keys.push_back(FlowKey::v4(0x0200000au, 0x0100000au, 0x1f90, 0x5000, kTcp));
    keys.push_back(FlowKey::v4(0x0100000au, 0x0200000au, 0x5003, 0x1f90, kTcp));
    keys.push_back(FlowKey::v4(0x0100000au, 0x0200000au, 0x5000, 0x1f90, kUdp));

    std::vector<uint32_t> slots;
    std::set<uint32_t> hashes;
    for (uint32_t i = 0; i < keys.size(); ++i) {
        const uint32_t s = t.insert(keys[i], value_of(i));
        ASSERT_NE(s, kNoPeer);
        slots.push_back(s);
        hashes.insert(FlowTable::hash(keys[i]));
    }
    EXPECT_EQ(hashes.size(), keys.size());  // not required, but a good hash manages it
    for (uint32_t i = 0; i < keys.size(); ++i) {
        ASSERT_EQ(t.lookup(keys[i]), slots[i]) << i;
        EXPECT_EQ(t.entry(slots[i]).value.backend_id, i);
    }
    // Removing one leaves all its neighbours.
    t.remove(slots[0]);
    EXPECT_EQ(t.lookup(base), kNoPeer);
    for (uint32_t i = 1; i < keys.size(); ++i) EXPECT_EQ(t.lookup(keys[i]), slots[i]) << i;
}

TEST(FlowTable, FullTableRefusesAndCounts) {
    FlowTable t(1024);
    std::vector<uint32_t> slots;
    uint32_t n = 0;
    uint64_t refused = 0;
    while (t.size() < t.capacity() && n < 100'000) {
        const uint32_t s = t.insert(key_n(n), value_of(n));
        if (s == kNoPeer) {
            ++refused;  // both candidate buckets full: rare below capacity
        } else {
            slots.push_back(s);
        }
        ++n;
    }
    ASSERT_EQ(t.size(), t.capacity());
    EXPECT_EQ(t.stats().insert_full, refused);
    EXPECT_LT(refused, 20u);

    const FlowKey extra = key_n(1'000'000);
    EXPECT_EQ(t.insert(extra, value_of(1)), kNoPeer);
    EXPECT_EQ(t.stats().insert_full, refused + 1);
    EXPECT_EQ(t.lookup(extra), kNoPeer);
    EXPECT_EQ(t.size(), t.capacity());

    // Free one: the same key fits again (its slot is in one of its buckets).
    const FlowKey gone = t.entry(slots[100]).key;
    t.remove(slots[100]);
    EXPECT_EQ(t.size(), t.capacity() - 1);
    const uint32_t s = t.insert(gone, value_of(7));
    ASSERT_NE(s, kNoPeer);
    EXPECT_EQ(t.lookup(gone), s);
    EXPECT_EQ(t.insert(extra, value_of(1)), kNoPeer);
    EXPECT_EQ(t.stats().insert_full, refused + 2);

    // Free one and a new key fits too.
    t.remove(slots[200]);
    const uint32_t s2 = t.insert(extra, value_of(1));
    ASSERT_NE(s2, kNoPeer);
    EXPECT_EQ(t.lookup(extra), s2);
    // Everything else is still there.
    uint32_t found = 0;
    for (uint32_t i = 0; i < n; ++i) found += t.lookup(key_n(i)) != kNoPeer;
    EXPECT_EQ(found, t.capacity() - 1);
}

TEST(FlowTable, ManyRandomKeysAndStableHandles) {
    const uint32_t n = kManyKeys;
    FlowTable t(n);
    const std::vector<FlowKey> keys = random_keys(n, 1);
    std::vector<uint32_t> slot(n, kNoPeer);
    uint32_t refused = 0;
    for (uint32_t i = 0; i < n; ++i) {
        slot[i] = t.insert(keys[i], value_of(i));
        refused += slot[i] == kNoPeer;
    }
    // Filling to exactly 100% of capacity may refuse a handful.
    EXPECT_LE(refused, n / 10'000);
    EXPECT_EQ(t.stats().insert_full, refused);
    EXPECT_EQ(t.size(), n - refused);
    for (uint32_t i = 0; i < n; ++i) {
        if (slot[i] == kNoPeer) continue;
        ASSERT_EQ(t.lookup(keys[i]), slot[i]) << i;
        ASSERT_EQ(t.entry(slot[i]).value.backend_id, i);
    }

    // Churn: remove a random third, insert fresh keys, several rounds. Surviving
    // entries keep their slot and contents; every live key stays findable.
    std::mt19937 rng(2);
    std::vector<FlowKey> live = keys;
    const std::vector<FlowKey> fresh = random_keys(2 * n, 3);  // more than 3 rounds use
    uint32_t next_fresh = 0;
    for (int round = 0; round < 3; ++round) {
        std::vector<uint32_t> removed;
        for (uint32_t i = 0; i < n; ++i) {
            if (slot[i] != kNoPeer && rng() % 3 == 0) {
                t.remove(slot[i]);
                slot[i] = kNoPeer;
                removed.push_back(i);
            }
        }
        for (uint32_t i = 0; i < n; ++i) {
            if (slot[i] != kNoPeer) {
                ASSERT_EQ(t.lookup(live[i]), slot[i]) << i;
                ASSERT_EQ(t.entry(slot[i]).value.backend_id, i);
            }
        }
        for (uint32_t i : removed) {
            ASSERT_EQ(t.lookup(live[i]), kNoPeer);
            live[i] = fresh[next_fresh++];
            slot[i] = t.insert(live[i], value_of(i));
        }
        uint32_t live_count = 0;
        for (uint32_t i = 0; i < n; ++i) {
            if (slot[i] == kNoPeer) continue;
            ++live_count;
            ASSERT_EQ(t.lookup(live[i]), slot[i]) << i;
            ASSERT_EQ(t.entry(slot[i]).value.backend_id, i);
        }
        EXPECT_EQ(t.size(), live_count);
        EXPECT_GE(live_count, n - n / 200) << "churn at 100% of capacity: still ~all fit";
    }
}

TEST(FlowTable, PeersAreRemovedTogether) {
    FlowTable t(1024);
    const FlowKey fwd = FlowKey::v4(0x0100000au, 0x0200000au, 0x5000, 0x5000, kTcp);
    const FlowKey rep = FlowKey::v4(0x0300000au, 0x0400000au, 0x5000, 0x6000, kTcp);
    const uint32_t f = t.insert(fwd, value_of(1));
    FlowValue rv = value_of(1);
    rv.is_reply = 1;
    rv.peer = f;
    const uint32_t r = t.insert(rep, rv);
    ASSERT_NE(f, kNoPeer);
    ASSERT_NE(r, kNoPeer);
    t.entry(f).value.peer = r;

    t.remove_with_peer(f);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.lookup(fwd), kNoPeer);
    EXPECT_EQ(t.lookup(rep), kNoPeer);

    // From the reply side too.
    const uint32_t f2 = t.insert(fwd, value_of(2));
    rv.peer = f2;
    const uint32_t r2 = t.insert(rep, rv);
    t.entry(f2).value.peer = r2;
    t.remove_with_peer(r2);
    EXPECT_EQ(t.size(), 0u);

    // A stale peer handle whose slot now holds an unrelated entry is left alone.
    const uint32_t f3 = t.insert(fwd, value_of(3));
    const uint32_t other = t.insert(key_n(5), value_of(5));
    t.entry(f3).value.peer = other;  // `other` does not point back
    t.remove_with_peer(f3);
    EXPECT_EQ(t.lookup(fwd), kNoPeer);
    EXPECT_EQ(t.lookup(key_n(5)), other);
    EXPECT_EQ(t.size(), 1u);

    // remove() alone leaves the peer.
    const uint32_t f4 = t.insert(fwd, value_of(4));
    rv.peer = f4;
    const uint32_t r4 = t.insert(rep, rv);
    t.entry(f4).value.peer = r4;
    t.remove(f4);
    EXPECT_EQ(t.lookup(rep), r4);
}

TEST(FlowTable, ExpiryPerStateWithWrap) {
    Timeouts to;
    to.syn_ms = 1'000;
    to.established_ms = 50'000;
    to.closing_ms = 2'000;
    to.udp_ms = 7'000;
    EXPECT_EQ(to.for_state(FlowState::syn_seen), 1'000u);
    EXPECT_EQ(to.for_state(FlowState::established), 50'000u);
    EXPECT_EQ(to.for_state(FlowState::closing), 2'000u);
    EXPECT_EQ(to.for_state(FlowState::udp), 7'000u);
    EXPECT_EQ(to.for_state(FlowState(99)), 2'000u);  // corrupt state: short timeout

    const FlowState states[] = {FlowState::syn_seen, FlowState::established, FlowState::closing,
                                FlowState::udp};
    // Starting points include ones where now wraps past 2^32.
    for (uint32_t start : {0u, 12'345u, 0xffffffffu - 500u, 0xffffffffu, 0x80000000u}) {
        for (FlowState st : states) {
            const uint32_t limit = to.for_state(st);
            FlowValue v = value_of(1, start, st);
            EXPECT_FALSE(FlowTable::expired(v, start, to));
            EXPECT_FALSE(FlowTable::expired(v, start + limit - 1, to));
            EXPECT_FALSE(FlowTable::expired(v, start + limit, to)) << "idle == timeout is still alive";
            EXPECT_TRUE(FlowTable::expired(v, start + limit + 1, to)) << start << " " << int(st);
            EXPECT_TRUE(FlowTable::expired(v, start + limit + 1'000'000, to));
            v.is_reply = 1;  // reply entries never expire on their own
            EXPECT_FALSE(FlowTable::expired(v, start + limit + 1'000'000, to));
        }
    }
    // Default timeouts.
    const Timeouts def;
    const FlowValue v = value_of(1, 100, FlowState::established);
    EXPECT_FALSE(FlowTable::expired(v, 100 + 900'000, def));
    EXPECT_TRUE(FlowTable::expired(v, 100 + 900'001, def));
}

TEST(FlowTable, SweepExpiresExactlyTheIdleOnes) {
    FlowTable t(8192);
    Timeouts fast;  // VIP 0
    fast.syn_ms = 100;
    fast.established_ms = 1'000;
    fast.closing_ms = 100;
    fast.udp_ms = 500;
    Timeouts slow = fast;  // VIP 1: everything ten times longer
    slow.syn_ms *= 10;
    slow.established_ms *= 10;
    slow.closing_ms *= 10;
    slow.udp_ms *= 10;
    const Timeouts vips[2] = {fast, slow};

    const uint32_t now = 0xffffff00u + 3'000;  // wrapped past 2^32 since the flows started
    const FlowState states[] = {FlowState::syn_seen, FlowState::established, FlowState::closing,
                                FlowState::udp};
    std::mt19937 rng(9);
    std::unordered_map<uint32_t, bool> expect_gone;  // forward slot -> should expire
    std::unordered_map<uint32_t, uint32_t> reply_of;
    uint32_t want_expired = 0;
    for (uint32_t i = 0; i < 5000; ++i) {
        const FlowState st = states[i % 4];
        const uint16_t vip = uint16_t((i / 4) % 2);
        const uint32_t idle = rng() % 20'000;
        FlowValue v = value_of(i, now - idle, st);
        v.vip_id = vip;
        const uint32_t f = t.insert(key_n(i), v);
        ASSERT_NE(f, kNoPeer);
        const bool gone = idle > vips[vip].for_state(st);
        expect_gone[f] = gone;
        want_expired += gone;
        if (i % 3 == 0) {  // a full-NAT pair
            FlowValue rv = v;
            rv.is_reply = 1;
            rv.peer = f;
            rv.last_seen = now - 1'000'000;  // would be "idle" if replies expired alone
            const uint32_t r = t.insert(key_n(100'000 + i), rv);
            ASSERT_NE(r, kNoPeer);
            t.entry(f).value.peer = r;
            reply_of[f] = r;
        }
    }
    ASSERT_GT(want_expired, 1000u);
    ASSERT_LT(want_expired, 4950u);
    const uint32_t size_before = t.size();

    uint32_t callbacks = 0, removed_pairs = 0;
    std::set<uint32_t> seen_backends;
    auto timeouts_of = [&](uint16_t vip) -> const Timeouts& { return vips[vip]; };
    auto on_expire = [&](const FlowEntry& e) {
        ++callbacks;
        EXPECT_EQ(e.value.is_reply, 0);
        EXPECT_TRUE(seen_backends.insert(e.value.backend_id).second) << "called twice";
        removed_pairs += e.value.peer != kNoPeer;
    };
    // One full pass in small steps, wrapping around the end of the table.
    uint32_t removed = 0, visited = 0;
    const uint32_t budget = 777;
    while (visited < t.slot_count()) {
        const uint32_t step = std::min(budget, t.slot_count() - visited);
        removed += t.sweep(step, now, timeouts_of, on_expire);
        visited += step;
    }
    EXPECT_EQ(removed, want_expired);
    EXPECT_EQ(callbacks, want_expired);
    EXPECT_EQ(t.stats().expired, want_expired);
    EXPECT_EQ(t.size(), size_before - want_expired - removed_pairs);
    for (const auto& [f, gone] : expect_gone) {
        EXPECT_EQ(t.occupied(f), !gone) << f;
        const auto r = reply_of.find(f);
        if (r != reply_of.end()) {
            EXPECT_EQ(t.occupied(r->second), !gone);
        }
    }

    // A second pass (one call, budget clamped to the table) finds nothing more.
    EXPECT_EQ(t.sweep(~0u, now, timeouts_of, on_expire), 0u);
    EXPECT_EQ(callbacks, want_expired);

    // Later, everything is idle: all go, with their replies.
    const uint32_t later = now + 100'000;
    const uint32_t rest = t.sweep(t.slot_count() * 2, later, timeouts_of, on_expire);
    EXPECT_EQ(rest, 5000u - want_expired);
    EXPECT_EQ(t.size(), 0u);
}

TEST(FlowTable, SweepDropsOrphanRepliesWithoutCallback) {
    FlowTable t(1024);
    const uint32_t f = t.insert(key_n(1), value_of(1));
    FlowValue rv = value_of(1);
    rv.is_reply = 1;
    rv.peer = f;
    const uint32_t r = t.insert(key_n(2), rv);
    t.entry(f).value.peer = r;
    t.remove(f);  // forward gone without its peer
    uint32_t callbacks = 0;
    const Timeouts to;
    EXPECT_EQ(t.sweep(t.slot_count(), 0, [&](uint16_t) { return to; },
                      [&](const FlowEntry&) { ++callbacks; }),
              0u);
    EXPECT_EQ(callbacks, 0u);
    EXPECT_FALSE(t.occupied(r));
    EXPECT_EQ(t.size(), 0u);

    // Later passes skip reply entries (their check is a random load): an
    // orphan made now goes within kOrphanPasses passes, not at once.
    const uint32_t f2 = t.insert(key_n(3), value_of(1));
    rv.peer = f2;
    const uint32_t r2 = t.insert(key_n(4), rv);
    t.entry(f2).value.peer = r2;
    t.remove(f2);
    uint32_t passes = 0;
    while (t.occupied(r2) && passes < FlowTable::kOrphanPasses) {
        t.sweep(
            t.slot_count(), 0, [&](uint16_t) { return to; }, [&](const FlowEntry&) { ++callbacks; });
        ++passes;
    }
    EXPECT_FALSE(t.occupied(r2));
    EXPECT_EQ(passes, FlowTable::kOrphanPasses) << "passes 1 to 7 skip reply entries, pass 8 checks them";
    EXPECT_EQ(callbacks, 0u);
}

TEST(FlowTable, ReclaimFreesExpiredFlowsInAKeysBuckets) {
    // A full table whose flows have all gone idle: insert refuses, reclaim on
    // the new key's buckets removes the expired flows there (with the reply
    // entries elsewhere), and the insert then succeeds. Live flows stay.
    FlowTable t(1024);
    const Timeouts to;
    std::vector<uint32_t> forward;
    for (uint32_t i = 0; t.size() + 2 <= t.capacity(); ++i) {
        const uint32_t f = t.insert(key_n(i), value_of(i, 1'000, FlowState::syn_seen));
        if (f == kNoPeer) continue;
        FlowValue rv = value_of(i);
        rv.is_reply = 1;
        rv.peer = f;
        const uint32_t r = t.insert(key_n(1'000'000 + i), rv);
        if (r == kNoPeer) {
            t.remove(f);
            continue;
        }
        t.entry(f).value.peer = r;
        forward.push_back(f);
    }
    // One flow stays live: seen just now.
    const uint32_t live = forward.front();
    const uint32_t now = 1'000 + to.syn_ms + 1;
    t.entry(live).value.last_seen = now;

    const FlowKey fresh = key_n(5'000'000);
    t.insert(key_n(5'000'001), value_of(9));  // fills the last slots if any are left
    t.insert(key_n(5'000'002), value_of(9));
    ASSERT_EQ(t.insert(fresh, value_of(7)), kNoPeer) << "full";
    uint32_t callbacks = 0;
    const uint32_t size_before = t.size();
    const uint32_t freed = t.reclaim(FlowTable::hash(fresh), now, [&](uint16_t) -> const Timeouts& { return to; },
                                     [&](const FlowEntry& e) {
                                         ++callbacks;
                                         EXPECT_EQ(e.value.is_reply, 0);
                                     });
    EXPECT_GT(freed, 0u);
    EXPECT_EQ(callbacks, freed);
    EXPECT_EQ(t.stats().expired, freed);
    EXPECT_EQ(t.size(), size_before - 2 * freed) << "each flow goes with its reply entry";
    EXPECT_TRUE(t.occupied(live));
    EXPECT_NE(t.insert(fresh, value_of(7)), kNoPeer);
}

// A closed flow and its reply entry: forward slot out.
uint32_t insert_pair(FlowTable& t, uint32_t n, uint32_t now, FlowState st) {
    const uint32_t f = t.insert(key_n(n), value_of(n, now, st));
    FlowValue rv = value_of(n);
    rv.is_reply = 1;
    rv.peer = f;
    t.entry(f).value.peer = t.insert(key_n(1'000'000 + n), rv);
    return f;
}

TEST(FlowTable, ClosedFlowsLeaveAtTheirDueTimeWithoutASweep) {
    FlowTable t(1024);
    Timeouts to;
    to.closing_ms = 100;
    auto timeouts = [&](uint16_t) -> const Timeouts& { return to; };
    std::vector<uint32_t> gone;
    auto on_expire = [&](const FlowEntry& e) { gone.push_back(e.value.backend_id); };
    const uint32_t a = insert_pair(t, 1, 1'000, FlowState::closing);
    const uint32_t b = insert_pair(t, 2, 1'010, FlowState::closing);
    const uint32_t live = insert_pair(t, 3, 1'000, FlowState::established);
    t.close_later(a, 1'000 + to.closing_ms + 1, to.closing_ms);
    t.close_later(b, 1'010 + to.closing_ms + 1, to.closing_ms);
    EXPECT_EQ(t.closing_queued(), 2u);

    EXPECT_EQ(t.expire_closed(64, 1'100, timeouts, on_expire), 0u) << "not due";
    EXPECT_EQ(t.closing_queued(), 2u);
    EXPECT_EQ(t.expire_closed(64, 1'101, timeouts, on_expire), 1u) << "a is due, b is not";
    EXPECT_EQ(gone, std::vector<uint32_t>{1});
    EXPECT_FALSE(t.occupied(a));
    EXPECT_EQ(t.size(), 4u) << "a's reply entry went with it";
    EXPECT_EQ(t.expire_closed(64, 1'111, timeouts, on_expire), 1u);
    EXPECT_EQ(gone, (std::vector<uint32_t>{1, 2}));
    EXPECT_EQ(t.size(), 2u);
    EXPECT_TRUE(t.occupied(live));
    EXPECT_EQ(t.stats().expired, 2u);
    EXPECT_EQ(t.closing_queued(), 0u);
}

TEST(FlowTable, AClosedFlowSeenAgainIsRequeuedAndAReusedSlotIsLeftAlone) {
    FlowTable t(1024);
    Timeouts to;
    to.closing_ms = 100;
    auto timeouts = [&](uint16_t) -> const Timeouts& { return to; };
    uint32_t callbacks = 0;
    auto on_expire = [&](const FlowEntry&) { ++callbacks; };

    // Traffic after the close (the other side's RST-ACK) moves the removal on.
    const uint32_t a = insert_pair(t, 1, 1'000, FlowState::closing);
    t.close_later(a, 1'101, 100);
    t.entry(a).value.last_seen = 1'050;
    EXPECT_EQ(t.expire_closed(64, 1'101, timeouts, on_expire), 0u);
    EXPECT_TRUE(t.occupied(a));
    EXPECT_EQ(t.closing_queued(), 1u) << "queued again for 1151";
    EXPECT_EQ(t.expire_closed(64, 1'150, timeouts, on_expire), 0u);
    EXPECT_EQ(t.expire_closed(64, 1'151, timeouts, on_expire), 1u);
    EXPECT_EQ(callbacks, 1u);

    // The slot of a closed flow, ended early, now holds a live flow: the
    // item only points at the slot, and the live flow stays.
    const uint32_t b = insert_pair(t, 2, 2'000, FlowState::closing);
    t.close_later(b, 2'101, 100);
    t.remove_with_peer(b);
    const uint32_t c = insert_pair(t, 2, 2'050, FlowState::established);  // the same key: the same home slot
    ASSERT_EQ(c, b);
    EXPECT_EQ(t.expire_closed(64, 2'101, timeouts, on_expire), 0u);
    EXPECT_TRUE(t.occupied(c));
    EXPECT_EQ(t.closing_queued(), 0u) << "not closing: dropped from the queue";
    // An item for an empty slot is dropped too.
    ASSERT_FALSE(t.occupied(a));
    t.close_later(a, 2'200, 100);
    EXPECT_EQ(t.expire_closed(64, 2'200, timeouts, on_expire), 0u);
    EXPECT_EQ(t.closing_queued(), 0u);
    EXPECT_EQ(callbacks, 1u);
}

TEST(FlowTable, ClosingQueueTakesHalfTheCapacityAndCountsOverflow) {
    FlowTable t(1024);  // empty: every item points at an empty slot
    for (uint32_t i = 0; i < 1024 / 2 + 1; ++i) t.close_later(0, i, 10'000);
    EXPECT_EQ(t.stats().closing_overflow, 0u);
    t.close_later(0, 0, 10'000);
    EXPECT_EQ(t.stats().closing_overflow, 1u);
    EXPECT_EQ(t.closing_room(), 513u);
    // Popped in order and with a budget, across the lane's chunks.
    const Timeouts to;
    auto timeouts = [&](uint16_t) -> const Timeouts& { return to; };
    auto none = [](const FlowEntry&) {};
    EXPECT_EQ(t.closing_queued(), 513u);
    t.expire_closed(10, 100, timeouts, none);
    EXPECT_EQ(t.closing_queued(), 503u) << "budget 10";
    t.expire_closed(1'000, 99, timeouts, none);
    EXPECT_EQ(t.closing_queued(), 513u - 100u) << "due 0..99 gone";
    for (uint32_t i = 0; i < 100; ++i) t.close_later(0, 1'000, 10'000);
    EXPECT_EQ(t.stats().closing_overflow, 1u);
    t.expire_closed(1'000, 1'000, timeouts, none);
    EXPECT_EQ(t.closing_queued(), 0u);

    // Without a queue (benchmarks compare): every close overflows, the sweep takes them.
    FlowTable q(1024, false);
    q.close_later(0, 0, 10'000);
    EXPECT_EQ(q.stats().closing_overflow, 1u);
    EXPECT_EQ(q.closing_queued(), 0u);
    EXPECT_EQ(q.expire_closed(64, 100, timeouts, none), 0u);
    EXPECT_LT(q.memory_bytes(), t.memory_bytes());
}

// VIPs with different closing timeouts: each timeout has its own lane, so a
// flow closed with a short timeout leaves on time even behind one with a
// long timeout (with one FIFO it waited for the long one's due time).
TEST(FlowTable, AShortClosingTimeoutDoesNotWaitBehindALongOne) {
    FlowTable t(1024);
    Timeouts long_to, short_to;
    long_to.closing_ms = 10'000;
    short_to.closing_ms = 100;
    auto timeouts = [&](uint16_t vip) -> const Timeouts& { return vip == 1 ? long_to : short_to; };
    auto none = [](const FlowEntry&) {};
    const uint32_t slow = insert_pair(t, 1, 1'000, FlowState::closing);
    t.entry(slow).value.vip_id = 1;
    const uint32_t fast = insert_pair(t, 2, 1'000, FlowState::closing);
    t.entry(fast).value.vip_id = 2;
    t.close_later(slow, 1'000 + 10'000 + 1, 10'000);
    t.close_later(fast, 1'000 + 100 + 1, 100);
    EXPECT_EQ(t.expire_closed(64, 1'101, timeouts, none), 1u);
    EXPECT_FALSE(t.occupied(fast));
    EXPECT_TRUE(t.occupied(slow));
    EXPECT_EQ(t.closing_queued(), 1u);
    EXPECT_EQ(t.expire_closed(64, 11'001, timeouts, none), 1u);
    EXPECT_EQ(t.closing_queued(), 0u);
}

// More distinct timeouts than lanes: an item goes to the lane of the shortest
// longer timeout (late by at most the difference), or, longer than all, to
// the longest lane. Nothing is lost, every item leaves by its lane's due
// times, and the lanes' chunks come back: a second round fits again.
TEST(FlowTable, MoreClosingTimeoutsThanLanesStillLeaveInTime) {
    FlowTable t(4096);
    std::vector<Timeouts> per_vip(8);
    for (uint32_t v = 0; v < 8; ++v) per_vip[v].closing_ms = 100 * (v + 1);  // 100 .. 800
    auto timeouts = [&](uint16_t vip) -> const Timeouts& { return per_vip[vip]; };
    std::vector<uint32_t> gone_at(1'000, 0);
    uint32_t now = 1'000;
    auto on_expire = [&](const FlowEntry& e) { gone_at[e.value.backend_id] = now; };
    for (int round = 0; round < 2; ++round) {
        std::vector<std::pair<uint32_t, uint32_t>> flows;  // (backend id, due)
        const uint32_t start = now;
        for (uint32_t i = 0; i < 800; ++i) {
            const uint32_t vip = (i * 5 + round) % 8;  // timeouts in a mixed order
            const uint32_t id = i + 1;
            const uint32_t f = insert_pair(t, id, start, FlowState::closing);
            ASSERT_NE(f, kNoPeer);
            t.entry(f).value.vip_id = uint16_t(vip);
            t.close_later(f, start + per_vip[vip].closing_ms + 1, per_vip[vip].closing_ms);
            flows.emplace_back(id, start + per_vip[vip].closing_ms + 1);
        }
        EXPECT_EQ(t.stats().closing_overflow, 0u);
        for (; t.closing_queued() != 0 && now < start + 2'000; ++now) t.expire_closed(1'000, now, timeouts, on_expire);
        EXPECT_EQ(t.closing_queued(), 0u);
        EXPECT_EQ(t.size(), 0u);
        for (const auto& [id, due] : flows) {
            EXPECT_GE(gone_at[id], due) << id;
            EXPECT_LE(gone_at[id], start + 801) << id << ": later than the longest timeout";
        }
        // The four shortest timeouts had lanes of their own at the start: on time exactly.
        EXPECT_EQ(gone_at[flows[round == 0 ? 0 : 3].first], flows[round == 0 ? 0 : 3].second);
    }
}

TEST(FlowTable, TupleReusedAfterClose) {
    FlowTable t(1024);
    const FlowKey k = key_n(77);
    FlowValue v = value_of(1, 1'000, FlowState::closing);
    const uint32_t s = t.insert(k, v);
    t.remove(s);
    EXPECT_EQ(t.lookup(k), kNoPeer);
    const uint32_t s2 = t.insert(k, value_of(2, 2'000, FlowState::syn_seen));
    ASSERT_NE(s2, kNoPeer);
    EXPECT_EQ(t.lookup(k), s2);
    EXPECT_EQ(t.entry(s2).value.backend_id, 2u);
    EXPECT_EQ(t.size(), 1u);

    // Same after the sweep closes it.
    const Timeouts to;
    t.entry(s2).value.state = uint8_t(FlowState::closing);
    EXPECT_EQ(t.sweep(t.slot_count(), 2'000 + to.closing_ms + 1, [&](uint16_t) { return to; },
                      [](const FlowEntry&) {}),
              1u);
    EXPECT_EQ(t.lookup(k), kNoPeer);
    const uint32_t s3 = t.insert(k, value_of(3));
    EXPECT_EQ(t.lookup(k), s3);
    EXPECT_EQ(t.entry(s3).value.backend_id, 3u);
}

TEST(FlowTable, LookupBulkAgreesWithLookup) {
    FlowTable t(16384);
    const std::vector<FlowKey> keys = random_keys(20'000, 11);
    for (uint32_t i = 0; i < 20'000; i += 2) ASSERT_NE(t.insert(keys[i], value_of(i)), kNoPeer);
    std::mt19937 rng(5);
    for (uint32_t n : {1u, 2u, 7u, 31u, 32u, 33u, 63u, 64u, 100u, 200u}) {
        for (int rep = 0; rep < 20; ++rep) {
            std::vector<const FlowKey*> ptrs;
            for (uint32_t i = 0; i < n; ++i) ptrs.push_back(&keys[rng() % keys.size()]);
            std::vector<uint32_t> out(n, 12345);
            t.lookup_bulk(ptrs.data(), n, out.data());
            for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(out[i], t.lookup(*ptrs[i])) << n << " " << i;
        }
    }
    t.lookup_bulk(nullptr, 0, nullptr);  // nothing to do
}

TEST(FlowTable, MaybePresentIsNeverWrongAboutAbsentKeys) {
    FlowTable t(65536);
    EXPECT_FALSE(t.maybe_present(FlowTable::hash(key_n(1))));
    for (uint32_t i = 0; i < 50'000; ++i) ASSERT_NE(t.insert(key_n(i), value_of(i)), kNoPeer);
    uint32_t false_positives = 0;
    for (uint32_t i = 0; i < 100'000; ++i) {
        const bool maybe = t.maybe_present(FlowTable::hash(key_n(i)));
        if (i < 50'000) {
            ASSERT_TRUE(maybe) << i;  // present keys always answer "perhaps"
        } else {
            ASSERT_EQ(t.lookup(key_n(i)), kNoPeer);
            false_positives += maybe;  // a 16-bit signature of another key in the buckets
        }
    }
    EXPECT_LT(false_positives, 100u) << "about 32 slots x 1/65535 per absent key";
}

TEST(FlowTable, PrefetchIsHarmlessAndForEachVisitsAll) {
    FlowTable t(2048);
    std::set<uint32_t> slots;
    for (uint32_t i = 0; i < 1500; ++i) {
        t.prefetch(FlowTable::hash(key_n(i)));
        slots.insert(t.insert(key_n(i), value_of(i)));
    }
    std::set<uint32_t> visited;
    t.for_each([&](uint32_t slot, const FlowEntry& e) {
        visited.insert(slot);
        EXPECT_EQ(t.lookup(e.key), slot);
    });
    EXPECT_EQ(visited, slots);
}

TEST(FlowTable, HashSpreadsSequentialTuples) {
    // Sequential clients to one VIP: the hash must still spread over the range.
    constexpr uint32_t n = 1 << 16;
    uint32_t high_bits[16] = {};
    std::set<uint32_t> distinct;
    for (uint32_t i = 0; i < n; ++i) {
        const uint32_t h = FlowTable::hash(key_n(i));
        distinct.insert(h);
        ++high_bits[h >> 28];
    }
    EXPECT_GE(distinct.size(), n - 5);
    for (uint32_t c : high_bits) {
        EXPECT_GT(c, n / 16 - n / 64);
        EXPECT_LT(c, n / 16 + n / 64);
    }
}

}  // namespace
}  // namespace ferry::flow
