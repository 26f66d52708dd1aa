#include "health/prober.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace ferry::health {

namespace {

// Longest status line accepted before the probe gives up on the answer.
constexpr std::size_t kMaxStatusLine = 1024;

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

// Short words for the errors operators see most; the C library's text otherwise.
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

std::string prefix(const ProbeSpec& spec) {
    if (spec.kind == HealthCheckKind::http) return "http GET " + spec.path;
    return "tcp connect";
}

uint32_t elapsed_us(Clock::time_point since, Clock::time_point now) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - since).count();
    if (us < 0) return 0;
    return us > int64_t(UINT32_MAX) ? UINT32_MAX : uint32_t(us);
}

// At most `max` bytes of untrusted text, with anything unprintable shown as '?'.
std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) out += "...";
    return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

// One probe in flight.
struct Prober::Probe {
    enum class Phase : uint8_t { connecting, sending, reading, done };

    uint64_t id = 0;
    ProbeSpec spec;
    int fd = -1;
    Phase phase = Phase::connecting;
    Clock::time_point started;
    Clock::time_point deadline;
    std::string request;  // http: the bytes to send
    std::size_t sent = 0;
    std::string buf;      // http: what has arrived of the status line
};

Prober::Prober(std::string_view source_address) {
    if (!source_address.empty()) {
        source_ = IpAddr::parse(source_address);
        if (!source_)
            throw std::invalid_argument("health check source address \"" + std::string(source_address) +
                                        "\" is not an IP address");
    }
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
}

Prober::~Prober() {
    cancel_all();
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Prober::cancel_all() {
    for (Probe& p : probes_)
        if (p.fd >= 0) ::close(p.fd);
    probes_.clear();
    done_.clear();
}

void Prober::wake() {
    const uint64_t one = 1;
    // Only fails if the counter would overflow: then a wake-up is pending anyway.
    if (::write(wake_fd_, &one, sizeof(one)) < 0) {
    }
}

void Prober::finish(Probe& p, Outcome outcome, std::string detail, int status) {
    if (p.fd >= 0) ::close(p.fd);
    p.fd = -1;
    p.phase = Probe::Phase::done;
    ProbeResult r;
    r.outcome = outcome;
    r.rtt_us = elapsed_us(p.started, Clock::now());
    r.http_status = status;
    r.detail = std::move(detail);
    done_.emplace_back(p.id, std::move(r));
}

void Prober::fail_errno(Probe& p, const char* what, int err) {
    std::string d = prefix(p.spec) + ": ";
    // "tcp connect: refused" rather than "tcp connect: connect: refused".
    const bool tcp_connect = p.spec.kind != HealthCheckKind::http && std::strcmp(what, "connect") == 0;
    if (!tcp_connect) d += std::string(what) + ": ";
    finish(p, Outcome::fail, d + errno_text(err));
}

void Prober::start(uint64_t id, const ProbeSpec& spec) {
    Probe p;
    p.id = id;
    p.spec = spec;
    if (p.spec.path.empty()) p.spec.path = "/";
    p.started = Clock::now();
    p.deadline = p.started + std::chrono::milliseconds(spec.timeout_ms);

    const bool v4 = spec.target.addr.is_v4();
    p.fd = ::socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p.fd < 0) return fail_errno(p, "socket", errno);

    // Close with RST: no TIME_WAIT for every probe on the balancer's side.
    const linger lg{1, 0};
    ::setsockopt(p.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));

    sockaddr_storage ss;
    if (source_ && source_->family == spec.target.addr.family) {
        // Pick the local port at connect() time, by 4-tuple, so bind() does not
        // use up the ephemeral ports on its own.
        const int one = 1;
        ::setsockopt(p.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        const socklen_t len = to_sockaddr(Endpoint{*source_, 0}, ss);
        if (::bind(p.fd, reinterpret_cast<const sockaddr*>(&ss), len) < 0)
            return fail_errno(p, ("bind " + source_->to_string()).c_str(), errno);
    }

    const socklen_t len = to_sockaddr(spec.target, ss);
    if (::connect(p.fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0) {
        probes_.push_back(std::move(p));
        on_connected(probes_.back());
    } else if (errno == EINPROGRESS) {
        probes_.push_back(std::move(p));
    } else {
        fail_errno(p, "connect", errno);
    }
}

void Prober::on_connected(Probe& p) {
    if (p.spec.kind != HealthCheckKind::http) return finish(p, Outcome::ok, prefix(p.spec) + ": ok");
    p.request = http_request(p.spec);
    p.phase = Probe::Phase::sending;
    send_request(p);
}

void Prober::send_request(Probe& p) {
    while (p.sent < p.request.size()) {
        const ssize_t n = ::send(p.fd, p.request.data() + p.sent, p.request.size() - p.sent, MSG_NOSIGNAL);
        if (n > 0) {
            p.sent += std::size_t(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;  // wait for POLLOUT
        } else {
            return fail_errno(p, "send", n < 0 ? errno : EPIPE);
        }
    }
    p.phase = Probe::Phase::reading;
}

void Prober::read_status(Probe& p) {
    for (;;) {
        char chunk[512];
        const ssize_t n = ::recv(p.fd, chunk, sizeof(chunk), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            return fail_errno(p, "recv", errno);
        }
        if (n == 0)
            return finish(p, Outcome::fail, prefix(p.spec) + ": connection closed before the status line");
        p.buf.append(chunk, std::size_t(n));
        const auto nl = p.buf.find('\n');
        if (nl == std::string::npos) {
            if (p.buf.size() > kMaxStatusLine)
                return finish(p, Outcome::fail, prefix(p.spec) + ": status line too long");
            continue;
        }
        std::string_view line(p.buf.data(), nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const auto status = parse_status_line(line);
        if (!status)
            return finish(p, Outcome::fail,
                          prefix(p.spec) + ": malformed status line \"" + printable(line, 64) + "\"");
        std::string d = prefix(p.spec) + ": status " + std::to_string(*status);
        if (*status == p.spec.expect_status) return finish(p, Outcome::ok, d, *status);
        if (*status == 503) return finish(p, Outcome::drain, d, *status);
        d += " (expected " + std::to_string(p.spec.expect_status) + ")";
        return finish(p, Outcome::fail, d, *status);
    }
}

void Prober::advance(Probe& p, short revents) {
    switch (p.phase) {
    case Probe::Phase::connecting: {
        int err = 0;
        socklen_t len = sizeof(err);
        if (::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) return fail_errno(p, "connect", err);
        if (revents & POLLOUT) return on_connected(p);
        return finish(p, Outcome::fail, prefix(p.spec) + ": connection closed while connecting");
    }
    case Probe::Phase::sending: return send_request(p);
    case Probe::Phase::reading: return read_status(p);
    case Probe::Phase::done: return;
    }
}

std::vector<std::pair<uint64_t, ProbeResult>> Prober::poll(Clock::time_point until) {
    std::vector<pollfd> pfds;
    pfds.reserve(probes_.size() + 1);
    pfds.push_back(pollfd{wake_fd_, POLLIN, 0});
    Clock::time_point wait_until = until;
    for (const Probe& p : probes_) {
        const short events = p.phase == Probe::Phase::reading ? POLLIN : POLLOUT;
        pfds.push_back(pollfd{p.fd, events, 0});  // fd -1 (already done) is ignored by poll()
        if (p.phase != Probe::Phase::done) wait_until = std::min(wait_until, p.deadline);
    }

    int timeout_ms = 0;
    const auto now = Clock::now();
    if (done_.empty() && wait_until > now) {
        // Round up: waking a little late is fine, waking early spins.
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait_until - now).count();
        timeout_ms = int(std::min<int64_t>(ms, INT_MAX));
    }

    const int n = ::poll(pfds.data(), nfds_t(pfds.size()), timeout_ms);
    if (n > 0) {
        if (pfds[0].revents & POLLIN) {
            uint64_t count;
            if (::read(wake_fd_, &count, sizeof(count)) < 0) {
            }
        }
        for (std::size_t i = 0; i < probes_.size(); ++i)
            if (pfds[i + 1].revents != 0 && probes_[i].phase != Probe::Phase::done)
                advance(probes_[i], pfds[i + 1].revents);
    }

    const auto after = Clock::now();
    for (Probe& p : probes_) {
        if (p.phase == Probe::Phase::done || after < p.deadline) continue;
        std::string d = prefix(p.spec) + ": timeout after " + std::to_string(p.spec.timeout_ms) + " ms";
        if (p.spec.kind == HealthCheckKind::http)
            d += p.phase == Probe::Phase::connecting ? " (connecting)" : " (waiting for the status line)";
        finish(p, Outcome::fail, std::move(d));
    }
    std::erase_if(probes_, [](const Probe& p) { return p.phase == Probe::Phase::done; });
    return std::exchange(done_, {});
}

std::size_t Prober::in_flight() const { return probes_.size(); }

ProbeResult probe_once(const ProbeSpec& spec, std::string_view source_address) {
    Prober prober(source_address);
    prober.start(0, spec);
    for (;;) {
        auto results = prober.poll(Clock::now() + std::chrono::hours(1));
        if (!results.empty()) return std::move(results.front().second);
    }
}

std::string http_request(const ProbeSpec& spec) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string path;
    for (unsigned char c : spec.path.empty() ? std::string("/") : spec.path) {
        if (c <= 0x20 || c >= 0x7f) {
            path += '%';
            path += kHex[c >> 4];
            path += kHex[c & 0xf];
        } else {
            path += char(c);
        }
    }
    return "GET " + path + " HTTP/1.1\r\nHost: " + spec.target.to_string() +
           "\r\nUser-Agent: ferry-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
}

std::optional<int> parse_status_line(std::string_view line) {
    // "HTTP/d.d SSS" then the end or a space and a reason phrase.
    if (line.size() < 12 || !line.starts_with("HTTP/")) return std::nullopt;
    if (!is_digit(line[5]) || line[6] != '.' || !is_digit(line[7]) || line[8] != ' ') return std::nullopt;
    if (!is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11])) return std::nullopt;
    if (line.size() > 12 && line[12] != ' ') return std::nullopt;
    const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status < 100 || status > 599) return std::nullopt;
    return status;
}

}  // namespace ferry::health
