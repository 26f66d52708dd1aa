// Steering: the worker's flow decisions on plain memory (no EAL).
#include "dataplane/steering.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace ferry::dp {
namespace {

constexpr uint32_t kLocalIp = 0x0a4d0201;  // 10.77.2.1, host order
constexpr uint32_t kVipIp = 0x0a4d0164;    // 10.77.1.100
constexpr uint16_t kVipPort = 80;

uint32_t ip(uint32_t host) { return htonl(host); }

// One worker's steering over a small snapshot: one VIP, `n` backends behind
// one port, whose full-NAT sources are its address plus `extra_nat`
// nat_addresses (10.77.2.2, 10.77.2.3, ...), each with the ports `nat_ports`.
struct Rig {
    flow::FlowTable flows;
    std::vector<flow::NatPortAllocator> nat;
    WorkerCounters counters;
    std::vector<BackendCounters> backend_counters = std::vector<BackendCounters>(kMaxBackends);
    std::vector<BackendCounters> other_worker = std::vector<BackendCounters>(kMaxBackends);
    std::vector<VipCounters> vip_counters = std::vector<VipCounters>(kMaxVips);
    Snapshot snap;
    std::unique_ptr<Steering> steer;
    uint32_t now = 1000;

    Rig(uint32_t n, ForwardMode mode, SchedulerKind scheduler, std::vector<uint16_t> nat_ports, uint32_t extra_nat = 0,
        uint32_t table = 4096)
        : flows(table) {
        for (uint32_t a = 0; a <= extra_nat; ++a) nat.emplace_back(nat_ports);
        VipEntry v;
        v.present = true;
        v.ip = ip(kVipIp);
        v.port = htons(kVipPort);
        v.proto = IPPROTO_TCP;
        v.mode = mode;
        v.scheduler = scheduler;
        v.timeouts.closing_ms = 100;
        for (uint32_t b = 0; b < n; ++b) {
            BackendEntry be;
            be.ip = ip(0x0a4d020b + b);  // 10.77.2.11 + b
            be.port = htons(8000);
            be.egress_port = 3;  // DPDK port id of local address 0
            be.nexthop_ip = be.ip;
            be.state = BackendState::up;
            be.known = true;
            snap.backends.push_back(be);
            v.backend_ids.push_back(b);
            v.cand_ids.push_back(b);
            v.cand_weights.push_back(1);
            v.cand_cumulative.push_back(b + 1);
            v.rr_sequence.push_back(b);
        }
        for (uint32_t i = 0; i < 64; ++i) v.table.push_back(n ? i % n : kNone);
        snap.vips.push_back(v);
        snap.build_index();
        SteeringParts x;
        x.flows = &flows;
        x.nat_ports = &nat;
        x.counters = &counters;
        x.backend_counters = backend_counters.data();
        x.vip_counters = vip_counters.data();
        x.all_backend_counters = {backend_counters.data(), other_worker.data()};
        x.local_ips = {ip(kLocalIp)};
        x.index_of_port = {0, 0, 0, 0};
        if (extra_nat != 0) {
            x.nat_pools = {{0}};
            for (uint32_t a = 1; a <= extra_nat; ++a) {
                x.local_ips.push_back(ip(kLocalIp + a));
                x.nat_pools[0].push_back(uint8_t(a));
            }
        }
        x.worker_count = 2;
        steer = std::make_unique<Steering>(std::move(x));
    }

    static packet::Parsed client_packet(uint32_t client, uint16_t port, uint8_t flags) {
        packet::Parsed p;
        p.proto = IPPROTO_TCP;
        p.src_ip = ip(client);
        p.dst_ip = ip(kVipIp);
        p.src_port = htons(port);
        p.dst_port = htons(kVipPort);
        p.tcp_flags = flags;
        return p;
    }
    ToBackend send(const packet::Parsed& p) {
        const flow::KeyV4 key = key_v4(p);
        return steer->to_backend(snap, 0, p, key, flow::FlowTable::hash(key), 60, now);
    }
    ToBackend syn(uint32_t client, uint16_t port) { return send(client_packet(client, port, packet::kTcpSyn)); }
    // The backend's answer to a full-NAT flow, as it arrives at Ferry.
    bool reply(const ToBackend& to, uint8_t flags, ToClient& out) {
        const BackendEntry& be = snap.backends[to.backend_id];
        packet::Parsed p;
        p.proto = IPPROTO_TCP;
        p.src_ip = be.ip;
        p.src_port = be.port;
        p.dst_ip = to.nat_ip;
        p.dst_port = to.nat_port;
        p.tcp_flags = flags;
        const uint32_t slot = flows.lookup(flow::FlowKey::v4(p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.proto));
        return slot != flow::kNoPeer && steer->to_client(snap, p, slot, 60, now, out);
    }
};

std::vector<uint16_t> port_range(uint16_t first, uint16_t count) {
    std::vector<uint16_t> v;
    for (uint16_t i = 0; i < count; ++i) v.push_back(uint16_t(first + i));
    return v;
}

TEST(Steering, FullNatSynOpensAFlowAndTheReplyFindsTheClient) {
    Rig r(3, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    const ToBackend to = r.syn(0xc0a80001, 40000);
    ASSERT_TRUE(to.forward());
    EXPECT_LT(to.backend_id, 3u);
    EXPECT_EQ(to.nat_ip, ip(kLocalIp));
    EXPECT_GE(ntohs(to.nat_port), 5000);
    EXPECT_EQ(r.flows.size(), 2u) << "forward and reply entry";
    EXPECT_EQ(r.counters.flows_created, 1u);
    EXPECT_EQ(r.backend_counters[to.backend_id].active_flows, 1);
    EXPECT_EQ(r.backend_counters[to.backend_id].syn_sent, 1u);

    ToClient back;
    ASSERT_TRUE(r.reply(to, packet::kTcpSyn | packet::kTcpAck, back));
    EXPECT_TRUE(back.full_nat);
    EXPECT_EQ(back.client_ip, ip(0xc0a80001));
    EXPECT_EQ(back.client_port, htons(40000));
    EXPECT_EQ(back.vip_ip, ip(kVipIp));
    EXPECT_EQ(back.vip_port, htons(kVipPort));
    EXPECT_EQ(r.backend_counters[to.backend_id].synack_seen, 1u);

    // The client's next packet follows the entry to the same backend and port.
    const ToBackend again = r.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpAck));
    ASSERT_TRUE(again.forward());
    EXPECT_EQ(again.backend_id, to.backend_id);
    EXPECT_EQ(again.nat_port, to.nat_port);
    EXPECT_EQ(r.counters.flows_created, 1u);
}

// While the table is over 3/4 full the sweep visits kSweepHurry slices at
// once, so expired flows leave before they crowd out new ones; below that,
// one slice. A flow is removed from its forward entry's slot, so visiting
// `slice` slots can remove at most `slice` flows.
TEST(Steering, SweepHurriesWhileTheTableIsCrowded) {
    Rig r(1, ForwardMode::dnat, SchedulerKind::maglev, {}, 0, 4096);
    for (uint32_t i = 0; r.flows.size() <= r.flows.capacity() / 4 * 3; ++i)
        ASSERT_TRUE(r.syn(0xc0a80000 + i / 1000, uint16_t(20000 + i % 1000)).forward()) << i;
    r.now += 60'000;  // past the SYN timeout of every flow
    constexpr uint32_t kSlice = 64;
    const uint32_t crowded = r.steer->sweep(r.snap, kSlice, r.now);
    EXPECT_GT(crowded, kSlice) << "over 3/4 full: more than one slice visited";
    while (r.flows.size() > r.flows.capacity() / 4 * 3) r.steer->sweep(r.snap, kSlice, r.now);
    EXPECT_LE(r.steer->sweep(r.snap, kSlice, r.now), kSlice) << "below 3/4: one slice";
}

// Sweeps a whole pass in slices of `slice` from where the sweep stands;
// returns how many Steering::sweep calls the pass took.
uint32_t calls_for_a_pass(Rig& r, uint32_t slice) {
    const uint32_t pass = r.flows.sweep_passes();
    uint32_t calls = 0;
    while (r.flows.sweep_passes() == pass) {
        r.steer->sweep(r.snap, slice, r.now);
        ++calls;
    }
    return calls;
}

// A table crowded with live flows is swept one slice at a time once a full
// pass has found (almost) nothing to remove; when a pass removes at least
// 1/kSweepFinds of the capacity, the sweep hurries again while the table is
// still over 3/4 full.
TEST(Steering, SweepHurriesOnlyWhileItFindsExpiredFlows) {
    Rig r(1, ForwardMode::dnat, SchedulerKind::maglev, {}, 0, 4096);
    const uint32_t cap = r.flows.capacity();
    uint32_t i = 0;
    auto open = [&](uint32_t until) {
        for (; r.flows.size() < until; ++i)
            ASSERT_TRUE(r.syn(0xc0a80000 + i / 1000, uint16_t(20000 + i % 1000)).forward());
    };
    open(cap / 16);  // these will expire: 4x what makes a pass count as finding
    const uint32_t old = r.flows.size();
    r.now += 5'000;
    open(old + cap / 4 * 3 + 1);  // these stay alive: over 3/4 full without the others
    const uint32_t all = r.flows.size();
    constexpr uint32_t kSlice = 64;
    // Calls a pass takes at one slice a call (less what the previous call
    // carried over the pass's start), and at kSweepHurry slices a call.
    const uint32_t slow = r.flows.slot_count() / kSlice - Steering::kSweepHurry;
    const uint32_t hurried = r.flows.slot_count() / kSlice / Steering::kSweepHurry + 2;
    EXPECT_LE(calls_for_a_pass(r, kSlice), hurried) << "nothing known yet: crowded, it hurries";
    EXPECT_EQ(r.flows.size(), all) << "every flow alive (SYN timeout 10 s)";
    EXPECT_GE(calls_for_a_pass(r, kSlice), slow) << "the last pass found nothing: one slice a call";
    r.now += 6'000;  // the first flows are 11 s old, the others 6 s
    EXPECT_GE(calls_for_a_pass(r, kSlice), slow) << "a pass found nothing before it";
    EXPECT_EQ(r.flows.size(), all - old) << "the pass removed the first flows";
    ASSERT_GT(r.flows.size(), cap / 4 * 3);
    EXPECT_LE(calls_for_a_pass(r, kSlice), hurried) << "the last pass found 1/16 of the capacity: it hurries";
}

TEST(Steering, SynToSynAckTimeIsCountedPerBackend) {
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    r.steer->set_now_us(0xfffffff0u);  // the microsecond clock about to wrap
    const ToBackend a = r.syn(0xc0a80001, 40000);
    r.steer->set_now_us(100);
    const ToBackend b = r.syn(0xc0a80001, 40001);
    ASSERT_TRUE(a.forward() && b.forward());
    ToClient back;
    r.steer->set_now_us(0x10u);  // 32 us after a's SYN, across the wrap
    ASSERT_TRUE(r.reply(a, packet::kTcpSyn | packet::kTcpAck, back));
    r.steer->set_now_us(350);  // 250 us after b's SYN
    ASSERT_TRUE(r.reply(b, packet::kTcpSyn | packet::kTcpAck, back));
    // A retransmitted SYN-ACK (the flow is established) is not timed again.
    r.steer->set_now_us(9000);
    ASSERT_TRUE(r.reply(b, packet::kTcpSyn | packet::kTcpAck, back));
    const BackendCounters& c = r.backend_counters[0];
    EXPECT_EQ(c.connect_samples, 2u);
    EXPECT_EQ(c.connect_us_sum, 32u + 250u);
    EXPECT_EQ(c.synack_seen, 2u);
}

TEST(Steering, EveryBackendGetsTheWholeNatPortRange) {
    // Ten local ports, two backends picked in turn: twenty connections fit,
    // each backend sees every port once, the 21st finds none.
    Rig r(2, ForwardMode::nat, SchedulerKind::round_robin, port_range(5000, 10));
    std::map<uint32_t, std::set<uint16_t>> ports;
    for (uint16_t i = 0; i < 20; ++i) {
        const ToBackend to = r.syn(0xc0a80001, uint16_t(30000 + i));
        ASSERT_TRUE(to.forward()) << i;
        EXPECT_TRUE(ports[to.backend_id].insert(ntohs(to.nat_port)).second) << "port reused for one backend";
    }
    EXPECT_EQ(ports[0].size(), 10u);
    EXPECT_EQ(ports[1].size(), 10u);
    EXPECT_EQ(ports[0], ports[1]);
    const ToBackend full = r.syn(0xc0a80001, 31000);
    EXPECT_FALSE(full.forward());
    EXPECT_EQ(full.drop, Drop::nat_ports_exhausted);
    EXPECT_EQ(r.flows.size(), 40u) << "nothing half-made is left behind";

    // A flow that ends (RST, then expiry) gives its port back to its backend.
    const ToBackend first = r.send(Rig::client_packet(0xc0a80001, 30000, packet::kTcpRst | packet::kTcpAck));
    ASSERT_TRUE(first.forward());
    r.now += 1000;  // past the closing timeout (100 ms), not the SYN timeout
    EXPECT_EQ(r.steer->sweep(r.snap, r.flows.slot_count(), r.now), 1u);
    EXPECT_EQ(r.flows.size(), 38u);
    EXPECT_EQ(r.backend_counters[0].active_flows + r.backend_counters[1].active_flows, 19);
    // Round robin offers the other backend first (still full), then this one.
    const ToBackend a = r.syn(0xc0a80001, 31001);
    const ToBackend b = r.syn(0xc0a80001, 31002);
    EXPECT_EQ(a.drop, Drop::nat_ports_exhausted);
    ASSERT_TRUE(b.forward());
    EXPECT_EQ(b.backend_id, first.backend_id);
    EXPECT_EQ(b.nat_port, first.nat_port);
}

TEST(Steering, ExpiredFlowsTheSweepHasNotReachedMakeRoom) {
    Rig r(3, ForwardMode::nat, SchedulerKind::maglev, port_range(2000, 60000));
    uint16_t port = 1024;
    while (r.syn(0xc0a80001, port).forward()) ++port;  // until the table is full
    EXPECT_GT(r.flows.size(), r.flows.capacity() - 64);
    EXPECT_EQ(r.syn(0xc0a80002, 1).drop, Drop::flow_table_full);
    // Every flow is past its SYN timeout now; no sweep has run.
    r.now += 10'001;
    const uint64_t expired_before = r.counters.flows_expired;
    EXPECT_TRUE(r.syn(0xc0a80002, 2).forward());
    EXPECT_GT(r.counters.flows_expired, expired_before);
    EXPECT_EQ(
        r.backend_counters[0].active_flows + r.backend_counters[1].active_flows + r.backend_counters[2].active_flows,
        int64_t(r.flows.size() / 2));
}

TEST(Steering, ANatPortHeldByAnExpiredFlowGivesWay) {
    // Four ports, one backend: four connections take them all; once those
    // flows are past their SYN timeout (no sweep has run), a new connection
    // gets a port at once and the old flow is gone.
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(7000, 4));
    for (uint16_t i = 0; i < 4; ++i) ASSERT_TRUE(r.syn(0xc0a80001, uint16_t(30000 + i)).forward());
    EXPECT_EQ(r.syn(0xc0a80001, 30010).drop, Drop::nat_ports_exhausted);
    r.now += 10'001;
    const ToBackend to = r.syn(0xc0a80001, 30011);
    ASSERT_TRUE(to.forward());
    EXPECT_GE(r.counters.flows_expired, 1u);
    EXPECT_EQ(r.backend_counters[0].active_flows, int64_t(r.flows.size() / 2));
}

TEST(Steering, NonSynWithoutFlow) {
    Rig nat(3, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    const ToBackend a = nat.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpAck));
    EXPECT_EQ(a.drop, Drop::tcp_no_flow);
    EXPECT_EQ(nat.flows.size(), 0u);

    // dnat: the backend comes from the Maglev table (the same on every worker and
    // instance), and the flow is picked up: entries both ways, so the backend's
    // replies are turned back into the VIP's.
    Rig dnat(3, ForwardMode::dnat, SchedulerKind::round_robin, {});
    const ToBackend b = dnat.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpAck));
    ASSERT_TRUE(b.forward());
    EXPECT_EQ(b.nat_port, 0);
    EXPECT_EQ(dnat.flows.size(), 2u);
    EXPECT_EQ(dnat.counters.flows_picked_up, 1u);
    EXPECT_EQ(dnat.counters.stateless, 0u);
    EXPECT_EQ(dnat.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpAck)).backend_id, b.backend_id);
    EXPECT_EQ(dnat.counters.flows_picked_up, 1u);  // the second packet followed the entry
    const flow::FlowValue& v = dnat.flows.entry(b.slot).value;
    EXPECT_EQ(v.state, uint8_t(flow::FlowState::syn_seen));  // the SYN timeout until the backend answers

    const BackendEntry& be = dnat.snap.backends[b.backend_id];
    packet::Parsed answer;
    answer.proto = IPPROTO_TCP;
    answer.src_ip = be.ip;
    answer.src_port = be.port;
    answer.dst_ip = ip(0xc0a80001);
    answer.dst_port = htons(40000);
    answer.tcp_flags = packet::kTcpAck;
    const uint32_t rslot = dnat.flows.lookup(
        flow::FlowKey::v4(answer.src_ip, answer.dst_ip, answer.src_port, answer.dst_port, answer.proto));
    ASSERT_NE(rslot, flow::kNoPeer);
    ToClient back;
    ASSERT_TRUE(dnat.steer->to_client(dnat.snap, answer, rslot, 60, dnat.now, back));
    EXPECT_EQ(back.vip_ip, ip(kVipIp));
    EXPECT_EQ(back.vip_port, htons(kVipPort));
    EXPECT_EQ(back.client_ip, ip(0xc0a80001));
    EXPECT_FALSE(back.full_nat);
    EXPECT_EQ(v.state, uint8_t(flow::FlowState::established));
    EXPECT_EQ(dnat.backend_counters[b.backend_id].synack_seen, 0u);  // no handshake was timed
    EXPECT_EQ(dnat.backend_counters[b.backend_id].connect_samples, 0u);

    // A mid-stream RST or FIN is forwarded without picking anything up.
    for (const uint8_t flags :
         {uint8_t(packet::kTcpRst | packet::kTcpAck), uint8_t(packet::kTcpFin | packet::kTcpAck)}) {
        const ToBackend e = dnat.send(Rig::client_packet(0xc0a80002, 40001, flags));
        ASSERT_TRUE(e.forward());
        EXPECT_EQ(e.slot, flow::kNoPeer);
    }
    EXPECT_EQ(dnat.counters.stateless, 2u);
    EXPECT_EQ(dnat.flows.size(), 2u);
}

// An ICMP error quoting a packet Ferry sent from the VIP to a client leads to
// the flow's backend, with the peer the backend itself sent that packet to.
// The answer of a dnat backend to a client, as it arrives at Ferry.
bool dnat_answer(Rig& r, const ToBackend& to, uint32_t client, uint16_t port, uint8_t flags, ToClient& back) {
    const BackendEntry& be = r.snap.backends[to.backend_id];
    packet::Parsed a;
    a.proto = IPPROTO_TCP;
    a.src_ip = be.ip;
    a.src_port = be.port;
    a.dst_ip = ip(client);
    a.dst_port = htons(port);
    a.tcp_flags = flags;
    const uint32_t slot = r.flows.lookup(flow::FlowKey::v4(a.src_ip, a.dst_ip, a.src_port, a.dst_port, a.proto));
    return slot != flow::kNoPeer && r.steer->to_client(r.snap, a, slot, 60, r.now, back);
}

// A connection idle past its timeout whose entry the sweep has not removed yet is
// picked up on the backend that entry named, whatever the scheduler would choose now.
TEST(Steering, PickupReturnsToTheBackendOfAnExpiredEntry) {
    Rig r(3, ForwardMode::dnat, SchedulerKind::round_robin, {});
    std::vector<uint32_t> first;
    for (uint16_t port = 40000; port < 40012; ++port) {
        const ToBackend to = r.syn(0xc0a80001, port);
        ASSERT_TRUE(to.forward());
        ToClient back;
        ASSERT_TRUE(dnat_answer(r, to, 0xc0a80001, port, packet::kTcpSyn | packet::kTcpAck, back));
        first.push_back(to.backend_id);
    }
    r.now += r.snap.vips[0].timeouts.established_ms + 1;
    for (uint16_t port = 40000; port < 40012; ++port) {
        const ToBackend again = r.send(Rig::client_packet(0xc0a80001, port, packet::kTcpAck));
        ASSERT_TRUE(again.forward());
        EXPECT_EQ(again.backend_id, first[port - 40000]) << port;
    }
    EXPECT_EQ(r.counters.flows_picked_up, 12u);
    EXPECT_EQ(r.counters.flows_closed, 12u);  // the expired entries, ended
}

// A SYN on the tuple of a flow that was picked up is a new connection: a new
// flow, whose handshake is timed and counted like any other.
TEST(Steering, SynOnAPickedUpFlowStartsANewOne) {
    Rig r(3, ForwardMode::dnat, SchedulerKind::maglev, {});
    ASSERT_TRUE(r.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpAck)).forward());
    ASSERT_EQ(r.counters.flows_picked_up, 1u);
    const ToBackend to = r.syn(0xc0a80001, 40000);
    ASSERT_TRUE(to.forward());
    EXPECT_EQ(r.counters.flows_closed, 1u);
    EXPECT_EQ(r.counters.flows_created, 2u);
    ToClient back;
    ASSERT_TRUE(dnat_answer(r, to, 0xc0a80001, 40000, packet::kTcpSyn | packet::kTcpAck, back));
    EXPECT_EQ(r.backend_counters[to.backend_id].synack_seen, 1u);
    EXPECT_EQ(r.backend_counters[to.backend_id].connect_samples, 1u);
}

TEST(Steering, IcmpErrorsFindTheirFlow) {
    for (const ForwardMode mode : {ForwardMode::nat, ForwardMode::dnat}) {
        Rig r(3, mode, SchedulerKind::maglev, port_range(5000, 100));
        const ToBackend to = r.syn(0xc0a80001, 40000);
        ASSERT_TRUE(to.forward());
        packet::IcmpQuote q;
        q.proto = IPPROTO_TCP;
        q.src_ip = ip(kVipIp);
        q.src_port = htons(kVipPort);
        q.dst_ip = ip(0xc0a80001);
        q.dst_port = htons(40000);
        const size_t entries = r.flows.size();
        IcmpToBackend out;
        ASSERT_TRUE(r.steer->icmp_to_backend(r.snap, q, out));
        EXPECT_EQ(out.backend_id, to.backend_id);
        EXPECT_EQ(out.full_nat, mode == ForwardMode::nat);
        if (mode == ForwardMode::nat) {
            EXPECT_EQ(out.peer_ip, to.nat_ip);
            EXPECT_EQ(out.peer_port, to.nat_port);
        } else {
            EXPECT_EQ(out.peer_ip, q.dst_ip);
            EXPECT_EQ(out.peer_port, q.dst_port);
        }
        EXPECT_EQ(r.flows.size(), entries);
        q.dst_port = htons(40001);  // no such flow
        EXPECT_FALSE(r.steer->icmp_to_backend(r.snap, q, out));
        q.dst_port = htons(40000);
        q.proto = IPPROTO_UDP;
        EXPECT_FALSE(r.steer->icmp_to_backend(r.snap, q, out));
    }
}

TEST(Steering, NoBackend) {
    Rig r(0, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    EXPECT_EQ(r.syn(0xc0a80001, 40000).drop, Drop::no_backend);
    EXPECT_EQ(r.vip_counters[0].no_backend, 1u);
    EXPECT_EQ(r.flows.size(), 0u);
}

TEST(Steering, DnatReplyKeyOfAnOlderFlowIsTakenOver) {
    Rig r(1, ForwardMode::dnat, SchedulerKind::maglev, {});
    ASSERT_TRUE(r.syn(0xc0a80001, 40000).forward());
    // The old flow closes by RST and a new SYN reuses the tuple at once.
    ASSERT_TRUE(r.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpRst | packet::kTcpAck)).forward());
    ASSERT_TRUE(r.syn(0xc0a80001, 40000).forward());
    EXPECT_EQ(r.counters.flows_closed, 1u);
    EXPECT_EQ(r.counters.flows_created, 2u);
    EXPECT_EQ(r.flows.size(), 2u);
    EXPECT_EQ(r.backend_counters[0].active_flows, 1);
}

// A packet whose entry is stale takes the miss path: the entry is ended
// (flows_closed) and the packet is handled as if there were none. Stale:
// idle past its timeout, its backend down with flows cut, or a SYN on a
// closed flow's tuple. A live flow's packets are counted for their backend.
TEST(Steering, StaleEntriesAreEndedAndThePacketTreatedAsNew) {
    Rig r(2, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    const auto ack = [](uint16_t port) { return Rig::client_packet(0xc0a80001, port, packet::kTcpAck); };

    // Idle past its timeout (syn_seen): the ACK finds no flow, and in full NAT a non-SYN opens none.
    ASSERT_TRUE(r.syn(0xc0a80001, 40000).forward());
    r.now += r.snap.vips[0].timeouts.syn_ms + 1;
    EXPECT_EQ(r.send(ack(40000)).drop, Drop::tcp_no_flow);
    EXPECT_EQ(r.counters.flows_closed, 1u);
    EXPECT_EQ(r.flows.size(), 0u);

    // Its backend is down with flows cut: the same.
    const BackendCounters before[2] = {r.backend_counters[0], r.backend_counters[1]};
    const ToBackend b = r.syn(0xc0a80001, 40001);
    ASSERT_TRUE(b.forward());
    const ToBackend live = r.send(ack(40001));
    ASSERT_TRUE(live.forward());
    EXPECT_EQ(live.slot, b.slot);
    const BackendCounters& bc = r.backend_counters[b.backend_id];
    EXPECT_EQ(bc.packets, before[b.backend_id].packets + 2);
    EXPECT_EQ(bc.syn_sent, before[b.backend_id].syn_sent + 1);  // the ACK is not a SYN
    r.snap.backends[b.backend_id].drop_flows = true;
    EXPECT_EQ(r.send(ack(40001)).drop, Drop::tcp_no_flow);
    EXPECT_EQ(r.counters.flows_closed, 2u);
    EXPECT_EQ(bc.active_flows, 0);
    EXPECT_EQ(bc.packets, before[b.backend_id].packets + 2);  // a dropped packet is not the backend's
    r.snap.backends[b.backend_id].drop_flows = false;

    // A SYN on a closed flow's tuple: a new flow, counted as a SYN sent.
    ASSERT_TRUE(r.syn(0xc0a80001, 40002).forward());
    ASSERT_TRUE(r.send(Rig::client_packet(0xc0a80001, 40002, packet::kTcpRst | packet::kTcpAck)).forward());
    const ToBackend again = r.syn(0xc0a80001, 40002);
    ASSERT_TRUE(again.forward());
    EXPECT_EQ(r.counters.flows_closed, 3u);
    EXPECT_EQ(r.counters.flows_created, 4u);
    EXPECT_EQ(r.flows.entry(again.slot).value.state, uint8_t(flow::FlowState::syn_seen));
    EXPECT_EQ(r.flows.size(), 2u);  // the new flow's two entries
}

TEST(Steering, FinsFromBothSidesCloseTheFlow) {
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    const ToBackend to = r.syn(0xc0a80001, 40000);
    ASSERT_TRUE(to.forward());
    ToClient back;
    ASSERT_TRUE(r.reply(to, packet::kTcpSyn | packet::kTcpAck, back));
    ASSERT_TRUE(r.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpFin | packet::kTcpAck)).forward());
    const auto fwd =
        r.flows.lookup(flow::FlowKey::v4(ip(0xc0a80001), ip(kVipIp), htons(40000), htons(kVipPort), IPPROTO_TCP));
    ASSERT_NE(fwd, flow::kNoPeer);
    EXPECT_EQ(r.flows.entry(fwd).value.state, uint8_t(flow::FlowState::established));
    ASSERT_TRUE(r.reply(to, packet::kTcpFin | packet::kTcpAck, back));
    EXPECT_EQ(r.flows.entry(fwd).value.state, uint8_t(flow::FlowState::closing));
}

TEST(Steering, ClosedFlowsLeaveAtTheirClosingTimeoutWithoutASweep) {
    // RST from the client, FIN both ways, and an open flow: the two closed
    // ones (closing timeout 100 ms) are gone 101 ms after their last packet,
    // their ports and active counts given back; no sweep runs.
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    const ToBackend a = r.syn(0xc0a80001, 40000);
    const ToBackend b = r.syn(0xc0a80001, 40001);
    ASSERT_TRUE(r.syn(0xc0a80001, 40002).forward());
    ToClient back;
    ASSERT_TRUE(r.send(Rig::client_packet(0xc0a80001, 40000, packet::kTcpRst | packet::kTcpAck)).forward());
    ASSERT_TRUE(r.send(Rig::client_packet(0xc0a80001, 40001, packet::kTcpFin | packet::kTcpAck)).forward());
    r.now += 20;
    ASSERT_TRUE(r.reply(b, packet::kTcpFin | packet::kTcpAck, back));  // b closes now, at 1020
    ASSERT_TRUE(r.reply(b, packet::kTcpAck, back));                    // seen again: still one item
    EXPECT_EQ(r.flows.closing_queued(), 2u);
    r.now = 1'100;
    EXPECT_EQ(r.steer->expire_closed(r.snap, r.now), 0u);
    r.now = 1'101;
    EXPECT_EQ(r.steer->expire_closed(r.snap, r.now), 1u) << "a";
    r.now = 1'121;
    EXPECT_EQ(r.steer->expire_closed(r.snap, r.now), 1u) << "b";
    EXPECT_EQ(r.flows.size(), 2u) << "the open flow's two entries";
    EXPECT_EQ(r.backend_counters[0].active_flows, 1);
    EXPECT_EQ(r.flows.closing_queued(), 0u);
    // Their NAT ports are free again: the reply keys are gone.
    for (const ToBackend& to : {a, b}) {
        const BackendEntry& be = r.snap.backends[to.backend_id];
        EXPECT_EQ(r.flows.lookup(flow::FlowKey::v4(be.ip, to.nat_ip, be.port, to.nat_port, IPPROTO_TCP)),
                  flow::kNoPeer);
    }
}

TEST(Steering, LeastConnCountsEveryWorkersFlows) {
    Rig r(2, ForwardMode::dnat, SchedulerKind::least_conn, {});
    r.other_worker[0].active_flows = 50;  // another worker holds many flows on backend 0
    for (uint16_t i = 0; i < 20; ++i) EXPECT_EQ(r.syn(0xc0a80001, uint16_t(30000 + i)).backend_id, 1u) << i;
    EXPECT_EQ(r.backend_counters[1].active_flows, 20);
}

TEST(Steering, ReplyEntryOnlyAnswersReplies) {
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100));
    ASSERT_TRUE(r.syn(0xc0a80001, 40000).forward());
    const auto fwd =
        r.flows.lookup(flow::FlowKey::v4(ip(0xc0a80001), ip(kVipIp), htons(40000), htons(kVipPort), IPPROTO_TCP));
    ToClient back;
    EXPECT_FALSE(
        r.steer->to_client(r.snap, Rig::client_packet(0xc0a80001, 40000, packet::kTcpAck), fwd, 60, r.now, back));
}

// ---- several full-NAT source addresses per port (nat_addresses) ------------------------------

TEST(SteeringNatAddresses, NewFlowsToOneBackendRotateOverTheAddresses) {
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 100), 2);
    std::vector<ToBackend> opened;
    std::map<uint32_t, int> per_address;
    for (uint16_t i = 0; i < 9; ++i) {
        const ToBackend to = r.syn(0xc0a80001, uint16_t(40000 + i));
        ASSERT_TRUE(to.forward()) << i;
        // In turn: the port's address, then 10.77.2.2, then 10.77.2.3, again and again.
        EXPECT_EQ(to.nat_ip, ip(kLocalIp + i % 3)) << i;
        ++per_address[to.nat_ip];
        opened.push_back(to);
    }
    EXPECT_EQ(per_address.size(), 3u);
    for (const auto& [addr, count] : per_address) EXPECT_EQ(count, 3) << addr;
    EXPECT_EQ(r.flows.size(), 18u);

    // The backend's answer to each address finds its client.
    for (uint16_t i = 0; i < 9; ++i) {
        ToClient back;
        ASSERT_TRUE(r.reply(opened[i], packet::kTcpSyn | packet::kTcpAck, back)) << i;
        EXPECT_TRUE(back.full_nat);
        EXPECT_EQ(back.client_ip, ip(0xc0a80001));
        EXPECT_EQ(back.client_port, htons(uint16_t(40000 + i)));
        EXPECT_EQ(back.vip_ip, ip(kVipIp));
    }
    // An answer to the right port on another address matches nothing.
    ToBackend wrong = opened[1];
    wrong.nat_ip = ip(kLocalIp + 2);
    ToClient none;
    if (wrong.nat_port != opened[2].nat_port) {
        EXPECT_FALSE(r.reply(wrong, packet::kTcpAck, none));
    }

    // The client's next packets keep their flow's address and port.
    for (uint16_t i = 0; i < 9; ++i) {
        const ToBackend again = r.send(Rig::client_packet(0xc0a80001, uint16_t(40000 + i), packet::kTcpAck));
        ASSERT_TRUE(again.forward());
        EXPECT_EQ(again.nat_ip, opened[i].nat_ip);
        EXPECT_EQ(again.nat_port, opened[i].nat_port);
    }

    // Ending each flow (from either entry) removes both entries and the count.
    for (uint16_t i = 0; i < 9; ++i) {
        const ToBackend& to = opened[i];
        if (i % 2 == 0) {
            r.steer->end_flow(to.slot);
        } else {
            const BackendEntry& be = r.snap.backends[to.backend_id];
            const uint32_t reply =
                r.flows.lookup(flow::FlowKey::v4(be.ip, to.nat_ip, be.port, to.nat_port, IPPROTO_TCP));
            ASSERT_NE(reply, flow::kNoPeer) << i;
            r.steer->end_flow(reply);
        }
    }
    EXPECT_EQ(r.flows.size(), 0u);
    EXPECT_EQ(r.backend_counters[0].active_flows, 0);
}

TEST(SteeringNatAddresses, EachBackendRotatesOnItsOwn) {
    // Round robin over two backends: each backend still sees the addresses in turn.
    Rig r(2, ForwardMode::nat, SchedulerKind::round_robin, port_range(5000, 100), 1);
    std::map<uint32_t, std::vector<uint32_t>> seen;
    for (uint16_t i = 0; i < 8; ++i) {
        const ToBackend to = r.syn(0xc0a80001, uint16_t(40000 + i));
        ASSERT_TRUE(to.forward());
        seen[to.backend_id].push_back(to.nat_ip);
    }
    ASSERT_EQ(seen.size(), 2u);
    for (const auto& [backend, addrs] : seen) {
        ASSERT_EQ(addrs.size(), 4u);
        for (size_t k = 0; k < addrs.size(); ++k) EXPECT_EQ(addrs[k], ip(kLocalIp + k % 2)) << backend;
    }
}

TEST(SteeringNatAddresses, PortsAreUniquePerAddressAndBackend) {
    // Ten ports on each of two addresses, one backend: twenty connections fit
    // (ten alone would without nat_addresses), every (address, port) once.
    Rig one(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 10));
    for (uint16_t i = 0; i < 10; ++i) ASSERT_TRUE(one.syn(0xc0a80001, uint16_t(30000 + i)).forward());
    EXPECT_EQ(one.syn(0xc0a80001, 30999).drop, Drop::nat_ports_exhausted);

    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, port_range(5000, 10), 1);
    std::set<std::pair<uint32_t, uint16_t>> sources;
    std::map<uint32_t, std::set<uint16_t>> ports;
    for (uint16_t i = 0; i < 20; ++i) {
        const ToBackend to = r.syn(0xc0a80001, uint16_t(30000 + i));
        ASSERT_TRUE(to.forward()) << i;
        EXPECT_TRUE(sources.insert({to.nat_ip, to.nat_port}).second) << "source reused for one backend";
        ports[to.nat_ip].insert(ntohs(to.nat_port));
    }
    ASSERT_EQ(ports.size(), 2u);
    EXPECT_EQ(ports[ip(kLocalIp)], ports[ip(kLocalIp + 1)]) << "the same ports, once on each address";
    const ToBackend full = r.syn(0xc0a80001, 30999);
    EXPECT_EQ(full.drop, Drop::nat_ports_exhausted);
    EXPECT_EQ(r.flows.size(), 40u);

    // A flow that ends gives its (address, port) back, even when the rotation
    // first offers the other, still full, address.
    const ToBackend& gone = r.send(Rig::client_packet(0xc0a80001, 30002, packet::kTcpRst | packet::kTcpAck));
    ASSERT_TRUE(gone.forward());
    r.steer->end_flow(gone.slot);
    const ToBackend reuse = r.syn(0xc0a80001, 31000);
    ASSERT_TRUE(reuse.forward());
    EXPECT_EQ(reuse.nat_ip, gone.nat_ip);
    EXPECT_EQ(reuse.nat_port, gone.nat_port);
}

TEST(SteeringNatAddresses, TwoAddressesHoldTwiceTheWholePortRangeToOneBackend) {
    // One worker's whole range 1024..65535 (64,512 ports) on each of two
    // addresses: 129,024 concurrent flows to ONE backend, every source
    // (address, port) once; the next one finds no port.
    const std::vector<uint16_t> all = flow::ports_for_worker(1024, 65535, 1, 0);
    ASSERT_EQ(all.size(), 64512u);
    Rig r(1, ForwardMode::nat, SchedulerKind::maglev, all, 1, 1u << 19);
    std::vector<uint8_t> used(2u << 16, 0);  // by address (0, 1) x port
    const uint32_t want = 2 * 64512;
    for (uint32_t i = 0; i < want; ++i) {
        const ToBackend to = r.syn(0xc0a80000 + i / 50000, uint16_t(10000 + i % 50000));
        ASSERT_TRUE(to.forward()) << i;
        const uint32_t a = to.nat_ip == ip(kLocalIp) ? 0 : 1;
        uint8_t& u = used[(a << 16) | ntohs(to.nat_port)];
        ASSERT_EQ(u, 0) << "source reused at flow " << i;
        u = 1;
    }
    EXPECT_EQ(r.backend_counters[0].active_flows, int64_t(want));
    EXPECT_GT(r.backend_counters[0].active_flows, 64512) << "more than one address's worth";
    EXPECT_EQ(r.syn(0xc0a8ff00, 1).drop, Drop::nat_ports_exhausted);
}

}  // namespace
}  // namespace ferry::dp
