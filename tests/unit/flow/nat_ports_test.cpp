#include "flow/nat_ports.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace ferry::flow {
namespace {

// The caller's view of "free": ports taken per backend, as the reply entries
// in the flow table would record them.
struct Taken {
    std::map<int, std::set<uint16_t>> by_backend;
    bool take(NatPortAllocator& a, int backend, uint16_t& port) {
        auto& used = by_backend[backend];
        if (!a.pick([&](uint16_t p) { return used.count(p) == 0; }, port)) return false;
        used.insert(port);
        return true;
    }
};

TEST(NatPortAllocator, WalksItsPortsInOrderFromStart) {
    NatPortAllocator a({1000, 1001, 1002, 1003}, 2);
    EXPECT_EQ(a.size(), 4u);
    std::vector<uint16_t> got;
    uint16_t p = 0;
    for (int i = 0; i < 6; ++i) {
        const uint16_t next = a.peek();
        ASSERT_TRUE(a.pick([](uint16_t) { return true; }, p));
        EXPECT_EQ(p, next) << "peek() names the port the next pick offers first";
        got.push_back(p);
    }
    EXPECT_EQ(got, (std::vector<uint16_t>{1002, 1003, 1000, 1001, 1002, 1003}));
    EXPECT_EQ(a.exhausted(), 0u);
    EXPECT_EQ(NatPortAllocator({}).peek(), 0) << "no ports";
}

TEST(NatPortAllocator, EachBackendHasTheWholeRange) {
    std::vector<uint16_t> ports;
    for (uint16_t p = 2000; p < 3000; ++p) ports.push_back(p);
    NatPortAllocator a(ports, 17);
    Taken t;
    uint16_t p = 0;
    // 600 connections to each of three backends, interleaved: 1800 in all on
    // 1000 ports; no backend sees a port twice.
    for (int i = 0; i < 600; ++i) {
        for (int b = 0; b < 3; ++b) ASSERT_TRUE(t.take(a, b, p)) << "backend " << b << " connection " << i;
    }
    for (int b = 0; b < 3; ++b) EXPECT_EQ(t.by_backend[b].size(), 600u);
    EXPECT_EQ(a.exhausted(), 0u);
}

TEST(NatPortAllocator, FullForOneBackendNotForAnother) {
    NatPortAllocator a({1, 2, 3, 4});
    Taken t;
    uint16_t p = 0;
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(t.take(a, 0, p));
    EXPECT_FALSE(t.take(a, 0, p));
    EXPECT_EQ(a.exhausted(), 1u);
    EXPECT_TRUE(t.take(a, 1, p));
    // A port freed for backend 0 (its reply entry gone) is found again.
    t.by_backend[0].erase(3);
    bool found = false;
    for (int round = 0; round < 5 && !found; ++round) found = t.take(a, 0, p);
    ASSERT_TRUE(found);
    EXPECT_EQ(p, 3);
}

TEST(NatPortAllocator, RandomProbesKeepFindingPortsAsABackendFillsUp) {
    // One backend takes 80% of the ports while the cursor also serves others:
    // no pick fails before 70% and few before 80% (walking on from the cursor
    // would build runs of taken ports and fail far earlier).
    std::vector<uint16_t> ports;
    for (uint32_t p = 10000; p < 20000; ++p) ports.push_back(uint16_t(p));
    NatPortAllocator a(ports, 5);
    Taken t;
    uint16_t p = 0;
    uint32_t failed_to_70 = 0, failed_to_80 = 0;
    while (t.by_backend[0].size() < 8000) {
        const bool ok = t.take(a, 0, p);
        (t.by_backend[0].size() < 7000 ? failed_to_70 : failed_to_80) += !ok;
        t.take(a, 1 + int(t.by_backend[0].size() % 7), p);  // other backends move the cursor too
    }
    EXPECT_EQ(failed_to_70, 0u);
    EXPECT_LE(failed_to_80, 3u);
}

TEST(NatPortAllocator, GivesUpAfterMaxProbes) {
    std::vector<uint16_t> ports;
    for (uint16_t p = 1; p <= 100; ++p) ports.push_back(p);
    NatPortAllocator a(ports);
    uint32_t calls = 0;
    uint16_t p = 7;
    EXPECT_FALSE(a.pick(
        [&](uint16_t) {
            ++calls;
            return false;
        },
        p));
    EXPECT_EQ(calls, NatPortAllocator::kMaxProbes);
    EXPECT_EQ(p, 7) << "untouched on failure";
    EXPECT_EQ(a.exhausted(), 1u);
    // The cursor moved on by one: the next pick offers the next port first.
    ASSERT_TRUE(a.pick([](uint16_t) { return true; }, p));
    EXPECT_EQ(p, 2);
}

TEST(NatPortAllocator, ReusesAPortForTheSameBackendAsLateAsPossible) {
    NatPortAllocator a({1, 2, 3, 4, 5});
    Taken t;
    uint16_t p = 0;
    std::vector<uint16_t> order;
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(t.take(a, 0, p));
        order.push_back(p);
        t.by_backend[0].erase(p);  // the connection ends at once
    }
    EXPECT_EQ(order, (std::vector<uint16_t>{1, 2, 3, 4, 5})) << "a freed port waits for the walk to come round";
}

TEST(NatPortAllocator, EachLaneWalksThePortsOnItsOwn) {
    // Two backends (lanes) whose connections alternate and end at once: each
    // sees every port before any comes back to it, so a port returns to a
    // backend after 5 of *its* connections, not after 5 in all.
    NatPortAllocator a({1, 2, 3, 4, 5}, 0, 2);
    Taken t;
    uint16_t p = 0;
    std::map<int, std::vector<uint16_t>> order;
    for (int i = 0; i < 10; ++i) {
        for (int b = 0; b < 2; ++b) {
            auto& used = t.by_backend[b];
            ASSERT_TRUE(a.pick([&](uint16_t c) { return used.count(c) == 0; }, p, uint32_t(b)));
            order[b].push_back(p);
        }
    }
    for (int b = 0; b < 2; ++b) {
        const auto& o = order[b];
        for (size_t i = 5; i < o.size(); ++i) EXPECT_EQ(o[i], o[i - 5]) << "backend " << b;
        EXPECT_EQ(std::set<uint16_t>(o.begin(), o.begin() + 5).size(), 5u) << "backend " << b;
    }
    EXPECT_NE(order[0][0], order[1][0]) << "lanes start at different ports";
    // A lane past the last shares lane 0.
    NatPortAllocator one({7, 8}, 0, 1);
    ASSERT_TRUE(one.pick([](uint16_t) { return true; }, p, 99));
    EXPECT_EQ(p, 7);
    ASSERT_TRUE(one.pick([](uint16_t) { return true; }, p, 0));
    EXPECT_EQ(p, 8);
}

TEST(NatPortAllocator, DuplicatesAndEmpty) {
    NatPortAllocator dup({5, 6, 5, 6, 7});
    EXPECT_EQ(dup.size(), 3u);
    NatPortAllocator empty({}, 9);
    uint16_t p = 3;
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_FALSE(empty.pick([](uint16_t) { return true; }, p));
    EXPECT_EQ(p, 3);
    EXPECT_EQ(empty.exhausted(), 1u);
}

TEST(NatPortAllocator, WholePortRange) {
    std::vector<uint16_t> all;
    for (uint32_t p = 0; p <= 65535; ++p) all.push_back(uint16_t(p));
    NatPortAllocator a(all, 65535);
    EXPECT_EQ(a.size(), 65536u);
    uint16_t p = 0;
    ASSERT_TRUE(a.pick([](uint16_t) { return true; }, p));
    EXPECT_EQ(p, 65535);
    ASSERT_TRUE(a.pick([](uint16_t) { return true; }, p));
    EXPECT_EQ(p, 0) << "wraps";
}

// pick_ahead's callers: `quick` says free only for ports it can vouch for
// from signatures (here: none of `looks_taken`), `held` knows which ports an
// entry holds (`taken` and `expired`), `full` knows the truth (an expired
// holder gives way).
struct AheadProbe {
    std::set<uint16_t> taken, looks_taken, expired;
    std::vector<uint16_t> started, asked_quick, asked_held, asked_full;
    bool pick(NatPortAllocator& a, uint16_t& port) {
        return a.pick_ahead(
            [&](uint16_t c) {
                started.push_back(c);
                return uint32_t(c) * 3;
            },
            [&](uint16_t c, uint32_t token) {
                EXPECT_EQ(token, uint32_t(c) * 3) << "each candidate gets its own token back";
                asked_quick.push_back(c);
                return taken.count(c) == 0 && looks_taken.count(c) == 0 && expired.count(c) == 0;
            },
            [&](uint16_t c, uint32_t token) {
                EXPECT_EQ(token, uint32_t(c) * 3);
                asked_held.push_back(c);
                return taken.count(c) == 0 && expired.count(c) == 0;
            },
            [&](uint16_t c, uint32_t token) {
                EXPECT_EQ(token, uint32_t(c) * 3);
                asked_full.push_back(c);
                return taken.count(c) == 0;
            },
            port);
    }
};

TEST(NatPortAllocator, PickAheadTakesAFreeCursorPortWithoutStartingOthers) {
    NatPortAllocator a({100, 101, 102, 103}, 1);
    AheadProbe t;
    uint16_t p = 0;
    ASSERT_TRUE(t.pick(a, p));
    EXPECT_EQ(p, 101);
    EXPECT_EQ(t.started, (std::vector<uint16_t>{101}));
    EXPECT_TRUE(t.asked_full.empty());
}

TEST(NatPortAllocator, PickAheadLooksUpACursorPortThatLooksTaken) {
    // The cursor's port only looks taken (a signature of another key): the
    // lookup finds no entry, so ports still go out in cursor order. Its miss
    // overlaps those of random candidates started meanwhile.
    NatPortAllocator a({100, 101, 102, 103});
    AheadProbe t;
    t.looks_taken = {100};
    uint16_t p = 0;
    ASSERT_TRUE(t.pick(a, p));
    EXPECT_EQ(p, 100);
    EXPECT_EQ(t.asked_held, (std::vector<uint16_t>{100}));
    EXPECT_TRUE(t.asked_full.empty());
    EXPECT_EQ(t.started.size(), 1 + NatPortAllocator::kLookahead) << "random candidates in flight";
}

TEST(NatPortAllocator, PickAheadPassesOverACursorPortHeldByAnExpiredFlow) {
    // An expired flow holds the cursor's port: it is not asked in full (two
    // more misses) while a random candidate is surely free.
    NatPortAllocator a({100, 101, 102, 103});
    AheadProbe t;
    t.expired = {100};
    uint16_t p = 0;
    ASSERT_TRUE(t.pick(a, p));
    EXPECT_NE(p, 100);
    EXPECT_TRUE(t.asked_full.empty());
    EXPECT_EQ(a.peek(), 101) << "the cursor moved on all the same";
}

TEST(NatPortAllocator, PickAheadAsksTheCursorPortInFullFirstWhenAllLookTaken) {
    // Every port is held; the cursor's by an expired flow that gives way, so
    // the second pass takes it before any other.
    NatPortAllocator a({7, 8, 9});
    AheadProbe t;
    t.taken = {8, 9};
    t.expired = {7};
    uint16_t p = 0;
    ASSERT_TRUE(t.pick(a, p));
    EXPECT_EQ(p, 7);
    EXPECT_EQ(t.asked_full, (std::vector<uint16_t>{7}));
    EXPECT_EQ(t.started.size(), NatPortAllocator::kMaxProbes);
}

TEST(NatPortAllocator, PickAheadKeepsCandidatesInFlight) {
    // The cursor's port is taken: random candidates start, kLookahead ahead of
    // the one being asked, and the first that is surely free wins.
    std::vector<uint16_t> ports;
    for (uint16_t p = 1000; p < 1100; ++p) ports.push_back(p);
    NatPortAllocator a(ports, 1);  // the cursor starts at 1001
    AheadProbe t;
    for (uint16_t p = 1000; p < 1100; ++p)
        if (p % 4 != 0) t.taken.insert(p);  // a quarter free
    uint16_t p = 0;
    ASSERT_TRUE(t.pick(a, p));
    EXPECT_EQ(p % 4, 0);
    EXPECT_EQ(t.taken.count(p), 0u);
    // Asked quickly: the cursor, then random candidates in the order started.
    ASSERT_GE(t.asked_quick.size(), 2u);
    EXPECT_EQ(t.asked_quick.back(), p);
    EXPECT_EQ(std::vector<uint16_t>(t.started.begin(), t.started.begin() + long(t.asked_quick.size())), t.asked_quick);
    // When the winner was asked, the ones after it had been started too:
    // kLookahead random candidates in flight.
    EXPECT_EQ(t.started.size(),
              std::min<size_t>(t.asked_quick.size() + NatPortAllocator::kLookahead - 1, NatPortAllocator::kMaxProbes));
    EXPECT_EQ(t.asked_held, (std::vector<uint16_t>{1001})) << "only the cursor's port is looked up";
    EXPECT_TRUE(t.asked_full.empty()) << "no port is asked in full while one is surely free";
}

TEST(NatPortAllocator, PickAheadFallsBackToFullAnswers) {
    // Every port looks taken at first sight; the only really free one (not at
    // the cursor) is found by the second pass over the same candidates.
    std::vector<uint16_t> ports = {7, 8};
    NatPortAllocator a(ports);
    AheadProbe t;
    t.taken = {7};
    t.looks_taken = {7, 8};
    uint16_t p = 0;
    ASSERT_TRUE(t.pick(a, p));
    EXPECT_EQ(p, 8);
    EXPECT_EQ(t.started.size(), NatPortAllocator::kMaxProbes) << "each candidate started once";
    EXPECT_EQ(a.exhausted(), 0u);
    // All taken: every candidate is asked in full once, then the pick fails.
    t.taken = {7, 8};
    t.started.clear();
    t.asked_full.clear();
    EXPECT_FALSE(t.pick(a, p));
    EXPECT_EQ(t.asked_full.size(), NatPortAllocator::kMaxProbes);
    EXPECT_EQ(a.exhausted(), 1u);
}

TEST(PortsForWorker, PartitionsWithoutOverlap) {
    for (uint32_t workers : {1u, 2u, 3u, 7u, 16u}) {
        std::vector<int> owner(65536, -1);
        size_t total = 0;
        for (uint32_t w = 0; w < workers; ++w) {
            const std::vector<uint16_t> ports = ports_for_worker(1024, 65535, workers, w);
            total += ports.size();
            for (size_t i = 0; i < ports.size(); ++i) {
                const uint16_t p = ports[i];
                EXPECT_GE(p, 1024);
                EXPECT_EQ(p % workers, w);
                EXPECT_EQ(owner[p], -1) << "port " << p << " given twice";
                owner[p] = int(w);
                if (i > 0) {
                    EXPECT_LT(ports[i - 1], p);
                }
            }
        }
        EXPECT_EQ(total, 65535u - 1024u + 1u) << workers;
        for (uint32_t p = 1024; p <= 65535; ++p) EXPECT_NE(owner[p], -1) << p;
        for (uint32_t p = 0; p < 1024; ++p) EXPECT_EQ(owner[p], -1) << p;
    }
    EXPECT_EQ(ports_for_worker(10, 12, 2, 0), (std::vector<uint16_t>{10, 12}));
    EXPECT_EQ(ports_for_worker(10, 12, 2, 1), (std::vector<uint16_t>{11}));
    EXPECT_EQ(ports_for_worker(7, 7, 1, 0), (std::vector<uint16_t>{7}));
    EXPECT_TRUE(ports_for_worker(12, 10, 2, 0).empty());
    EXPECT_TRUE(ports_for_worker(10, 12, 0, 0).empty());
    EXPECT_TRUE(ports_for_worker(10, 12, 2, 2).empty());
}

}  // namespace
}  // namespace ferry::flow
