#include "config/config_loader.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ferry {
namespace {

// A config valid in every respect; each rule test breaks it in one place.
const std::string kMinimal = R"(ports = (
  { name = "client"; device = "net_af_packet0"; address = "10.0.0.1/24"; }
);
vips = (
  { address = "10.0.0.100"; port = 80;
    backends = ( { address = "10.0.1.5"; port = 8000; } );
  }
);
)";

ConfigLoadResult load(const std::string& text) { return load_config_text(text, "test.conf"); }

// 1-based line of the first occurrence of `needle`, so tests need not count lines by hand.
int line_of(const std::string& text, const std::string& needle) {
    const auto pos = text.find(needle);
    EXPECT_NE(pos, std::string::npos) << "test text lacks " << needle;
    return 1 +
           static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << "test text lacks " << from;
    if (pos != std::string::npos) text.replace(pos, from.size(), to);
    return text;
}

std::string all_errors(const ConfigLoadResult& r) {
    std::string out;
    for (const auto& e : r.errors) out += e.to_string() + "\n";
    return out;
}

// Exactly one error, on the line holding `at`, whose message contains `message`.
void expect_one_error(const std::string& text, const std::string& at, const std::string& message) {
    SCOPED_TRACE(text);
    const auto r = load(text);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.config, nullptr);
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].file, "test.conf");
    EXPECT_EQ(r.errors[0].line, line_of(text, at)) << all_errors(r);
    EXPECT_NE(r.errors[0].message.find(message), std::string::npos) << all_errors(r);
}

const Config& expect_ok(const ConfigLoadResult& r) {
    EXPECT_TRUE(r.ok()) << all_errors(r);
    static const Config empty;
    return r.config ? *r.config : empty;
}

// ---- the example file --------------------------------------------------------------------------

TEST(ConfigExample, LoadsWithTheDemoValues) {
    const auto r = load_config_file("conf/ferry.conf");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const Config& c = *r.config;
    EXPECT_EQ(c.file, "conf/ferry.conf");

    ASSERT_EQ(c.ports.size(), 2u);
    const PortConfig& client = c.ports[0];
    EXPECT_EQ(client.name, "client");
    EXPECT_EQ(client.device, "net_af_packet0");
    EXPECT_TRUE(client.devargs.starts_with("net_af_packet0,iface=fe-lb-cl")) << client.devargs;
    EXPECT_EQ(client.address.to_string(), "10.77.1.1/24");
    EXPECT_FALSE(client.gateway.has_value());
    EXPECT_EQ(client.mtu, 1500);
    EXPECT_TRUE(client.exception_path);
    EXPECT_EQ(client.exception_iface, "fe-host-cl");
    EXPECT_EQ(client.loc.file, "conf/ferry.conf");
    EXPECT_GT(client.loc.line, 0);
    const PortConfig& backend = c.ports[1];
    EXPECT_EQ(backend.name, "backend");
    EXPECT_EQ(backend.device, "net_af_packet1");
    EXPECT_EQ(backend.address.to_string(), "10.77.2.1/24");
    EXPECT_EQ(backend.exception_iface, "fe-host-be");
    EXPECT_GT(backend.loc.line, client.loc.line);

    EXPECT_EQ(c.workers.burst_size, 32u);
    EXPECT_EQ(c.workers.flow_capacity, 1048576u);
    EXPECT_EQ(c.workers.rx_descriptors, 1024u);
    EXPECT_EQ(c.workers.tx_descriptors, 1024u);
    EXPECT_EQ(c.workers.mbufs, 16383u);

    EXPECT_EQ(c.control.socket_path, "/run/ferry/ferryd.sock");
    EXPECT_EQ(c.control.socket_group, "");
    EXPECT_EQ(c.control.metrics_listen, "127.0.0.1:9108");

    ASSERT_EQ(c.vips.size(), 1u);
    const VipConfig& v = c.vips[0];
    EXPECT_EQ(v.name, "chat");
    EXPECT_EQ(v.endpoint.to_string(), "10.77.1.100:80");
    EXPECT_EQ(v.proto, L4Proto::tcp);
    EXPECT_EQ(v.mode, ForwardMode::nat);
    EXPECT_EQ(v.scheduler, SchedulerKind::maglev);
    EXPECT_EQ(v.hash, HashKey::five_tuple);
    EXPECT_EQ(v.table_size, 65537u);
    EXPECT_EQ(v.timeouts.tcp_syn, 10u);
    EXPECT_EQ(v.timeouts.tcp_established, 900u);
    EXPECT_EQ(v.timeouts.tcp_closing, 10u);
    EXPECT_EQ(v.timeouts.udp, 30u);
    EXPECT_EQ(v.health.kind, HealthCheckKind::http);
    EXPECT_EQ(v.health.path, "/health");
    EXPECT_EQ(v.health.expect_status, 200);
    EXPECT_EQ(v.health.interval_ms, 1000u);
    EXPECT_EQ(v.health.timeout_ms, 500u);
    EXPECT_EQ(v.health.rise, 2u);
    EXPECT_EQ(v.health.fall, 3u);
    EXPECT_EQ(v.down_flows, DownFlowPolicy::keep);
    EXPECT_EQ(v.drain_timeout_s, 600u);
    EXPECT_GT(v.loc.line, backend.loc.line);

    ASSERT_EQ(v.backends.size(), 3u);
    EXPECT_EQ(v.backends[0].endpoint.to_string(), "10.77.2.11:8000");
    EXPECT_EQ(v.backends[0].weight, 100u);
    EXPECT_FALSE(v.backends[0].health.has_value());
    EXPECT_EQ(v.backends[1].endpoint.to_string(), "10.77.2.12:8000");
    EXPECT_EQ(v.backends[1].weight, 200u);
    EXPECT_EQ(v.backends[2].endpoint.to_string(), "10.77.2.13:8000");
    EXPECT_EQ(v.backends[2].weight, 300u);
    EXPECT_GT(v.backends[1].loc.line, v.backends[0].loc.line);
    // The override sets type and interval; everything else comes from the VIP's check.
    ASSERT_TRUE(v.backends[2].health.has_value());
    const HealthCheckConfig& h = *v.backends[2].health;
    EXPECT_EQ(h.kind, HealthCheckKind::tcp);
    EXPECT_EQ(h.interval_ms, 2000u);
    EXPECT_EQ(h.timeout_ms, 500u);
    EXPECT_EQ(h.path, "/health");
    EXPECT_EQ(h.rise, 2u);
    EXPECT_EQ(h.fall, 3u);
}

// ---- defaults ----------------------------------------------------------------------------------

TEST(ConfigDefaults, MinimalConfigFillsEveryDefault) {
    const auto r = load(kMinimal);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.ports.size(), 1u);
    const PortConfig& p = c.ports[0];
    EXPECT_EQ(p.devargs, "");
    EXPECT_FALSE(p.gateway.has_value());
    EXPECT_EQ(p.mtu, 1500);
    EXPECT_TRUE(p.exception_path);
    EXPECT_EQ(p.exception_iface, "fe-client");
    EXPECT_EQ(p.loc.file, "test.conf");
    EXPECT_EQ(p.loc.line, 2);

    const WorkerConfig w;
    EXPECT_EQ(c.workers.burst_size, w.burst_size);
    EXPECT_EQ(c.workers.flow_capacity, w.flow_capacity);
    EXPECT_EQ(c.workers.rx_descriptors, w.rx_descriptors);
    EXPECT_EQ(c.workers.tx_descriptors, w.tx_descriptors);
    EXPECT_EQ(c.workers.mbufs, w.mbufs);
    EXPECT_EQ(c.control.socket_path, "/run/ferry/ferryd.sock");
    EXPECT_EQ(c.control.socket_group, "");
    EXPECT_EQ(c.control.metrics_listen, "127.0.0.1:9108");

    ASSERT_EQ(c.vips.size(), 1u);
    const VipConfig& v = c.vips[0];
    EXPECT_EQ(v.name, "10.0.0.100:80/tcp");
    EXPECT_EQ(v.proto, L4Proto::tcp);
    EXPECT_EQ(v.mode, ForwardMode::nat);
    EXPECT_EQ(v.scheduler, SchedulerKind::maglev);
    EXPECT_EQ(v.hash, HashKey::five_tuple);
    EXPECT_EQ(v.table_size, 65537u);
    EXPECT_EQ(v.timeouts.tcp_syn, 10u);
    EXPECT_EQ(v.timeouts.tcp_established, 900u);
    EXPECT_EQ(v.timeouts.tcp_closing, 10u);
    EXPECT_EQ(v.timeouts.udp, 30u);
    EXPECT_EQ(v.health.kind, HealthCheckKind::tcp);
    EXPECT_EQ(v.health.port, 0);
    EXPECT_EQ(v.health.path, "/health");
    EXPECT_EQ(v.health.expect_status, 200);
    EXPECT_EQ(v.health.interval_ms, 1000u);
    EXPECT_EQ(v.health.timeout_ms, 500u);
    EXPECT_EQ(v.health.rise, 2u);
    EXPECT_EQ(v.health.fall, 3u);
    EXPECT_EQ(v.down_flows, DownFlowPolicy::keep);
    EXPECT_EQ(v.drain_timeout_s, 600u);
    EXPECT_EQ(v.loc.line, 5);
    ASSERT_EQ(v.backends.size(), 1u);
    EXPECT_EQ(v.backends[0].weight, 100u);
    EXPECT_FALSE(v.backends[0].health.has_value());
    EXPECT_EQ(v.backends[0].loc.line, 6);
}

TEST(ConfigDefaults, VipsMayBeAbsentOrEmpty) {
    const std::string ports_only = R"(ports = ( { name = "a"; device = "d"; address = "10.0.0.1/24"; } );)";
    EXPECT_TRUE(expect_ok(load(ports_only)).vips.empty());
    EXPECT_TRUE(expect_ok(load(ports_only + "\nvips = ();")).vips.empty());
}

TEST(ConfigDefaults, EveryOptionCanBeSet) {
    const std::string text = R"(ports = (
  { name = "p"; device = "0000:01:00.0"; address = "192.168.1.2/24"; gateway = "192.168.1.1";
    mtu = 9000; exception_path = false; }
);
workers = { burst_size = 64; flow_capacity = 2048; rx_descriptors = 4096; tx_descriptors = 2048;
            mbufs = 65535; idle_sleep_us = 100; };
control = { socket = "/tmp/f.sock"; socket_group = "ferry"; metrics_listen = ""; };
vips = ( { name = "dns"; address = "192.168.9.9"; port = 53; protocol = "udp"; mode = "dnat";
           scheduler = "two_choices"; hash = "source-ip"; table_size = 13;
           timeouts = { udp = 604800; tcp_syn = 1; };
           health = { type = "none"; port = 9; };
           down_flows = "drop"; drain_timeout = 0;
           backends = ( { address = "192.168.1.10"; port = 53; weight = 0; },
                        { address = "192.168.1.10"; port = 54; weight = 65535L; } ); } );
)";
    const auto r = load(text);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.ports.size(), 1u);
    EXPECT_EQ(c.ports[0].gateway->to_string(), "192.168.1.1");
    EXPECT_EQ(c.ports[0].mtu, 9000);
    EXPECT_FALSE(c.ports[0].exception_path);
    EXPECT_EQ(c.workers.burst_size, 64u);
    EXPECT_EQ(c.workers.mbufs, 65535u);
    EXPECT_EQ(c.workers.idle_sleep_us, 100u);
    EXPECT_EQ(c.control.socket_path, "/tmp/f.sock");
    EXPECT_EQ(c.control.socket_group, "ferry");
    EXPECT_EQ(c.control.metrics_listen, "");
    ASSERT_EQ(c.vips.size(), 1u);
    const VipConfig& v = c.vips[0];
    EXPECT_EQ(v.proto, L4Proto::udp);
    EXPECT_EQ(v.mode, ForwardMode::dnat);
    EXPECT_EQ(v.scheduler, SchedulerKind::two_choices);
    EXPECT_EQ(v.hash, HashKey::source_ip);
    EXPECT_EQ(v.table_size, 13u);
    EXPECT_EQ(v.timeouts.udp, 604800u);
    EXPECT_EQ(v.timeouts.tcp_syn, 1u);
    EXPECT_EQ(v.timeouts.tcp_established, 900u);
    EXPECT_EQ(v.health.kind, HealthCheckKind::none);
    EXPECT_EQ(v.health.port, 9);
    EXPECT_EQ(v.down_flows, DownFlowPolicy::drop);
    EXPECT_EQ(v.drain_timeout_s, 0u);
    ASSERT_EQ(v.backends.size(), 2u);
    EXPECT_EQ(v.backends[0].weight, 0u);
    EXPECT_EQ(v.backends[1].weight, 65535u);
}

// ---- error format and file handling ------------------------------------------------------------

TEST(ConfigError, ToStringFormat) {
    EXPECT_EQ((ConfigError{"ferry.conf", 12, "bad thing"}).to_string(), "ferry.conf:12: bad thing");
    EXPECT_EQ((ConfigError{"ferry.conf", 0, "cannot open"}).to_string(), "ferry.conf: cannot open");
}

TEST(ConfigFile, MissingFileIsAnErrorWithoutLine) {
    const auto r = load_config_file("tests/unit/config/data/does-not-exist.conf");
    EXPECT_EQ(r.config, nullptr);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].line, 0);
    EXPECT_EQ(r.errors[0].to_string(),
              "tests/unit/config/data/does-not-exist.conf: cannot open: No such file or directory");
}

TEST(ConfigFile, DirectoryIsAnError) {
    const auto r = load_config_file("tests/unit/config/data");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(), "tests/unit/config/data: not a regular file");
}

// ferryd's control thread checks files an operator names (ferryctl check-config): a FIFO must not
// block it waiting for a writer, nor a device feed it forever.
TEST(ConfigFile, FifoAndDeviceAreRefusedWithoutReading) {
    char dir[] = "/tmp/ferry-config-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string fifo = std::string(dir) + "/ferry.conf";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    const auto r = load_config_file(fifo);
    unlink(fifo.c_str());
    rmdir(dir);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(), fifo + ": not a regular file");
    const auto z = load_config_file("/dev/zero");
    ASSERT_EQ(z.errors.size(), 1u);
    EXPECT_EQ(z.errors[0].to_string(), "/dev/zero: not a regular file");
}

// libconfig opens @include files itself (a blocking fopen): every include, also one an
// included file makes, must name a regular file, or the file is refused before libconfig runs.
TEST(ConfigFile, IncludeOfAFifoOrDeviceIsRefused) {
    char dir[] = "/tmp/ferry-config-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string d = dir;
    ASSERT_EQ(mkfifo((d + "/vips.fifo").c_str(), 0600), 0);
    auto write = [](const std::string& path, const std::string& text) { std::ofstream(path) << text; };
    write(d + "/main.conf", "ports = ();\n@include \"inner.conf\"\n");
    write(d + "/inner.conf", "# vips\n  @include \"vips.fifo\"\n@include \"/dev/zero\"\n");
    const auto r = load_config_file(d + "/main.conf");
    for (const char* f : {"/main.conf", "/inner.conf", "/vips.fifo"}) unlink((d + f).c_str());
    rmdir(dir);
    ASSERT_EQ(r.errors.size(), 2u) << all_errors(r);
    EXPECT_EQ(r.errors[0].to_string(), d + "/inner.conf:2: @include \"" + d + "/vips.fifo\": not a regular file");
    EXPECT_EQ(r.errors[1].to_string(), d + "/inner.conf:3: @include \"/dev/zero\": not a regular file");
}

TEST(ConfigFile, SyntaxErrorGivesFileAndLine) {
    const auto r = load_config_file("tests/unit/config/data/syntax_error.conf");
    EXPECT_EQ(r.config, nullptr);
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].file, "tests/unit/config/data/syntax_error.conf");
    EXPECT_EQ(r.errors[0].line, 8);
    EXPECT_EQ(r.errors[0].to_string().rfind("tests/unit/config/data/syntax_error.conf:8: syntax error", 0),
              0u)
        << all_errors(r);
}

TEST(ConfigText, SyntaxErrorUsesTheLabel) {
    const auto r = load("ports = (\n  { name = \"a\"; }\n  oops\n);\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].file, "test.conf");
    EXPECT_EQ(r.errors[0].line, 3);
    EXPECT_NE(r.errors[0].message.find("syntax error"), std::string::npos);
}

TEST(ConfigText, DuplicateSettingIsAParseError) {
    const auto r = load("ports = ();\nports = ();\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(), "test.conf:2: duplicate setting name");
}

TEST(ConfigText, NeverThrowsOnGarbage) {
    const std::vector<std::string> texts = {"",           "\x01\x02\x03", "{{{{", "ports = ((((",
                                            std::string("a = 1;\0b", 8), "ports = 5;",
                                            "@include \"/nonexistent/x.conf\"\n"};
    for (const std::string& text : texts) {
        ConfigLoadResult r;
        EXPECT_NO_THROW(r = load(text)) << text;
        EXPECT_FALSE(r.ok()) << text;
        EXPECT_EQ(r.config, nullptr);
    }
}

TEST(ConfigFile, IncludedFileIsReportedByItsPath) {
    const auto r = load_config_file("tests/unit/config/data/with_include.conf");
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].to_string(),
              "tests/unit/config/data/included_vips.conf:4: 'weight' = 4295032832 is out of range 0..65535");
}

// ---- every problem, in line order --------------------------------------------------------------

TEST(ConfigErrors, ThreeMistakesGiveExactlyThreeErrors) {
    const auto r = load_config_file("tests/unit/config/data/three_mistakes.conf");
    EXPECT_EQ(r.config, nullptr);
    ASSERT_EQ(r.errors.size(), 3u) << all_errors(r);
    const std::string f = "tests/unit/config/data/three_mistakes.conf";
    EXPECT_EQ(r.errors[0].to_string(), f + ":8: 'mtu' = 10000 is out of range 68..9000");
    EXPECT_EQ(r.errors[1].to_string(), f + ":17: 'scheduler' = \"maglve\" is not one of \"maglev\", "
                                           "\"round_robin\", \"least_conn\" or \"two_choices\" "
                                           "(did you mean \"maglev\"?)");
    EXPECT_EQ(r.errors[2].to_string(), f + ":22: unknown key 'wieght' in backend (did you mean 'weight'?)");
}

TEST(ConfigErrors, SortedByLineEvenWhenFoundOutOfOrder) {
    // vips is written before ports but checked after them.
    const std::string text = R"(vips = (
  { address = "10.0.0.1"; port = 80; backends = ( { address = "10.0.1.5"; port = 8000; } ); }
);
ports = (
  { name = "client"; device = "d"; address = "10.0.0.1/24"; mtu = 1; }
);
)";
    const auto r = load(text);
    ASSERT_EQ(r.errors.size(), 2u) << all_errors(r);
    EXPECT_EQ(r.errors[0].line, 2);
    EXPECT_NE(r.errors[0].message.find("is the address of port 'client'"), std::string::npos);
    EXPECT_EQ(r.errors[1].line, 5);
}

// ---- unknown keys ------------------------------------------------------------------------------

TEST(ConfigUnknownKeys, SuggestsTheClosestKey) {
    const auto text = replaced(kMinimal, "port = 8000;", "port = 8000; wieght = 5;");
    expect_one_error(text, "wieght", "unknown key 'wieght' in backend (did you mean 'weight'?)");
}

TEST(ConfigUnknownKeys, NoSuggestionWhenNothingIsClose) {
    const auto text = replaced(kMinimal, "port = 8000;", "port = 8000; colour = 5;");
    const auto r = load(text);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].message, "unknown key 'colour' in backend");
}

TEST(ConfigUnknownKeys, RejectedAtEveryLevel) {
    struct Case {  // one edit of the base text and the error it must cause
        std::string from, to, message;
    };
    const std::vector<Case> cases = {
        {"ports = (", "prots = 1;\nports = (",
         "unknown key 'prots' at the top level (did you mean 'ports'?)"},
        {"device =", "devce = \"x\"; device =", "unknown key 'devce' in port (did you mean 'device'?)"},
        {"ports = (", "workers = { burst = 1; };\nports = (", "unknown key 'burst' in workers"},
        {"ports = (", "control = { metrics = \"\"; };\nports = (", "unknown key 'metrics' in control"},
        {"port = 80;", "port = 80; schedular = \"maglev\";",
         "unknown key 'schedular' in VIP (did you mean 'scheduler'?)"},
        {"port = 80;", "port = 80; timeouts = { tcp_sny = 5; };",
         "unknown key 'tcp_sny' in timeouts (did you mean 'tcp_syn'?)"},
        {"port = 80;", "port = 80; health = { intervall_ms = 5; };",
         "unknown key 'intervall_ms' in VIP health (did you mean 'interval_ms'?)"},
        {"port = 8000;", "port = 8000; health = { raise = 5; };",
         "unknown key 'raise' in backend health (did you mean 'rise'?)"},
    };
    for (const auto& c : cases) {
        const auto text = replaced(kMinimal, c.from, c.to);
        const std::string key = c.message.substr(13, c.message.find('\'', 13) - 13);
        expect_one_error(text, key, c.message);
        EXPECT_EQ(load(text).errors.at(0).message, c.message);
    }
}

// ---- required keys -----------------------------------------------------------------------------

TEST(ConfigRequired, MissingKeysAreNamedOnTheirGroupsLine) {
    struct Case {  // one edit of the base text, where the error must point, and what it must say
        std::string from, to, at, message;
    };
    const std::vector<Case> cases = {
        {"name = \"client\"; ", "", "{ device", "missing required key 'name' in port"},
        {"device = \"net_af_packet0\"; ", "", "{ name", "missing required key 'device' in port"},
        {"address = \"10.0.0.1/24\"; ", "", "{ name", "missing required key 'address' in port"},
        {"address = \"10.0.0.100\"; ", "", "{ port = 80", "missing required key 'address' in VIP"},
        {"port = 80;", "", "{ address = \"10.0.0.100\"", "missing required key 'port' in VIP"},
        {"address = \"10.0.1.5\"; ", "", "{ port = 8000", "missing required key 'address' in backend"},
        {"port = 8000; ", "", "{ address = \"10.0.1.5\"", "missing required key 'port' in backend"},
    };
    for (const auto& c : cases) {
        const auto text = replaced(kMinimal, c.from, c.to);
        expect_one_error(text, c.at, c.message);
    }
}

TEST(ConfigRequired, AtLeastOnePort) {
    const std::string no_ports = "vips = ();\n";
    const auto r = load(no_ports);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].to_string(), "test.conf: at least one port is required: 'ports' is missing");

    expect_one_error("workers = {};\nports = ();\n", "ports",
                     "at least one port is required: 'ports' is empty");
}

TEST(ConfigRequired, VipNeedsBackends) {
    expect_one_error(replaced(kMinimal, "backends = ( { address = \"10.0.1.5\"; port = 8000; } );", ""),
                     "{ address = \"10.0.0.100\"", "VIP '10.0.0.100:80/tcp' has no backends");
    expect_one_error(replaced(kMinimal, "backends = ( { address = \"10.0.1.5\"; port = 8000; } );",
                              "\n    backends = ();"),
                     "backends = ()", "VIP '10.0.0.100:80/tcp' has no backends; at least one is required");
}

// ---- types -------------------------------------------------------------------------------------

TEST(ConfigTypes, WrongLibconfigTypesAreNamed) {
    struct Case {  // one edit of the base text, where the error must point, and what it must say
        std::string from, to, at, message;
    };
    const std::vector<Case> cases = {
        {"port = 80;", "port = \"80\";", "\"80\"",
         "'port' must be an integer, not a string (write the number without quotes)"},
        {"port = 8000;", "port = 8000.0;", "8000.0",
         "'port' must be an integer, not a float (no decimal point)"},
        {"address = \"10.0.0.1/24\";", "address = \"10.0.0.1/24\"; mtu = 1.5e3;", "mtu",
         "'mtu' must be an integer, not a float"},
        {"address = \"10.0.0.1/24\";", "address = \"10.0.0.1/24\"; exception_path = \"yes\";",
         "exception_path", "'exception_path' must be a boolean (true or false), not a string"},
        {"address = \"10.0.0.1/24\";", "address = \"10.0.0.1/24\"; exception_path = 1;", "exception_path",
         "'exception_path' must be a boolean (true or false), not an integer"},
        {"name = \"client\";", "name = 7;", "name = 7", "'name' must be a string, not an integer"},
        {"address = \"10.0.0.100\";", "address = [10, 0, 0, 100];", "[10",
         "'address' must be a string, not an array"},
        {"ports = (", "workers = 5;\nports = (", "workers", "'workers' must be a group, not an integer"},
        {"port = 80;", "port = 80; timeouts = ( 1 );", "timeouts", "'timeouts' must be a group, not a list"},
        {"port = 80;", "port = 80; health = \"tcp\";", "health", "'health' must be a group, not a string"},
        {"backends = ( { address = \"10.0.1.5\"; port = 8000; } );",
         "backends = { address = \"10.0.1.5\"; port = 8000; };", "backends",
         "'backends' must be a list of groups, not a group"},
        {"backends = ( { address = \"10.0.1.5\"; port = 8000; } );", "backends = ( \"10.0.1.5:8000\" );",
         "backends", "each entry of 'backends' must be a group { ... }, not a string"},
    };
    for (const auto& c : cases) expect_one_error(replaced(kMinimal, c.from, c.to), c.at, c.message);

    expect_one_error("ports = { name = \"a\"; };\n", "ports",
                     "'ports' must be a list of groups, not a group");
}

TEST(ConfigTypes, Int64LiteralsAreAccepted) {
    const auto text = replaced(kMinimal, "port = 80;", "port = 80L; table_size = 65537L;");
    const auto r = load(text);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.vips.size(), 1u);
    EXPECT_EQ(c.vips[0].endpoint.port, 80);
}

TEST(ConfigTypes, HexLiteralsAreIntegers) {
    const auto r = load(replaced(kMinimal, "port = 80;", "port = 0x50;"));
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.vips.size(), 1u);
    EXPECT_EQ(c.vips[0].endpoint.port, 80);
}

TEST(ConfigTypes, IntegersPast32BitsAreNotWrapped) {
    // libconfig 1.5 reads 4295032832 as 65536, which would pass the range check.
    const auto text =
        replaced(kMinimal, "ports = (", "workers = { flow_capacity = 4295032832; };\nports = (");
    expect_one_error(text, "flow_capacity", "'flow_capacity' = 4295032832 is out of range 1024..67108864");
    const auto neg = replaced(kMinimal, "port = 8000;", "port = 8000; weight = -4294967196;");
    expect_one_error(neg, "weight", "'weight' = -4294967196 is out of range 0..65535");
}

// ---- addresses ---------------------------------------------------------------------------------

TEST(ConfigAddresses, BadAddressesAreRefused) {
    struct Case {  // one edit of the base text and the error it must cause
        std::string from, to, message;
    };
    const std::vector<Case> cases = {
        {"\"10.0.0.1/24\"", "\"10.0.0.1\"",
         "'address' = \"10.0.0.1\" needs a prefix length, e.g. \"10.0.0.1/24\""},
        {"\"10.0.0.1/24\"", "\"10.0.0.1/33\"", "is not an IPv4 address with prefix length (a.b.c.d/len)"},
        {"\"10.0.0.1/24\"", "\"10.0.0/24\"", "is not an IPv4 address with prefix length"},
        {"\"10.0.0.100\"", "\"10.0.0.256\"", "'address' = \"10.0.0.256\" is not a valid IPv4 address"},
        {"\"10.0.0.100\"", "\"10.0.0.100/32\"", "must be a plain address without a prefix length"},
        {"\"10.0.1.5\"", "\"backend-1\"", "'address' = \"backend-1\" is not a valid IPv4 address"},
    };
    for (const auto& c : cases) {
        const auto text = replaced(kMinimal, c.from, c.to);
        expect_one_error(text, c.to, c.message);
    }
}

TEST(ConfigAddresses, Ipv6ParsesButIsRefused) {
    const std::string msg = "IPv6 is not supported by the data path yet";
    expect_one_error(replaced(kMinimal, "\"10.0.0.1/24\"", "\"fd00::1/64\""), "fd00::1/64",
                     "'address' = \"fd00::1/64\": " + msg);
    expect_one_error(replaced(kMinimal, "\"10.0.0.100\"", "\"fd00::100\""), "fd00::100",
                     "'address' = \"fd00::100\": " + msg);
    expect_one_error(replaced(kMinimal, "\"10.0.1.5\"", "\"2001:db8::5\""), "2001:db8::5",
                     "'address' = \"2001:db8::5\": " + msg);
    expect_one_error(replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; gateway = \"fd00::1\";"),
                     "gateway", "'gateway' = \"fd00::1\": " + msg);
}

TEST(ConfigAddresses, GatewayMustBeInsideThePortsPrefix) {
    const auto ok = replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; gateway = \"10.0.0.254\";");
    ASSERT_TRUE(load(ok).ok()) << all_errors(load(ok));
    expect_one_error(replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; gateway = \"10.0.1.254\";"),
                     "gateway", "'gateway' 10.0.1.254 is not inside the port's subnet 10.0.0.1/24");
    expect_one_error(replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; gateway = \"10.0.0.1\";"),
                     "gateway", "'gateway' 10.0.0.1 is the port's own address");
}

TEST(ConfigAddresses, VipAddressMustNotBeAPortAddress) {
    expect_one_error(replaced(kMinimal, "\"10.0.0.100\"", "\"10.0.0.1\""), "10.0.0.1\"; port = 80",
                     "VIP address 10.0.0.1 is the address of port 'client'");
}

TEST(ConfigAddresses, BackendMustNotBeFerryOrTheVip) {
    expect_one_error(replaced(kMinimal, "\"10.0.1.5\"", "\"10.0.0.1\""), "10.0.0.1\"; port = 8000",
                     "backend address 10.0.0.1 is Ferry's own address on port 'client'");
    expect_one_error(replaced(kMinimal, "\"10.0.1.5\"", "\"10.0.0.100\""), "10.0.0.100\"; port = 8000",
                     "backend address 10.0.0.100 is the VIP's own address");
}

// ---- nat_addresses -----------------------------------------------------------------------------

// kMinimal with `list` as the client port's nat_addresses.
std::string with_nat(const std::string& list) {
    return replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\";\n    nat_addresses = " + list + ";");
}

TEST(ConfigNatAddresses, DefaultIsEmpty) { EXPECT_TRUE(expect_ok(load(kMinimal)).ports[0].nat_addresses.empty()); }

TEST(ConfigNatAddresses, ListedAddressesAreKeptInOrder) {
    const auto r = load(with_nat(R"([ "10.0.0.3", "10.0.0.2" ])"));
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.ports[0].nat_addresses.size(), 2u);
    EXPECT_EQ(c.ports[0].nat_addresses[0].to_string(), "10.0.0.3");
    EXPECT_EQ(c.ports[0].nat_addresses[1].to_string(), "10.0.0.2");
    EXPECT_TRUE(expect_ok(load(with_nat("[]"))).ports[0].nat_addresses.empty());
    // A list ( ... ) is accepted as well as an array [ ... ].
    EXPECT_EQ(expect_ok(load(with_nat(R"(( "10.0.0.2" ))"))).ports[0].nat_addresses.size(), 1u);
}

TEST(ConfigNatAddresses, UpToSixteenPerPort) {
    auto list = [](int n) {
        std::string s = "[";
        for (int i = 0; i < n; ++i) s += (i ? ", \"10.0.0." : " \"10.0.0.") + std::to_string(10 + i) + "\"";
        return s + " ]";
    };
    EXPECT_EQ(expect_ok(load(with_nat(list(16)))).ports[0].nat_addresses.size(), 16u);
    expect_one_error(with_nat(list(17)), "nat_addresses",
                     "'nat_addresses' lists 17 addresses; a port may have at most 16");
}

TEST(ConfigNatAddresses, AtMost256LocalAddressesInAll) {
    // A flow keeps the index of its source address in one byte.
    auto ports = [](int n_ports, int nat_each) {
        std::string text = "ports = (\n";
        for (int i = 0; i < n_ports; ++i) {
            const std::string net = "10." + std::to_string(i) + ".0.";
            text += std::string(i ? ",\n" : "") + "  { name = \"p" + std::to_string(i) + "\"; device = \"net_null" +
                    std::to_string(i) + "\"; address = \"" + net + "1/24\"; nat_addresses = [";
            for (int k = 0; k < nat_each; ++k)
                text += std::string(k ? ", " : " ") + "\"" + net + std::to_string(10 + k) + "\"";
            text += " ]; }";
        }
        return text + "\n);\n";
    };
    EXPECT_EQ(expect_ok(load(ports(16, 15))).ports.size(), 16u);  // 16 x 16 = 256
    expect_one_error(ports(16, 16), "ports = (",
                     "the ports have 272 addresses with their 'nat_addresses'; at most 256 in all");
}

TEST(ConfigNatAddresses, EveryBadEntryIsRefused) {
    expect_one_error(with_nat(R"("10.0.0.2")"), "nat_addresses",
                     "'nat_addresses' must be an array of IPv4 addresses, not a string");
    expect_one_error(with_nat("[ 5 ]"), "nat_addresses",
                     "each entry of 'nat_addresses' must be a string \"a.b.c.d\", not an integer");
    expect_one_error(with_nat(R"([ "10.0.0.300" ])"), "nat_addresses",
                     "'nat_addresses' entry \"10.0.0.300\" is not a valid IPv4 address");
    expect_one_error(with_nat(R"([ "10.0.0.2/24" ])"), "nat_addresses", "write it without a prefix length");
    expect_one_error(with_nat(R"([ "fd00::2" ])"), "nat_addresses",
                     "NAT address fd00::2: IPv6 is not supported by the data path yet");
    expect_one_error(with_nat(R"([ "10.0.1.2" ])"), "nat_addresses",
                     "NAT address 10.0.1.2 is not inside the port's subnet 10.0.0.1/24");
    expect_one_error(with_nat(R"([ "10.0.0.1" ])"), "nat_addresses",
                     "NAT address 10.0.0.1 is the port's own 'address'");
    expect_one_error(with_nat(R"([ "10.0.0.0" ])"), "nat_addresses",
                     "NAT address 10.0.0.0 is the network address of the port's subnet 10.0.0.1/24");
    expect_one_error(with_nat(R"([ "10.0.0.255" ])"), "nat_addresses",
                     "NAT address 10.0.0.255 is the broadcast address of the port's subnet 10.0.0.1/24");
    expect_one_error(with_nat(R"([ "10.0.0.2", "10.0.0.2" ])"), "nat_addresses",
                     "NAT address 10.0.0.2 is already a NAT address of port 'client' (line 2)");
}

TEST(ConfigNatAddresses, MustNotBeAnyOtherAddress) {
    // Another port's address, before or after it.
    const std::string two_ports =
        replaced(with_nat(R"([ "10.0.0.2" ])"), "\n);\nvips",
                 ",\n  { name = \"backend\"; device = \"net_af_packet1\"; address = \"10.0.0.2/24\"; }\n);\nvips");
    expect_one_error(two_ports, "10.0.0.2/24", "address 10.0.0.2 is a NAT address of port 'client' (line 2)");
    const std::string other_first =
        replaced(with_nat(R"([ "10.0.0.2" ])"), "ports = (\n",
                 "ports = (\n  { name = \"backend\"; device = \"net_af_packet1\"; address = \"10.0.0.2/24\"; },\n");
    expect_one_error(other_first, "nat_addresses", "NAT address 10.0.0.2 is the address of port 'backend' (line 2)");
    // Another port's NAT address.
    const std::string shared = replaced(with_nat(R"([ "10.0.0.2" ])"), "\n);\nvips",
                                        ",\n  { name = \"backend\"; device = \"net_af_packet1\"; address = "
                                        "\"10.0.0.3/24\"; nat_addresses = [ \"10.0.0.2\" ]; }\n);\nvips");
    expect_one_error(shared, "address = \"10.0.0.3/24\"",
                     "NAT address 10.0.0.2 is already a NAT address of port 'client' (line 2)");
    // A VIP, a backend, the gateway.
    expect_one_error(with_nat(R"([ "10.0.0.100" ])"), "10.0.0.100\"; port",
                     "VIP address 10.0.0.100 is a NAT address of port 'client'; a VIP needs an address of its own");
    expect_one_error(replaced(with_nat(R"([ "10.0.0.2" ])"), "\"10.0.1.5\"", "\"10.0.0.2\""), "10.0.0.2\"; port = 8000",
                     "backend address 10.0.0.2 is a NAT address of port 'client'");
    expect_one_error(
        replaced(with_nat(R"([ "10.0.0.254" ])"), "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; gateway = \"10.0.0.254\";"),
        "gateway", "'gateway' 10.0.0.254 is one of the port's 'nat_addresses'");
}

TEST(ConfigControl, MetricsListen) {
    const auto set = [](const std::string& value) {
        return replaced(kMinimal, "ports = (",
                        "control = { metrics_listen = \"" + value + "\"; };\nports = (");
    };
    EXPECT_EQ(expect_ok(load(set("0.0.0.0:9100"))).control.metrics_listen, "0.0.0.0:9100");
    EXPECT_EQ(expect_ok(load(set(""))).control.metrics_listen, "");
    expect_one_error(set("localhost:9100"), "metrics_listen", "must be \"a.b.c.d:port\" (port 1..65535)");
    expect_one_error(set("127.0.0.1:0"), "metrics_listen", "must be \"a.b.c.d:port\"");
    expect_one_error(set("127.0.0.1"), "metrics_listen", "must be \"a.b.c.d:port\"");
    expect_one_error(set("[::1]:9100"), "metrics_listen", "IPv6 is not supported yet");
}

TEST(ConfigControl, SocketPath) {
    const auto set = [](const std::string& value) {
        return replaced(kMinimal, "ports = (", "control = { socket = \"" + value + "\"; };\nports = (");
    };
    expect_one_error(set(""), "socket", "'socket' must not be empty");
    expect_one_error(set("/" + std::string(120, 'x')), "socket", "longer than 107 characters");
}

// ---- ranges ------------------------------------------------------------------------------------

TEST(ConfigRanges, OutOfRangeSaysTheRange) {
    struct Case {  // one edit of the base text, where the error must point, and what it must say
        std::string from, to, at, message;
    };
    const std::string port_end = "address = \"10.0.0.1/24\";";
    const std::string vip_end = "port = 80;";
    const std::string be_end = "port = 8000;";
    const auto workers = [](const std::string& kv) { return "workers = { " + kv + " };\nports = ("; };
    const std::vector<Case> cases = {
        {port_end, port_end + " mtu = 67;", "mtu", "'mtu' = 67 is out of range 68..9000"},
        {port_end, port_end + " mtu = 9001;", "mtu", "'mtu' = 9001 is out of range 68..9000"},
        {"ports = (", workers("burst_size = 513;"), "burst_size",
         "'burst_size' = 513 is out of range 1..512"},
        {"ports = (", workers("flow_capacity = 1023;"), "flow_capacity",
         "'flow_capacity' = 1023 is out of range 1024..67108864"},
        {"ports = (", workers("rx_descriptors = 32;"), "rx_descriptors",
         "'rx_descriptors' = 32 is out of range 64..16384"},
        {"ports = (", workers("tx_descriptors = 16385;"), "tx_descriptors",
         "'tx_descriptors' = 16385 is out of range 64..16384"},
        {"ports = (", workers("mbufs = 16777217;"), "mbufs",
         "'mbufs' = 16777217 is out of range 1023..16777216"},
        {"ports = (", workers("idle_sleep_us = 10001;"), "idle_sleep_us",
         "'idle_sleep_us' = 10001 is out of range 0..10000"},
        {vip_end, "port = 0;", "port = 0", "'port' = 0 is out of range 1..65535"},
        {vip_end, "port = 65536;", "port = 65536", "'port' = 65536 is out of range 1..65535"},
        {be_end, "port = -1;", "port = -1", "'port' = -1 is out of range 1..65535"},
        {be_end, be_end + " weight = 65536;", "weight", "'weight' = 65536 is out of range 0..65535"},
        {vip_end, vip_end + " table_size = 11;", "table_size",
         "'table_size' = 11 is out of range 13..4194301"},
        {vip_end, vip_end + " table_size = 4194319;", "table_size", "out of range 13..4194301"},
        {vip_end, vip_end + " drain_timeout = 86401;", "drain_timeout",
         "'drain_timeout' = 86401 is out of range 0..86400"},
        {vip_end, vip_end + " timeouts = { tcp_syn = 0; };", "timeouts",
         "'tcp_syn' = 0 is out of range 1..604800"},
        {vip_end, vip_end + " timeouts = { tcp_established = 604801; };", "timeouts",
         "'tcp_established' = 604801 is out of range 1..604800"},
        {vip_end, vip_end + " timeouts = { tcp_closing = 0; };", "timeouts",
         "'tcp_closing' = 0 is out of range"},
        {vip_end, vip_end + " timeouts = { udp = 0; };", "timeouts", "'udp' = 0 is out of range 1..604800"},
        {vip_end, vip_end + " health = { port = 65536; };", "health",
         "'port' = 65536 is out of range 0..65535"},
        {vip_end, vip_end + " health = { expect_status = 99; };", "health",
         "'expect_status' = 99 is out of range 100..599"},
        {vip_end, vip_end + " health = { expect_status = 600; };", "health", "out of range 100..599"},
        {vip_end, vip_end + " health = { interval_ms = 49; };", "health",
         "'interval_ms' = 49 is out of range 50..3600000"},
        {vip_end, vip_end + " health = { timeout_ms = 9; };", "health",
         "'timeout_ms' = 9 is out of range 10..3600000"},
        {vip_end, vip_end + " health = { rise = 0; };", "health", "'rise' = 0 is out of range 1..100"},
        {vip_end, vip_end + " health = { fall = 101; };", "health", "'fall' = 101 is out of range 1..100"},
        {be_end, be_end + " health = { rise = 101; };", "health", "'rise' = 101 is out of range 1..100"},
    };
    for (const auto& c : cases) expect_one_error(replaced(kMinimal, c.from, c.to), c.at, c.message);
}

TEST(ConfigRanges, TableSizeMustBePrime) {
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; table_size = 65536;"), "table_size",
                     "'table_size' = 65536 is not a prime (nearest: 65521 or 65537)");
    EXPECT_TRUE(load(replaced(kMinimal, "port = 80;", "port = 80; table_size = 4194301;")).ok());
    EXPECT_TRUE(load(replaced(kMinimal, "port = 80;", "port = 80; table_size = 655373;")).ok());
}

TEST(ConfigRanges, EnumsListTheirValues) {
    struct Case {  // a bad value for an enum key and the message listing the choices
        std::string key, value, message;
    };
    const std::vector<Case> cases = {
        {"protocol", "sctp",
         "'protocol' = \"sctp\" is not one of \"tcp\" or \"udp\" (did you mean \"tcp\"?)"},
        {"mode", "dsr", "'mode' = \"dsr\" is not one of \"nat\" or \"dnat\""},
        {"scheduler", "roundrobin",
         "'scheduler' = \"roundrobin\" is not one of \"maglev\", \"round_robin\", \"least_conn\" or "
         "\"two_choices\" (did you mean \"round_robin\"?)"},
        {"hash", "5tuple",
         "'hash' = \"5tuple\" is not one of \"5-tuple\" or \"source-ip\" (did you mean \"5-tuple\"?)"},
        {"down_flows", "Drop",
         "'down_flows' = \"Drop\" is not one of \"keep\" or \"drop\" (did you mean \"drop\"?)"},
    };
    for (const auto& c : cases) {
        const auto text = replaced(kMinimal, "port = 80;", "port = 80; " + c.key + " = \"" + c.value + "\";");
        expect_one_error(text, c.key, c.message);
        EXPECT_EQ(load(text).errors.at(0).message, c.message);
    }
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; health = { type = \"icmp\"; };"), "health",
                     "'type' = \"icmp\" is not one of \"tcp\", \"http\" or \"none\"");
}

// ---- health checks -----------------------------------------------------------------------------

TEST(ConfigHealth, TimeoutMustNotExceedInterval) {
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; health = { interval_ms = 400; };"),
                     "health", "health 'timeout_ms' (500) must not exceed 'interval_ms' (400)");
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80;\n health = {\n timeout_ms = 1500; };"),
                     "timeout_ms", "health 'timeout_ms' (1500) must not exceed 'interval_ms' (1000)");
    // A backend inheriting the VIP's timeout can break the rule with its own interval.
    expect_one_error(replaced(kMinimal, "port = 8000;", "port = 8000; health = { interval_ms = 100; };"),
                     "interval_ms", "health 'timeout_ms' (500) must not exceed 'interval_ms' (100)");
    EXPECT_TRUE(load(replaced(kMinimal, "port = 80;", "port = 80; health = { interval_ms = 500; };")).ok());
}

TEST(ConfigHealth, PathMustStartWithSlash) {
    expect_one_error(
        replaced(kMinimal, "port = 80;", "port = 80; health = { type = \"http\"; path = \"health\"; };"),
        "path", "'path' = \"health\" must start with '/'");
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; health = { path = \"/a b\"; };"), "path",
                     "must not contain spaces or control characters");
}

TEST(ConfigHealth, BackendOverrideInheritsTheVipsSettings) {
    const auto text =
        replaced(replaced(kMinimal, "port = 80;",
                          "port = 80; health = { type = \"http\"; path = \"/ready\"; rise = 5; };"),
                 "port = 8000;", "port = 8000; health = { port = 9000; fall = 7; };");
    const auto r = load(text);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.vips.size(), 1u);
    ASSERT_EQ(c.vips[0].backends.size(), 1u);
    ASSERT_TRUE(c.vips[0].backends[0].health.has_value());
    const HealthCheckConfig& h = *c.vips[0].backends[0].health;
    EXPECT_EQ(h.kind, HealthCheckKind::http);
    EXPECT_EQ(h.path, "/ready");
    EXPECT_EQ(h.rise, 5u);
    EXPECT_EQ(h.port, 9000);
    EXPECT_EQ(h.fall, 7u);
    EXPECT_EQ(h.interval_ms, 1000u);
    EXPECT_EQ(c.vips[0].health.fall, 3u);  // the VIP's own check is untouched
}

// ---- ports -------------------------------------------------------------------------------------

const std::string kTwoPorts = R"(ports = (
  { name = "client"; device = "net_af_packet0"; address = "10.0.0.1/24"; },
  { name = "backend"; device = "net_af_packet1"; address = "10.0.1.1/24"; }
);
)";

TEST(ConfigPorts, DuplicateNamesDevicesAddressesAndInterfaces) {
    ASSERT_TRUE(load(kTwoPorts).ok()) << all_errors(load(kTwoPorts));
    expect_one_error(replaced(kTwoPorts, "\"backend\"", "\"client\""),
                     "name = \"client\"; device = \"net_af_packet1",
                     "duplicate port name 'client' (first at line 2)");
    expect_one_error(replaced(kTwoPorts, "\"net_af_packet1\"", "\"net_af_packet0\""), "\"backend\"",
                     "device 'net_af_packet0' is already used by port 'client' (line 2)");
    expect_one_error(replaced(kTwoPorts, "\"10.0.1.1/24\"", "\"10.0.0.1/16\""), "\"backend\"",
                     "address 10.0.0.1 is already used by port 'client' (line 2)");
    expect_one_error(
        replaced(kTwoPorts, "\"10.0.1.1/24\";", "\"10.0.1.1/24\"; exception_iface = \"fe-client\";"),
        "\"backend\"", "exception interface 'fe-client' is already used by port 'client' (line 2)");
    // ...but an interface that is switched off cannot clash.
    EXPECT_TRUE(load(replaced(kTwoPorts, "\"10.0.1.1/24\";",
                              "\"10.0.1.1/24\"; exception_iface = \"fe-client\"; exception_path = false;"))
                    .ok());
}

TEST(ConfigPorts, ExceptionInterfaceName) {
    expect_one_error(
        replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; exception_iface = \"fe-0123456789abc\";"),
        "exception_iface", "'exception_iface' \"fe-0123456789abc\" is longer than 15 characters");
    expect_one_error(replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; exception_iface = \"fe/x\";"),
                     "exception_iface", "must not contain '/', ':' or whitespace");
    expect_one_error(replaced(kMinimal, "\"client\"", "\"client-facing-1\""), "client-facing-1",
                     "the default 'exception_iface' \"fe-client-facing-1\" is longer than 15 characters");
    EXPECT_TRUE(load(replaced(kMinimal, "\"client\";", "\"client-facing-1\"; exception_path = false;")).ok());
}

TEST(ConfigPorts, DevargsMustCreateTheNamedDevice) {
    EXPECT_TRUE(
        load(replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; devargs = \"net_af_packet0,iface=x\";"))
            .ok());
    expect_one_error(
        replaced(kMinimal, "\"10.0.0.1/24\";", "\"10.0.0.1/24\"; devargs = \"net_af_packet1,iface=x\";"),
        "devargs", "'devargs' creates device 'net_af_packet1' but 'device' is 'net_af_packet0'");
}

// ---- VIPs and backends -------------------------------------------------------------------------

const std::string kTwoVips = R"(ports = (
  { name = "client"; device = "net_af_packet0"; address = "10.0.0.1/24"; }
);
vips = (
  { name = "web"; address = "10.0.0.100"; port = 80;
    backends = ( { address = "10.0.1.5"; port = 8000; } ); },
  { name = "api"; address = "10.0.0.101"; port = 80;
    backends = ( { address = "10.0.1.5"; port = 8000; } ); }
);
)";

TEST(ConfigVips, DuplicateVipsAndNames) {
    ASSERT_TRUE(load(kTwoVips).ok()) << all_errors(load(kTwoVips));
    expect_one_error(replaced(kTwoVips, "\"10.0.0.101\"", "\"10.0.0.100\""), "{ name = \"api\"",
                     "duplicate VIP 10.0.0.100:80/tcp (first at line 5)");
    expect_one_error(replaced(kTwoVips, "\"api\"", "\"web\""), "name = \"web\"; address = \"10.0.0.101",
                     "duplicate VIP name 'web' (first at line 5)");
    // A default name can clash with an explicit one.
    const auto unnamed = replaced(kTwoVips, "name = \"web\"; ", "");
    ASSERT_TRUE(load(unnamed).ok());
    expect_one_error(replaced(unnamed, "\"api\"", "\"10.0.0.100:80/tcp\""), "10.0.0.100:80/tcp",
                     "duplicate VIP name '10.0.0.100:80/tcp' (first at line 5)");
}

TEST(ConfigVips, SameAddressAndPortWithAnotherProtocolIsFine) {
    const auto text = replaced(replaced(kTwoVips, "\"10.0.0.101\"", "\"10.0.0.100\""), "\"api\";",
                               "\"api\"; protocol = \"udp\";");
    const auto r = load(text);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.vips.size(), 2u);
    EXPECT_EQ(c.vips[1].proto, L4Proto::udp);
}

TEST(ConfigVips, DuplicateBackendsWithinAVip) {
    const auto text = replaced(kMinimal, "backends = ( { address = \"10.0.1.5\"; port = 8000; } );",
                               "backends = ( { address = \"10.0.1.5\"; port = 8000; },\n"
                               "      { address = \"10.0.1.5\"; port = 8001; },\n"
                               "      { address = \"10.0.1.5\"; port = 8000; weight = 5; } );");
    expect_one_error(text, "weight = 5",
                     "duplicate backend 10.0.1.5:8000 in VIP '10.0.0.100:80/tcp' (first at line 6)");
}

// With every scheduler: each VIP gets a Maglev table, which cannot hold more weighted backends than
// it has slots. Checked on the listed backends, as any of them can become weighted at run time (a
// health check passing, an operator's weight or undrain); a runtime refusal used to end ferryd.
TEST(ConfigVips, MoreBackendsThanMaglevSlots) {
    std::string list;
    for (int i = 1; i <= 14; ++i) list += "{ address = \"10.0.1." + std::to_string(i) + "\"; port = 80; },";
    list.pop_back();
    for (const char* scheduler : {"maglev", "round_robin", "least_conn", "two_choices"}) {
        SCOPED_TRACE(scheduler);
        const auto text = replaced(replaced(kMinimal, "{ address = \"10.0.1.5\"; port = 8000; }", list), "port = 80;",
                                   std::string("port = 80; table_size = 13; scheduler = \"") + scheduler + "\";");
        expect_one_error(text, "table_size", "has 14 backends, more than its Maglev 'table_size' 13");
    }
}

// ---- load-aware weights and slow start ---------------------------------------------------------

TEST(ConfigLoadAware, OffByDefault) {
    const auto r = load(kMinimal);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.vips.size(), 1u);
    const LoadAwareConfig& la = c.vips[0].load_aware;
    const LoadAwareConfig defaults;
    EXPECT_FALSE(la.enabled);
    EXPECT_EQ(la, defaults);
    EXPECT_EQ(la.format, LoadMetricsFormat::vllm);
    EXPECT_EQ(la.path, "/metrics");
    EXPECT_EQ(la.port, 0);
    EXPECT_EQ(la.interval_ms, 1000u);
    EXPECT_EQ(la.timeout_ms, 500u);
    EXPECT_DOUBLE_EQ(la.floor, 0.1);
    EXPECT_DOUBLE_EQ(la.target_queue, 4.0);
    EXPECT_DOUBLE_EQ(la.kv_threshold, 0.8);
    EXPECT_DOUBLE_EQ(la.queue_weight, 1.0);
    EXPECT_DOUBLE_EQ(la.kv_weight, 1.0);
    EXPECT_DOUBLE_EQ(la.smoothing, 0.3);
    EXPECT_DOUBLE_EQ(la.hysteresis, 0.05);
    EXPECT_EQ(la.aggregate, LoadAggregate::sum);
    EXPECT_EQ(c.vips[0].slow_start_s, 0u);
}

TEST(ConfigLoadAware, EveryKeyCanBeSetAndIntegersAreFloats) {
    const auto text = replaced(kMinimal, "port = 80;", R"(port = 80; slow_start = 45;
    load_aware = { enabled = true; format = "tgi"; path = "/m"; port = 9100; interval_ms = 100;
                   timeout_ms = 100; floor = 0; target_queue = 8; kv_threshold = 0.5; queue_weight = 0.5;
                   kv_weight = 0; smoothing = 1; hysteresis = 0.1; aggregate = "max"; };)");
    const auto r = load(text);
    const Config& c = expect_ok(r);
    ASSERT_EQ(c.vips.size(), 1u);
    const LoadAwareConfig& la = c.vips[0].load_aware;
    EXPECT_TRUE(la.enabled);
    EXPECT_EQ(la.format, LoadMetricsFormat::tgi);
    EXPECT_EQ(la.path, "/m");
    EXPECT_EQ(la.port, 9100);
    EXPECT_EQ(la.interval_ms, 100u);
    EXPECT_EQ(la.timeout_ms, 100u);
    EXPECT_DOUBLE_EQ(la.floor, 0.0);
    EXPECT_DOUBLE_EQ(la.target_queue, 8.0);
    EXPECT_DOUBLE_EQ(la.kv_threshold, 0.5);
    EXPECT_DOUBLE_EQ(la.queue_weight, 0.5);
    EXPECT_DOUBLE_EQ(la.kv_weight, 0.0);
    EXPECT_DOUBLE_EQ(la.smoothing, 1.0);
    EXPECT_DOUBLE_EQ(la.hysteresis, 0.1);
    EXPECT_EQ(la.aggregate, LoadAggregate::max);
    EXPECT_EQ(c.vips[0].slow_start_s, 45u);

    const auto triton = replaced(kMinimal, "port = 80;", "port = 80; load_aware = { format = \"triton\"; "
                                                         "target_queue = 2.5e1; floor = 1L; };");
    const auto rt = load(triton);
    const LoadAwareConfig& t = expect_ok(rt).vips.at(0).load_aware;
    EXPECT_EQ(t.format, LoadMetricsFormat::triton);
    EXPECT_DOUBLE_EQ(t.target_queue, 25.0);
    EXPECT_DOUBLE_EQ(t.floor, 1.0);
}

TEST(ConfigLoadAware, TheGroupTurnsItOnUnlessDisabled) {
    const auto on = replaced(kMinimal, "port = 80;", "port = 80; load_aware = {};");
    const auto ra = load(on);
    const LoadAwareConfig& a = expect_ok(ra).vips.at(0).load_aware;
    EXPECT_TRUE(a.enabled);
    EXPECT_EQ(a.format, LoadMetricsFormat::vllm);
    const auto off =
        replaced(kMinimal, "port = 80;", "port = 80; load_aware = { enabled = false; format = \"tgi\"; };");
    const auto rb = load(off);
    const LoadAwareConfig& b = expect_ok(rb).vips.at(0).load_aware;
    EXPECT_FALSE(b.enabled);
    EXPECT_EQ(b.format, LoadMetricsFormat::tgi);
    // Disabled or not, every key is checked.
    expect_one_error(
        replaced(kMinimal, "port = 80;", "port = 80; load_aware = { enabled = false; floor = 2; };"), "floor",
        "'floor' = 2 is out of range 0..1");
}

TEST(ConfigLoadAware, UnknownKeysAndTypos) {
    const auto at = [](const std::string& body) {
        return replaced(kMinimal, "port = 80;", "port = 80;\n    load_aware = { " + body + " };");
    };
    expect_one_error(at("intervall_ms = 500;"), "intervall_ms",
                     "unknown key 'intervall_ms' in load_aware (did you mean 'interval_ms'?)");
    expect_one_error(at("smothing = 0.5;"), "smothing",
                     "unknown key 'smothing' in load_aware (did you mean 'smoothing'?)");
    expect_one_error(at("expect_status = 200;"), "expect_status",
                     "unknown key 'expect_status' in load_aware");
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; slow_strat = 5;"), "slow_strat",
                     "unknown key 'slow_strat' in VIP (did you mean 'slow_start'?)");
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; load_awre = {};"), "load_awre",
                     "unknown key 'load_awre' in VIP (did you mean 'load_aware'?)");
    // load_aware belongs to the VIP, not to a backend.
    expect_one_error(replaced(kMinimal, "port = 8000;", "port = 8000; load_aware = {};"), "load_aware",
                     "unknown key 'load_aware' in backend");
    const auto text = at("format = \"vlm\";");
    expect_one_error(text, "vlm",
                     "'format' = \"vlm\" is not one of \"vllm\", \"tgi\" or \"triton\" "
                     "(did you mean \"vllm\"?)");
    expect_one_error(at("aggregate = \"avg\";"), "avg",
                     "'aggregate' = \"avg\" is not one of \"sum\" or \"max\"");
}

TEST(ConfigLoadAware, RangesAndTypes) {
    struct Case {  // the body of a load_aware group, the key the error points at, and what it says
        std::string body, at, message;
    };
    const std::vector<Case> cases = {
        {"floor = 1.5;", "floor", "'floor' = 1.5 is out of range 0..1"},
        {"floor = -0.1;", "floor", "'floor' = -0.1 is out of range 0..1"},
        {"floor = 2;", "floor", "'floor' = 2 is out of range 0..1"},
        {"target_queue = 0;", "target_queue",
         "'target_queue' = 0 must be greater than 0 and at most 1000000"},
        {"target_queue = 2e6;", "target_queue",
         "'target_queue' = 2000000 must be greater than 0 and at most 1000000"},
        {"kv_threshold = 1.0;", "kv_threshold", "'kv_threshold' = 1 must be at least 0 and less than 1"},
        {"queue_weight = 1.01;", "queue_weight", "'queue_weight' = 1.01 is out of range 0..1"},
        {"kv_weight = -1;", "kv_weight", "'kv_weight' = -1 is out of range 0..1"},
        {"smoothing = 0.0;", "smoothing", "'smoothing' = 0 must be greater than 0 and at most 1"},
        {"hysteresis = 1.5;", "hysteresis", "'hysteresis' = 1.5 is out of range 0..1"},
        {"interval_ms = 99;", "interval_ms", "'interval_ms' = 99 is out of range 100..3600000"},
        {"timeout_ms = 9;", "timeout_ms", "'timeout_ms' = 9 is out of range 10..3600000"},
        {"interval_ms = 400;", "interval_ms",
         "load_aware 'timeout_ms' (500) must not exceed 'interval_ms' (400)"},
        {"timeout_ms = 1500;", "timeout_ms",
         "load_aware 'timeout_ms' (1500) must not exceed 'interval_ms' (1000)"},
        {"port = 65536;", "65536", "'port' = 65536 is out of range 0..65535"},
        {"path = \"metrics\";", "path", "'path' = \"metrics\" must start with '/'"},
        {"path = \"/a b\";", "path", "must not contain spaces or control characters"},
        {"floor = \"0.5\";", "floor",
         "'floor' must be a number, not a string (write the number without quotes)"},
        {"floor = true;", "floor", "'floor' must be a number, not a boolean"},
        {"interval_ms = 1000.0;", "interval_ms", "'interval_ms' must be an integer, not a float"},
        {"enabled = \"yes\";", "enabled", "'enabled' must be a boolean (true or false), not a string"},
        {"target_queue = 5000000000;", "target_queue",
         "'target_queue' = 5000000000 must be greater than 0 and at most 1000000"},
    };
    for (const auto& c : cases) {
        const auto text =
            replaced(kMinimal, "port = 80;", "port = 80;\n    load_aware = { " + c.body + " };");
        expect_one_error(text, c.at, c.message);
    }
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; load_aware = true;"), "load_aware",
                     "'load_aware' must be a group, not a boolean");
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; slow_start = 3601;"), "slow_start",
                     "'slow_start' = 3601 is out of range 0..3600");
    expect_one_error(replaced(kMinimal, "port = 80;", "port = 80; slow_start = 1.5;"), "slow_start",
                     "'slow_start' must be an integer, not a float");
    // A bad pair is reported once, by the bad member, not again as "timeout exceeds interval".
    expect_one_error(
        replaced(kMinimal, "port = 80;", "port = 80;\n load_aware = { interval_ms = 50; timeout_ms = 60; };"),
        "interval_ms", "'interval_ms' = 50 is out of range 100..3600000");
}

TEST(ConfigLoadAware, EveryProblemInTheGroupIsReported) {
    const auto text = replaced(kMinimal, "port = 80;", R"(port = 80;
    load_aware = {
      format = "prometheus";
      floor = 3;
      smoothing = 0;
      colour = 1;
    };)");
    const auto r = load(text);
    ASSERT_EQ(r.errors.size(), 4u) << all_errors(r);
    EXPECT_EQ(r.errors[0].line, line_of(text, "format"));
    EXPECT_EQ(r.errors[1].line, line_of(text, "floor"));
    EXPECT_EQ(r.errors[2].line, line_of(text, "smoothing"));
    EXPECT_EQ(r.errors[3].line, line_of(text, "colour"));
}

// The example block in conf/ferry.conf, uncommented, is a valid configuration with the defaults.
TEST(ConfigLoadAware, ExampleBlockInTheShippedFileIsValid) {
    const auto r0 = load_config_file("conf/ferry.conf");
    ASSERT_TRUE(r0.ok()) << all_errors(r0);
    EXPECT_FALSE(r0.config->vips.at(0).load_aware.enabled);
    EXPECT_EQ(r0.config->vips.at(0).slow_start_s, 0u);

    std::ifstream in("conf/ferry.conf");
    ASSERT_TRUE(in) << "conf/ferry.conf";
    std::string text, line;
    bool inside = false, in_latency = false;
    int uncommented = 0;
    while (std::getline(in, line)) {
        // The load_aware block runs to the slow_start line, the latency_aware block to its "};".
        if (line.find("# load_aware = {") != std::string::npos) inside = true;
        const bool latency = line.find("# latency_aware = {") != std::string::npos;
        if (latency) inside = true;
        if (inside) {
            const auto hash = line.find("# ");
            ASSERT_NE(hash, std::string::npos) << line;
            line.erase(hash, 2);
            ++uncommented;
            if (line.find("slow_start") != std::string::npos) inside = false;
            if (line == "    };" && in_latency) inside = false;
        }
        if (latency) in_latency = true;
        text += line + "\n";
    }
    EXPECT_GE(uncommented, 10);
    const auto r = load_config_text(text, "ferry.conf");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const VipConfig& v = r.config->vips.at(0);
    EXPECT_TRUE(v.load_aware.enabled);
    LoadAwareConfig expected;
    expected.enabled = true;
    EXPECT_EQ(v.load_aware, expected);
    EXPECT_EQ(v.slow_start_s, 30u);
    // The latency_aware example shows the defaults too.
    LatencyAwareConfig latency;
    latency.enabled = true;
    EXPECT_EQ(v.latency_aware, latency);
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

std::string with_latency(const std::string& body, const std::string& more = "") {
    return replaced(kMinimal, "port = 80;", "port = 80;" + more + "\n    latency_aware = { " + body + " };");
}

TEST(ConfigLatencyAware, OffByDefaultOnWhenWritten) {
    const auto r0 = load(kMinimal);
    const LatencyAwareConfig& off = expect_ok(r0).vips.at(0).latency_aware;
    EXPECT_FALSE(off.enabled);
    EXPECT_EQ(off, LatencyAwareConfig{});
    const auto r1 = load(with_latency(""));
    const LatencyAwareConfig& on = expect_ok(r1).vips.at(0).latency_aware;
    EXPECT_TRUE(on.enabled);
    EXPECT_EQ(on.signal, LatencySignal::ttft);
    EXPECT_DOUBLE_EQ(on.sensitivity, 1.0);
    EXPECT_DOUBLE_EQ(on.tolerance_ms, 1.0);
    EXPECT_DOUBLE_EQ(on.floor, 0.1);
    EXPECT_TRUE(on.scrapes());
    const auto r2 = load(with_latency(
        "enabled = true; signal = \"tpot\"; sensitivity = 2; tolerance_ms = 5; floor = 0.2; smoothing = 0.5; "
        "hysteresis = 0.1;",
        " load_aware = { enabled = false; tpot_metric = \"my:tpot_seconds\"; };"));
    const VipConfig& v = expect_ok(r2).vips.at(0);
    EXPECT_EQ(v.latency_aware.signal, LatencySignal::tpot);
    EXPECT_DOUBLE_EQ(v.latency_aware.sensitivity, 2.0);
    EXPECT_DOUBLE_EQ(v.latency_aware.tolerance_ms, 5.0);
    EXPECT_DOUBLE_EQ(v.latency_aware.floor, 0.2);
    EXPECT_DOUBLE_EQ(v.latency_aware.smoothing, 0.5);
    EXPECT_DOUBLE_EQ(v.latency_aware.hysteresis, 0.1);
    EXPECT_EQ(v.load_aware.tpot_metric, std::optional<std::string>("my:tpot_seconds"));
    EXPECT_FALSE(v.load_aware.ttft_metric);
    const auto r3 = load(with_latency("signal = \"connect\";"));
    EXPECT_FALSE(expect_ok(r3).vips.at(0).latency_aware.scrapes());
    const auto r4 = load(with_latency("enabled = false; signal = \"probe\";"));
    EXPECT_FALSE(expect_ok(r4).vips.at(0).latency_aware.enabled);
}

TEST(ConfigLatencyAware, ErrorsWithFileAndLine) {
    expect_one_error(with_latency("signal = \"rtt\";"), "rtt",
                     "'signal' = \"rtt\" is not one of \"connect\", \"probe\", \"ttft\" or \"tpot\"");
    expect_one_error(with_latency("sensitivity = 0;"), "sensitivity",
                     "'sensitivity' = 0 must be greater than 0 and at most 10");
    expect_one_error(with_latency("sensitivity = 11;"), "sensitivity",
                     "'sensitivity' = 11 must be greater than 0 and at most 10");
    expect_one_error(with_latency("floor = 1.5;"), "floor", "'floor' = 1.5 is out of range 0..1");
    expect_one_error(with_latency("tolerance_ms = -1;"), "tolerance_ms",
                     "'tolerance_ms' = -1 is out of range 0..60000");
    expect_one_error(with_latency("smoothing = 0;"), "smoothing",
                     "'smoothing' = 0 must be greater than 0 and at most 1");
    expect_one_error(with_latency("hysteresis = -1;"), "hysteresis", "'hysteresis' = -1 is out of range 0..1");
    expect_one_error(with_latency("sensitivty = 1;"), "sensitivty",
                     "unknown key 'sensitivty' in latency_aware (did you mean 'sensitivity'?)");
    expect_one_error(with_latency("enabled = 1;"), "enabled", "'enabled' must be a boolean");
    // The chosen signal must exist for the VIP.
    expect_one_error(with_latency("signal = \"connect\";", " protocol = \"udp\";"), "signal",
                     "latency_aware signal \"connect\" needs a TCP VIP");
    expect_one_error(with_latency("signal = \"probe\";", " health = { type = \"none\"; };"), "signal",
                     "latency_aware signal \"probe\" needs a health check");
    expect_one_error(with_latency("signal = \"ttft\";", " load_aware = { format = \"tgi\"; };"), "signal",
                     "latency_aware signal \"ttft\" needs a histogram to read: set load_aware 'ttft_metric'");
    expect_one_error(with_latency("signal = \"tpot\";", " load_aware = { tpot_metric = \"\"; };"), "signal",
                     "needs a histogram to read: set load_aware 'tpot_metric'");
    // TGI with a TTFT name of the operator's: fine.
    EXPECT_TRUE(load(with_latency("signal = \"ttft\";",
                                  " load_aware = { format = \"tgi\"; ttft_metric = \"tgi_request_queue_duration\"; };"))
                    .ok());
    expect_one_error(with_latency("", " load_aware = { ttft_metric = \"9bad-name\"; };"), "9bad",
                     "'ttft_metric' = \"9bad-name\" is not a Prometheus metric name");
    // Disabled: the values are still checked, the signal's availability is not.
    expect_one_error(with_latency("enabled = false; floor = 3;"), "floor", "'floor' = 3 is out of range 0..1");
    EXPECT_TRUE(load(with_latency("enabled = false; signal = \"connect\";", " protocol = \"udp\";")).ok());
}

}  // namespace
}  // namespace ferry
