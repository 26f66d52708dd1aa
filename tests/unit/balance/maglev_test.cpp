#include "balance/maglev.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

#include "balance/hash.hpp"
#include "balance/maglev_detail.hpp"
#include "balance/maglev_stats.hpp"

namespace ferry::balance {
namespace {

Endpoint endpoint(uint32_t i) { return Endpoint{IpAddr::v4(0x0a000000u + i), uint16_t(8000 + i % 7)}; }

std::vector<MaglevBackend> equal_backends(uint32_t n, uint32_t weight = 1, uint32_t first = 0) {
    std::vector<MaglevBackend> v;
    for (uint32_t i = 0; i < n; ++i) v.push_back({endpoint(first + i), weight});
    return v;
}

std::vector<MaglevBackend> random_backends(uint32_t n, uint32_t max_weight, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<uint32_t> weight(1, max_weight);
    std::vector<MaglevBackend> v;
    for (uint32_t i = 0; i < n; ++i) v.push_back({endpoint(1000 * seed + i), weight(rng)});
    return v;
}

// Owner identity of every slot: comparable across differently ordered lists.
std::vector<Endpoint> owners(const std::vector<MaglevBackend>& backends, const std::vector<uint32_t>& table) {
    std::vector<Endpoint> out;
    out.reserve(table.size());
    for (uint32_t i : table) out.push_back(i == kNoBackend ? Endpoint{} : backends.at(i).id);
    return out;
}

// Each backend holds floor or ceil of its exact share, and weight 0 holds none.
void expect_exact_quotas(const std::vector<MaglevBackend>& backends, const std::vector<uint32_t>& table) {
    const auto counts = count_slots(table, backends.size());
    uint64_t total = 0;
    for (const auto& b : backends) total += b.weight;
    for (size_t i = 0; i < backends.size(); ++i) {
        const uint64_t owed = uint64_t(table.size()) * backends[i].weight;
        const uint64_t lo = owed / total;
        const uint64_t hi = lo + (owed % total != 0 ? 1 : 0);
        EXPECT_GE(counts[i], lo) << "backend " << i << " weight " << backends[i].weight;
        EXPECT_LE(counts[i], hi) << "backend " << i << " weight " << backends[i].weight;
    }
}

TEST(IsPrime, SmallAndLarge) {
    EXPECT_FALSE(is_prime(0));
    EXPECT_FALSE(is_prime(1));
    EXPECT_TRUE(is_prime(2));
    EXPECT_TRUE(is_prime(3));
    EXPECT_FALSE(is_prime(4));
    EXPECT_FALSE(is_prime(9));
    EXPECT_FALSE(is_prime(25));
    EXPECT_FALSE(is_prime(49));
    EXPECT_TRUE(is_prime(kDefaultTableSize));
    EXPECT_TRUE(is_prime(kLargeTableSize));
    EXPECT_TRUE(is_prime(kMaxTableSize));
    EXPECT_FALSE(is_prime(65536));
    EXPECT_FALSE(is_prime(655371));
    EXPECT_FALSE(is_prime(65537u * 3u));
    EXPECT_TRUE(is_prime(4294967291u));   // largest 32-bit prime
    EXPECT_FALSE(is_prime(4294967295u));  // 3 * 5 * 17 * 257 * 65537
    uint32_t count = 0;
    for (uint32_t n = 0; n < 1000; ++n) count += is_prime(n);
    EXPECT_EQ(count, 168u);
}

TEST(MaglevBuild, RejectsBadSizes) {
    const auto v = equal_backends(3);
    EXPECT_THROW(build_maglev_table(v, 0), std::invalid_argument);
    EXPECT_THROW(build_maglev_table(v, 1), std::invalid_argument);
    EXPECT_THROW(build_maglev_table(v, 65536), std::invalid_argument);
    EXPECT_THROW(build_maglev_table(v, 655371), std::invalid_argument);
    EXPECT_THROW(build_maglev_table({}, 100), std::invalid_argument);  // checked even with no backends
    EXPECT_THROW(build_maglev_table(v, 16777259), std::invalid_argument);  // prime, but above the maximum
}

TEST(MaglevBuild, RejectsDuplicatesWeightsAndOverflow) {
    auto v = equal_backends(5);
    v.push_back({v[2].id, 7});
    EXPECT_THROW(build_maglev_table(v, 13), std::invalid_argument);
    v.back().weight = 0;  // a duplicate is a config error whatever its weight
    EXPECT_THROW(build_maglev_table(v, 13), std::invalid_argument);

    // Same address, other port: a different backend.
    auto w = equal_backends(2);
    w[1].id = w[0].id;
    w[1].id.port = uint16_t(w[0].id.port + 1);
    EXPECT_NO_THROW(build_maglev_table(w, 13));

    auto heavy = equal_backends(2);
    heavy[1].weight = kMaxWeight + 1;
    EXPECT_THROW(build_maglev_table(heavy, 13), std::invalid_argument);
    heavy[1].weight = kMaxWeight;
    EXPECT_NO_THROW(build_maglev_table(heavy, 13));

    EXPECT_THROW(build_maglev_table(equal_backends(6), 5), std::invalid_argument);
    auto six = equal_backends(6);
    six[3].weight = 0;  // only weighted backends need a slot
    const auto t = build_maglev_table(six, 5);
    const auto counts = count_slots(t, six.size());
    EXPECT_EQ(counts, (std::vector<uint32_t>{1, 1, 1, 0, 1, 1}));
}

TEST(MaglevBuild, EmptyAndAllZeroGiveNoBackend) {
    const auto empty = build_maglev_table({}, kDefaultTableSize);
    ASSERT_EQ(empty.size(), kDefaultTableSize);
    EXPECT_TRUE(std::all_of(empty.begin(), empty.end(), [](uint32_t e) { return e == kNoBackend; }));

    const auto zero = build_maglev_table(equal_backends(10, 0), kDefaultTableSize);
    ASSERT_EQ(zero.size(), kDefaultTableSize);
    EXPECT_TRUE(std::all_of(zero.begin(), zero.end(), [](uint32_t e) { return e == kNoBackend; }));
}

TEST(MaglevBuild, SingleBackendGetsEverything) {
    auto v = equal_backends(5, 0);
    v[3].weight = 42;
    for (uint32_t size : {2u, 3u, 13u, kDefaultTableSize}) {
        const auto t = build_maglev_table(v, size);
        ASSERT_EQ(t.size(), size);
        EXPECT_TRUE(std::all_of(t.begin(), t.end(), [](uint32_t e) { return e == 3; })) << size;
    }
}

TEST(MaglevBuild, TinyTables) {
    // Every size from 2 to 200 that is prime, every backend count that fits.
    for (uint32_t size = 2; size < 200; ++size) {
        if (!is_prime(size)) continue;
        for (uint32_t n = 1; n <= std::min(size, 12u); ++n) {
            auto v = random_backends(n, 5, size * 31 + n);
            const auto t = build_maglev_table(v, size);
            ASSERT_EQ(t.size(), size);
            EXPECT_TRUE(std::none_of(t.begin(), t.end(), [](uint32_t e) { return e == kNoBackend; }));
            expect_exact_quotas(v, t);
        }
    }
}

TEST(MaglevBuild, SameTableTwice) {
    const auto v = random_backends(300, 100, 7);
    EXPECT_EQ(build_maglev_table(v, kDefaultTableSize), build_maglev_table(v, kDefaultTableSize));
}

TEST(MaglevBuild, ListingOrderDoesNotMatter) {
    auto v = random_backends(200, 20, 3);
    v[17].weight = 0;
    const auto reference = owners(v, build_maglev_table(v, kDefaultTableSize));
    std::mt19937 rng(99);
    for (int round = 0; round < 3; ++round) {
        std::shuffle(v.begin(), v.end(), rng);
        const auto t = build_maglev_table(v, kDefaultTableSize);
        EXPECT_EQ(owners(v, t), reference) << "shuffle " << round;
    }
    std::reverse(v.begin(), v.end());
    EXPECT_EQ(owners(v, build_maglev_table(v, kDefaultTableSize)), reference);
}

TEST(MaglevBuild, ScalingAllWeightsChangesNothing) {
    // Only weight ratios matter: the fill orders looks by exact rational time.
    auto v = random_backends(50, 9, 11);
    const auto reference = build_maglev_table(v, kDefaultTableSize);
    for (auto& b : v) b.weight *= 7;
    EXPECT_EQ(build_maglev_table(v, kDefaultTableSize), reference);
}

// A digest of tables for fixed inputs. Every Ferry instance of a deployment
// must build the same table, so a change here (hash, seeds, fill order, quota
// rule) is a breaking change: instances on old and new versions would disagree
// during an upgrade. Update the values only on purpose.
uint64_t digest(const std::vector<uint32_t>& table) {
    std::vector<uint8_t> bytes;
    for (uint32_t e : table) {
        for (int i = 0; i < 4; ++i) bytes.push_back(uint8_t(e >> (8 * i)));
    }
    return hash_bytes(bytes.data(), bytes.size(), 0);
}

TEST(MaglevBuild, GoldenTables) {
    std::vector<MaglevBackend> v;
    for (uint32_t i = 0; i < 10; ++i) v.push_back({Endpoint{IpAddr::v4(0xc0a80001u + i), 80}, 1 + i % 3});
    v.push_back({Endpoint{*IpAddr::parse("2001:db8::1"), 443}, 2});
    EXPECT_EQ(build_maglev_table(v, 13), (std::vector<uint32_t>{6, 5, 7, 5, 2, 1, 0, 8, 2, 10, 8, 4, 10}));
    EXPECT_EQ(digest(build_maglev_table(v, kDefaultTableSize)), 0xe5a4716af85314b3ULL);
    EXPECT_EQ(digest(build_maglev_table(equal_backends(100), kDefaultTableSize)), 0x7b775bfe16adb814ULL);
}

TEST(MaglevBuild, EvenWithEqualWeights) {
    const auto v = equal_backends(1000);
    const auto t = build_maglev_table(v, kDefaultTableSize);
    const auto e = share_error(v, t);
    EXPECT_LE(e.max_over_mean, 1.01);
    expect_exact_quotas(v, t);
    const auto counts = count_slots(t, v.size());
    EXPECT_EQ(*std::min_element(counts.begin(), counts.end()), 65u);
    EXPECT_EQ(*std::max_element(counts.begin(), counts.end()), 66u);
}

TEST(MaglevBuild, LargeTable) {
    const auto v = equal_backends(1000);
    const auto t = build_maglev_table(v, kLargeTableSize);
    ASSERT_EQ(t.size(), kLargeTableSize);
    EXPECT_LE(share_error(v, t).max_over_mean, 1.01);
    expect_exact_quotas(v, t);
}

TEST(MaglevBuild, WeightsOneToThreeAndOneToTen) {
    for (uint32_t heavy : {3u, 10u}) {
        std::vector<MaglevBackend> v = {{endpoint(1), 1}, {endpoint(2), heavy}};
        auto t = build_maglev_table(v, kDefaultTableSize);
        auto counts = count_slots(t, 2);
        EXPECT_NEAR(double(counts[1]) / counts[0], double(heavy), heavy * 0.0005) << heavy;
        expect_exact_quotas(v, t);

        // Many of each: every backend of weight `heavy` holds `heavy` times the slots.
        v.clear();
        for (uint32_t i = 0; i < 100; ++i) v.push_back({endpoint(i), i % 2 ? heavy : 1});
        t = build_maglev_table(v, kDefaultTableSize);
        expect_exact_quotas(v, t);
        EXPECT_LE(share_error(v, t).max_relative, 0.01) << heavy;
    }
}

TEST(MaglevBuild, MixedWeightsWithinOnePercent) {
    for (uint32_t seed = 1; seed <= 5; ++seed) {
        // 100 backends of weight 1..10: the smallest is owed ~120 slots, so
        // being within one slot is within 1%.
        const auto v = random_backends(100, 10, seed);
        const auto t = build_maglev_table(v, kDefaultTableSize);
        const auto e = share_error(v, t);
        EXPECT_LE(e.max_relative, 0.01) << seed;
        EXPECT_LT(e.max_slots_off, 1.0) << seed;
        expect_exact_quotas(v, t);
    }
    // Wide weights: within one slot of the exact share, whatever the share.
    const auto wide = random_backends(1000, kMaxWeight, 42);
    const auto t = build_maglev_table(wide, kDefaultTableSize);
    EXPECT_LT(share_error(wide, t).max_slots_off, 1.0);
    expect_exact_quotas(wide, t);
}

TEST(MaglevBuild, WeightZeroGetsNothing) {
    auto v = random_backends(50, 5, 8);
    for (size_t i = 0; i < v.size(); i += 4) v[i].weight = 0;
    const auto t = build_maglev_table(v, kDefaultTableSize);
    const auto counts = count_slots(t, v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i].weight == 0) {
            EXPECT_EQ(counts[i], 0u) << i;
        }
    }
    expect_exact_quotas(v, t);
    EXPECT_TRUE(std::none_of(t.begin(), t.end(), [](uint32_t e) { return e == kNoBackend; }));

    // Weight 0 is the same as absent.
    std::vector<MaglevBackend> live;
    for (const auto& b : v) {
        if (b.weight > 0) live.push_back(b);
    }
    EXPECT_EQ(owners(v, t), owners(live, build_maglev_table(live, kDefaultTableSize)));
}

TEST(MaglevBuild, EndgameDoesNotChangeTheTable) {
    // The builder finishes the last slots by computation; walking to the end
    // must give the very same table.
    // One backend set and table size to build both ways.
    struct Case {
        std::vector<MaglevBackend> backends;
        uint32_t size;
    };
    std::vector<Case> cases = {
        {equal_backends(1000), kDefaultTableSize},
        {equal_backends(3), kDefaultTableSize},
        {random_backends(100, 10, 1), kDefaultTableSize},
        {random_backends(300, kMaxWeight, 2), kDefaultTableSize},
        {random_backends(40, 3, 3), 1009},
        {random_backends(97, 2, 4), 101},
    };
    auto tiny = equal_backends(30, 1);
    tiny[0].weight = 60000;  // most backends are owed less than a slot
    cases.push_back({tiny, 1009});
    for (size_t c = 0; c < cases.size(); ++c) {
        const auto walked = detail::build_maglev_table(cases[c].backends, cases[c].size, 0);
        for (uint32_t endgame : {1u, 17u, detail::default_endgame_slots(cases[c].size), 2000u}) {
            EXPECT_EQ(detail::build_maglev_table(cases[c].backends, cases[c].size, endgame), walked)
                << "case " << c << " endgame " << endgame;
        }
    }
}

// Disruption. `minimum` is the fewest slots any table could move to reach the
// new slot counts (the removed backends' share, for a removal). Measured with
// M = 65537 over several backend sets: about 1.3x minimum when 1 of 100
// leaves (classic Maglev: ~1.6x), 2.0x when 10 of 1000 leave (classic: 3.3x),
// 1.45x when a weight halves (1.9x), 1.3x when one joins 100 (1.55x). The
// bounds leave room for the spread between backend sets, not for regressions.
struct DisruptionBound {
    double ratio;       // moved / minimum
    double collateral;  // share of the table moved between two unaffected backends
};

void check_disruption(const char* what, const std::vector<MaglevBackend>& before,
                      const std::vector<MaglevBackend>& after, DisruptionBound bound) {
    const auto t0 = build_maglev_table(before, kDefaultTableSize);
    const auto t1 = build_maglev_table(after, kDefaultTableSize);
    const TableDiff d = diff_tables(before, t0, after, t1);
    EXPECT_GT(d.minimum, 0u) << what;
    EXPECT_LE(d.ratio(), bound.ratio) << what << ": moved " << d.moved_share() << " minimum "
                                      << d.minimum_share();
    EXPECT_LE(d.collateral_share(), bound.collateral) << what;
    // Apart from the collateral, slots move only as much as the changed
    // backends need: no churn of slots into a backend that is losing slots.
    EXPECT_LE(d.moved - d.collateral, d.minimum + d.size / 1000) << what;
}

TEST(MaglevDisruption, OneOfHundredLeaves) {
    for (uint32_t seed = 0; seed < 3; ++seed) {
        const auto before = equal_backends(100, 1, 1000 * seed);
        auto after = before;
        after.erase(after.begin() + 37);
        check_disruption("1 of 100 leaves", before, after, {1.5, 0.005});
    }
}

TEST(MaglevDisruption, TenOfThousandLeave) {
    const auto before = equal_backends(1000);
    std::vector<MaglevBackend> after;
    for (size_t i = 0; i < before.size(); ++i) {
        if (i % 100 != 13) after.push_back(before[i]);
    }
    ASSERT_EQ(after.size(), 990u);
    check_disruption("10 of 1000 leave", before, after, {2.4, 0.014});
}

TEST(MaglevDisruption, OneWeightHalves) {
    const auto before = equal_backends(100, 2);
    auto after = before;
    after[11].weight = 1;
    check_disruption("one weight halves", before, after, {1.8, 0.003});
}

TEST(MaglevDisruption, OneJoins) {
    const auto before = equal_backends(100);
    const auto after = equal_backends(101);
    check_disruption("one of 101 joins", before, after, {1.5, 0.005});
}

TEST(MaglevDisruption, MixedWeightsOneLeaves) {
    const auto before = random_backends(100, 10, 21);
    auto after = before;
    after.erase(after.begin() + 50);
    check_disruption("1 of 100 mixed leaves", before, after, {1.6, 0.006});
}

// XXH64 reference vectors (from the xxHash test suites): hash_bytes must stay
// XXH64, or instances built from different versions would disagree on flows.
TEST(HashBytes, MatchesXxh64) {
    EXPECT_EQ(hash_bytes("", 0, 0), 0xef46db3751d8e999ULL);
    EXPECT_EQ(hash_bytes("a", 1, 0), 0xd24ec4f1a98c6e5bULL);
    EXPECT_EQ(hash_bytes("abc", 3, 0), 0x44bc2cf5ad770999ULL);
    const char* digits = "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnop";
    const uint64_t seed = 0x1234567890abcdefULL;
    EXPECT_EQ(hash_bytes(digits, 0, seed), 0xa2f5c44d0f46c872ULL);
    EXPECT_EQ(hash_bytes(digits, 4, 0), 0x4c33072b45647dcbULL);
    EXPECT_EQ(hash_bytes(digits, 13, 0), 0x46a4c93f9ee1767eULL);
    EXPECT_EQ(hash_bytes(digits, 13, seed), 0x1ace702635ab26fdULL);
    EXPECT_EQ(hash_bytes(digits, 31, seed), 0xa2c0eddf74983bfeULL);
    EXPECT_EQ(hash_bytes(digits, 32, 0), 0x96ee2fa935fdd556ULL);
    EXPECT_EQ(hash_bytes(digits, 38, seed), 0x7ad67a81b5895ba5ULL);
    EXPECT_EQ(hash_bytes(digits, 41, 0), 0xbf46222877965856ULL);
    EXPECT_EQ(hash_bytes(digits, 63, 0), 0x7daf8f9fdbd4e518ULL);
    EXPECT_EQ(hash_bytes(digits, 65, seed), 0xb0aa81bc38df17b9ULL);
}

TEST(HashBytes, GoldenFiveTuple) {
    // src 10.0.0.1:12345 -> dst 192.168.1.10:80, TCP, as 13 bytes in network order.
    const uint8_t tuple[13] = {10, 0, 0, 1, 192, 168, 1, 10, 0x30, 0x39, 0x00, 0x50, 6};
    EXPECT_EQ(hash_bytes(tuple, sizeof(tuple), 0), 0xe8c456c57a99c3aaULL);
    EXPECT_EQ(hash_bytes(tuple, sizeof(tuple), 0x6665727279ULL), 0x16223aa93bcacc47ULL);
}

// The data plane hashes the 5-tuple from registers (xxh64::hash_5tuple_v4);
// it must give the value hash_bytes gives the 13-byte key, or a new flow
// would be steered differently from `ferryctl trace` and from older versions.
TEST(HashBytes, FiveTupleFromFieldsMatchesTheBytes) {
    uint32_t src, dst;
    uint16_t sp, dp;
    const uint8_t tuple[13] = {10, 0, 0, 1, 192, 168, 1, 10, 0x30, 0x39, 0x00, 0x50, 6};
    std::memcpy(&src, tuple, 4);
    std::memcpy(&dst, tuple + 4, 4);
    std::memcpy(&sp, tuple + 8, 2);
    std::memcpy(&dp, tuple + 10, 2);
    EXPECT_EQ(xxh64::hash_5tuple_v4(src, dst, sp, dp, 6, 0), 0xe8c456c57a99c3aaULL);
    std::mt19937_64 rng(13);
    for (int i = 0; i < 10000; ++i) {
        uint8_t key[13];
        const uint64_t a = rng(), b = rng();
        std::memcpy(key, &a, 8);
        std::memcpy(key + 8, &b, 5);
        std::memcpy(&src, key, 4);
        std::memcpy(&dst, key + 4, 4);
        std::memcpy(&sp, key + 8, 2);
        std::memcpy(&dp, key + 10, 2);
        const uint64_t seed = i % 2 ? rng() : 0;
        ASSERT_EQ(xxh64::hash_5tuple_v4(src, dst, sp, dp, key[12], seed), hash_bytes(key, 13, seed)) << i;
    }
}

TEST(HashBytes, SeedAndEveryByteMatter) {
    uint8_t key[40];
    for (size_t i = 0; i < sizeof(key); ++i) key[i] = uint8_t(i * 37 + 1);
    for (size_t len : {4u, 13u, 16u, 36u, 40u}) {
        const uint64_t h = hash_bytes(key, len, 1);
        EXPECT_NE(h, hash_bytes(key, len, 2));
        for (size_t i = 0; i < len; ++i) {
            key[i] ^= 0x10;
            EXPECT_NE(hash_bytes(key, len, 1), h) << len << " " << i;
            key[i] ^= 0x10;
        }
    }
}

TEST(TableSlot, StaysInRangeAndSpreads) {
    std::vector<uint32_t> counts(kDefaultTableSize, 0);
    for (uint32_t i = 0; i < 20 * kDefaultTableSize; ++i) {
        const uint32_t s = table_slot(hash_bytes(&i, sizeof(i), 5), kDefaultTableSize);
        ASSERT_LT(s, kDefaultTableSize);
        ++counts[s];
    }
    EXPECT_EQ(table_slot(~uint64_t(0), kDefaultTableSize), kDefaultTableSize - 1);
    EXPECT_EQ(table_slot(0, kDefaultTableSize), 0u);
    // 20 keys per slot on average: no slot should be empty or wildly full.
    EXPECT_GT(*std::min_element(counts.begin(), counts.end()), 0u);
    EXPECT_LT(*std::max_element(counts.begin(), counts.end()), 60u);
}

TEST(TableDiffTest, CountsMovesAndMinimum) {
    const std::vector<MaglevBackend> before = {{endpoint(1), 1}, {endpoint(2), 1}};
    const std::vector<MaglevBackend> after = {{endpoint(2), 1}, {endpoint(1), 1}};  // same set, other order
    const std::vector<uint32_t> t0 = {0, 1, 0, 1, 0};
    const std::vector<uint32_t> t1 = {1, 0, 1, 0, 1};  // identical ownership, swapped indices
    auto d = diff_tables(before, t0, after, t1);
    EXPECT_EQ(d.moved, 0u);
    EXPECT_EQ(d.minimum, 0u);
    const std::vector<uint32_t> t2 = {0, 0, 1, 0, 1};  // slot 0 moves from endpoint 1 to endpoint 2
    d = diff_tables(before, t0, after, t2);
    EXPECT_EQ(d.moved, 1u);
    EXPECT_EQ(d.minimum, 1u);
    EXPECT_EQ(d.collateral, 1u);
    auto shrunk = after;
    shrunk[1].weight = 0;  // endpoint 1 leaves: its slots had to move
    const std::vector<uint32_t> t3 = {0, 0, 0, 0, 0};
    d = diff_tables(before, t0, shrunk, t3);
    EXPECT_EQ(d.moved, 3u);
    EXPECT_EQ(d.minimum, 3u);
    EXPECT_EQ(d.collateral, 0u);
}

}  // namespace
}  // namespace ferry::balance
