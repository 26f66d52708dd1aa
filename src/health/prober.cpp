#include "health/prober.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "health/net_util.hpp"

namespace ferry::health {

namespace {

// Longest status line accepted before the probe gives up on the answer.
constexpr std::size_t kMaxStatusLine = 1024;

std::string prefix(const ProbeSpec& spec) {
    if (spec.kind == HealthCheckKind::http) return "http GET " + spec.path;
    return "tcp connect";
}

uint32_t elapsed_us(Clock::time_point since, Clock::time_point now) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - since).count();
    if (us < 0) return 0;
    return us > int64_t(UINT32_MAX) ? UINT32_MAX : uint32_t(us);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

// One probe in flight. For http, `request` is the GET and `buf` what has arrived of the status line.
struct Prober::Probe : net::Connection {
    uint64_t id = 0;
    ProbeSpec spec;
    Clock::time_point started;
};

Prober::Prober(std::string_view source_address) {
    if (!source_address.empty()) {
        source_ = IpAddr::parse(source_address);
        if (!source_)
            throw std::invalid_argument("health check source address \"" + std::string(source_address) +
                                        "\" is not an IP address");
    }
    wake_fd_ = net::make_wake_fd();
}

Prober::~Prober() {
    cancel_all();
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Prober::cancel_all() {
    for (Probe& p : probes_) p.close();
    probes_.clear();
    done_.clear();
}

void Prober::wake() { net::wake(wake_fd_); }

void Prober::finish(Probe& p, Outcome outcome, std::string detail, int status) {
    p.close();
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
    finish(p, Outcome::fail, d + net::errno_text(err));
}

void Prober::start(uint64_t id, const ProbeSpec& spec) {
    Probe p;
    p.id = id;
    p.spec = spec;
    if (p.spec.path.empty()) p.spec.path = "/";
    p.started = Clock::now();
    p.deadline = p.started + std::chrono::milliseconds(spec.timeout_ms);

    std::string what;
    int err = 0;
    switch (net::start_connect(p, spec.target, source_, what, err)) {
    case net::ConnectStart::connected:
        probes_.push_back(std::move(p));
        return on_connected(probes_.back());
    case net::ConnectStart::in_progress: probes_.push_back(std::move(p)); return;
    case net::ConnectStart::failed: return fail_errno(p, what.c_str(), err);
    }
}

void Prober::on_connected(Probe& p) {
    if (p.spec.kind != HealthCheckKind::http) return finish(p, Outcome::ok, prefix(p.spec) + ": ok");
    p.request = http_request(p.spec);
    p.phase = Probe::Phase::sending;
    send_request(p);
}

void Prober::send_request(Probe& p) {
    if (const int err = net::send_pending(p); err != 0) fail_errno(p, "send", err);
}

void Prober::read_status(Probe& p) {
    for (;;) {
        const ssize_t n = net::recv_some(p, 512);
        if (n == -EAGAIN) return;
        if (n < 0) return fail_errno(p, "recv", int(-n));
        if (n == 0)
            return finish(p, Outcome::fail, prefix(p.spec) + ": connection closed before the status line");
        if (p.buf.find('\n') == std::string::npos) {
            if (p.buf.size() > kMaxStatusLine)
                return finish(p, Outcome::fail, prefix(p.spec) + ": status line too long");
            continue;
        }
        std::string error;
        const auto status = net::response_status(p.buf, error);
        if (!status) return finish(p, Outcome::fail, prefix(p.spec) + ": " + error);
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
        if (const int err = net::connect_error(p.fd); err != 0) return fail_errno(p, "connect", err);
        if (revents & POLLOUT) return on_connected(p);
        return finish(p, Outcome::fail, prefix(p.spec) + ": connection closed while connecting");
    }
    case Probe::Phase::sending: return send_request(p);
    case Probe::Phase::reading: return read_status(p);
    case Probe::Phase::done: return;
    }
}

std::vector<std::pair<uint64_t, ProbeResult>> Prober::poll(Clock::time_point until) {
    net::poll_connections(wake_fd_, probes_, until, !done_.empty(),
                          [this](Probe& p, short revents) { advance(p, revents); });

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
    return net::get_request(spec.target, spec.path, "User-Agent: ferry-health\r\nAccept: */*\r\n");
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
