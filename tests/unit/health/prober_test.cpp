#include "health/prober.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "test_server.hpp"

namespace ferry::health {

using namespace std::chrono_literals;
using testing::TestServer;

namespace {

ProbeSpec tcp_spec(Endpoint e, uint32_t timeout_ms = 500) {
    ProbeSpec s;
    s.kind = HealthCheckKind::tcp;
    s.target = e;
    s.timeout_ms = timeout_ms;
    return s;
}

ProbeSpec http_spec(Endpoint e, uint32_t timeout_ms = 500, uint16_t expect = 200) {
    ProbeSpec s;
    s.kind = HealthCheckKind::http;
    s.target = e;
    s.path = "/health";
    s.expect_status = expect;
    s.timeout_ms = timeout_ms;
    return s;
}

}  // namespace

TEST(ParseStatusLine, AcceptsHttp1) {
    EXPECT_EQ(parse_status_line("HTTP/1.1 200 OK"), 200);
    EXPECT_EQ(parse_status_line("HTTP/1.0 503 Service Unavailable"), 503);
    EXPECT_EQ(parse_status_line("HTTP/1.1 204"), 204);
    EXPECT_EQ(parse_status_line("HTTP/1.1 404 "), 404);
}

TEST(ParseStatusLine, RejectsGarbage) {
    EXPECT_FALSE(parse_status_line(""));
    EXPECT_FALSE(parse_status_line("HTTP/1.1"));
    EXPECT_FALSE(parse_status_line("HTTP/1.1 20"));
    EXPECT_FALSE(parse_status_line("HTTP/1.1 2000"));
    EXPECT_FALSE(parse_status_line("HTTP/1.1 abc OK"));
    EXPECT_FALSE(parse_status_line("HTTP/11 200 OK"));
    EXPECT_FALSE(parse_status_line("http/1.1 200 OK"));
    EXPECT_FALSE(parse_status_line("HTTP/1.1 099 X"));
    EXPECT_FALSE(parse_status_line("HTTP/1.1 600 X"));
    EXPECT_FALSE(parse_status_line("SSH-2.0-OpenSSH_9.2"));
}

TEST(HttpRequest, HasHostAndConnectionClose) {
    ProbeSpec s = http_spec(testing::loopback(8000));
    EXPECT_EQ(http_request(s),
              "GET /health HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: ferry-health\r\n"
              "Accept: */*\r\nConnection: close\r\n\r\n");
    s.path = "/a b\r\nX: y";
    EXPECT_EQ(http_request(s).substr(0, 30), "GET /a%20b%0D%0AX:%20y HTTP/1.");
    s.path = "";
    EXPECT_EQ(http_request(s).substr(0, 15), "GET / HTTP/1.1\r");
}

TEST(Prober, TcpConnectOk) {
    TestServer srv(TestServer::Mode::tcp);
    ProbeResult r = probe_once(tcp_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::ok);
    EXPECT_EQ(r.detail, "tcp connect: ok");
    EXPECT_LT(r.rtt_us, 500'000u);
}

TEST(Prober, TcpRefused) {
    ProbeResult r = probe_once(tcp_spec(testing::loopback(testing::refused_port())));
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "tcp connect: refused");
}

TEST(Prober, HttpOkSendsHostAndConnectionClose) {
    TestServer srv(TestServer::Mode::http, 200);
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::ok);
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.detail, "http GET /health: status 200");
    const std::string req = srv.last_request();
    EXPECT_EQ(req.rfind("GET /health HTTP/1.1\r\n", 0), 0u) << req;
    EXPECT_NE(req.find("\r\nHost: " + srv.endpoint().to_string() + "\r\n"), std::string::npos) << req;
    EXPECT_NE(req.find("\r\nConnection: close\r\n"), std::string::npos) << req;
}

TEST(Prober, Http503IsDrain) {
    TestServer srv(TestServer::Mode::http, 503);
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::drain);
    EXPECT_EQ(r.http_status, 503);
    EXPECT_EQ(r.detail, "http GET /health: status 503");
}

TEST(Prober, HttpUnexpectedStatusFails) {
    TestServer srv(TestServer::Mode::http, 500);
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "http GET /health: status 500 (expected 200)");
}

TEST(Prober, HttpExpectedStatusIsConfigurable) {
    TestServer srv(TestServer::Mode::http, 204);
    EXPECT_EQ(probe_once(http_spec(srv.endpoint(), 500, 204)).outcome, Outcome::ok);
    EXPECT_EQ(probe_once(http_spec(srv.endpoint(), 500, 200)).outcome, Outcome::fail);
}

TEST(Prober, HttpRefused) {
    ProbeResult r = probe_once(http_spec(testing::loopback(testing::refused_port())));
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "http GET /health: connect: refused");
}

TEST(Prober, SilentServerTimesOut) {
    TestServer srv(TestServer::Mode::silent);
    const auto t0 = Clock::now();
    ProbeResult r = probe_once(http_spec(srv.endpoint(), 100));
    const auto took = Clock::now() - t0;
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "http GET /health: timeout after 100 ms (waiting for the status line)");
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 2s);
    EXPECT_GE(r.rtt_us, 100'000u);
}

TEST(Prober, StatusLineInPieces) {
    TestServer srv(TestServer::Mode::raw);
    srv.set_raw({"HTTP/1.1 2", "00 OK", "\r\nContent-Length: 0\r\n\r\n"});
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::ok) << r.detail;
    EXPECT_GE(r.rtt_us, 40'000u);  // two 20 ms pauses before the line ended
}

TEST(Prober, MalformedStatusLine) {
    TestServer srv(TestServer::Mode::raw);
    srv.set_raw({"SSH-2.0-OpenSSH\x01\r\n"});
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "http GET /health: malformed status line \"SSH-2.0-OpenSSH?\"");
}

TEST(Prober, ClosedBeforeStatusLine) {
    TestServer srv(TestServer::Mode::raw);
    srv.set_raw({"HTTP/1.1 20"});
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "http GET /health: connection closed before the status line");
}

TEST(Prober, EndlessStatusLineIsCut) {
    TestServer srv(TestServer::Mode::raw);
    srv.set_raw({std::string(4000, 'H')});
    ProbeResult r = probe_once(http_spec(srv.endpoint()));
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail, "http GET /health: status line too long");
}

TEST(Prober, ManyProbesRunAtOnce) {
    // 40 probes of 200 ms each to a silent server: multiplexed, they all end
    // about 200 ms later rather than 8 s later one after the other.
    TestServer srv(TestServer::Mode::silent);
    Prober prober;
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < 40; ++i) prober.start(i, http_spec(srv.endpoint(), 200));
    EXPECT_EQ(prober.in_flight(), 40u);
    std::vector<bool> seen(40, false);
    std::size_t n = 0;
    while (n < 40 && Clock::now() - t0 < 5s) {
        for (auto& [id, r] : prober.poll(Clock::now() + 1s)) {
            ASSERT_LT(id, 40u);
            EXPECT_FALSE(seen[id]);
            seen[id] = true;
            ++n;
            EXPECT_NE(r.detail.find("timeout after 200 ms"), std::string::npos) << r.detail;
        }
    }
    EXPECT_EQ(n, 40u);
    EXPECT_LT(Clock::now() - t0, 1500ms);
    EXPECT_EQ(prober.in_flight(), 0u);
}

TEST(Prober, MixedProbesReportTheirOwnResults) {
    TestServer ok(TestServer::Mode::http, 200);
    TestServer drain(TestServer::Mode::http, 503);
    Prober prober;
    prober.start(1, http_spec(ok.endpoint()));
    prober.start(2, http_spec(drain.endpoint()));
    prober.start(3, tcp_spec(testing::loopback(testing::refused_port())));
    std::map<uint64_t, Outcome> got;
    const auto t0 = Clock::now();
    while (got.size() < 3 && Clock::now() - t0 < 5s)
        for (auto& [id, r] : prober.poll(Clock::now() + 1s)) got[id] = r.outcome;
    EXPECT_EQ(got[1], Outcome::ok);
    EXPECT_EQ(got[2], Outcome::drain);
    EXPECT_EQ(got[3], Outcome::fail);
}

TEST(Prober, WakeEndsPollEarly) {
    Prober prober;
    std::thread waker([&] {
        std::this_thread::sleep_for(50ms);
        prober.wake();
    });
    const auto t0 = Clock::now();
    auto results = prober.poll(Clock::now() + 10s);
    waker.join();
    EXPECT_TRUE(results.empty());
    EXPECT_LT(Clock::now() - t0, 2s);
}

TEST(Prober, SourceAddress) {
    TestServer srv(TestServer::Mode::tcp);
    EXPECT_EQ(probe_once(tcp_spec(srv.endpoint()), "127.0.0.1").outcome, Outcome::ok);
    // Another family's source address does not apply to an IPv4 target.
    EXPECT_EQ(probe_once(tcp_spec(srv.endpoint()), "::1").outcome, Outcome::ok);
    EXPECT_THROW(Prober("not-an-address"), std::invalid_argument);
}

TEST(Prober, BindFailureIsReported) {
    // 192.0.2.1 (TEST-NET-1) is not a local address, so bind() fails.
    ProbeResult r = probe_once(tcp_spec(testing::loopback(testing::refused_port())), "192.0.2.1");
    EXPECT_EQ(r.outcome, Outcome::fail);
    EXPECT_EQ(r.detail.rfind("tcp connect: bind 192.0.2.1: ", 0), 0u) << r.detail;
}

TEST(Prober, CancelAllDropsProbes) {
    TestServer srv(TestServer::Mode::silent);
    Prober prober;
    prober.start(1, http_spec(srv.endpoint(), 5000));
    prober.cancel_all();
    EXPECT_EQ(prober.in_flight(), 0u);
    EXPECT_TRUE(prober.poll(Clock::now() + 10ms).empty());
}

}  // namespace ferry::health
