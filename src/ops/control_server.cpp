#include "ops/control_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <future>
#include <stdexcept>
#include <vector>

namespace ferry::ops {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// One request between the server thread (which waits on `promise`) and poll()
// (which runs the handler). `state` decides who owns it when the control thread
// is late: poll() takes it (queued -> taken) or the server gives up on it
// (queued -> abandoned); never both, so a command the client was told did not
// run really does not run later.
struct ControlServer::Pending {
    enum : int { queued = 0, taken = 1, abandoned = 2 };
    json request;
    std::promise<json> promise;
    std::atomic<int> state{queued};
};

namespace {

std::string errno_text(int err) { return std::strerror(err); }

json error_response(const std::string& message) { return json{{"ok", false}, {"error", message}}; }

// Serialises without throwing on invalid UTF-8 from a handler (becomes U+FFFD).
std::string to_line(const json& j) {
    std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
    s.push_back('\n');
    return s;
}

void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

void signal_efd(int fd) {
    if (fd < 0) return;
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof one);
    (void)n;  // EAGAIN means the counter is already non-zero: the reader wakes anyway
}

void drain_efd(int fd) {
    if (fd < 0) return;
    uint64_t v;
    ssize_t n = ::read(fd, &v, sizeof v);
    (void)n;
}

bool fill_sockaddr(const std::string& path, sockaddr_un& sa) {
    std::memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path) return false;
    std::memcpy(sa.sun_path, path.data(), path.size());
    return true;
}

// mkdir -p of the socket's directory; directories it creates get 0755.
void make_parent_dirs(const std::string& path) {
    std::string::size_type slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    std::string dir = path.substr(0, slash);
    for (std::string::size_type pos = 1; pos <= dir.size(); ++pos) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        std::string part = dir.substr(0, pos);
        if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
            throw std::runtime_error("control socket: cannot create directory " + part + ": " +
                                     errno_text(errno));
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw std::runtime_error("control socket: " + dir + " is not a directory");
}

// Removes a socket file left by a ferryd that died; refuses to touch anything
// else, and refuses to start next to a live ferryd.
void clear_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw std::runtime_error("control socket: cannot inspect " + path + ": " + errno_text(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        throw std::runtime_error("control socket: " + path +
                                 " exists and is not a socket; refusing to replace it");
    sockaddr_un sa;
    fill_sockaddr(path, sa);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error("control socket: socket(): " + errno_text(errno));
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    int err = errno;
    ::close(fd);
    // EAGAIN: a listener whose backlog is full is still a live listener.
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
        throw std::runtime_error("another ferryd is running on " + path);
    if (err != ECONNREFUSED)
        throw std::runtime_error("control socket: cannot check existing socket " + path + ": " +
                                 errno_text(err));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        throw std::runtime_error("control socket: cannot remove stale socket " + path + ": " +
                                 errno_text(errno));
}

gid_t lookup_group(const std::string& name) {
    long size = ::sysconf(_SC_GETGR_R_SIZE_MAX);
    std::vector<char> buf(size > 0 ? std::size_t(size) : 4096);
    for (;;) {
        group gr{};
        group* found = nullptr;
        int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (rc == 0 && found) return found->gr_gid;
        break;
    }
    // A numeric gid is accepted too, for groups that exist only as numbers.
    if (!name.empty() && name.size() < 10 &&
        std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return gid_t(std::stoul(name));
    throw std::runtime_error("control socket: unknown group '" + name + "' (control.socket_group)");
}

// What the server thread knows about one client connection.
struct Conn {
    enum class Phase { reading, waiting, writing };
    int fd = -1;
    Phase phase = Phase::reading;
    std::string in;
    std::size_t scanned = 0;  // bytes of `in` already searched for '\n'
    std::string out;
    std::size_t written = 0;
    Clock::time_point deadline;
    std::shared_ptr<ControlServer::Pending> pending;
    std::future<json> answer;
    bool done = false;
};

}  // namespace

ControlServer::ControlServer(const ControlConfig& cfg, Handler handler)
    : ControlServer(cfg, std::move(handler), Limits{}) {}

ControlServer::ControlServer(const ControlConfig& cfg, Handler handler, Limits limits, Logger log)
    : cfg_(cfg),
      handler_(std::move(handler)),
      limits_(limits),
      log_(std::move(log)),
      path_(cfg.socket_path) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::log(const std::string& message) const noexcept {
    try {
        if (log_)
            log_(message);
        else
            std::fprintf(stderr, "ferryd: control socket: %s\n", message.c_str());
    } catch (...) {
    }
}

void ControlServer::start() {
    if (thread_.joinable()) throw std::logic_error("ControlServer::start() called twice");
    if (!handler_) throw std::invalid_argument("ControlServer: no handler");
    // The socket is bound under a temporary name and linked into place once
    // its mode and group are right, so nobody ever sees it with wrong ones.
    std::string tmp = path_ + "." + std::to_string(::getpid());
    sockaddr_un sa;
    if (!fill_sockaddr(tmp, sa) || !fill_sockaddr(path_, sa))
        throw std::runtime_error("control socket: path '" + path_ + "' is empty or too long (at most " +
                                 std::to_string(sizeof sa.sun_path - 2 - std::to_string(::getpid()).size()) +
                                 " bytes)");
    gid_t gid = gid_t(-1);
    if (!cfg_.socket_group.empty()) gid = lookup_group(cfg_.socket_group);
    make_parent_dirs(path_);
    clear_stale_socket(path_);

    fill_sockaddr(tmp, sa);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::runtime_error("control socket: socket(): " + errno_text(errno));
    auto fail = [&](const std::string& what, int err) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw std::runtime_error("control socket: " + what + ": " + errno_text(err));
    };
    ::unlink(tmp.c_str());  // leftover of a crashed start that had our pid
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) fail("cannot bind " + tmp, errno);
    if (::chmod(tmp.c_str(), cfg_.socket_group.empty() ? 0600 : 0660) != 0) fail("chmod " + tmp, errno);
    // The owner stays ferryd's user (root in production); only the group changes.
    if (gid != gid_t(-1) && ::chown(tmp.c_str(), uid_t(-1), gid) != 0)
        fail("cannot give " + path_ + " to group '" + cfg_.socket_group + "'", errno);
    if (::listen(fd, 64) != 0) fail("listen on " + path_, errno);
    // link() never replaces: a ferryd that appeared since the check keeps its socket.
    if (::link(tmp.c_str(), path_.c_str()) != 0) {
        int err = errno;
        if (err == EEXIST) {
            ::close(fd);
            ::unlink(tmp.c_str());
            throw std::runtime_error("another ferryd is running on " + path_);
        }
        if (::rename(tmp.c_str(), path_.c_str()) != 0) fail("cannot create " + path_, errno);
    }
    ::unlink(tmp.c_str());
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
        sock_dev_ = st.st_dev;
        sock_ino_ = st.st_ino;
    }
    listen_fd_ = fd;

    auto undo = [&] {
        close_fd(server_efd_);
        close_fd(control_efd_);
        close_fd(listen_fd_);
        ::unlink(path_.c_str());
    };
    server_efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    control_efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (server_efd_ < 0 || control_efd_ < 0) {
        int err = errno;
        undo();
        throw std::runtime_error("control socket: eventfd(): " + errno_text(err));
    }

    stopping_.store(false);
    // Signals (SIGINT, SIGHUP, ...) belong to the main thread: the server
    // thread starts with all of them blocked.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
        thread_ = std::thread([this] { serve(); });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        undo();
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void ControlServer::stop() {
    if (!thread_.joinable()) return;
    stopping_.store(true);
    signal_efd(server_efd_);
    thread_.join();
    close_fd(listen_fd_);
    close_fd(server_efd_);
    close_fd(control_efd_);
    // Remove the file only if it is still the socket we created.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
        (unsigned long long)st.st_dev == sock_dev_ && (unsigned long long)st.st_ino == sock_ino_)
        ::unlink(path_.c_str());
    std::deque<std::shared_ptr<Pending>> dropped;
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        dropped.swap(queue_);
    }
    for (auto& p : dropped) p->state.store(Pending::abandoned);
}

json ControlServer::run_handler(const json& request) noexcept {
    try {
        json r = handler_(request);
        if (!r.is_object())
            return error_response("internal error: the command handler returned no JSON object");
        auto ok = r.find("ok");
        if (ok == r.end())
            r["ok"] = true;
        else if (!ok->is_boolean())
            *ok = (*ok == true);
        if (r["ok"] == false) {
            auto e = r.find("error");
            if (e == r.end() || !e->is_string()) r["error"] = "command failed";
        }
        return r;
    } catch (const std::exception& e) {
        try {
            return error_response(e.what());
        } catch (...) {
        }
    } catch (...) {
    }
    try {
        return error_response("internal error: unknown exception in the command handler");
    } catch (...) {
        return json();  // out of memory: the server thread turns null into an error line
    }
}

std::size_t ControlServer::poll() {
    std::deque<std::shared_ptr<Pending>> batch;
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        if (queue_.empty()) return 0;  // the common case: no syscall
        batch.swap(queue_);
    }
    drain_efd(control_efd_);
    std::size_t handled = 0;
    for (auto& p : batch) {
        int expected = Pending::queued;
        if (!p->state.compare_exchange_strong(expected, Pending::taken)) continue;  // client was told "busy"
        json r = run_handler(p->request);
        try {
            p->promise.set_value(std::move(r));
        } catch (...) {
        }
        ++handled;
    }
    if (handled) signal_efd(server_efd_);
    return handled;
}

void ControlServer::wait(std::chrono::microseconds timeout) {
    const auto us = timeout.count() < 0 ? 0 : timeout.count();
    const timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000) * 1000};
    if (control_efd_ < 0) {
        ::nanosleep(&ts, nullptr);
        return;
    }
    {
        // The server queues a request, then signals: poll() may have taken the
        // request in between, leaving the eventfd readable with nothing queued,
        // and every wait() would return at once. With nothing queued, forget it.
        std::lock_guard<std::mutex> lock(queue_mutex_);
        if (queue_.empty()) drain_efd(control_efd_);
    }
    pollfd pfd{control_efd_, POLLIN, 0};
    (void)::ppoll(&pfd, 1, &ts, nullptr);  // readable, timed out or interrupted: the caller polls anyway
}

void ControlServer::serve() noexcept {
    std::vector<Conn> conns;
    std::vector<pollfd> pfds;
    static const char internal_error_line[] = "{\"ok\":false,\"error\":\"internal error\"}\n";

    auto respond = [&](Conn& c, const json& r) {
        try {
            c.out = r.is_null() ? std::string(internal_error_line) : to_line(r);
        } catch (...) {
            c.out = internal_error_line;
        }
        c.written = 0;
        c.phase = Conn::Phase::writing;
        c.deadline = Clock::now() + limits_.write_timeout;
    };

    // A complete request line: validate it, then queue it for the control thread.
    auto submit = [&](Conn& c, std::string line) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        json req = json::parse(line, nullptr, false);
        if (req.is_discarded()) return respond(c, error_response("malformed request: not valid JSON"));
        if (!req.is_object()) return respond(c, error_response("malformed request: expected a JSON object"));
        auto cmd = req.find("cmd");
        if (cmd == req.end() || !cmd->is_string() || cmd->get_ref<const std::string&>().empty())
            return respond(c, error_response("malformed request: missing \"cmd\""));
        auto p = std::make_shared<Pending>();
        p->request = std::move(req);
        c.answer = p->promise.get_future();
        c.pending = p;
        c.phase = Conn::Phase::waiting;
        c.deadline = Clock::now() + limits_.handler_timeout;
        {
            std::lock_guard<std::mutex> lock(queue_mutex_);
            queue_.push_back(std::move(p));
        }
        signal_efd(control_efd_);
    };

    auto on_readable = [&](Conn& c) {
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) c.done = true;
                return;
            }
            if (n == 0) {  // EOF: a request without its '\n' still counts; a bare connect is a probe
                if (c.in.empty())
                    c.done = true;
                else
                    submit(c, std::move(c.in));
                return;
            }
            c.in.append(buf, std::size_t(n));
            std::size_t nl = c.in.find('\n', c.scanned);
            if (nl != std::string::npos && nl <= limits_.max_request_bytes) {
                c.in.resize(nl);
                return submit(c, std::move(c.in));
            }
            if (c.in.size() > limits_.max_request_bytes)
                return respond(c, error_response("request larger than " +
                                                 std::to_string(limits_.max_request_bytes) + " bytes"));
            c.scanned = c.in.size();
        }
    };

    auto on_writable = [&](Conn& c) {
        while (c.written < c.out.size()) {
            ssize_t n =
                ::send(c.fd, c.out.data() + c.written, c.out.size() - c.written, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) c.done = true;
                return;
            }
            c.written += std::size_t(n);
        }
        c.done = true;
    };

    auto abandon = [](Conn& c) {
        int expected = Pending::queued;
        return c.pending && c.pending->state.compare_exchange_strong(expected, Pending::abandoned);
    };

    while (!stopping_.load()) {
        try {
            Clock::time_point now = Clock::now();
            pfds.clear();
            pfds.push_back({server_efd_, POLLIN, 0});
            bool accepting = conns.size() < limits_.max_connections;
            pfds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
            int timeout_ms = -1;
            for (const Conn& c : conns) {
                short ev = c.phase == Conn::Phase::reading   ? POLLIN
                           : c.phase == Conn::Phase::writing ? POLLOUT
                                                             : 0;
                pfds.push_back({c.fd, ev, 0});
                long long left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count() + 1;
                left = std::clamp<long long>(left, 0, 60000);
                if (timeout_ms < 0 || left < timeout_ms) timeout_ms = int(left);
            }
            int rc = ::poll(pfds.data(), pfds.size(), timeout_ms);
            if (rc < 0 && errno != EINTR) {
                log("poll(): " + errno_text(errno));
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            if (stopping_.load()) break;
            if (rc > 0 && (pfds[0].revents & POLLIN)) drain_efd(server_efd_);

            // Existing connections first: pfds[2 + i] belongs to conns[i].
            std::size_t existing = conns.size();
            for (std::size_t i = 0; i < existing; ++i) {
                Conn& c = conns[i];
                short re = rc > 0 ? pfds[2 + i].revents : 0;
                if (re & POLLNVAL) {
                    c.done = true;
                    continue;
                }
                if (c.phase == Conn::Phase::reading && (re & (POLLIN | POLLHUP | POLLERR))) on_readable(c);
                if (c.phase == Conn::Phase::waiting && c.answer.valid() &&
                    c.answer.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
                    json r;
                    try {
                        r = c.answer.get();
                    } catch (...) {
                        r = json();
                    }
                    c.pending.reset();
                    respond(c, r);
                    on_writable(c);
                } else if (c.phase == Conn::Phase::writing && !c.done &&
                           (re & (POLLOUT | POLLERR | POLLHUP))) {
                    on_writable(c);
                }
                if (c.phase == Conn::Phase::waiting && (re & (POLLHUP | POLLERR))) {
                    abandon(c);  // the client left: skip the command if it has not started
                    c.done = true;
                }
                if (c.done || Clock::now() < c.deadline) continue;
                switch (c.phase) {
                    case Conn::Phase::reading:
                        respond(c, error_response("request not received within " +
                                                  std::to_string(limits_.read_timeout.count()) + " ms"));
                        on_writable(c);  // best effort: the client may never read it
                        break;
                    case Conn::Phase::waiting:
                        if (abandon(c)) {
                            c.pending.reset();
                            respond(c, error_response("ferryd control thread busy"));
                            on_writable(c);
                        } else {
                            // The handler is running: its answer is coming, keep waiting.
                            c.deadline = Clock::now() + limits_.handler_timeout;
                        }
                        break;
                    case Conn::Phase::writing: c.done = true; break;
                }
            }

            if (accepting && rc > 0 && (pfds[1].revents & POLLIN)) {
                while (conns.size() < limits_.max_connections) {
                    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                    if (fd < 0) {
                        int err = errno;
                        if (err == EINTR) continue;
                        if (err != EAGAIN && err != EWOULDBLOCK && err != ECONNABORTED) {
                            log("accept(): " + errno_text(err));
                            if (err == EMFILE || err == ENFILE)
                                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                        }
                        break;
                    }
                    Conn c;
                    c.fd = fd;
                    c.deadline = Clock::now() + limits_.read_timeout;
                    conns.push_back(std::move(c));
                }
            }

            for (Conn& c : conns)
                if (c.done) close_fd(c.fd);
            conns.erase(std::remove_if(conns.begin(), conns.end(), [](const Conn& c) { return c.fd < 0; }),
                        conns.end());
        } catch (const std::exception& e) {
            log(std::string("internal error, dropping connections: ") + e.what());
            for (Conn& c : conns) {
                abandon(c);
                close_fd(c.fd);
            }
            conns.clear();
        } catch (...) {
            log("internal error, dropping connections");
            for (Conn& c : conns) {
                abandon(c);
                close_fd(c.fd);
            }
            conns.clear();
        }
    }
    for (Conn& c : conns) {
        abandon(c);
        close_fd(c.fd);
    }
}

}  // namespace ferry::ops
