// Helpers shared by the transport tests: temp dirs, a raw Unix-socket client,
// and a "control thread" that keeps calling ControlServer::poll().
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "ops/control_server.hpp"

namespace ferry::test {

// A fresh directory under $TMPDIR, removed with everything in it.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "ferry-ops-XXXXXX").string();
        char* p = ::mkdtemp(tmpl.data());
        if (p) path = p;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

// A connected Unix stream socket, or -1.
inline int unix_connect(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

inline bool send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += std::size_t(n);
    }
    return true;
}

// Everything until EOF (or `timeout`), as the server closes after answering.
inline std::string read_all(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, int(left.count())) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, std::size_t(n));
    }
    return out;
}

// One request/response exchange with raw bytes; "" when the connection fails.
inline std::string roundtrip(const std::string& path, const std::string& raw) {
    int fd = unix_connect(path);
    if (fd < 0) return "";
    send_all(fd, raw);
    std::string r = read_all(fd);
    ::close(fd);
    return r;
}

inline nlohmann::json ask(const std::string& path, const nlohmann::json& request) {
    std::string r = roundtrip(path, request.dump() + "\n");
    return nlohmann::json::parse(r, nullptr, false);
}

// Plays ferryd's control thread: calls poll() until destroyed.
class ControlLoop {
public:
    explicit ControlLoop(ops::ControlServer& server) : server_(server), thread_([this] { run(); }) {}
    ~ControlLoop() {
        stop_.store(true);
        thread_.join();
    }
    std::thread::id id() const { return thread_.get_id(); }

private:
    void run() {
        while (!stop_.load()) {
            server_.poll();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    ops::ControlServer& server_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace ferry::test
