// ferryctl: the operator's CLI for a running ferryd.
//
//   ferryctl [--socket PATH] [--json] [--timeout S] COMMAND [ARGS]
//
// Every command is one request on ferryd's control socket (docs/CONTROL_API.md).
// Output is an aligned table for people, or with --json the raw response for
// scripts. Exit codes: 0 ok, 1 ferryd answered with an error (or no usable
// answer), 2 usage error, 3 ferryd not running, 4 permission denied.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/ip_address.hpp"
#include "config/config_loader.hpp"
#include "ferryctl/client.hpp"
#include "ferryctl/format.hpp"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

namespace {

using json = nlohmann::json;
using ferry::ctl::ClientError;

enum Exit : int { exit_ok = 0, exit_error = 1, exit_usage = 2, exit_not_running = 3, exit_permission = 4 };

// Options every command shares.
struct Globals {
    std::string socket = "/run/ferry/ferryd.sock";
    bool json = false;
    double timeout = 30;
};

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted.store(true); }

int exit_code_for(ClientError::Kind kind) {
    switch (kind) {
        case ClientError::Kind::not_running: return exit_not_running;
        case ClientError::Kind::permission: return exit_permission;
        default: return exit_error;
    }
}

void print_out(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

void print_json(const json& j) { print_out(j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"); }

// ferryd's error line, then every "file:line: reason" it listed.
void print_error(const json& r) {
    auto e = r.find("error");
    std::string msg = e != r.end() && e->is_string() ? e->get<std::string>() : "command failed";
    std::fprintf(stderr, "ferryctl: %s\n", msg.c_str());
    auto errors = r.find("errors");
    if (errors != r.end() && errors->is_array())
        for (const auto& line : *errors)
            std::fprintf(stderr, "%s\n", ferry::ctl::cell_text("", line).c_str());
}

// Sends one request; on success prints the response (raw with --json, else via
// `human`). Returns the exit code.
int run(const Globals& g, const json& request, const std::function<void(const json&)>& human) {
    json r;
    try {
        r = ferry::ctl::call(g.socket, request, g.timeout);
    } catch (const ClientError& e) {
        std::fprintf(stderr, "ferryctl: %s\n", e.what());
        return exit_code_for(e.kind());
    }
    if (g.json) print_json(r);
    if (!r["ok"].get<bool>()) {
        print_error(r);
        return exit_error;
    }
    if (!g.json) human(r);
    return exit_ok;
}

// "ADDRESS:PORT" or "[V6ADDRESS]:PORT", as ferryd names backends and flow ends.
bool valid_endpoint(const std::string& s) {
    std::string host, port;
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string::npos) return false;
        host = s.substr(0, colon);
        if (host.find(':') != std::string::npos) return false;
        port = s.substr(colon + 1);
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
        return false;
    if (std::stoul(port) > 65535) return false;
    return ferry::IpAddr::parse(host).has_value();
}

const CLI::Validator kEndpoint(
    [](std::string& s) { return valid_endpoint(s) ? std::string() : "'" + s + "' is not ADDRESS:PORT"; },
    "ADDRESS:PORT", "endpoint");

void print_changes(const json& r, const std::string& headline) {
    std::string out = headline;
    auto changes = r.find("changes");
    if (changes != r.end() && changes->is_array()) {
        if (changes->empty()) out += " (no changes)";
        out += "\n";
        for (const auto& c : *changes) {
            if (c.is_object())
                out += "  " + ferry::ctl::cell_text("", c) + "\n";
            else
                out += "  " + ferry::ctl::cell_text("", c) + "\n";
        }
    } else {
        out += "\n";
    }
    std::string rest = ferry::ctl::render_object(r, {}, {"changes"});
    if (!rest.empty()) out += rest;
    print_out(out);
}

// check-config without ferryd: the same loader ferryd uses, run here.
int check_config_locally(const Globals& g, const std::string& file) {
    ferry::ConfigLoadResult res = ferry::load_config_file(file);
    if (g.json) {
        json j = {{"ok", res.ok()}, {"checked", "locally"}};
        if (res.ok()) {
            j["ports"] = res.config->ports.size();
            j["vips"] = res.config->vips.size();
        } else {
            j["error"] = file + ": configuration refused";
            j["errors"] = json::array();
            for (const auto& e : res.errors) j["errors"].push_back(e.to_string());
        }
        print_json(j);
    }
    for (const auto& e : res.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    if (!res.ok()) {
        std::fprintf(stderr, "ferryctl: %s: %zu problem(s), configuration refused\n", file.c_str(),
                     res.errors.size());
        return exit_error;
    }
    if (!g.json)
        std::printf(
            "ferryctl: %s: configuration is valid (%zu port(s), %zu VIP(s)); checked locally, ferryd is not "
            "running\n",
            file.c_str(), res.config->ports.size(), res.config->vips.size());
    return exit_ok;
}

int check_config(const Globals& g, const std::string& file) {
    std::error_code ec;
    std::string absolute = std::filesystem::absolute(file, ec).lexically_normal().string();
    if (ec) absolute = file;
    json r;
    try {
        r = ferry::ctl::call(g.socket, {{"cmd", "check_config"}, {"file", absolute}}, g.timeout);
    } catch (const ClientError& e) {
        if (e.kind() == ClientError::Kind::not_running) return check_config_locally(g, file);
        std::fprintf(stderr, "ferryctl: %s\n", e.what());
        return exit_code_for(e.kind());
    }
    if (g.json) print_json(r);
    if (!r["ok"].get<bool>()) {
        print_error(r);
        return exit_error;
    }
    if (!g.json) print_changes(r, "ferryctl: " + file + ": configuration is valid");
    return exit_ok;
}

// stats --watch: totals and per-second rates every `interval` seconds until Ctrl-C.
int watch_stats(const Globals& g, double interval) {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    bool tty = ::isatty(STDOUT_FILENO) == 1;
    using Clock = std::chrono::steady_clock;
    json prev;
    Clock::time_point prev_t;
    bool have_prev = false;
    auto next = Clock::now();
    while (!g_interrupted.load()) {
        json r;
        try {
            r = ferry::ctl::call(g.socket, {{"cmd", "stats"}}, g.timeout);
        } catch (const ClientError& e) {
            if (g_interrupted.load()) break;
            std::fprintf(stderr, "ferryctl: %s\n", e.what());
            return exit_code_for(e.kind());
        }
        if (!r["ok"].get<bool>()) {
            if (g.json) print_json(r);
            print_error(r);
            return exit_error;
        }
        auto now = Clock::now();
        double elapsed = have_prev ? std::chrono::duration<double>(now - prev_t).count() : 0;
        const json empty = json::object();
        auto section = [&](const char* key) -> const json& {
            auto it = r.find(key);
            return it != r.end() && it->is_object() ? *it : empty;
        };
        auto prev_section = [&](const char* key) -> const json* {
            if (!have_prev) return nullptr;
            auto it = prev.find(key);
            return it != prev.end() && it->is_object() ? &*it : &empty;
        };
        if (g.json) {
            // One compact line per sample (NDJSON), with the rates added.
            json line = r;
            if (have_prev) {
                line["interval_s"] = elapsed;
                for (const char* key : {"counters", "drops"}) {
                    json rates = json::object();
                    const json* p = prev_section(key);
                    for (const auto& [k, v] : section(key).items()) {
                        auto pv = p->find(k);
                        if (pv != p->end() && pv->is_number() && v.is_number() && elapsed > 0)
                            rates[k] = (v.get<double>() - pv->get<double>()) / elapsed;
                    }
                    line["rates"][key] = rates;
                }
            }
            print_out(line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
        } else {
            char when[64];
            std::time_t t = std::time(nullptr);
            std::tm tm{};
            localtime_r(&t, &tm);
            std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            char head[160];
            std::snprintf(head, sizeof head, "ferryd stats every %gs at %s (Ctrl-C to stop)\n\n", interval,
                          when);
            std::string out = tty ? "\033[H\033[2J" : (have_prev ? "\n" : "");
            out += head;
            out += "COUNTERS\n" + ferry::ctl::render_counters(section("counters"), "COUNTER", "TOTAL",
                                                              prev_section("counters"), elapsed);
            out += "\nDROPS\n" + ferry::ctl::render_counters(section("drops"), "REASON", "COUNT",
                                                             prev_section("drops"), elapsed);
            std::string rest = ferry::ctl::render_object(r, {}, {"counters", "drops"});
            if (!rest.empty()) out += "\n" + rest;
            print_out(out);
        }
        prev = std::move(r);
        prev_t = now;
        have_prev = true;
        next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
        if (next < Clock::now()) next = Clock::now();
        while (!g_interrupted.load() && Clock::now() < next)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    namespace fmt = ferry::ctl;
    CLI::App app{"ferryctl: operate a running ferryd (Ferry L4 load balancer)", "ferryctl"};
    app.set_version_flag("-V,--version", std::string("ferryctl ") + FERRY_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // global options may also follow the command
    app.footer(
        "Exit codes: 0 ok, 1 ferryd reported an error, 2 usage error, 3 ferryd not running, "
        "4 permission denied.");

    Globals g;
    app.add_option("--socket", g.socket, "ferryd's control socket (env FERRY_SOCKET)")
        ->envname("FERRY_SOCKET")
        ->capture_default_str();
    app.add_flag("--json", g.json, "print ferryd's raw JSON response (for scripts)");
    app.add_option("--timeout", g.timeout, "seconds to wait for ferryd's answer")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();

    std::function<int()> action;

    auto* status = app.add_subcommand("status", "version, uptime, workers, ports and config of ferryd");
    status->callback([&] {
        action = [&] {
            return run(g, {{"cmd", "status"}}, [](const json& r) {
                print_out(fmt::render_object(
                    r, {"version", "uptime_s", "workers", "config_file", "config_loaded_at"}));
            });
        };
    });

    auto* vips = app.add_subcommand("vips", "virtual services and their traffic");
    vips->callback([&] {
        action = [&] {
            return run(g, {{"cmd", "vips"}}, [](const json& r) { print_out(fmt::render_object(r)); });
        };
    });

    std::string backends_vip;
    auto* backends = app.add_subcommand("backends", "backends, their state, weight and health");
    backends->add_option("VIP", backends_vip, "only this VIP's backends (name)");
    backends->callback([&] {
        action = [&] {
            json req = {{"cmd", "backends"}};
            if (!backends_vip.empty()) req["vip"] = backends_vip;
            return run(g, req, [](const json& r) { print_out(fmt::render_object(r)); });
        };
    });

    bool watch = false;
    double interval = 1;
    auto* stats = app.add_subcommand("stats", "packet, flow and drop counters");
    stats->add_flag("-w,--watch", watch, "repeat until Ctrl-C, with per-second rates");
    stats->add_option("-i,--interval", interval, "seconds between samples with --watch")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    stats->callback([&] {
        action = [&] {
            if (watch) return watch_stats(g, interval);
            return run(g, {{"cmd", "stats"}}, [](const json& r) {
                print_out(fmt::render_object(r, {"counters", "drops", "cycles_per_packet", "workers"}));
            });
        };
    });

    std::string flows_filter, flows_vip, flows_backend;
    unsigned limit = 100;
    auto* flows = app.add_subcommand("flows", "flows in the flow tables");
    flows->add_option("FILTER", flows_filter, "a VIP name, or a backend ADDRESS:PORT");
    flows->add_option("--vip", flows_vip, "only flows of this VIP");
    flows->add_option("--backend", flows_backend, "only flows to this backend")->check(kEndpoint);
    flows->add_option("-n,--limit", limit, "at most this many flows")
        ->check(CLI::Range(1u, 10000000u))
        ->capture_default_str();
    flows->callback([&] {
        action = [&] {
            json req = {{"cmd", "flows"}, {"limit", limit}};
            if (!flows_filter.empty()) {
                if (valid_endpoint(flows_filter))
                    req["backend"] = flows_filter;
                else
                    req["vip"] = flows_filter;
            }
            if (!flows_vip.empty()) req["vip"] = flows_vip;
            if (!flows_backend.empty()) req["backend"] = flows_backend;
            return run(g, req, [&](const json& r) {
                std::string out = fmt::render_object(r, {}, {"total", "truncated"});
                auto list = r.find("flows");
                std::size_t shown = list != r.end() && list->is_array() ? list->size() : 0;
                auto total = r.find("total");
                if (total != r.end() && total->is_number_unsigned() && total->get<std::size_t>() > shown)
                    out += "(" + std::to_string(shown) + " of " + std::to_string(total->get<std::size_t>()) +
                           " flows; --limit N to see more)\n";
                else if (shown >= limit || r.value("truncated", false))
                    out += "(first " + std::to_string(shown) + " flows; --limit N to see more)\n";
                print_out(out);
            });
        };
    });

    std::string trace_src, trace_dst, trace_proto;
    auto* trace = app.add_subcommand("trace", "which backend a packet would go to, and why");
    trace->add_option("SRC", trace_src, "client ADDRESS:PORT")->required()->check(kEndpoint);
    trace->add_option("DST", trace_dst, "VIP ADDRESS:PORT")->required()->check(kEndpoint);
    trace->add_option("PROTO", trace_proto, "tcp or udp")->required()->check(CLI::IsMember({"tcp", "udp"}));
    trace->callback([&] {
        action = [&] {
            json req = {{"cmd", "trace"}, {"src", trace_src}, {"dst", trace_dst}, {"proto", trace_proto}};
            return run(g, req, [](const json& r) {
                print_out(fmt::render_object(r, {"vip", "backend", "reason", "slot"}));
            });
        };
    });

    std::string w_vip, w_backend;
    unsigned w_weight = 0;
    auto* weight = app.add_subcommand("weight", "set a backend's weight (0 = no new flows)");
    weight->add_option("VIP", w_vip, "VIP name")->required();
    weight->add_option("BACKEND", w_backend, "backend ADDRESS:PORT")->required()->check(kEndpoint);
    weight->add_option("WEIGHT", w_weight, "0..65535")->required()->check(CLI::Range(0u, 65535u));
    weight->callback([&] {
        action = [&] {
            json req = {{"cmd", "weight"}, {"vip", w_vip}, {"backend", w_backend}, {"weight", w_weight}};
            return run(g, req, [&](const json& r) {
                print_out("ferryctl: " + w_backend + " in " + w_vip + ": weight " + std::to_string(w_weight) +
                          "\n" + fmt::render_object(r));
            });
        };
    });

    std::string d_vip, d_backend;
    auto* drain = app.add_subcommand("drain", "stop new flows to a backend; existing flows finish");
    auto* undrain = app.add_subcommand("undrain", "let a drained backend take new flows again");
    for (auto* sub : {drain, undrain}) {
        sub->add_option("VIP", d_vip, "VIP name")->required();
        sub->add_option("BACKEND", d_backend, "backend ADDRESS:PORT")->required()->check(kEndpoint);
        std::string cmd = sub->get_name();
        sub->callback([&, cmd] {
            action = [&, cmd] {
                json req = {{"cmd", cmd}, {"vip", d_vip}, {"backend", d_backend}};
                return run(g, req, [&, cmd](const json& r) {
                    print_out("ferryctl: " + d_backend + " in " + d_vip +
                              (cmd == "drain" ? ": draining\n" : ": taking new flows\n") +
                              fmt::render_object(r));
                });
            };
        });
    }

    auto* reload = app.add_subcommand("reload", "reload ferryd's config file (all or nothing)");
    reload->callback([&] {
        action = [&] {
            return run(g, {{"cmd", "reload"}},
                       [](const json& r) { print_changes(r, "ferryctl: configuration reloaded"); });
        };
    });

    std::string check_file;
    auto* check =
        app.add_subcommand("check-config", "validate a config file (locally if ferryd is not running)");
    check->add_option("FILE", check_file, "config file")->required();
    check->callback([&] { action = [&] { return check_config(g, check_file); }; });

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? exit_ok : exit_usage;
    }
    if (!action) return exit_usage;
    return action();
}
