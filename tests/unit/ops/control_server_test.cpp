#include "ops/control_server.hpp"

#include <gtest/gtest.h>
#include <grp.h>
#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <vector>

#include "test_util.hpp"

namespace ferry::ops {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using test::ask;
using test::ControlLoop;
using test::roundtrip;
using test::TempDir;

ControlConfig config_at(const std::string& path, const std::string& group = "") {
    ControlConfig c;
    c.socket_path = path;
    c.socket_group = group;
    return c;
}

// Counts calls and records the thread each one ran on.
struct Recorder {
    std::mutex m;
    int calls = 0;
    std::vector<std::thread::id> threads;
    std::vector<json> requests;
    ControlServer::Handler handler(std::function<json(const json&)> answer = nullptr) {
        return [this, answer](const json& req) {
            {
                std::lock_guard<std::mutex> lock(m);
                ++calls;
                threads.push_back(std::this_thread::get_id());
                requests.push_back(req);
            }
            if (answer) return answer(req);
            return json{{"ok", true}, {"echo", req}};
        };
    }
    int count() {
        std::lock_guard<std::mutex> lock(m);
        return calls;
    }
};

ControlServer::Limits fast_limits() {
    ControlServer::Limits l;
    l.read_timeout = 300ms;
    l.handler_timeout = 300ms;
    l.write_timeout = 300ms;
    return l;
}

TEST(ControlServer, RoundTripRunsHandlerOnTheControlThread) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("ferryd.sock")), rec.handler());
    server.start();
    ControlLoop loop(server);

    json r = ask(server.socket_path(), {{"cmd", "status"}, {"vip", "web"}});
    ASSERT_TRUE(r.is_object()) << r;
    EXPECT_EQ(r["ok"], true);
    EXPECT_EQ(r["echo"]["cmd"], "status");
    EXPECT_EQ(r["echo"]["vip"], "web");
    ASSERT_EQ(rec.count(), 1);
    EXPECT_EQ(rec.threads[0], loop.id());
}

TEST(ControlServer, ResponseIsOneLineAndOkDefaultsToTrue) {
    TempDir dir;
    ControlServer server(config_at(dir.file("s")), [](const json&) { return json{{"text", "a\nb"}}; });
    server.start();
    ControlLoop loop(server);
    std::string raw = roundtrip(server.socket_path(), "{\"cmd\":\"x\"}\n");
    ASSERT_FALSE(raw.empty());
    EXPECT_EQ(raw.find('\n'), raw.size() - 1) << raw;
    json r = json::parse(raw);
    EXPECT_EQ(r["ok"], true);
    EXPECT_EQ(r["text"], "a\nb");
}

TEST(ControlServer, RequestWithoutNewlineBeforeEofIsAccepted) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ControlLoop loop(server);
    int fd = test::unix_connect(server.socket_path());
    ASSERT_GE(fd, 0);
    test::send_all(fd, "{\"cmd\":\"vips\"}");
    ::shutdown(fd, SHUT_WR);
    json r = json::parse(test::read_all(fd), nullptr, false);
    ::close(fd);
    EXPECT_EQ(r["ok"], true) << r;
}

TEST(ControlServer, RequestArrivingInPiecesIsAssembled) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ControlLoop loop(server);
    int fd = test::unix_connect(server.socket_path());
    ASSERT_GE(fd, 0);
    std::string req = "{\"cmd\":\"flows\",\"limit\":5}\n";
    for (char c : req) {
        test::send_all(fd, std::string(1, c));
        std::this_thread::sleep_for(2ms);
    }
    json r = json::parse(test::read_all(fd), nullptr, false);
    ::close(fd);
    EXPECT_EQ(r["echo"]["limit"], 5) << r;
}

TEST(ControlServer, MalformedRequestsAreRefusedWithoutCallingTheHandler) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ControlLoop loop(server);
    for (const char* raw :
         {"{not json\n", "[1,2]\n", "{\"vip\":\"web\"}\n", "{\"cmd\":5}\n", "{\"cmd\":\"\"}\n", "\n"}) {
        json r = json::parse(roundtrip(server.socket_path(), raw), nullptr, false);
        ASSERT_TRUE(r.is_object()) << raw;
        EXPECT_EQ(r["ok"], false) << raw;
        EXPECT_TRUE(r["error"].get<std::string>().starts_with("malformed request")) << r;
    }
    EXPECT_EQ(rec.count(), 0);
}

TEST(ControlServer, OversizeRequestIsRefused) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ControlLoop loop(server);
    std::string big = "{\"cmd\":\"status\",\"pad\":\"" + std::string(70 * 1024, 'x') + "\"}\n";
    json r = json::parse(roundtrip(server.socket_path(), big), nullptr, false);
    ASSERT_TRUE(r.is_object());
    EXPECT_EQ(r["ok"], false);
    EXPECT_NE(r["error"].get<std::string>().find("larger than 65536"), std::string::npos) << r;
    EXPECT_EQ(rec.count(), 0);
    // The server is still fine afterwards.
    EXPECT_EQ(ask(server.socket_path(), {{"cmd", "status"}})["ok"], true);
}

TEST(ControlServer, SilentClientDoesNotBlockOthersAndTimesOut) {
    TempDir dir;
    Recorder rec;
    ControlServer::Limits limits = fast_limits();
    limits.read_timeout = 1500ms;
    ControlServer server(config_at(dir.file("s")), rec.handler(), limits);
    server.start();
    ControlLoop loop(server);

    int silent = test::unix_connect(server.socket_path());
    ASSERT_GE(silent, 0);
    test::send_all(silent, "{\"cmd\":");  // half a request, then nothing
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ask(server.socket_path(), {{"cmd", "status"}})["ok"], true);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms) << "other clients waited for the silent one";

    json r = json::parse(test::read_all(silent, 5s), nullptr, false);
    ::close(silent);
    ASSERT_TRUE(r.is_object());
    EXPECT_EQ(r["ok"], false);
    EXPECT_NE(r["error"].get<std::string>().find("not received within"), std::string::npos) << r;
    EXPECT_EQ(rec.count(), 5);
}

TEST(ControlServer, DefaultReadTimeoutIsTwoSeconds) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ControlLoop loop(server);
    int silent = test::unix_connect(server.socket_path());
    ASSERT_GE(silent, 0);
    auto t0 = std::chrono::steady_clock::now();
    std::string raw = test::read_all(silent, 6s);
    auto waited = std::chrono::steady_clock::now() - t0;
    ::close(silent);
    EXPECT_GE(waited, 1900ms);
    EXPECT_LT(waited, 4s);
    EXPECT_EQ(json::parse(raw, nullptr, false)["ok"], false) << raw;
}

TEST(ControlServer, HandlerExceptionBecomesErrorResponse) {
    TempDir dir;
    ControlServer server(config_at(dir.file("s")), [](const json& req) -> json {
        if (req["cmd"] == "int") throw 42;
        throw std::runtime_error("no VIP named 'web'");
    });
    server.start();
    ControlLoop loop(server);
    json r = ask(server.socket_path(), {{"cmd", "backends"}, {"vip", "web"}});
    EXPECT_EQ(r, (json{{"ok", false}, {"error", "no VIP named 'web'"}}));
    r = ask(server.socket_path(), {{"cmd", "int"}});
    EXPECT_EQ(r["ok"], false);
    EXPECT_TRUE(r["error"].is_string());
}

TEST(ControlServer, HandlerErrorsAreForwarded) {
    TempDir dir;
    ControlServer server(config_at(dir.file("s")), [](const json&) {
        return json{
            {"ok", false}, {"error", "config refused"}, {"errors", {"a.conf:3: bad port", "a.conf:9: dup"}}};
    });
    server.start();
    ControlLoop loop(server);
    json r = ask(server.socket_path(), {{"cmd", "reload"}});
    EXPECT_EQ(r["error"], "config refused");
    EXPECT_EQ(r["errors"].size(), 2u);
}

TEST(ControlServer, BusyControlThreadAnswersBusyAndNeverRunsTheCommandLater) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler(), fast_limits());
    server.start();
    // Nobody calls poll().
    auto t0 = std::chrono::steady_clock::now();
    json r = ask(server.socket_path(), {{"cmd", "weight"}, {"weight", 0}});
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
    EXPECT_EQ(r, (json{{"ok", false}, {"error", "ferryd control thread busy"}}));
    EXPECT_EQ(server.poll(), 0u);
    EXPECT_EQ(rec.count(), 0);
}

TEST(ControlServer, WakeFdSignalsQueuedRequests) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ASSERT_GE(server.wake_fd(), 0);
    std::thread client([&] { ask(server.socket_path(), {{"cmd", "status"}}); });
    pollfd p{server.wake_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    EXPECT_EQ(server.poll(), 1u);
    client.join();
    p.revents = 0;
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "poll() drains the wake fd";
}

// wait() is how ferryd's control thread sleeps: a request ends it at once,
// however long the timeout; without one it returns after the timeout.
TEST(ControlServer, WaitEndsWhenARequestArrives) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    const auto t0 = std::chrono::steady_clock::now();
    server.wait(2ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 2ms) << "nothing queued: the whole timeout";

    std::thread client([&] { ask(server.socket_path(), {{"cmd", "status"}}); });
    const auto t1 = std::chrono::steady_clock::now();
    server.wait(std::chrono::seconds(30));
    EXPECT_LT(std::chrono::steady_clock::now() - t1, std::chrono::seconds(20)) << "woken by the request";
    EXPECT_EQ(server.poll(), 1u);
    client.join();
    EXPECT_EQ(rec.count(), 1);

    // A wake-up whose request poll() already took (the server queues, then
    // signals: poll() can take the request between the two) must not leave
    // wait() returning at once, a busy loop on the control thread.
    const uint64_t one = 1;
    ASSERT_EQ(::write(server.wake_fd(), &one, sizeof one), ssize_t(sizeof one));
    const auto t3 = std::chrono::steady_clock::now();
    server.wait(20ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t3, 20ms) << "a stale wake-up with nothing queued";

    ControlServer stopped(config_at(dir.file("t")), rec.handler());  // never started: a plain sleep
    const auto t2 = std::chrono::steady_clock::now();
    stopped.wait(1ms);
    EXPECT_GE(std::chrono::steady_clock::now() - t2, 1ms);
}

TEST(ControlServer, ManyConcurrentClients) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s")), rec.handler());
    server.start();
    ControlLoop loop(server);
    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int i = 0; i < 32; ++i)
        clients.emplace_back([&, i] {
            json r = ask(server.socket_path(), {{"cmd", "stats"}, {"i", i}});
            if (r["ok"] == true && r["echo"]["i"] == i) ok.fetch_add(1);
        });
    for (auto& t : clients) t.join();
    EXPECT_EQ(ok.load(), 32);
}

TEST(ControlServer, StaleSocketIsReplaced) {
    TempDir dir;
    std::string path = dir.file("ferryd.sock");
    {
        // A socket file nobody listens on any more, as left by a crash.
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        ::close(fd);
    }
    ASSERT_TRUE(std::filesystem::is_socket(path));
    Recorder rec;
    ControlServer server(config_at(path), rec.handler());
    ASSERT_NO_THROW(server.start());
    ControlLoop loop(server);
    EXPECT_EQ(ask(path, {{"cmd", "status"}})["ok"], true);
}

TEST(ControlServer, LiveSocketIsRefused) {
    TempDir dir;
    std::string path = dir.file("ferryd.sock");
    Recorder rec;
    ControlServer first(config_at(path), rec.handler());
    first.start();
    ControlLoop loop(first);
    ControlServer second(config_at(path), rec.handler());
    try {
        second.start();
        FAIL() << "second server started on a live socket";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "another ferryd is running on " + path);
    }
    // The first one is untouched and still answers.
    EXPECT_EQ(ask(path, {{"cmd", "status"}})["ok"], true);
    second.stop();
    EXPECT_TRUE(std::filesystem::is_socket(path));
}

TEST(ControlServer, NonSocketFileIsNotReplaced) {
    TempDir dir;
    std::string path = dir.file("ferryd.sock");
    std::ofstream(path) << "precious";
    Recorder rec;
    ControlServer server(config_at(path), rec.handler());
    EXPECT_THROW(server.start(), std::runtime_error);
    EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(ControlServer, CreatesParentDirectoryAndRemovesSocketOnStop) {
    TempDir dir;
    std::string path = dir.file("run/ferry/ferryd.sock");
    Recorder rec;
    ControlServer server(config_at(path), rec.handler());
    server.start();
    struct stat st {};
    ASSERT_EQ(::stat(dir.file("run/ferry").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    EXPECT_TRUE(std::filesystem::is_socket(path));
    server.stop();
    EXPECT_FALSE(std::filesystem::exists(path));
    server.stop();  // idempotent
    // No temporary socket is left behind either.
    EXPECT_TRUE(std::filesystem::is_empty(dir.file("run/ferry")));
}

TEST(ControlServer, SocketModeIs0600WithoutGroup) {
    TempDir dir;
    std::string path = dir.file("s");
    Recorder rec;
    ControlServer server(config_at(path), rec.handler());
    server.start();
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, ::geteuid());
}

TEST(ControlServer, SocketModeIs0660WithGroup) {
    TempDir dir;
    std::string path = dir.file("s");
    group* gr = ::getgrgid(::getegid());
    ASSERT_NE(gr, nullptr);
    Recorder rec;
    ControlServer server(config_at(path, gr->gr_name), rec.handler());
    server.start();
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    EXPECT_EQ(st.st_gid, ::getegid());
}

TEST(ControlServer, UnknownGroupIsAnError) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file("s"), "no-such-group-ferry"), rec.handler());
    try {
        server.start();
        FAIL() << "started with an unknown group";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown group 'no-such-group-ferry'"), std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir.file("s")));
}

TEST(ControlServer, TooLongPathIsAnError) {
    TempDir dir;
    Recorder rec;
    ControlServer server(config_at(dir.file(std::string(120, 'a'))), rec.handler());
    EXPECT_THROW(server.start(), std::runtime_error);
}

TEST(ControlServer, StopWithClientsInFlight) {
    TempDir dir;
    Recorder rec;
    auto server = std::make_unique<ControlServer>(config_at(dir.file("s")), rec.handler());
    server->start();
    int waiting = test::unix_connect(server->socket_path());
    test::send_all(waiting, "{\"cmd\":\"status\"}\n");  // queued, never polled
    int silent = test::unix_connect(server->socket_path());
    std::this_thread::sleep_for(50ms);
    server.reset();  // must not hang
    EXPECT_EQ(test::read_all(waiting, 2s), "");
    ::close(waiting);
    ::close(silent);
    EXPECT_EQ(rec.count(), 0);
}

}  // namespace
}  // namespace ferry::ops
