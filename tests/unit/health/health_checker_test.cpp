#include "health/health_checker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "test_server.hpp"

namespace ferry::health {

using namespace std::chrono_literals;
using testing::TestServer;
using testing::wait_for;

namespace {

TargetKey tcp_key(Endpoint e, uint32_t rise = 2, uint32_t fall = 2, uint32_t interval_ms = 50) {
    TargetKey k;
    k.endpoint = e;
    k.kind = HealthCheckKind::tcp;
    k.interval_ms = interval_ms;
    k.timeout_ms = 40;
    k.rise = rise;
    k.fall = fall;
    return k;
}

TargetKey http_key(Endpoint e, uint32_t rise = 2, uint32_t fall = 2, uint32_t timeout_ms = 40) {
    TargetKey k = tcp_key(e, rise, fall);
    k.kind = HealthCheckKind::http;
    k.path = "/health";
    k.expect_status = 200;
    k.timeout_ms = timeout_ms;
    return k;
}

State state_of(const HealthChecker& hc, const TargetKey& k) {
    auto s = hc.status(k);
    return s ? s->state : State::unknown;
}

Endpoint ep(const char* addr, uint16_t port) { return Endpoint{*IpAddr::parse(addr), port}; }

VipConfig vip(const char* name, const char* addr, std::vector<BackendConfig> backends) {
    VipConfig v;
    v.name = name;
    v.endpoint = ep(addr, 80);
    v.backends = std::move(backends);
    return v;
}

BackendConfig backend(const char* addr, uint16_t port) {
    BackendConfig b;
    b.endpoint = ep(addr, port);
    return b;
}

}  // namespace

TEST(TargetKey, FromVipDefaultAndBackendOverride) {
    VipConfig v = vip("a", "10.0.0.1", {backend("10.0.1.1", 8000)});
    v.health.kind = HealthCheckKind::http;
    v.health.path = "/ready";
    v.health.interval_ms = 2000;
    TargetKey k = make_target_key(v.backends[0], v);
    EXPECT_EQ(k.endpoint, ep("10.0.1.1", 8000));  // port 0 = the backend's
    EXPECT_EQ(k.kind, HealthCheckKind::http);
    EXPECT_EQ(k.path, "/ready");
    EXPECT_EQ(k.expect_status, 200);
    EXPECT_EQ(k.interval_ms, 2000u);
    EXPECT_EQ(k.timeout_ms, 500u);
    EXPECT_EQ(k.rise, 2u);
    EXPECT_EQ(k.fall, 3u);
    EXPECT_EQ(k.to_string(), "http 10.0.1.1:8000/ready");

    HealthCheckConfig own;
    own.kind = HealthCheckKind::tcp;
    own.port = 9000;
    v.backends[0].health = own;
    k = make_target_key(v.backends[0], v);
    EXPECT_EQ(k.endpoint, ep("10.0.1.1", 9000));
    EXPECT_EQ(k.kind, HealthCheckKind::tcp);
    EXPECT_EQ(k.path, "");  // does not apply to tcp: zeroed so it cannot split targets
    EXPECT_EQ(k.expect_status, 0);
    EXPECT_EQ(k.to_string(), "tcp 10.0.1.1:9000");

    own.kind = HealthCheckKind::none;
    v.backends[0].health = own;
    k = make_target_key(v.backends[0], v);
    EXPECT_EQ(k.endpoint, ep("10.0.1.1", 8000));
    EXPECT_EQ(k.interval_ms, 0u);
    EXPECT_EQ(k.to_string(), "none 10.0.1.1:8000");
}

TEST(HealthChecker, TwoVipsSharingABackendMakeOneTarget) {
    Config cfg;
    cfg.vips.push_back(vip("a", "10.0.0.1", {backend("10.0.1.1", 8000), backend("10.0.1.2", 8000)}));
    cfg.vips.push_back(vip("b", "10.0.0.2", {backend("10.0.1.1", 8000)}));
    HealthChecker hc;
    hc.set_targets(cfg);
    EXPECT_EQ(hc.all().size(), 2u);
    EXPECT_EQ(make_target_key(cfg.vips[0].backends[0], cfg.vips[0]),
              make_target_key(cfg.vips[1].backends[0], cfg.vips[1]));

    // Different settings for the same server: a separate target.
    cfg.vips[1].health.kind = HealthCheckKind::http;
    hc.set_targets(cfg);
    EXPECT_EQ(hc.all().size(), 3u);

    // A tcp check ignores path, so a different path does not split it.
    cfg.vips[1].health.kind = HealthCheckKind::tcp;
    cfg.vips[1].health.path = "/other";
    hc.set_targets(cfg);
    EXPECT_EQ(hc.all().size(), 2u);
}

TEST(HealthChecker, SharedTargetIsProbedOncePerInterval) {
    TestServer srv(TestServer::Mode::tcp);
    Config cfg;
    for (const char* name : {"a", "b", "c"}) {
        VipConfig v = vip(name, "10.0.0.1", {backend("127.0.0.1", srv.port())});
        v.health.interval_ms = 50;
        v.health.timeout_ms = 40;
        cfg.vips.push_back(v);
    }
    HealthChecker hc;
    hc.set_targets(cfg);
    ASSERT_EQ(hc.all().size(), 1u);
    const TargetKey key = make_target_key(cfg.vips[0].backends[0], cfg.vips[0]);
    hc.start();
    ASSERT_TRUE(wait_for([&] { return hc.status(key)->probes >= 5; }));
    hc.stop();
    const auto probes = int(hc.status(key)->probes);
    EXPECT_TRUE(wait_for([&] { return srv.accepted() >= probes; }, 1s));
    EXPECT_LE(srv.accepted(), probes + 1);  // + one that may have been cut by stop()
}

TEST(HealthChecker, NoneIsAlwaysUpAndNeverProbed) {
    VipConfig v = vip("a", "10.0.0.1", {backend("127.0.0.1", testing::refused_port())});
    v.health.kind = HealthCheckKind::none;
    Config cfg;
    cfg.vips.push_back(v);
    HealthChecker hc;
    hc.set_targets(cfg);
    const TargetKey key = make_target_key(v.backends[0], v);
    EXPECT_EQ(state_of(hc, key), State::up);
    hc.start();
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(hc.report_passive_failure(key, "rst"));
    EXPECT_EQ(state_of(hc, key), State::up);
    EXPECT_EQ(hc.status(key)->probes, 0u);
    EXPECT_TRUE(hc.take_events().empty());
}

TEST(HealthChecker, TcpUp) {
    TestServer srv(TestServer::Mode::tcp);
    HealthChecker hc;
    const TargetKey key = tcp_key(srv.endpoint());
    hc.set_targets({key});
    EXPECT_EQ(state_of(hc, key), State::unknown);
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::up; }));
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].target, key);
    EXPECT_EQ(ev[0].from, State::unknown);
    EXPECT_EQ(ev[0].to, State::up);
    EXPECT_EQ(ev[0].reason, "tcp connect: ok");
    auto st = hc.status(key);
    EXPECT_GE(st->probes, 1u);
    EXPECT_EQ(st->failures, 0u);
    EXPECT_EQ(st->last_result, "tcp connect: ok");
}

TEST(HealthChecker, TcpRefusedGoesDownAfterFall) {
    HealthChecker hc;
    const TargetKey key = tcp_key(testing::loopback(testing::refused_port()), 2, 3);
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::down; }));
    hc.stop();
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 1u);  // stayed unknown (treated as up) for the first two failures
    EXPECT_EQ(ev[0].from, State::unknown);
    EXPECT_EQ(ev[0].to, State::down);
    EXPECT_EQ(ev[0].reason, "tcp connect: refused");
    auto st = hc.status(key);
    EXPECT_GE(st->probes, 3u);
    EXPECT_EQ(st->failures, st->probes);
    EXPECT_GE(st->consecutive_fail, 3u);
}

TEST(HealthChecker, HttpUp) {
    TestServer srv(TestServer::Mode::http, 200);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint());
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::up; }));
    EXPECT_EQ(hc.status(key)->last_result, "http GET /health: status 200");
    EXPECT_GT(hc.status(key)->last_rtt_us, 0u);
}

TEST(HealthChecker, Http503Drains) {
    TestServer srv(TestServer::Mode::http, 503);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint(), 2, 3);
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::draining; }));
    auto ev = hc.take_events();
    ASSERT_GE(ev.size(), 1u);
    EXPECT_EQ(ev[0].from, State::unknown);
    EXPECT_EQ(ev[0].to, State::draining);
    EXPECT_EQ(ev[0].reason, "http GET /health: status 503");
    // Still answering 503 well past `fall`: draining, never down.
    ASSERT_TRUE(wait_for([&] { return hc.status(key)->consecutive_fail >= 5; }));
    EXPECT_EQ(state_of(hc, key), State::draining);
    EXPECT_TRUE(hc.take_events().empty());
}

TEST(HealthChecker, Http500GoesDownAfterFall) {
    TestServer srv(TestServer::Mode::http, 500);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint(), 2, 3);
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::down; }));
    EXPECT_GE(srv.answered(500), 3);
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].to, State::down);
    EXPECT_EQ(ev[0].reason, "http GET /health: status 500 (expected 200)");
}

TEST(HealthChecker, SilentServerTimesOutToDown) {
    TestServer srv(TestServer::Mode::silent);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint(), 2, 2, 30);
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::down; }));
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_NE(ev[0].reason.find("timeout after 30 ms"), std::string::npos) << ev[0].reason;
    EXPECT_GE(ev[0].rtt_us, 30'000u);
}

TEST(HealthChecker, RecoveryNeedsRiseSuccesses) {
    TestServer srv(TestServer::Mode::http, 500);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint(), 4, 1);
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::down; }));
    const auto t0 = Clock::now();
    srv.set_status(200);
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::up; }));
    // Four 200s were needed, one interval (50 ms) apart.
    EXPECT_GE(srv.answered(200), 4);
    EXPECT_GE(Clock::now() - t0, 140ms);
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[1].from, State::down);
    EXPECT_EQ(ev[1].to, State::up);
    EXPECT_EQ(ev[1].reason, "http GET /health: status 200");
}

TEST(HealthChecker, DrainingThenHealthyRecoversAfterRise) {
    TestServer srv(TestServer::Mode::http, 503);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint(), 3, 3);
    hc.set_targets({key});
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::draining; }));
    srv.set_status(200);
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::up; }));
    EXPECT_GE(srv.answered(200), 3);
}

TEST(HealthChecker, SetTargetsKeepsUnchangedAndDropsRemoved) {
    HealthChecker hc;  // not started: only passive failures move states
    const TargetKey a = tcp_key(ep("10.0.1.1", 8000), 2, 2);
    const TargetKey b = tcp_key(ep("10.0.1.2", 8000), 2, 2);
    const TargetKey c = tcp_key(ep("10.0.1.3", 8000), 2, 2);
    hc.set_targets({a, b});
    hc.report_passive_failure(a, "x");
    hc.report_passive_failure(a, "y");
    ASSERT_EQ(state_of(hc, a), State::down);
    hc.set_targets({c, a, a});
    auto st = hc.status(a);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->state, State::down);
    EXPECT_EQ(st->consecutive_fail, 2u);
    EXPECT_EQ(st->passive_failures, 2u);
    EXPECT_EQ(st->last_result, "y");
    EXPECT_FALSE(hc.status(b));
    EXPECT_EQ(state_of(hc, c), State::unknown);
    EXPECT_EQ(hc.all().size(), 2u);
    EXPECT_FALSE(hc.report_passive_failure(b, "gone"));
}

TEST(HealthChecker, EditedSettingsKeepTheEndpointsState) {
    HealthChecker hc;
    TargetKey a = tcp_key(ep("10.0.1.1", 8000), 2, 1);
    hc.set_targets({a});
    hc.report_passive_failure(a, "x");
    ASSERT_EQ(state_of(hc, a), State::down);
    TargetKey edited = a;
    edited.interval_ms = 75;
    hc.set_targets({edited});
    EXPECT_FALSE(hc.status(a));
    auto st = hc.status(edited);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->state, State::down);  // not unknown: the reload must not unmask a dead server
    EXPECT_EQ(st->consecutive_fail, 0u);
    EXPECT_EQ(st->failures, 0u);
}

TEST(HealthChecker, PassiveFailuresCount) {
    HealthChecker hc;
    const TargetKey key = tcp_key(ep("10.0.1.1", 8000), 2, 3);
    hc.set_targets({key});
    EXPECT_TRUE(hc.report_passive_failure(key, "passive: 3 RSTs"));
    EXPECT_TRUE(hc.report_passive_failure(key, "passive: 3 RSTs"));
    EXPECT_EQ(state_of(hc, key), State::unknown);
    EXPECT_TRUE(hc.report_passive_failure(key, "passive: SYN timeouts"));
    EXPECT_EQ(state_of(hc, key), State::down);
    auto st = hc.status(key);
    EXPECT_EQ(st->passive_failures, 3u);
    EXPECT_EQ(st->failures, 3u);
    EXPECT_EQ(st->probes, 0u);
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].reason, "passive: SYN timeouts");
    EXPECT_EQ(ev[0].rtt_us, 0u);
    EXPECT_FALSE(hc.report_passive_failure(tcp_key(ep("10.9.9.9", 1)), "unknown target"));
}

TEST(HealthChecker, PassiveDownRecoversThroughProbes) {
    // The data plane's failures bring a target down; active probes need `rise` oks to bring it back.
    TestServer srv(TestServer::Mode::http, 200);
    HealthChecker hc;
    const TargetKey key = http_key(srv.endpoint(), 3, 2);
    hc.set_targets({key});
    hc.report_passive_failure(key, "passive");
    hc.report_passive_failure(key, "passive");
    ASSERT_EQ(state_of(hc, key), State::down);
    hc.start();
    ASSERT_TRUE(wait_for([&] { return state_of(hc, key) == State::up; }));
    EXPECT_GE(srv.answered(200), 3);
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].to, State::down);
    EXPECT_EQ(ev[1].to, State::up);
    EXPECT_EQ(hc.status(key)->passive_failures, 2u);
}

TEST(HealthChecker, EventQueueIsBounded) {
    HealthChecker hc(HealthChecker::Options{.source_address = "", .max_events = 2});
    std::vector<TargetKey> keys;
    for (uint16_t i = 1; i <= 5; ++i) keys.push_back(tcp_key(ep("10.0.1.1", i), 1, 1));
    hc.set_targets(keys);
    for (const auto& k : keys) hc.report_passive_failure(k, k.to_string());
    EXPECT_EQ(hc.events_dropped(), 3u);
    auto ev = hc.take_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].target, keys[3]);
    EXPECT_EQ(ev[1].target, keys[4]);
    EXPECT_TRUE(hc.take_events().empty());
}

TEST(Jitter, FirstProbesSpreadOverTheInterval) {
    std::vector<uint32_t> offsets;
    for (uint32_t i = 0; i < 500; ++i) {
        TargetKey k = tcp_key(Endpoint{IpAddr::v4(0x0a000000u + i), 8000}, 2, 3, 1000);
        offsets.push_back(first_probe_offset_ms(k));
        EXPECT_EQ(first_probe_offset_ms(k), offsets.back());  // deterministic
        EXPECT_LT(offsets.back(), 1000u);
    }
    // Ten 100 ms buckets, 50 expected in each.
    std::vector<int> buckets(10, 0);
    for (uint32_t o : offsets) ++buckets[o / 100];
    for (int b : buckets) {
        EXPECT_GE(b, 25);
        EXPECT_LE(b, 75);
    }
    EXPECT_GT(std::set<uint32_t>(offsets.begin(), offsets.end()).size(), 300u);
    TargetKey none;
    EXPECT_EQ(first_probe_offset_ms(none), 0u);  // interval 0
}

TEST(Jitter, SchedulerFollowsTheOffsets) {
    // 30 targets on one server (different rise values make different keys),
    // interval 1 s: early-offset targets are probed long before late ones.
    TestServer srv(TestServer::Mode::tcp);
    std::vector<TargetKey> keys;
    for (uint32_t r = 1; r <= 30; ++r) {
        TargetKey k = tcp_key(srv.endpoint(), r, 2, 1000);
        k.timeout_ms = 500;
        keys.push_back(k);
    }
    std::vector<TargetKey> early, late;
    for (const auto& k : keys) {
        if (first_probe_offset_ms(k) < 250) early.push_back(k);
        if (first_probe_offset_ms(k) > 850) late.push_back(k);
    }
    ASSERT_FALSE(early.empty());
    ASSERT_FALSE(late.empty());
    HealthChecker hc;
    const auto t0 = Clock::now();
    hc.set_targets(keys);
    hc.start();
    ASSERT_TRUE(wait_for([&] {
        return std::all_of(early.begin(), early.end(),
                           [&](const TargetKey& k) { return hc.status(k)->probes > 0; });
    }));
    const auto elapsed = Clock::now() - t0;
    if (elapsed > 800ms) GTEST_SKIP() << "machine too slow to judge the schedule";
    for (const auto& k : late) EXPECT_EQ(hc.status(k)->probes, 0u) << k.to_string();
}

TEST(HealthChecker, StopIsPromptAndRestartable) {
    TestServer silent(TestServer::Mode::silent);
    HealthChecker hc;
    // A probe that will hang for 10 s, due early: pick a path whose offset is small.
    TargetKey slow = http_key(silent.endpoint(), 1, 1, 10000);
    slow.interval_ms = 10000;
    for (int i = 0; first_probe_offset_ms(slow) >= 50; ++i) slow.path = "/h" + std::to_string(i);
    TargetKey fast = tcp_key(testing::loopback(testing::refused_port()), 1, 1);
    hc.set_targets({slow, fast});
    hc.start();
    hc.start();  // idempotent
    EXPECT_TRUE(hc.running());
    ASSERT_TRUE(wait_for([&] { return state_of(hc, fast) == State::down && silent.accepted() >= 1; }));
    const auto t0 = Clock::now();
    hc.stop();
    EXPECT_LT(Clock::now() - t0, 500ms);
    EXPECT_FALSE(hc.running());
    hc.stop();  // idempotent
    const auto probes = hc.status(fast)->probes;
    std::this_thread::sleep_for(120ms);
    EXPECT_EQ(hc.status(fast)->probes, probes);  // nothing runs while stopped
    hc.start();
    EXPECT_TRUE(wait_for([&] { return hc.status(fast)->probes > probes; }));
}

TEST(HealthChecker, BadSourceAddressThrows) {
    EXPECT_THROW(HealthChecker(HealthChecker::Options{.source_address = "nope"}), std::invalid_argument);
}

}  // namespace ferry::health
