#include "ferryctl/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace ferry::ctl {

namespace {

using Clock = std::chrono::steady_clock;
using Kind = ClientError::Kind;

constexpr std::size_t kMaxResponse = 256u << 20;  // a huge flow dump still fits

// Closes the socket on every path out of call().
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s);
    return buf;
}

[[noreturn]] void fail_connect(const std::string& path, int err) {
    switch (err) {
        case ENOENT:
        case ENOTDIR:
            throw ClientError(Kind::not_running, "ferryd is not running (no socket at " + path + ")");
        case ECONNREFUSED:
            throw ClientError(Kind::not_running, "ferryd is not running (no socket at " + path +
                                                     "; a stale socket file is there but nothing listens)");
        case EACCES:
        case EPERM:
            throw ClientError(Kind::permission, "permission denied on " + path +
                                                    ": run as root or as a member of the socket group");
        default:
            throw ClientError(Kind::io, "cannot connect to ferryd on " + path + ": " + std::strerror(err));
    }
}

}  // namespace

nlohmann::json call(const std::string& socket_path, const nlohmann::json& request, double timeout_s) {
    if (!(timeout_s > 0)) timeout_s = 1e6;
    auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    auto ms_left = [&] {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        return int(std::clamp<long long>(left, 0, 1 << 30));
    };
    auto timed_out = [&] {
        return ClientError(Kind::timeout, "no answer from ferryd on " + socket_path + " within " +
                                              seconds_text(timeout_s) + " s");
    };

    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof sa.sun_path)
        throw ClientError(Kind::io, "socket path '" + socket_path + "' is empty or too long");
    std::memcpy(sa.sun_path, socket_path.data(), socket_path.size());

    Fd s;
    s.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s.fd < 0) throw ClientError(Kind::io, std::string("socket(): ") + std::strerror(errno));
    // A blocking connect to a Unix socket waits while the listen backlog is
    // full; SO_SNDTIMEO bounds that wait.
    timeval tv{};
    double whole = std::floor(timeout_s);
    tv.tv_sec = time_t(std::min(whole, 1e6));
    tv.tv_usec = suseconds_t((timeout_s - whole) * 1e6);
    ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (;;) {
        if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) break;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EINPROGRESS || errno == ETIMEDOUT) throw timed_out();
        fail_connect(socket_path, errno);
    }

    std::string line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::size_t sent = 0;
    while (sent < line.size()) {
        pollfd p{s.fd, POLLOUT, 0};
        int rc = ::poll(&p, 1, ms_left());
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0) throw timed_out();
        ssize_t n = ::send(s.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw ClientError(Kind::io, std::string("cannot send to ferryd: ") + std::strerror(errno));
        }
        sent += std::size_t(n);
    }

    std::string in;
    char buf[65536];
    for (;;) {
        pollfd p{s.fd, POLLIN, 0};
        int rc = ::poll(&p, 1, ms_left());
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0) throw timed_out();
        ssize_t n = ::recv(s.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno == ECONNRESET && !in.empty()) break;
            throw ClientError(Kind::io, std::string("cannot read ferryd's answer: ") + std::strerror(errno));
        }
        if (n == 0) break;
        in.append(buf, std::size_t(n));
        if (in.find('\n', in.size() - std::size_t(n)) != std::string::npos) break;
        if (in.size() > kMaxResponse) throw ClientError(Kind::protocol, "ferryd's answer is too large");
    }
    if (std::size_t nl = in.find('\n'); nl != std::string::npos) in.resize(nl);
    if (in.empty()) throw ClientError(Kind::protocol, "ferryd closed the connection without answering");
    nlohmann::json r = nlohmann::json::parse(in, nullptr, false);
    if (r.is_discarded() || !r.is_object() || !r.contains("ok") || !r["ok"].is_boolean())
        throw ClientError(Kind::protocol, "ferryd sent an answer ferryctl does not understand");
    return r;
}

}  // namespace ferry::ctl
