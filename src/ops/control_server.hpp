// The transport of ferryd's control socket (the one ferryctl talks to).
//
// One request per connection: the client sends a single line of JSON ending in
// '\n', the server answers a single line of JSON and closes. See
// docs/CONTROL_API.md for the protocol and the commands.
//
// Threading: a server thread accepts and reads requests and writes responses,
// multiplexing every connection with poll(), so a slow or silent client only
// costs its own connection. It never runs commands: requests are queued, and
// the command handler runs on whatever thread calls poll() (ferryd's control
// thread), so handlers touch control-plane state without locks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace ferry::ops {

// Unix-socket request/response server whose handler runs on the caller of poll().
class ControlServer {
public:
    // Answers one request ({"cmd": ..., args}). Return {"ok": true, ...payload}
    // or {"ok": false, "error": "...", "errors": [...]}; "ok" defaults to true
    // when missing. An exception becomes {"ok": false, "error": what()}.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;
    // Where the server reports problems it cannot return to a client.
    using Logger = std::function<void(const std::string& message)>;

    // Bounds that keep one slow or hostile client from hurting the others.
    struct Limits {
        std::size_t max_request_bytes = 64 * 1024;
        std::chrono::milliseconds read_timeout{2000};      // the whole request line must arrive within
        std::chrono::milliseconds handler_timeout{10000};  // poll() must pick the request up within
        std::chrono::milliseconds write_timeout{2000};     // the client must take the response within
        std::size_t max_connections = 64;                  // more wait in the listen backlog
    };

    ControlServer(const ControlConfig& cfg, Handler handler);
    ControlServer(const ControlConfig& cfg, Handler handler, Limits limits, Logger log = {});
    ~ControlServer();  // stop()
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Creates the socket (parent directory, stale-socket cleanup, mode, group)
    // and starts the server thread. Throws std::runtime_error with a message
    // for the operator: "another ferryd is running on PATH", unknown group, ...
    void start();
    // Stops the thread, closes every connection and removes the socket file.
    // Idempotent; requests still queued are dropped.
    void stop();

    // Non-blocking: runs the handler for every queued request and hands the
    // answers back to the server thread. Call it on the control thread every
    // loop iteration. Returns how many requests were handled.
    std::size_t poll();
    // Sleeps until a request waits for poll() or `timeout` has passed (EINTR
    // ends it early too). Without a started server: sleeps `timeout`. Call it
    // on the thread that calls poll().
    void wait(std::chrono::microseconds timeout);
    // An eventfd that is readable while requests wait for poll(), for a control
    // loop that sleeps in poll()/epoll; poll() drains it. -1 before start().
    int wake_fd() const { return control_efd_; }

    const std::string& socket_path() const { return path_; }
    bool running() const { return thread_.joinable(); }

    struct Pending;  // one request waiting for poll() (internal)

private:
    void serve() noexcept;
    nlohmann::json run_handler(const nlohmann::json& request) noexcept;
    void log(const std::string& message) const noexcept;

    ControlConfig cfg_;
    Handler handler_;
    Limits limits_;
    Logger log_;
    std::string path_;

    int listen_fd_ = -1;
    int server_efd_ = -1;                             // wakes the server thread: answers ready, stop
    int control_efd_ = -1;                            // wakes the control thread: requests queued
    unsigned long long sock_dev_ = 0, sock_ino_ = 0;  // identity of the socket file we created
    std::atomic<bool> stopping_{false};
    std::thread thread_;

    std::mutex queue_mutex_;
    std::deque<std::shared_ptr<Pending>> queue_;
};

}  // namespace ferry::ops
