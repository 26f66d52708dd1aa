#include "dataplane/snapshot.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <map>

namespace ferry::dp {
namespace {

Endpoint ep(const char* ip, uint16_t port) { return Endpoint{*IpAddr::parse(ip), port}; }

Config two_vips() {
    Config c;
    c.file = "test.conf";
    PortConfig p;
    p.name = "lan";
    p.address = *IpPrefix::parse("10.0.0.1/24");
    c.ports.push_back(p);
    VipConfig a;
    a.name = "a";
    a.endpoint = ep("10.0.0.100", 80);
    a.table_size = 251;
    a.backends = {{ep("10.0.0.11", 8000), 100, {}, {}}, {ep("10.0.0.12", 8000), 300, {}, {}}};
    VipConfig b = a;
    b.name = "b";
    b.proto = L4Proto::udp;
    b.mode = ForwardMode::dnat;
    b.backends = {{ep("10.0.0.12", 8000), 1, {}, {}}};
    c.vips = {a, b};
    return c;
}

NextHop on_link(uint32_t ip) { return NextHop{3, ip, true}; }

size_t count(const std::vector<uint32_t>& table, uint32_t id) {
    size_t n = 0;
    for (uint32_t v : table) n += v == id;
    return n;
}

TEST(Snapshot, BuildsVipsTablesAndIndex) {
    IdRegistry ids;
    Config c = two_vips();
    auto s = build_snapshot(c, ids, RuntimeState{}, on_link, 1);
    ASSERT_EQ(s->vips.size(), 2u);
    ASSERT_EQ(s->backends.size(), 2u);  // 10.0.0.12:8000 is shared, registered once
    uint32_t vip_ip = inet_addr("10.0.0.100");
    uint32_t a = s->find_vip(vip_ip, htons(80), IPPROTO_TCP);
    uint32_t b = s->find_vip(vip_ip, htons(80), IPPROTO_UDP);
    ASSERT_NE(a, kNone);
    ASSERT_NE(b, kNone);
    EXPECT_NE(a, b);
    EXPECT_EQ(s->find_vip(vip_ip, htons(81), IPPROTO_TCP), kNone);
    EXPECT_TRUE(s->is_vip_address(vip_ip));
    EXPECT_FALSE(s->is_vip_address(inet_addr("10.0.0.1")));
    EXPECT_EQ(s->vips[a].table.size(), 251u);
    // Weights 100:300 -> about 1:3 of the slots.
    uint32_t b11 = ids.backend_id(ep("10.0.0.11", 8000)), b12 = ids.backend_id(ep("10.0.0.12", 8000));
    EXPECT_NEAR(double(count(s->vips[a].table, b12)) / double(count(s->vips[a].table, b11)), 3.0, 0.1);
    EXPECT_EQ(s->backends[b11].egress_port, 3);
    EXPECT_EQ(s->backends[b11].ip, inet_addr("10.0.0.11"));
    EXPECT_EQ(s->backends[b11].port, htons(8000));
    EXPECT_EQ(s->vips[b].mode, ForwardMode::dnat);
    EXPECT_EQ(s->vips[a].timeouts.established_ms, 900'000u);
}

// A snapshot nobody indexed yet (an empty one, or one being filled) finds no
// VIP instead of reading outside its index.
TEST(Snapshot, FindsNoVipBeforeItsIndexIsBuilt) {
    Snapshot s;
    EXPECT_EQ(s.find_vip(htonl(0x0a000001), htons(80), IPPROTO_TCP), kNone);
    Snapshot copy = s;
    EXPECT_EQ(copy.find_vip(0, 0, 0), kNone);
    s.build_index();  // no VIPs: an index of free slots
    EXPECT_EQ(s.find_vip(htonl(0x0a000001), htons(80), IPPROTO_TCP), kNone);
}

// The VIP index with many VIPs sharing an address (ports, both protocols)
// and many addresses: every VIP is found under its own id, nothing else is.
TEST(Snapshot, VipIndexFindsEveryVipAndNothingElse) {
    Snapshot s;
    for (uint32_t a = 0; a < 8; ++a) {
        for (uint16_t port = 1; port <= 40; ++port) {
            for (const uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP)}) {
                VipEntry v;
                v.present = (port % 7) != 0;  // some ids unused
                v.ip = htonl(0x0a000064 + a);
                v.port = htons(port == 40 ? 443 : port);
                v.proto = proto;
                s.vips.push_back(v);
            }
        }
    }
    s.build_index();
    for (uint32_t id = 0; id < s.vips.size(); ++id) {
        const VipEntry& v = s.vips[id];
        EXPECT_EQ(s.find_vip(v.ip, v.port, v.proto), v.present ? id : kNone) << id;
        EXPECT_EQ(s.find_vip(v.ip, htons(1000), v.proto), kNone);
        EXPECT_EQ(s.find_vip(htonl(0x0b000064), v.port, v.proto), kNone);
        EXPECT_EQ(s.find_vip(v.ip, v.port, IPPROTO_ICMP), kNone);
    }
}

TEST(Snapshot, IdsAreStableAcrossRebuildsAndRemovedBackendsStayResolvable) {
    IdRegistry ids;
    Config c = two_vips();
    auto s1 = build_snapshot(c, ids, RuntimeState{}, on_link, 1);
    uint32_t b11 = ids.backend_id(ep("10.0.0.11", 8000));
    // Remove 10.0.0.11 and add 10.0.0.13: 10.0.0.11 keeps its id, flagged removed.
    c.vips[0].backends[0].endpoint = ep("10.0.0.13", 8000);
    auto s2 = build_snapshot(c, ids, RuntimeState{}, on_link, 2);
    EXPECT_EQ(ids.backend_id(ep("10.0.0.11", 8000)), b11);
    ASSERT_GT(s2->backends.size(), b11);
    EXPECT_EQ(s2->backends[b11].state, BackendState::removed);
    EXPECT_EQ(s2->backends[b11].ip, inet_addr("10.0.0.11"));
    uint32_t a = s2->find_vip(inet_addr("10.0.0.100"), htons(80), IPPROTO_TCP);
    EXPECT_EQ(count(s2->vips[a].table, b11), 0u);
    EXPECT_EQ(s2->generation, 2u);
}

// The ids a config would take are counted without assigning any: the control
// plane refuses a config past the limits before it spends ids that are never
// given back.
TEST(Snapshot, IdCountsOfAConfigAssignNothing) {
    IdRegistry ids;
    Config c = two_vips();
    IdRegistry::Counts n = ids.counts_with(c);
    EXPECT_EQ(n.backends, 2u);  // 10.0.0.12:8000 is in both VIPs: one id
    EXPECT_EQ(n.vips, 2u);      // the same address and port, TCP and UDP: two
    EXPECT_EQ(ids.backend_count(), 0u);
    EXPECT_EQ(ids.vip_count(), 0u);

    build_snapshot(c, ids, RuntimeState{}, on_link, 1);
    n = ids.counts_with(c);
    EXPECT_EQ(n.backends, 2u);
    EXPECT_EQ(n.vips, 2u);

    // A removed backend keeps its id and a new one takes another; a new VIP too.
    c.vips[0].backends[0].endpoint = ep("10.0.0.13", 8000);
    VipConfig v = c.vips[0];
    v.name = "c";
    v.endpoint = ep("10.0.0.100", 81);
    v.backends = {{ep("10.0.0.13", 8000), 100, {}, {}}, {ep("10.0.0.14", 8000), 100, {}, {}}};
    c.vips.push_back(v);
    n = ids.counts_with(c);
    EXPECT_EQ(n.backends, 4u);
    EXPECT_EQ(n.vips, 3u);
    EXPECT_EQ(ids.backend_count(), 2u);
    EXPECT_EQ(ids.vip_count(), 2u);
    auto s = build_snapshot(c, ids, RuntimeState{}, on_link, 2);
    EXPECT_EQ(s->backends.size(), n.backends);
    EXPECT_EQ(s->vips.size(), n.vips);
}

TEST(Snapshot, DownDrainedAndZeroWeightBackendsGetNoSlots) {
    IdRegistry ids;
    Config c = two_vips();
    build_snapshot(c, ids, RuntimeState{}, on_link, 1);
    uint32_t b11 = ids.backend_id(ep("10.0.0.11", 8000)), b12 = ids.backend_id(ep("10.0.0.12", 8000));
    uint32_t va = ids.vip_id(ep("10.0.0.100", 80), L4Proto::tcp);
    RuntimeState rt;
    rt.health[{va, b12}].state = BackendState::down;
    auto s = build_snapshot(c, ids, rt, on_link, 2);
    EXPECT_EQ(count(s->vips[va].table, b12), 0u);
    EXPECT_EQ(count(s->vips[va].table, b11), 251u);

    rt.health.clear();
    rt.admin[{va, b11}].drained = true;
    s = build_snapshot(c, ids, rt, on_link, 3);
    EXPECT_EQ(count(s->vips[va].table, b11), 0u);
    // Drained in VIP a only: still in VIP b's table (b only has .12 anyway), state stays up.
    EXPECT_EQ(s->backends[b11].state, BackendState::up);

    rt.admin.clear();
    c.vips[0].backends[0].weight = 0;
    c.vips[0].backends[1].weight = 0;
    s = build_snapshot(c, ids, rt, on_link, 4);
    EXPECT_EQ(count(s->vips[va].table, kNone), 251u);  // defined "no backend" state
}

TEST(Snapshot, FlowsAreCutOnlyWhenEveryVipSaysSo) {
    IdRegistry ids;
    Config c = two_vips();
    build_snapshot(c, ids, RuntimeState{}, on_link, 1);
    uint32_t b11 = ids.backend_id(ep("10.0.0.11", 8000)), b12 = ids.backend_id(ep("10.0.0.12", 8000));
    uint32_t va = ids.vip_id(ep("10.0.0.100", 80), L4Proto::tcp);
    uint32_t vb = ids.vip_id(ep("10.0.0.100", 80), L4Proto::udp);
    RuntimeState rt;
    rt.admin[{va, b12}].cut = true;
    auto s = build_snapshot(c, ids, rt, on_link, 2);
    EXPECT_FALSE(s->backends[b12].drop_flows);  // VIP b still keeps its flows
    rt.admin[{vb, b12}].cut = true;
    s = build_snapshot(c, ids, rt, on_link, 3);
    EXPECT_TRUE(s->backends[b12].drop_flows);

    // down_flows = drop: a down backend's flows go at once.
    rt = RuntimeState{};
    c.vips[0].down_flows = DownFlowPolicy::drop;
    rt.health[{va, b11}].state = BackendState::down;
    s = build_snapshot(c, ids, rt, on_link, 4);
    EXPECT_TRUE(s->backends[b11].drop_flows);
    EXPECT_EQ(s->backends[b11].state, BackendState::down);

    // Removed from every VIP: kept until its drain timeout, then cut.
    c.vips[0].backends.erase(c.vips[0].backends.begin());
    rt = RuntimeState{};
    s = build_snapshot(c, ids, rt, on_link, 5);
    EXPECT_EQ(s->backends[b11].state, BackendState::removed);
    EXPECT_FALSE(s->backends[b11].drop_flows);
    rt.cut_removed.insert(b11);
    s = build_snapshot(c, ids, rt, on_link, 6);
    EXPECT_TRUE(s->backends[b11].drop_flows);
}

TEST(Snapshot, SchedulerTablesFollowEffectiveWeights) {
    IdRegistry ids;
    Config c = two_vips();
    c.vips[0].scheduler = SchedulerKind::round_robin;
    c.vips[1].scheduler = SchedulerKind::least_conn;
    c.vips[1].backends.push_back({ep("10.0.0.13", 8000), 0, {}, {}});
    auto s = build_snapshot(c, ids, RuntimeState{}, on_link, 1);
    uint32_t b11 = ids.backend_id(ep("10.0.0.11", 8000)), b12 = ids.backend_id(ep("10.0.0.12", 8000));
    uint32_t va = ids.vip_id(ep("10.0.0.100", 80), L4Proto::tcp);
    uint32_t vb = ids.vip_id(ep("10.0.0.100", 80), L4Proto::udp);
    const auto& rr = s->vips[va].rr_sequence;
    ASSERT_FALSE(rr.empty());
    EXPECT_EQ(count(rr, b12), 3 * count(rr, b11));  // weights 100:300, one full cycle
    EXPECT_TRUE(s->vips[va].cand_ids.empty());
    EXPECT_EQ(s->vips[vb].cand_ids, std::vector<uint32_t>{b12});  // weight 0 is never a candidate
    EXPECT_EQ(s->vips[vb].cand_cumulative.back(), 1u);
    EXPECT_EQ(s->vips[vb].table.size(), 251u);  // the Maglev table is kept for every scheduler
}

TEST(Snapshot, UnroutableBackendIsNeverChosen) {
    IdRegistry ids;
    Config c = two_vips();
    auto no_route_for_11 = [](uint32_t ip) {
        return ip == inet_addr("10.0.0.11") ? NextHop{} : NextHop{1, ip, true};
    };
    auto s = build_snapshot(c, ids, RuntimeState{}, no_route_for_11, 1);
    uint32_t b11 = ids.backend_id(ep("10.0.0.11", 8000));
    uint32_t va = ids.vip_id(ep("10.0.0.100", 80), L4Proto::tcp);
    EXPECT_EQ(count(s->vips[va].table, b11), 0u);
}

TEST(Snapshot, NewFlowSlotIsMultiplyShiftOfTheHashAndNeverTheModulo) {
    // Every instance and ferryctl trace must map a hash onto the table alike:
    // XXH64 (seed 0) of the 13-byte key src, dst, src_port, dst_port, proto in
    // network order (or of the source address alone), then the high half of
    // hash x size. The old mapping, hash % size, gives other slots.
    __extension__ using Wide = unsigned __int128;
    VipEntry v;
    v.table.assign(251, kNone);
    uint32_t differs_from_modulo = 0;
    for (uint32_t i = 1; i <= 200; ++i) {
        const uint32_t src = htonl(0x0a000000u + i), dst = htonl(0x0a000064u);
        const uint16_t sport = htons(uint16_t(20000 + 7 * i)), dport = htons(80);
        uint8_t k[13];
        std::memcpy(k, &src, 4);
        std::memcpy(k + 4, &dst, 4);
        std::memcpy(k + 8, &sport, 2);
        std::memcpy(k + 10, &dport, 2);
        k[12] = IPPROTO_TCP;
        const uint64_t h = balance::hash_bytes(k, sizeof k, 0);
        v.hash = HashKey::five_tuple;
        const uint32_t slot = v.table_slot_of(src, dst, sport, dport, IPPROTO_TCP);
        ASSERT_LT(slot, v.table.size());
        EXPECT_EQ(slot, uint32_t((Wide(h) * 251) >> 64));
        differs_from_modulo += slot != h % 251;
        v.hash = HashKey::source_ip;
        EXPECT_EQ(v.table_slot_of(src, dst, sport, dport, IPPROTO_TCP),
                  balance::table_slot(balance::hash_bytes(&src, 4, 0), 251));
        EXPECT_EQ(v.table_slot_of(src, dst, uint16_t(sport + 1), dport, IPPROTO_TCP),
                  v.table_slot_of(src, dst, sport, dport, IPPROTO_TCP))
            << "source-ip affinity ignores the ports";
    }
    EXPECT_GT(differs_from_modulo, 150u);
}

TEST(EffectiveWeight, OverridesAndFactors) {
    BackendConfig b;
    b.weight = 100;
    EXPECT_EQ(effective_weight(b, nullptr, nullptr), 100u);
    BackendAdmin a;
    a.weight_override = 40;
    EXPECT_EQ(effective_weight(b, nullptr, &a), 40u);
    a.weight_factor = 0.5;
    EXPECT_EQ(effective_weight(b, nullptr, &a), 20u);
    a.weight_factor = 0.0001;
    EXPECT_EQ(effective_weight(b, nullptr, &a), 1u);  // a factor never zeroes a healthy backend
    BackendHealth h;
    h.state = BackendState::draining;
    EXPECT_EQ(effective_weight(b, &h, nullptr), 0u);
}

}  // namespace
}  // namespace ferry::dp
