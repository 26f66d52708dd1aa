#include "health/net_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>

#include "health/prober.hpp"  // parse_status_line

namespace ferry::health::net {

socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof(ss));
    if (e.addr.is_v4()) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(e.port);
        std::memcpy(&sin.sin_addr, e.addr.bytes.data(), 4);
        std::memcpy(&ss, &sin, sizeof(sin));
        return sizeof(sin);
    }
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(e.port);
    std::memcpy(&sin6.sin6_addr, e.addr.bytes.data(), 16);
    std::memcpy(&ss, &sin6, sizeof(sin6));
    return sizeof(sin6);
}

std::string errno_text(int err) {
    switch (err) {
    case ECONNREFUSED: return "refused";
    case ETIMEDOUT: return "timed out";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case ECONNRESET: return "reset by peer";
    default: return std::system_category().message(err);
    }
}

std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) out += "...";
    return out;
}

void Connection::close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    phase = Phase::done;
}

ConnectStart start_connect(Connection& c, const Endpoint& target, const std::optional<IpAddr>& source,
                           std::string& what, int& err) {
    auto failed = [&](std::string call) {
        what = std::move(call);
        err = errno;
        return ConnectStart::failed;
    };
    c.fd = ::socket(target.addr.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return failed("socket");

    const linger lg{1, 0};
    ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));

    sockaddr_storage ss;
    if (source && source->family == target.addr.family) {
        const int one = 1;
        ::setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        const socklen_t len = to_sockaddr(Endpoint{*source, 0}, ss);
        if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&ss), len) < 0)
            return failed("bind " + source->to_string());
    }

    const socklen_t len = to_sockaddr(target, ss);
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0) return ConnectStart::connected;
    if (errno == EINPROGRESS) return ConnectStart::in_progress;
    return failed("connect");
}

int connect_error(int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    return err;
}

int send_pending(Connection& c) {
    while (c.sent < c.request.size()) {
        const ssize_t n = ::send(c.fd, c.request.data() + c.sent, c.request.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) {
            c.sent += std::size_t(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;  // wait for POLLOUT
        } else {
            return n < 0 ? errno : EPIPE;
        }
    }
    c.phase = Connection::Phase::reading;
    return 0;
}

ssize_t recv_some(Connection& c, std::size_t max) {
    for (;;) {
        const std::size_t old = c.buf.size();
        c.buf.resize(old + max);
        const ssize_t n = ::recv(c.fd, c.buf.data() + old, max, 0);
        const int err = errno;
        c.buf.resize(old + (n > 0 ? std::size_t(n) : 0));
        if (n >= 0) return n;
        if (err == EINTR) continue;
        return err == EWOULDBLOCK ? -EAGAIN : -err;
    }
}

int make_wake_fd() {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "eventfd");
    return fd;
}

void wake(int wake_fd) {
    const uint64_t one = 1;
    // Only fails if the counter would overflow: then a wake-up is pending anyway.
    if (::write(wake_fd, &one, sizeof(one)) < 0) {
    }
}

int wait_for_events(std::vector<pollfd>& pfds, Clock::time_point until, bool dont_wait) {
    int timeout_ms = 0;
    const auto now = Clock::now();
    if (!dont_wait && until > now) {
        // Round up: waking a little late is fine, waking early spins.
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
        timeout_ms = int(std::min<int64_t>(ms, INT_MAX));
    }
    const int n = ::poll(pfds.data(), nfds_t(pfds.size()), timeout_ms);
    if (n > 0 && (pfds[0].revents & POLLIN)) {
        uint64_t count;
        if (::read(pfds[0].fd, &count, sizeof(count)) < 0) {
        }
    }
    return n;
}

std::string get_request(const Endpoint& host, std::string_view path, std::string_view headers) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string target;
    for (unsigned char c : path.empty() ? std::string_view("/") : path) {
        if (c <= 0x20 || c >= 0x7f) {
            target += '%';
            target += kHex[c >> 4];
            target += kHex[c & 0xf];
        } else {
            target += char(c);
        }
    }
    return "GET " + target + " HTTP/1.1\r\nHost: " + host.to_string() + "\r\n" + std::string(headers) +
           "Connection: close\r\n\r\n";
}

std::optional<int> response_status(std::string_view head, std::string& error) {
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto status = parse_status_line(line);
    if (!status) error = "malformed status line \"" + printable(line, 64) + "\"";
    return status;
}

}  // namespace ferry::health::net

namespace ferry::health::sched {

void OffsetHash::bytes(const void* data, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ull;
}

uint32_t OffsetHash::offset_ms(uint32_t interval_ms) const {
    if (interval_ms == 0) return 0;
    // splitmix64's finaliser.
    uint64_t h = h_;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    return uint32_t(h % interval_ms);
}

void advance_due(std::chrono::steady_clock::time_point& next_due, uint32_t interval_ms,
                 std::chrono::steady_clock::time_point now) {
    const std::chrono::milliseconds interval(std::max(interval_ms, 10u));
    next_due += interval;
    if (next_due <= now) next_due = now + interval;
}

}  // namespace ferry::health::sched
