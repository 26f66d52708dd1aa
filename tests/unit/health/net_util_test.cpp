// The helpers the prober, the load scraper and the health checker share (src/health/net_util.hpp),
// for what their own tests do not reach: cut text, edge cases of the status line, the event queue
// with room for none, a schedule that fell behind, and first offsets that must not change.
#include "health/net_util.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <string>

#include "health/health_checker.hpp"
#include "health/load_scraper.hpp"

namespace ferry::health {

using namespace std::chrono_literals;

TEST(NetUtil, PrintableCutsAndMasks) {
    EXPECT_EQ(net::printable("HTTP/1.1 200 OK", 64), "HTTP/1.1 200 OK");
    EXPECT_EQ(net::printable("a\tb\x01\x7f" "c", 64), "a?b??c");
    EXPECT_EQ(net::printable("abcdef", 4), "abcd...");
    EXPECT_EQ(net::printable("abcd", 4), "abcd");
}

TEST(NetUtil, ErrnoText) {
    EXPECT_EQ(net::errno_text(ECONNREFUSED), "refused");
    EXPECT_EQ(net::errno_text(ECONNRESET), "reset by peer");
    EXPECT_FALSE(net::errno_text(EACCES).empty());  // the C library's words
}

TEST(NetUtil, GetRequestPutsTheCallersHeadersBetweenHostAndClose) {
    const Endpoint host{*IpAddr::parse("::1"), 9000};
    EXPECT_EQ(net::get_request(host, "/m x", "A: 1\r\n"),
              "GET /m%20x HTTP/1.1\r\nHost: [::1]:9000\r\nA: 1\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(net::get_request(host, "", "").substr(0, 15), "GET / HTTP/1.1\r");
    EXPECT_EQ(net::get_request(host, "/\xe9", "").substr(0, 8), "GET /%E9");
}

TEST(NetUtil, ResponseStatusReadsTheFirstLine) {
    std::string error;
    EXPECT_EQ(net::response_status("HTTP/1.1 204 No Content\r\nA: b\r\n", error), 204);
    EXPECT_EQ(net::response_status("HTTP/1.0 503\nA: b", error), 503);  // bare LF
    EXPECT_EQ(net::response_status("HTTP/1.1 200 OK", error), 200);     // no line end at all
    EXPECT_TRUE(error.empty());

    EXPECT_EQ(net::response_status("SSH-2.0-x\r\n", error), std::nullopt);
    EXPECT_EQ(error, "malformed status line \"SSH-2.0-x\"");
    EXPECT_EQ(net::response_status(std::string(100, 'x') + "\n", error), std::nullopt);
    EXPECT_EQ(error, "malformed status line \"" + std::string(64, 'x') + "...\"");
}

TEST(Sched, BoundedQueueDropsTheOldest) {
    std::deque<int> q;
    uint64_t dropped = 0;
    for (int i = 1; i <= 5; ++i) sched::push_bounded(q, i, 3, dropped);
    EXPECT_EQ(dropped, 2u);
    EXPECT_EQ(sched::take_all(q), (std::vector<int>{3, 4, 5}));
    EXPECT_TRUE(q.empty());
    EXPECT_TRUE(sched::take_all(q).empty());

    sched::push_bounded(q, 6, 0, dropped);  // room for none: counted, not queued
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(dropped, 3u);
}

TEST(Sched, AdvanceDueKeepsThePhaseOrSkipsAhead) {
    const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
    auto due = t0;
    sched::advance_due(due, 1000, t0 + 300ms);  // on time: one interval after the last due time
    EXPECT_EQ(due, t0 + 1000ms);
    sched::advance_due(due, 1000, t0 + 5300ms);  // a whole interval behind: one interval from now
    EXPECT_EQ(due, t0 + 6300ms);
    due = t0;
    sched::advance_due(due, 0, t0);  // at least 10 ms
    EXPECT_EQ(due, t0 + 10ms);
}

// Targets keep their phase across restarts and upgrades only if these never change.
TEST(Sched, FirstOffsetsAreStableAcrossBuilds) {
    const uint32_t probe[] = {521, 43, 1004, 666};
    const uint32_t scrape[] = {214, 139, 265, 389};
    for (int i = 0; i < 4; ++i) {
        TargetKey k;
        k.endpoint = Endpoint{*IpAddr::parse(i % 2 ? "10.0.0.5" : "fd00::7"), uint16_t(8000 + i)};
        k.kind = i == 3 ? HealthCheckKind::tcp : HealthCheckKind::http;
        k.path = i == 3 ? "" : "/health";
        k.expect_status = i == 3 ? 0 : 200;
        k.interval_ms = uint32_t(1000 + 37 * i);
        k.timeout_ms = 500;
        k.rise = 2;
        k.fall = 3;
        EXPECT_EQ(first_probe_offset_ms(k), probe[i]) << i;

        LoadTargetKey l;
        l.backend = k.endpoint;
        l.settings.enabled = true;
        l.settings.format = i == 1 ? LoadMetricsFormat::tgi : LoadMetricsFormat::vllm;
        l.settings.port = uint16_t(i == 2 ? 9000 : 0);
        l.settings.interval_ms = uint32_t(250 + 91 * i);
        l.settings.timeout_ms = 100;
        EXPECT_EQ(first_scrape_offset_ms(l), scrape[i]) << i;
    }
    sched::OffsetHash h;
    h.value(uint32_t(7));
    EXPECT_EQ(h.offset_ms(0), 0u);
}

}  // namespace ferry::health
