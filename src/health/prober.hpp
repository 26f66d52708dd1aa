// Active probes on plain POSIX sockets: TCP connect and HTTP GET, many at once,
// non-blocking and multiplexed with poll() by the one thread that owns the
// Prober (the health checker's). No DPDK, so it is tested against loopback
// servers.
//
// A probe's timeout covers all of it: connect, sending the request and
// reading the status line. Sockets are closed with SO_LINGER 0 (RST), so
// thousands of probes a minute leave no TIME_WAIT behind on the balancer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip_address.hpp"
#include "config/config.hpp"
#include "health/health_state.hpp"

namespace ferry::health {

using Clock = std::chrono::steady_clock;

// One probe to run: where to connect and what counts as an answer.
struct ProbeSpec {
    HealthCheckKind kind = HealthCheckKind::tcp;  // tcp or http; none is never probed
    Endpoint target;                              // address and port to connect to
    std::string path = "/health";                 // http: request target
    uint16_t expect_status = 200;                 // http: the status that means ok
    uint32_t timeout_ms = 500;                    // whole probe, connect to status line
};

// The verdict of one probe.
struct ProbeResult {
    Outcome outcome = Outcome::fail;
    // Time from the start of the probe to the connect (tcp) or to the end of the
    // status line (http); for a failure, the time until it failed.
    uint32_t rtt_us = 0;
    int http_status = 0;  // 0 when no status line was read
    // Operator-readable: "tcp connect: ok", "tcp connect: refused",
    // "http GET /health: status 503", "http GET /health: timeout after 500 ms ...".
    std::string detail;
};

// Runs probes concurrently on non-blocking sockets. Owned by one thread: only
// wake() may be called from others.
class Prober {
public:
    // source_address: bind probes to this local address (empty = let the kernel
    // choose). It applies to targets of its own family only. Throws
    // std::invalid_argument if it does not parse, std::system_error if the
    // wake-up eventfd cannot be made.
    explicit Prober(std::string_view source_address = {});
    ~Prober();
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;

    // Starts a probe. Its result comes out of a later poll(), even when it
    // failed at once (socket or connect error). `id` is the caller's tag.
    void start(uint64_t id, const ProbeSpec& spec);

    // Waits for socket events until a probe finishes, `until` passes or wake()
    // is called, then returns the probes that finished (possibly none).
    // Probes past their deadline finish as timeouts.
    std::vector<std::pair<uint64_t, ProbeResult>> poll(Clock::time_point until);

    // Makes a poll() in progress (or the next one) return early. Thread-safe.
    void wake();

    // Drops every probe in flight without a result.
    void cancel_all();

    std::size_t in_flight() const;

private:
    struct Probe;
    void finish(Probe& p, Outcome outcome, std::string detail, int status = 0);
    void fail_errno(Probe& p, const char* what, int err);
    void advance(Probe& p, short revents);
    void on_connected(Probe& p);
    void send_request(Probe& p);
    void read_status(Probe& p);

    std::optional<IpAddr> source_;
    int wake_fd_ = -1;
    std::vector<Probe> probes_;
    std::vector<std::pair<uint64_t, ProbeResult>> done_;
};

// Runs one probe to completion on the calling thread (ferryctl, tests).
ProbeResult probe_once(const ProbeSpec& spec, std::string_view source_address = {});

// "GET <path> HTTP/1.1" request with Host and `Connection: close`. Bytes of the
// path that are spaces or controls are percent-encoded.
std::string http_request(const ProbeSpec& spec);

// Status code of an HTTP/1.x status line ("HTTP/1.1 200 OK", without the line
// end), or nullopt if it is not one.
std::optional<int> parse_status_line(std::string_view line);

}  // namespace ferry::health
