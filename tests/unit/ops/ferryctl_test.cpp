// Runs the built ferryctl binary (path in $FERRYCTL, set by meson when ferryctl
// is built) against a fake ferryd: a ControlServer with canned answers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include "ops/control_server.hpp"
#include "test_util.hpp"

namespace ferry::ops {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// What one ferryctl run left: exit code, stdout, stderr.
struct CtlResult {
    int code = -1;
    std::string out, err;
};

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

const json kStatus = {{"version", "0.1.0"},
                      {"uptime_s", 3725},
                      {"workers", 2},
                      {"ports",
                       {{{"name", "client"},
                         {"device", "net_af_packet0"},
                         {"address", "10.77.1.1/24"},
                         {"nat_addresses", json::array()},
                         {"mac", "02:00:00:00:00:01"}},
                        {{"name", "backend"},
                         {"device", "net_af_packet1"},
                         {"address", "10.77.2.1/24"},
                         {"nat_addresses", {"10.77.2.2", "10.77.2.3"}},
                         {"mac", "02:00:00:00:00:02"}}}},
                      {"config_file", "/etc/ferry/ferry.conf"},
                      {"config_loaded_at", "2024-05-01 12:00:00"}};

const json kVips = {{"vips",
                     {{{"name", "chat"},
                       {"address", "10.77.1.100"},
                       {"port", 80},
                       {"proto", "tcp"},
                       {"mode", "nat"},
                       {"scheduler", "maglev"},
                       {"backends", 3},
                       {"active_flows", 12},
                       {"new_flows", 34567}},
                      {{"name", "embeddings-large"},
                       {"address", "10.77.1.101"},
                       {"port", 8080},
                       {"proto", "udp"},
                       {"mode", "dnat"},
                       {"scheduler", "least_conn"},
                       {"backends", 12},
                       {"active_flows", 1234},
                       {"new_flows", 5}}}}};

// The fake ferryd: canned answers by command, remembering every request.
class FerryctlTest : public ::testing::Test {
protected:
    void SetUp() override {
        const char* bin = std::getenv("FERRYCTL");
        if (!bin || !*bin) GTEST_SKIP() << "FERRYCTL not set (ferryctl is built only with -Ddataplane=true)";
        ferryctl_ = bin;
        socket_ = dir_.file("ferryd.sock");
    }

    void start_server() {
        ControlConfig cfg;
        cfg.socket_path = socket_;
        server_ = std::make_unique<ControlServer>(cfg, [this](const json& req) { return answer(req); });
        server_->start();
        loop_ = std::make_unique<test::ControlLoop>(*server_);
    }

    void TearDown() override {
        loop_.reset();
        server_.reset();
    }

    json answer(const json& req) {
        std::lock_guard<std::mutex> lock(m_);
        requests_.push_back(req);
        std::string cmd = req["cmd"];
        if (cmd == "status") return kStatus;
        if (cmd == "vips") return kVips;
        if (cmd == "stats") {
            stats_calls_ += 1;
            return {{"counters", {{"rx_packets", 1000 * stats_calls_}, {"tx_packets", 900 * stats_calls_}}},
                    {"drops", {{"no_vip", 7}}},
                    {"workers", {{{"id", 0}, {"lcore", 1}, {"rx_packets", 500}}}}};
        }
        if (cmd == "flows") {
            json flows = json::array();
            for (int i = 0; i < req.value("limit", 100) && i < 3; ++i)
                flows.push_back({{"client", "10.77.1.50:" + std::to_string(40000 + i)},
                                 {"vip", "chat"},
                                 {"backend", "10.77.2.11:8000"},
                                 {"state", "established"},
                                 {"local", i == 0 ? json(nullptr) : json("10.77.2.1:" + std::to_string(2000 + i))},
                                 {"age_s", 75},
                                 {"idle_s", 2},
                                 {"worker", 1}});
            return {{"flows", flows}};
        }
        if (cmd == "reload")
            return {{"ok", false},
                    {"error", "configuration refused"},
                    {"errors",
                     {"/etc/ferry/ferry.conf:12: unknown key 'prot'", "/etc/ferry/ferry.conf:30: bad port"}}};
        if (cmd == "check_config")
            return {{"ok", true}, {"changes", {"vip chat: weight of 10.77.2.11:8000 100 -> 50"}}};
        if (cmd == "backends" && req.contains("vip") && req["vip"] != "chat")
            return {{"ok", false}, {"error", "no VIP named '" + req["vip"].get<std::string>() + "'"}};
        return {{"ok", true}};
    }

    json last_request() {
        std::lock_guard<std::mutex> lock(m_);
        return requests_.empty() ? json() : requests_.back();
    }

    CtlResult ctl(const std::string& args, const std::string& env = "") {
        std::string out = dir_.file("out"), err = dir_.file("err");
        std::string cmd = env + " '" + ferryctl_ + "' " + args + " >'" + out + "' 2>'" + err + "' </dev/null";
        int st = std::system(cmd.c_str());
        CtlResult r;
        r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        r.out = slurp(out);
        r.err = slurp(err);
        return r;
    }
    CtlResult ctl_s(const std::string& args) { return ctl("--socket '" + socket_ + "' " + args); }

    test::TempDir dir_;
    std::string ferryctl_, socket_;
    std::unique_ptr<ControlServer> server_;
    std::unique_ptr<test::ControlLoop> loop_;
    std::mutex m_;
    std::vector<json> requests_;
    int stats_calls_ = 0;
};

TEST_F(FerryctlTest, StatusShowsFieldsAndPortsTable) {
    start_server();
    CtlResult r = ctl_s("status");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("Version:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("0.1.0"), std::string::npos);
    EXPECT_NE(r.out.find("1h02m"), std::string::npos) << "uptime_s is shown as a duration\n" << r.out;
    EXPECT_NE(r.out.find("/etc/ferry/ferry.conf"), std::string::npos);
    // Version comes first, the ports table after the fields.
    EXPECT_EQ(r.out.rfind("Version:", 0), 0u) << r.out;
    auto lines = lines_of(r.out);
    auto header =
        std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.starts_with("NAME"); });
    ASSERT_NE(header, lines.end()) << r.out;
    EXPECT_LT(header->find("NAME"), header->find("DEVICE"));
    EXPECT_LT(header->find("DEVICE"), header->find("ADDRESS"));
    EXPECT_LT(header->find("ADDRESS"), header->find("NAT ADDRESSES"));
    EXPECT_LT(header->find("NAT ADDRESSES"), header->find("MAC"));
    EXPECT_EQ((header + 1)->find("net_af_packet0"), header->find("DEVICE")) << "columns are aligned";
    ASSERT_LT(header + 2, lines.end());
    EXPECT_EQ((header + 2)->find("10.77.2.2, 10.77.2.3"), header->find("NAT ADDRESSES")) << r.out;
    EXPECT_EQ((header + 1)->find(" - "), header->find("NAT ADDRESSES") - 1) << "no NAT addresses: -\n" << r.out;
    EXPECT_EQ(last_request(), (json{{"cmd", "status"}}));
}

TEST_F(FerryctlTest, VipsTableIsAligned) {
    start_server();
    CtlResult r = ctl_s("vips");
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 3u) << r.out;
    const std::string& h = lines[0];
    std::vector<std::string> order = {"NAME",      "ADDRESS",  "PORT",         "PROTO",    "MODE",
                                      "SCHEDULER", "BACKENDS", "ACTIVE FLOWS", "NEW FLOWS"};
    for (std::size_t i = 1; i < order.size(); ++i) EXPECT_LT(h.find(order[i - 1]), h.find(order[i])) << h;
    // Text columns start under their header; number columns end under theirs.
    EXPECT_EQ(lines[1].find("10.77.1.100"), h.find("ADDRESS"));
    EXPECT_EQ(lines[2].find("10.77.1.101"), h.find("ADDRESS"));
    std::size_t new_end = h.find("NEW FLOWS") + std::string("NEW FLOWS").size();
    EXPECT_EQ(lines[1].find("34567") + 5, new_end) << r.out;
    EXPECT_EQ(lines[2].find(" 5", new_end - 2), new_end - 2) << r.out;
}

TEST_F(FerryctlTest, JsonPrintsTheRawResponse) {
    start_server();
    for (const char* args : {"--json vips", "vips --json"}) {
        CtlResult r = ctl_s(args);
        ASSERT_EQ(r.code, 0) << args << r.err;
        json expected = kVips;
        expected["ok"] = true;
        EXPECT_EQ(json::parse(r.out, nullptr, false), expected) << args << r.out;
    }
}

TEST_F(FerryctlTest, NoSocketIsExitCode3) {
    CtlResult r = ctl_s("status");
    EXPECT_EQ(r.code, 3);
    EXPECT_EQ(r.err, "ferryctl: ferryd is not running (no socket at " + socket_ + ")\n");
    EXPECT_EQ(r.out, "");
}

TEST_F(FerryctlTest, ErrorAnswerIsExitCode1WithEveryError) {
    start_server();
    CtlResult r = ctl_s("reload");
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err,
              "ferryctl: configuration refused\n"
              "/etc/ferry/ferry.conf:12: unknown key 'prot'\n"
              "/etc/ferry/ferry.conf:30: bad port\n");
    r = ctl_s("backends nope");
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err, "ferryctl: no VIP named 'nope'\n");
}

TEST_F(FerryctlTest, UsageErrorsAreExitCode2) {
    start_server();
    for (const char* args : {"", "frobnicate", "weight chat 10.77.2.11:8000 abc",
                             "weight chat 10.77.2.11:8000 70000", "weight chat not-an-endpoint 5",
                             "trace 1.2.3.4 10.77.1.100:80 tcp", "trace 1.2.3.4:5 10.77.1.100:80 sctp",
                             "drain chat", "check-config", "stats --interval 0", "--timeout -1 status"}) {
        CtlResult r = ctl_s(args);
        EXPECT_EQ(r.code, 2) << "ferryctl " << args << "\n" << r.err;
    }
    EXPECT_EQ(ctl("--help").code, 0);
    EXPECT_EQ(ctl("--version").code, 0);
}

TEST_F(FerryctlTest, RequestsCarryTheArguments) {
    start_server();
    // A command line and the request it must send.
    struct Case {
        const char* args;
        json request;
    } cases[] = {
        {"backends", {{"cmd", "backends"}}},
        {"backends chat", {{"cmd", "backends"}, {"vip", "chat"}}},
        {"flows", {{"cmd", "flows"}, {"limit", 100}}},
        {"flows chat -n 5", {{"cmd", "flows"}, {"vip", "chat"}, {"limit", 5}}},
        {"flows 10.77.2.11:8000 --limit 7", {{"cmd", "flows"}, {"backend", "10.77.2.11:8000"}, {"limit", 7}}},
        {"trace 10.77.1.50:40000 10.77.1.100:80 udp",
         {{"cmd", "trace"}, {"src", "10.77.1.50:40000"}, {"dst", "10.77.1.100:80"}, {"proto", "udp"}}},
        {"weight chat 10.77.2.11:8000 50",
         {{"cmd", "weight"}, {"vip", "chat"}, {"backend", "10.77.2.11:8000"}, {"weight", 50}}},
        {"drain chat 10.77.2.11:8000", {{"cmd", "drain"}, {"vip", "chat"}, {"backend", "10.77.2.11:8000"}}},
        {"undrain chat [fd00::1]:8000", {{"cmd", "undrain"}, {"vip", "chat"}, {"backend", "[fd00::1]:8000"}}},
        {"stats", {{"cmd", "stats"}}},
    };
    for (const auto& c : cases) {
        CtlResult r = ctl_s(c.args);
        EXPECT_EQ(r.code, 0) << c.args << "\n" << r.err;
        EXPECT_EQ(last_request(), c.request) << c.args;
    }
}

TEST_F(FerryctlTest, FlowsAndStatsTables) {
    start_server();
    CtlResult r = ctl_s("flows -n 3");
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_GE(lines.size(), 4u) << r.out;
    EXPECT_TRUE(lines[0].starts_with("CLIENT")) << r.out;
    EXPECT_NE(lines[0].find("AGE"), std::string::npos);
    EXPECT_NE(lines[1].find("1m15s"), std::string::npos) << r.out;
    EXPECT_NE(lines[0].find("LOCAL"), std::string::npos) << r.out;
    EXPECT_NE(lines[2].find("10.77.2.1:2001"), std::string::npos) << "full NAT: Ferry's address and port\n" << r.out;
    EXPECT_NE(lines[1].find(" - "), std::string::npos) << "DNAT: no local source\n" << r.out;
    EXPECT_NE(r.out.find("--limit"), std::string::npos) << "a full page says how to see more\n" << r.out;

    r = ctl_s("stats");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("rx_packets"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("no_vip"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("LCORE"), std::string::npos) << r.out;
}

TEST_F(FerryctlTest, SocketFromEnvironmentAndOverride) {
    start_server();
    CtlResult r = ctl("status", "FERRY_SOCKET='" + socket_ + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    r = ctl("--socket '" + dir_.file("other.sock") + "' status", "FERRY_SOCKET='" + socket_ + "'");
    EXPECT_EQ(r.code, 3) << "--socket wins over FERRY_SOCKET";
}

TEST_F(FerryctlTest, CheckConfigThroughFerrydSendsAnAbsolutePath) {
    start_server();
    CtlResult r = ctl_s("check-config conf/ferry.conf");
    ASSERT_EQ(r.code, 0) << r.err;
    json req = last_request();
    EXPECT_EQ(req["cmd"], "check_config");
    EXPECT_TRUE(req["file"].get<std::string>().starts_with("/")) << req;
    EXPECT_TRUE(req["file"].get<std::string>().ends_with("/conf/ferry.conf")) << req;
    EXPECT_NE(r.out.find("configuration is valid"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("100 -> 50"), std::string::npos) << r.out;
}

TEST_F(FerryctlTest, CheckConfigWithoutFerrydChecksLocally) {
    // No server: the socket does not exist. Runs from the source root (meson workdir).
    CtlResult r = ctl_s("check-config conf/ferry.conf");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("checked locally"), std::string::npos) << r.out;

    r = ctl_s("check-config tests/unit/config/data/three_mistakes.conf");
    EXPECT_EQ(r.code, 1);
    for (const char* where : {"three_mistakes.conf:8:", "three_mistakes.conf:17:", "three_mistakes.conf:22:"})
        EXPECT_NE(r.err.find(where), std::string::npos) << where << "\n" << r.err;

    r = ctl_s("check-config /nonexistent/ferry.conf");
    EXPECT_EQ(r.code, 1);
}

TEST_F(FerryctlTest, SlowFerrydIsATimeout) {
    ControlConfig cfg;
    cfg.socket_path = socket_;
    ControlServer silent(cfg, [](const json&) { return json::object(); });  // nobody calls poll()
    silent.start();
    auto t0 = std::chrono::steady_clock::now();
    CtlResult r = ctl_s("--timeout 0.5 status");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("no answer from ferryd"), std::string::npos) << r.err;
}

TEST_F(FerryctlTest, StatsWatchPrintsRatesUntilInterrupted) {
    start_server();
    std::string out = dir_.file("wout"), err = dir_.file("werr");
    std::string cmd = "timeout --preserve-status -s INT 2.6 '" + ferryctl_ + "' --socket '" + socket_ +
                      "' stats --watch --interval 1 >'" + out + "' 2>'" + err + "'";
    int st = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0) << slurp(err);
    std::string text = slurp(out);
    EXPECT_NE(text.find("RATE/S"), std::string::npos) << text;
    // Three samples (t = 0, 1, 2 s): rx_packets grows by 1000 per sample, about 1000/s.
    std::size_t samples = 0;
    for (std::size_t p = text.find("ferryd stats"); p != std::string::npos;
         p = text.find("ferryd stats", p + 1))
        ++samples;
    EXPECT_GE(samples, 2u) << text;
    EXPECT_NE(text.find("rx_packets"), std::string::npos);
    bool rate_seen = false;
    for (const auto& line : lines_of(text))
        if (line.starts_with("rx_packets") && line.find(" -") == std::string::npos) {
            // "rx_packets  2000  1000" (rate close to 1000/s)
            std::istringstream ls(line);
            std::string name;
            double total = 0, rate = 0;
            ls >> name >> total >> rate;
            rate_seen = rate > 500 && rate < 2000;
        }
    EXPECT_TRUE(rate_seen) << text;
}

TEST_F(FerryctlTest, PermissionDeniedIsExitCode4) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run ferryctl as another user";
    if (std::system("command -v setpriv >/dev/null 2>&1") != 0) GTEST_SKIP() << "no setpriv";
    start_server();  // socket mode 0600, owner root
    ::chmod(dir_.path.c_str(), 0755);
    std::string cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups '" + ferryctl_ + "' --socket '" +
                      socket_ + "' status >/dev/null 2>'" + dir_.file("perr") + "'";
    int st = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(st));
    std::string err = slurp(dir_.file("perr"));
    if (WEXITSTATUS(st) == 126 || WEXITSTATUS(st) == 127) GTEST_SKIP() << "nobody cannot run " << ferryctl_;
    EXPECT_EQ(WEXITSTATUS(st), 4) << err;
    EXPECT_EQ(err, "ferryctl: permission denied on " + socket_ +
                       ": run as root or as a member of the socket group\n");
}

}  // namespace
}  // namespace ferry::ops
