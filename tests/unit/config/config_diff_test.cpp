#include "config/config_diff.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace ferry {
namespace {

Endpoint ep(const char* ip, uint16_t port) { return Endpoint{*IpAddr::parse(ip), port}; }

Config base() {
    Config c;
    PortConfig p;
    p.name = "lan";
    p.device = "net_null0";
    p.address = *IpPrefix::parse("10.0.0.1/24");
    c.ports.push_back(p);
    VipConfig v;
    v.name = "chat";
    v.endpoint = ep("10.0.0.100", 80);
    v.backends = {{ep("10.0.0.11", 8000), 100, {}, {}}, {ep("10.0.0.12", 8000), 100, {}, {}}};
    c.vips.push_back(v);
    return c;
}

bool has(const std::vector<std::string>& v, const std::string& needle) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

TEST(ConfigDiff, SameConfigIsEmpty) { EXPECT_TRUE(diff_configs(base(), base()).empty()); }

TEST(ConfigDiff, BackendsAddedRemovedReweighted) {
    Config next = base();
    next.vips[0].backends[0].weight = 50;
    next.vips[0].backends.erase(next.vips[0].backends.begin() + 1);
    next.vips[0].backends.push_back({ep("10.0.0.13", 8000), 200, {}, {}});
    auto d = diff_configs(base(), next);
    EXPECT_TRUE(d.restart_needed.empty());
    EXPECT_EQ(d.changes.size(), 3u);
    EXPECT_TRUE(has(d.changes, "10.0.0.11:8000 weight 100 -> 50"));
    EXPECT_TRUE(has(d.changes, "10.0.0.12:8000 removed (draining)"));
    EXPECT_TRUE(has(d.changes, "10.0.0.13:8000 added (weight 200)"));
}

TEST(ConfigDiff, VipsAddedRemovedAndSettings) {
    Config next = base();
    next.vips[0].timeouts.udp = 5;
    next.vips[0].mode = ForwardMode::dnat;
    VipConfig v2 = next.vips[0];
    v2.name = "embed";
    v2.endpoint = ep("10.0.0.101", 80);
    next.vips.push_back(v2);
    auto d = diff_configs(base(), next);
    EXPECT_TRUE(has(d.changes, "timeouts changed"));
    EXPECT_TRUE(has(d.changes, "mode changed"));
    EXPECT_TRUE(has(d.changes, "VIP embed (10.0.0.101:80/tcp) added with 2 backend(s)"));
    auto back = diff_configs(next, base());
    EXPECT_TRUE(has(back.changes, "VIP embed (10.0.0.101:80/tcp) removed"));
}

TEST(ConfigDiff, LoadAwareAndSlowStart) {
    Config next = base();
    next.vips[0].load_aware.enabled = true;
    auto d = diff_configs(base(), next);
    EXPECT_TRUE(d.restart_needed.empty());
    ASSERT_EQ(d.changes.size(), 1u);
    EXPECT_EQ(d.changes[0], "VIP chat (10.0.0.100:80/tcp): load_aware changed");

    Config tuned = next;
    tuned.vips[0].load_aware.target_queue = 8.0;
    tuned.vips[0].slow_start_s = 30;
    d = diff_configs(next, tuned);
    EXPECT_EQ(d.changes.size(), 2u);
    EXPECT_TRUE(has(d.changes, "VIP chat (10.0.0.100:80/tcp): load_aware changed"));
    EXPECT_TRUE(has(d.changes, "VIP chat (10.0.0.100:80/tcp): slow_start changed"));
    EXPECT_TRUE(diff_configs(tuned, tuned).empty());
}

TEST(ConfigDiff, LatencyAwareIsReloadable) {
    Config next = base();
    next.vips[0].latency_aware.enabled = true;
    auto d = diff_configs(base(), next);
    EXPECT_TRUE(d.restart_needed.empty());
    ASSERT_EQ(d.changes.size(), 1u);
    EXPECT_EQ(d.changes[0], "VIP chat (10.0.0.100:80/tcp): latency_aware changed");
    Config tuned = next;
    tuned.vips[0].latency_aware.signal = LatencySignal::tpot;
    tuned.vips[0].load_aware.ttft_metric = "x";
    d = diff_configs(next, tuned);
    EXPECT_EQ(d.changes.size(), 2u);
    EXPECT_TRUE(has(d.changes, "VIP chat (10.0.0.100:80/tcp): load_aware changed"));
}

TEST(ConfigDiff, PortsWorkersAndControlNeedRestart) {
    Config next = base();
    next.ports[0].mtu = 9000;
    next.workers.flow_capacity = 2048;
    next.control.metrics_listen = "";
    auto d = diff_configs(base(), next);
    EXPECT_EQ(d.restart_needed.size(), 3u);
    EXPECT_TRUE(d.changes.empty());
}

TEST(ConfigDiff, NatAddressesNeedRestartAndSayWhichPort) {
    Config next = base();
    next.ports[0].nat_addresses = {*IpAddr::parse("10.0.0.2")};
    auto d = diff_configs(base(), next);
    ASSERT_EQ(d.restart_needed.size(), 1u);
    EXPECT_EQ(d.restart_needed[0], "port 'lan': nat_addresses changed");
    EXPECT_TRUE(diff_configs(next, next).empty());
    Config reordered = next;
    reordered.ports[0].nat_addresses.push_back(*IpAddr::parse("10.0.0.3"));
    EXPECT_TRUE(has(diff_configs(next, reordered).restart_needed, "nat_addresses changed"));
}

}  // namespace
}  // namespace ferry
