#include "ops/metrics_server.hpp"

#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ferry::ops {

namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4";

}  // namespace

bool parse_listen_address(const std::string& listen, std::string& host, int& port) {
    std::string::size_type colon;
    if (!listen.empty() && listen[0] == '[') {
        std::string::size_type close = listen.find(']');
        if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
            return false;
        host = listen.substr(1, close - 1);
        if (host.empty()) return false;
        colon = close + 1;
    } else {
        colon = listen.rfind(':');
        if (colon == std::string::npos) return false;
        host = listen.substr(0, colon);
        if (host.find(':') != std::string::npos) return false;  // bare IPv6 needs brackets
        if (host.empty()) host = "0.0.0.0";
    }
    std::string digits = listen.substr(colon + 1);
    if (digits.empty() || digits.size() > 5) return false;
    for (char c : digits)
        if (c < '0' || c > '9') return false;
    port = std::stoi(digits);
    return port <= 65535;
}

MetricsServer::MetricsServer(std::string listen, Render render)
    : MetricsServer(std::move(listen), std::move(render), Options{}) {}

MetricsServer::MetricsServer(std::string listen, Render render, Options options)
    : listen_(std::move(listen)), render_(std::move(render)), options_(options) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::start() {
    if (thread_.joinable()) throw std::logic_error("MetricsServer::start() called twice");
    std::string host;
    int port = 0;
    if (!parse_listen_address(listen_, host, port))
        throw std::runtime_error("metrics: invalid listen address '" + listen_ + "' (expected HOST:PORT)");

    auto srv = std::make_unique<httplib::Server>();
    unsigned threads = options_.threads ? options_.threads : 1;
    srv->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    srv->set_read_timeout(options_.read_timeout);
    srv->set_write_timeout(options_.write_timeout);
    srv->set_keep_alive_timeout(options_.keep_alive.count());
    srv->set_keep_alive_max_count(100);
    srv->set_payload_max_length(64 * 1024);
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a
    // second ferryd bind the same port silently and split the scrapes.
    srv->set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    Render render = render_;
    srv->Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
        try {
            res.set_content(render(), kContentType);
        } catch (const std::exception& e) {
            res.status = 500;
            res.set_content(std::string("ferryd: cannot render metrics: ") + e.what() + "\n", "text/plain");
        } catch (...) {
            res.status = 500;
            res.set_content("ferryd: cannot render metrics\n", "text/plain");
        }
    });
    srv->set_error_handler([](const httplib::Request&, httplib::Response& res) {
        if (res.status == 404 && res.body.empty())
            res.set_content("not found; metrics are at /metrics\n", "text/plain");
    });

    errno = 0;
    bool bound;
    if (port == 0) {
        port = srv->bind_to_any_port(host);
        bound = port > 0;
    } else {
        bound = srv->bind_to_port(host, port);
    }
    if (!bound) {
        int err = errno;
        throw std::runtime_error("metrics: cannot listen on " + listen_ +
                                 (err ? std::string(": ") + std::strerror(err) : "") +
                                 " (address in use, or not an address of this host?)");
    }
    port_ = port;
    server_ = std::move(srv);
    thread_done_.store(false);

    // Signals belong to the main thread; the pool threads inherit this mask.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
        thread_ = std::thread([this] {
            try {
                server_->listen_after_bind();
            } catch (...) {
            }
            thread_done_.store(true);
        });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        server_.reset();
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void MetricsServer::stop() {
    if (!thread_.joinable()) return;
    // httplib's stop() does nothing before the listen loop is running: wait for it.
    while (!server_->is_running() && !thread_done_.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server_->stop();
    thread_.join();
    server_.reset();
}

}  // namespace ferry::ops
