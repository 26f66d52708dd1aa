#include "dataplane/counters.hpp"

#include <gtest/gtest.h>

namespace ferry::dp {
namespace {

TEST(Counters, CyclesPerPacketAreZeroBeforeAnyPacket) {
    WorkerCounters c;
    c.cycles_rx = 500;  // polls can be timed before a packet is counted; nothing to divide by yet
    const CyclesPerPacket r = cycles_per_packet(c);
    EXPECT_EQ(r.rx, 0);
    EXPECT_EQ(r.total, 0);
}

TEST(Counters, CyclesPerPacketSplitsBusyCyclesByStage) {
    WorkerCounters c;
    c.rx_packets = 64;
    c.cycles_rx = 6400;
    c.cycles_process = 3200;
    c.cycles_tx = 4800;
    c.cycles_other = 160;
    const CyclesPerPacket r = cycles_per_packet(c);
    EXPECT_DOUBLE_EQ(r.rx, 100);
    EXPECT_DOUBLE_EQ(r.process, 50);
    EXPECT_DOUBLE_EQ(r.tx, 75);
    EXPECT_DOUBLE_EQ(r.other, 2.5);
    EXPECT_DOUBLE_EQ(r.total, 227.5);
}

TEST(Counters, WorkerTotalsAddTheCycleCounters) {
    WorkerCounters a, b;
    a.busy_polls = 3;
    a.cycles_process = 10;
    b.busy_polls = 4;
    b.cycles_process = 5;
    b.cycles_other = 7;
    WorkerCounters sum;
    sum.add_relaxed(a);
    sum.add_relaxed(b);
    EXPECT_EQ(sum.busy_polls, 7u);
    EXPECT_EQ(sum.cycles_process, 15u);
    EXPECT_EQ(sum.cycles_other, 7u);
}

}  // namespace
}  // namespace ferry::dp
