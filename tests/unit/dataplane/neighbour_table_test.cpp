#include "dataplane/neighbour_table.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace ferry::dp {
namespace {

const uint8_t kMacA[6] = {0x02, 0, 0, 0, 0, 0x0a};
const uint8_t kMacB[6] = {0x02, 0, 0, 0, 0, 0x0b};

TEST(NeighbourTable, UnknownUntilUpdated) {
    NeighbourTable t(16);
    uint8_t mac[6];
    EXPECT_FALSE(t.lookup(0x0100000a, mac));
    EXPECT_TRUE(t.add_unresolved(0x0100000a));
    EXPECT_FALSE(t.lookup(0x0100000a, mac));  // known address, no MAC yet
    EXPECT_TRUE(t.update(0x0100000a, kMacA));
    ASSERT_TRUE(t.lookup(0x0100000a, mac));
    EXPECT_EQ(0, std::memcmp(mac, kMacA, 6));
}

// The worker writes a frame's destination MAC straight from the word: its
// low six bytes, in memory order, must be the MAC.
TEST(NeighbourTable, LookupWordHoldsTheMacInItsLowSixBytes) {
    NeighbourTable t(16);
    EXPECT_EQ(t.lookup_word(9), 0u);
    t.add_unresolved(9);
    EXPECT_EQ(t.lookup_word(9), 0u);
    t.update(9, kMacB);
    const uint64_t w = t.lookup_word(9);
    ASSERT_NE(w, 0u);
    uint8_t frame[8] = {};
    std::memcpy(frame, &w, 6);
    EXPECT_EQ(0, std::memcmp(frame, kMacB, 6));
    t.invalidate(9);
    EXPECT_EQ(t.lookup_word(9), 0u);
}

// A backend's snapshot entry carries its next hop's slot: the slot must stay
// the address's, and word_at must answer as lookup_word does, resolved or not.
TEST(NeighbourTable, SlotOfAnAddressAnswersAsItsLookup) {
    NeighbourTable t(16);
    EXPECT_EQ(t.slot_of(5), NeighbourTable::kNoSlot);
    EXPECT_EQ(t.slot_of(0), NeighbourTable::kNoSlot);
    // Addresses whose probes collide: slots differ, each keeps its own.
    std::vector<uint32_t> ips;
    for (uint32_t ip = 1; ips.size() < 5; ++ip)
        if ((NeighbourTable::hash(ip) & 15) == (NeighbourTable::hash(1) & 15)) ips.push_back(ip);
    for (const uint32_t ip : ips) ASSERT_TRUE(t.add_unresolved(ip));
    std::vector<uint32_t> slots;
    for (const uint32_t ip : ips) {
        const uint32_t s = t.slot_of(ip);
        ASSERT_LT(s, 16u);
        EXPECT_EQ(t.word_at(s), 0u) << "added, not resolved";
        slots.push_back(s);
    }
    for (size_t i = 1; i < slots.size(); ++i) EXPECT_NE(slots[i], slots[0]);
    t.update(ips[3], kMacA);
    t.update(ips[1], kMacB);
    for (size_t i = 0; i < ips.size(); ++i) {
        EXPECT_EQ(t.word_at(slots[i]), t.lookup_word(ips[i])) << i;
        EXPECT_EQ(t.slot_of(ips[i]), slots[i]) << "a slot keeps its address";
    }
    EXPECT_NE(t.word_at(slots[3]), 0u);
    t.invalidate(ips[3]);
    EXPECT_EQ(t.word_at(slots[3]), 0u);
    EXPECT_EQ(t.slot_of(ips[3]), slots[3]);
}

TEST(NeighbourTable, UpdateReplacesAndInvalidateExpires) {
    NeighbourTable t(16);
    uint8_t mac[6];
    t.update(7, kMacA);
    t.update(7, kMacB);
    ASSERT_TRUE(t.lookup(7, mac));
    EXPECT_EQ(0, std::memcmp(mac, kMacB, 6));
    EXPECT_TRUE(t.invalidate(7));
    EXPECT_FALSE(t.lookup(7, mac));
    EXPECT_TRUE(t.contains(7));
    EXPECT_EQ(t.size(), 1u);
}

TEST(NeighbourTable, FullTableRefusesButKeepsWorking) {
    NeighbourTable t(8);
    int added = 0;
    for (uint32_t ip = 1; ip <= 20; ++ip) added += t.update(ip, kMacA) ? 1 : 0;
    EXPECT_EQ(added, 7);  // one slot always stays free so probes end
    uint8_t mac[6];
    EXPECT_TRUE(t.lookup(1, mac));
    EXPECT_FALSE(t.lookup(20, mac));
    EXPECT_EQ(t.addresses().size(), 7u);
}

TEST(NeighbourTable, ReaderNeverSeesATornMac) {
    NeighbourTable t(64);
    t.update(42, kMacA);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread reader([&] {
        uint8_t mac[6];
        while (!stop.load()) {
            if (t.lookup(42, mac) && std::memcmp(mac, kMacA, 6) != 0 && std::memcmp(mac, kMacB, 6) != 0) ++bad;
        }
    });
    for (int i = 0; i < 200000; ++i) t.update(42, (i & 1) ? kMacA : kMacB);
    stop = true;
    reader.join();
    EXPECT_EQ(bad.load(), 0);
}

TEST(NeighbourTable, RejectsBadCapacity) {
    EXPECT_THROW(NeighbourTable(12), std::invalid_argument);
}

}  // namespace
}  // namespace ferry::dp
