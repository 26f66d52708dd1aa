#include "ops/metrics_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace ferry::ops {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPage = "# HELP ferry_up Whether ferryd is up.\n# TYPE ferry_up gauge\nferry_up 1\n";

MetricsServer::Options fast_options() {
    MetricsServer::Options o;
    o.read_timeout = 1s;
    o.write_timeout = 1s;
    o.keep_alive = 1s;
    return o;
}

TEST(MetricsServer, ServesRenderedPageWithPrometheusContentType) {
    std::atomic<int> renders{0};
    MetricsServer server("127.0.0.1:0", [&] {
        renders.fetch_add(1);
        return std::string(kPage);
    });
    server.start();
    ASSERT_GT(server.port(), 0);
    httplib::Client cli("127.0.0.1", server.port());
    auto res = cli.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, kPage);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4");
    EXPECT_EQ(renders.load(), 1);
}

TEST(MetricsServer, EverythingElseIs404) {
    MetricsServer server("127.0.0.1:0", [] { return std::string(kPage); });
    server.start();
    httplib::Client cli("127.0.0.1", server.port());
    for (const char* path : {"/", "/metrics/", "/metricsx", "/debug"}) {
        auto res = cli.Get(path);
        ASSERT_TRUE(res) << path;
        EXPECT_EQ(res->status, 404) << path;
    }
    auto post = cli.Post("/metrics", "x", "text/plain");
    ASSERT_TRUE(post);
    EXPECT_NE(post->status, 200);
}

TEST(MetricsServer, RenderFailureIs500) {
    MetricsServer server("127.0.0.1:0", []() -> std::string { throw std::runtime_error("snapshot gone"); });
    server.start();
    httplib::Client cli("127.0.0.1", server.port());
    auto res = cli.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 500);
    EXPECT_NE(res->body.find("snapshot gone"), std::string::npos);
}

TEST(MetricsServer, SlowClientDoesNotBlockAnother) {
    MetricsServer server(
        "127.0.0.1:0", [] { return std::string(kPage); }, fast_options());
    server.start();
    // A client that connects and sends half a request line, then nothing.
    int slow = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(server.port()));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(slow, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    const char partial[] = "GET /metr";
    ASSERT_GT(::send(slow, partial, sizeof partial - 1, MSG_NOSIGNAL), 0);
    std::this_thread::sleep_for(50ms);

    auto t0 = std::chrono::steady_clock::now();
    httplib::Client cli("127.0.0.1", server.port());
    auto res = cli.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 800ms);
    ::close(slow);
}

TEST(MetricsServer, BindFailureNamesTheAddress) {
    // Occupy a port, then ask the server for it.
    int busy = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(busy, 1), 0);
    socklen_t len = sizeof sa;
    ::getsockname(busy, reinterpret_cast<sockaddr*>(&sa), &len);
    std::string addr = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));

    MetricsServer server(addr, [] { return std::string(); });
    try {
        server.start();
        FAIL() << "bound a port that is in use";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(addr), std::string::npos) << e.what();
    }
    server.stop();
    ::close(busy);
}

TEST(MetricsServer, MalformedListenAddressIsAnError) {
    for (const char* bad :
         {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "host:port", "::1:9108", "[::1]9108"}) {
        MetricsServer server(bad, [] { return std::string(); });
        EXPECT_THROW(server.start(), std::runtime_error) << bad;
    }
}

TEST(MetricsServer, ParsesListenAddresses) {
    std::string host;
    int port = -1;
    ASSERT_TRUE(parse_listen_address("127.0.0.1:9108", host, port));
    EXPECT_EQ(host, "127.0.0.1");
    EXPECT_EQ(port, 9108);
    ASSERT_TRUE(parse_listen_address("[::1]:80", host, port));
    EXPECT_EQ(host, "::1");
    EXPECT_EQ(port, 80);
    ASSERT_TRUE(parse_listen_address(":9108", host, port));
    EXPECT_EQ(host, "0.0.0.0");
}

TEST(MetricsServer, StopRightAfterStartAndRestart) {
    for (int i = 0; i < 20; ++i) {
        MetricsServer server("127.0.0.1:0", [] { return std::string(kPage); });
        server.start();
        server.stop();
        server.stop();
    }
    MetricsServer server("127.0.0.1:0", [] { return std::string(kPage); });
    server.start();
    int port = server.port();
    server.stop();
    // The port is free again.
    MetricsServer again("127.0.0.1:" + std::to_string(port), [] { return std::string(kPage); });
    EXPECT_NO_THROW(again.start());
}

}  // namespace
}  // namespace ferry::ops
