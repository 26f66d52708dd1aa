#include "flow/nat_ports.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace ferry::flow {
namespace {

TEST(NatPortPool, AcquireAllThenExhausted) {
    NatPortPool pool({1000, 1001, 1002, 1003});
    EXPECT_EQ(pool.total(), 4u);
    EXPECT_EQ(pool.available(), 4u);
    std::vector<uint16_t> got;
    uint16_t p = 0;
    while (pool.acquire(p)) got.push_back(p);
    EXPECT_EQ(got, (std::vector<uint16_t>{1000, 1001, 1002, 1003}));
    EXPECT_EQ(pool.available(), 0u);
    EXPECT_EQ(pool.exhausted(), 1u);
    p = 7;
    EXPECT_FALSE(pool.acquire(p));
    EXPECT_EQ(p, 7) << "untouched on failure";
    EXPECT_EQ(pool.exhausted(), 2u);
    EXPECT_EQ(pool.bad_releases(), 0u);
}

TEST(NatPortPool, ReleasedPortsAreReusedLast) {
    NatPortPool pool({1, 2, 3, 4});
    uint16_t a = 0, b = 0, p = 0;
    ASSERT_TRUE(pool.acquire(a));
    ASSERT_TRUE(pool.acquire(b));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    pool.release(b);
    pool.release(a);
    // Untouched ports first, then released ones in release order.
    std::vector<uint16_t> order;
    while (pool.acquire(p)) order.push_back(p);
    EXPECT_EQ(order, (std::vector<uint16_t>{3, 4, 2, 1}));
    // Wraps around the ring many times and stays FIFO.
    for (uint16_t x : {uint16_t(4), uint16_t(1), uint16_t(3), uint16_t(2)}) pool.release(x);
    for (int round = 0; round < 10; ++round) {
        std::vector<uint16_t> got;
        for (int i = 0; i < 4; ++i) {
            ASSERT_TRUE(pool.acquire(p));
            got.push_back(p);
        }
        EXPECT_EQ(got, (std::vector<uint16_t>{4, 1, 3, 2}));
        for (uint16_t x : got) pool.release(x);
    }
    EXPECT_EQ(pool.available(), 4u);
    EXPECT_EQ(pool.bad_releases(), 0u);
}

TEST(NatPortPool, DoubleAndForeignReleasesAreIgnored) {
    NatPortPool pool({10, 20, 30});
    uint16_t p = 0;
    ASSERT_TRUE(pool.acquire(p));
    EXPECT_EQ(p, 10);
    pool.release(10);
    pool.release(10);  // double release
    EXPECT_EQ(pool.bad_releases(), 1u);
    pool.release(20);  // ours but never handed out
    EXPECT_EQ(pool.bad_releases(), 2u);
    pool.release(11);  // not ours
    pool.release(0);
    pool.release(65535);
    EXPECT_EQ(pool.bad_releases(), 5u);
    EXPECT_EQ(pool.available(), 3u);
    std::vector<uint16_t> order;
    while (pool.acquire(p)) order.push_back(p);
    EXPECT_EQ(order, (std::vector<uint16_t>{20, 30, 10}));  // each exactly once
}

TEST(NatPortPool, DuplicatesAndEmpty) {
    NatPortPool dup({5, 6, 5, 6, 7});
    EXPECT_EQ(dup.total(), 3u);
    uint16_t p = 0;
    std::vector<uint16_t> order;
    while (dup.acquire(p)) order.push_back(p);
    EXPECT_EQ(order, (std::vector<uint16_t>{5, 6, 7}));

    NatPortPool empty({});
    EXPECT_EQ(empty.total(), 0u);
    EXPECT_FALSE(empty.acquire(p));
    EXPECT_EQ(empty.exhausted(), 1u);
    empty.release(5);
    EXPECT_EQ(empty.bad_releases(), 1u);
    EXPECT_EQ(empty.available(), 0u);
}

TEST(NatPortPool, WholePortRange) {
    std::vector<uint16_t> all;
    for (uint32_t p = 0; p <= 65535; ++p) all.push_back(uint16_t(p));
    NatPortPool pool(all);
    EXPECT_EQ(pool.total(), 65536u);
    uint16_t p = 0;
    uint32_t n = 0;
    while (pool.acquire(p)) ++n;
    EXPECT_EQ(n, 65536u);
    pool.release(65535);
    pool.release(0);
    ASSERT_TRUE(pool.acquire(p));
    EXPECT_EQ(p, 65535);
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
