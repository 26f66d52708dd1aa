// Loopback servers for the health tests: a thread accepting on 127.0.0.1 at an
// ephemeral port (never a fixed one), answering the way a test needs.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/ip_address.hpp"

namespace ferry::health::testing {

inline Endpoint loopback(uint16_t port) { return Endpoint{IpAddr::v4(0x7f000001u), port}; }

// A socket bound to 127.0.0.1:0 and listening (backlog 128), or -1.
inline int listen_loopback(uint16_t& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sin), len) < 0 || ::listen(fd, 128) < 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) < 0) {
        ::close(fd);
        return -1;
    }
    port = ntohs(sin.sin_port);
    return fd;
}

// A loopback port nobody listens on: bound, then closed, so connects are refused.
inline uint16_t refused_port() {
    uint16_t port = 0;
    int fd = listen_loopback(port);
    if (fd < 0) throw std::runtime_error("cannot bind 127.0.0.1:0");
    ::close(fd);
    return port;
}

// One server with a thread; how it answers depends on the mode.
class TestServer {
public:
    enum class Mode {
        tcp,     // accept, then close at once
        http,    // read the request, answer `status` with an empty body, close
        silent,  // accept and never answer (connections stay open until destruction)
        raw,     // read the request, write `raw_parts` with 20 ms pauses between, close
    };

    explicit TestServer(Mode mode, int status = 200) : mode_(mode), status_(status) {
        fd_ = listen_loopback(port_);
        if (fd_ < 0 || ::pipe(stop_pipe_) < 0) throw std::runtime_error("test server setup failed");
        thread_ = std::thread([this] { run(); });
    }
    ~TestServer() {
        char c = 'x';
        if (::write(stop_pipe_[1], &c, 1) < 0) {
        }
        thread_.join();
        for (int fd : held_) ::close(fd);
        ::close(fd_);
        ::close(stop_pipe_[0]);
        ::close(stop_pipe_[1]);
    }
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    uint16_t port() const { return port_; }
    Endpoint endpoint() const { return loopback(port_); }
    void set_status(int s) { status_.store(s); }
    void set_raw(std::vector<std::string> parts) {
        std::lock_guard lock(mu_);
        raw_parts_ = std::move(parts);
    }
    int accepted() const { return accepted_.load(); }
    // Answers sent with this status so far.
    int answered(int status) const {
        std::lock_guard lock(mu_);
        auto it = answered_.find(status);
        return it == answered_.end() ? 0 : it->second;
    }
    std::string last_request() const {
        std::lock_guard lock(mu_);
        return last_request_;
    }

private:
    void run() {
        for (;;) {
            pollfd pfds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
            if (::poll(pfds, 2, -1) < 0) continue;
            if (pfds[1].revents) return;
            if (!(pfds[0].revents & POLLIN)) continue;
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            ++accepted_;
            switch (mode_) {
            case Mode::tcp: ::close(c); break;
            case Mode::silent: held_.push_back(c); break;
            case Mode::http:
            case Mode::raw: answer(c); break;
            }
        }
    }

    void answer(int c) {
        std::string req;
        char buf[1024];
        while (req.find("\r\n\r\n") == std::string::npos) {
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, 1000) <= 0) break;
            ssize_t n = ::recv(c, buf, sizeof(buf), 0);
            if (n <= 0) break;
            req.append(buf, std::size_t(n));
        }
        std::vector<std::string> parts;
        const int status = status_.load();
        {
            std::lock_guard lock(mu_);
            last_request_ = req;
            if (mode_ == Mode::raw) {
                parts = raw_parts_;
            } else {
                parts.push_back("HTTP/1.1 " + std::to_string(status) +
                                " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                ++answered_[status];
            }
        }
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            if (::send(c, parts[i].data(), parts[i].size(), MSG_NOSIGNAL) < 0) break;
        }
        ::close(c);
    }

    Mode mode_;
    std::atomic<int> status_;
    int fd_ = -1;
    uint16_t port_ = 0;
    int stop_pipe_[2] = {-1, -1};
    std::thread thread_;
    std::vector<int> held_;  // silent mode; server thread only until join
    std::atomic<int> accepted_{0};
    mutable std::mutex mu_;
    std::vector<std::string> raw_parts_;
    std::map<int, int> answered_;
    std::string last_request_;
};

// Polls `pred` every 5 ms until it holds or `limit` passes; returns its last value.
inline bool wait_for(const std::function<bool()>& pred,
                     std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= end) return pred();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

}  // namespace ferry::health::testing
