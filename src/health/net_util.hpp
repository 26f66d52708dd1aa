// Internal helpers of src/health, not part of its interface: the socket, poll() and HTTP plumbing
// shared by the two non-blocking HTTP clients (Prober in prober.cpp, the load scraper's Fetcher in
// load_scraper.cpp), and the scheduling pieces shared by HealthChecker and LoadScraper. Each exists
// so that the two copies cannot drift apart: a fix to one client or scheduler is a fix to both.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip_address.hpp"

namespace ferry::health::net {

using Clock = std::chrono::steady_clock;

// ---- sockets -----------------------------------------------------------------------------------

// sockaddr_in or sockaddr_in6 of `e` in `ss`; returns the length bind() and connect() want.
socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage& ss);

// Short words for the errors operators see most ("refused", "timed out"); the C library's text
// otherwise. Both clients report failures with it, so their messages read alike.
std::string errno_text(int err);

// At most `max` bytes of untrusted text (a peer's status line or header value) for a message, with
// anything unprintable shown as '?' and "..." when cut.
std::string printable(std::string_view s, std::size_t max);

// The part of a client connection that both clients keep; their own per-request state derives
// from it (Prober::Probe, LoadScraper::Fetcher::Fetch) so the helpers below can drive either.
struct Connection {
    enum class Phase : uint8_t { connecting, sending, reading, done };

    int fd = -1;
    Phase phase = Phase::connecting;
    Clock::time_point deadline;  // the whole exchange: connect, request and response
    std::string request;         // the bytes to send
    std::size_t sent = 0;        // how many of them are sent
    std::string buf;             // what has arrived

    // Closes the socket (if open); the connection is done. Sockets close with RST (see below).
    void close();
};

// How start_connect() went.
enum class ConnectStart { connected, in_progress, failed };

// Starts a non-blocking TCP connect of `c` to `target`, bound to `source` when that is of the
// target's family (the local port is still picked at connect() time, by 4-tuple, so binding does
// not use up the ephemeral ports on its own). The socket closes with RST (SO_LINGER 0), so
// thousands of short connections a minute leave no TIME_WAIT behind on the balancer.
// On `failed`, `what` is the call that failed ("socket", "bind 10.0.0.1", "connect") and `err` its
// errno; c.fd may still be open: the caller closes it with its other failures.
ConnectStart start_connect(Connection& c, const Endpoint& target, const std::optional<IpAddr>& source,
                           std::string& what, int& err);

// For a connecting socket that poll() reported: 0 if the connect succeeded, else its errno.
int connect_error(int fd);

// Sends what is left of c.request; once all of it is sent, c.phase becomes reading. Returns 0 when
// all is sent or the socket is full (wait for POLLOUT), else the errno (EPIPE if nothing was taken).
int send_pending(Connection& c);

// Reads at most `max` bytes onto the end of c.buf, retrying on EINTR. Returns how many (0: the peer
// closed), or minus the errno (-EAGAIN: nothing to read yet).
ssize_t recv_some(Connection& c, std::size_t max);

// ---- poll() ------------------------------------------------------------------------------------

// A non-blocking eventfd that wakes a poll() in another thread. Throws std::system_error.
int make_wake_fd();
// Makes a poll() on `wake_fd` in progress (or the next one) return early. Thread-safe.
void wake(int wake_fd);

// Polls `pfds` (pfds[0] the wake-up eventfd, which it empties) until an event or `until`; does not
// wait at all when `dont_wait`. Returns poll()'s result.
int wait_for_events(std::vector<pollfd>& pfds, Clock::time_point until, bool dont_wait);

// One round of a client's poll(): waits on the wake-up eventfd and every connection (POLLOUT while
// connecting or sending, POLLIN while reading) until one is ready, `until` or the earliest deadline
// passes, or wake() is called; not at all when `dont_wait` (results are waiting already). Then calls
// on_ready(conn, revents) for each ready connection that is not done. Timeouts are the caller's.
template <typename Conn, typename OnReady>
void poll_connections(int wake_fd, std::vector<Conn>& conns, Clock::time_point until, bool dont_wait,
                      OnReady&& on_ready) {
    std::vector<pollfd> pfds;
    pfds.reserve(conns.size() + 1);
    pfds.push_back(pollfd{wake_fd, POLLIN, 0});
    for (const Connection& c : conns) {
        const short events = c.phase == Connection::Phase::reading ? POLLIN : POLLOUT;
        pfds.push_back(pollfd{c.fd, events, 0});  // fd -1 (already done) is ignored by poll()
        if (c.phase != Connection::Phase::done) until = std::min(until, c.deadline);
    }
    if (wait_for_events(pfds, until, dont_wait) <= 0) return;
    for (std::size_t i = 0; i < conns.size(); ++i)
        if (pfds[i + 1].revents != 0 && conns[i].phase != Connection::Phase::done)
            on_ready(conns[i], pfds[i + 1].revents);
}

// ---- HTTP --------------------------------------------------------------------------------------

// "GET <path> HTTP/1.1" with Host, then `headers` (whole lines, each ending in "\r\n"), then
// `Connection: close`. Bytes of the path that are spaces, controls or not ASCII are
// percent-encoded; an empty path is "/".
std::string get_request(const Endpoint& host, std::string_view path, std::string_view headers);

// The status code on the first line of `head` (a response from its start, at least its whole first
// line), or nullopt with `error` set to `malformed status line "<the line>"`.
std::optional<int> response_status(std::string_view head, std::string& error);

}  // namespace ferry::health::net

// ---- schedules and event queues (HealthChecker, LoadScraper) -----------------------------------

namespace ferry::health::sched {

// Where in its interval a target's first probe or scrape falls: FNV-1a over the target's key,
// finished with a 64-bit avalanche (FNV's low bits mix poorly). The same in every process and build,
// unlike std::hash, so many targets spread over the interval and keep their phase across restarts.
class OffsetHash {
public:
    void bytes(const void* data, std::size_t n);
    template <typename T>
    void value(T v) {
        bytes(&v, sizeof(v));
    }
    // In [0, interval_ms); 0 for interval 0.
    uint32_t offset_ms(uint32_t interval_ms) const;

private:
    uint64_t h_ = 0xcbf29ce484222325ull;
};

// Moves a target that is being started now to its next due time: one interval (at least 10 ms)
// later, keeping the phase, or one interval from now if the thread fell behind by a whole one.
void advance_due(std::chrono::steady_clock::time_point& next_due, uint32_t interval_ms,
                 std::chrono::steady_clock::time_point now);

// Queues `event`, keeping at most `max` (0: none): the oldest go first, each counted in `dropped`.
template <typename T>
void push_bounded(std::deque<T>& queue, T event, std::size_t max, uint64_t& dropped) {
    if (max == 0) {
        ++dropped;
        return;
    }
    while (queue.size() >= max) {
        queue.pop_front();
        ++dropped;
    }
    queue.push_back(std::move(event));
}

// Empties `queue` into a vector, oldest first.
template <typename T>
std::vector<T> take_all(std::deque<T>& queue) {
    std::vector<T> out(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.end()));
    queue.clear();
    return out;
}

}  // namespace ferry::health::sched
