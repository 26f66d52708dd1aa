// Prometheus scrape endpoint of ferryd: GET /metrics over plain HTTP.
//
// Runs cpp-httplib on its own threads (a small pool), so render() is called on
// one of those threads and must be safe to call concurrently with the control
// thread and the workers (read counters with relaxed loads, configs through a
// published shared_ptr). Everything but /metrics is 404.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace ferry::ops {

// Serves the text render() returns at /metrics, from its own threads.
class MetricsServer {
public:
    // Produces the whole exposition page (see PromWriter). Exceptions become HTTP 500.
    using Render = std::function<std::string()>;

    // Bounds that keep slow scrapers from holding the server.
    struct Options {
        unsigned threads = 4;                   // connections served at once
        std::chrono::seconds read_timeout{3};   // per read of the request
        std::chrono::seconds write_timeout{3};  // per write of the response
        std::chrono::seconds keep_alive{3};     // idle time before a request (or the next one)
    };

    // `listen`: "HOST:PORT", "[V6ADDR]:PORT" or ":PORT" (all addresses); port 0
    // picks a free port (see port()).
    MetricsServer(std::string listen, Render render);
    MetricsServer(std::string listen, Render render, Options options);
    ~MetricsServer();  // stop()
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Binds synchronously, then serves on a thread. Throws std::runtime_error
    // naming the address when it is malformed or cannot be bound.
    void start();
    // Stops accepting, waits for requests in flight. Idempotent.
    void stop();

    int port() const { return port_; }  // the bound port once started
    const std::string& listen_address() const { return listen_; }

private:
    std::string listen_;
    Render render_;
    Options options_;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    std::atomic<bool> thread_done_{false};
    int port_ = 0;
};

// Splits "HOST:PORT" / "[V6]:PORT" / ":PORT"; false when malformed. Exposed for tests.
bool parse_listen_address(const std::string& listen, std::string& host, int& port);

}  // namespace ferry::ops
