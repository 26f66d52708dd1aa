// The config loader: libconfig text -> validated, immutable Config.
//
// libconfig only parses; every rule about what the file may say lives here. The loader walks the
// tree once and keeps going after a problem, so an operator sees every mistake in one run rather
// than one per reload. Messages name the key as written and the accepted values or range.
#include "config/config_loader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include <libconfig.h++>

#include "config/int_literals.hpp"
#include "config/key_match.hpp"

namespace ferry {

std::string ConfigError::to_string() const {
    if (line <= 0) return file + ": " + message;
    return file + ":" + std::to_string(line) + ": " + message;
}

namespace {

using libconfig::Setting;
using std::string_view_literals::operator""sv;

// Keys each group accepts; anything else is a typo until proven otherwise.
constexpr std::array kTopKeys = {"ports"sv, "workers"sv, "control"sv, "vips"sv};
constexpr std::array kPortKeys = {"name"sv,    "device"sv, "devargs"sv,        "address"sv,        "nat_addresses"sv,
                                  "gateway"sv, "mtu"sv,    "exception_path"sv, "exception_iface"sv};
constexpr std::array kWorkerKeys = {"burst_size"sv, "flow_capacity"sv, "rx_descriptors"sv,
                                    "tx_descriptors"sv, "mbufs"sv, "idle_sleep_us"sv};
constexpr std::array kControlKeys = {"socket"sv, "socket_group"sv, "metrics_listen"sv};
constexpr std::array kVipKeys = {"name"sv, "address"sv, "port"sv, "protocol"sv, "mode"sv,
                                 "scheduler"sv, "hash"sv, "table_size"sv, "timeouts"sv, "health"sv,
                                 "down_flows"sv, "drain_timeout"sv, "load_aware"sv, "latency_aware"sv,
                                 "slow_start"sv, "backends"sv};
constexpr std::array kTimeoutKeys = {"tcp_syn"sv, "tcp_established"sv, "tcp_closing"sv, "udp"sv};
constexpr std::array kHealthKeys = {"type"sv, "port"sv, "path"sv, "expect_status"sv,
                                    "interval_ms"sv, "timeout_ms"sv, "rise"sv, "fall"sv};
constexpr std::array kBackendKeys = {"address"sv, "port"sv, "weight"sv, "health"sv};
constexpr std::array kLoadAwareKeys = {"enabled"sv,      "format"sv,       "path"sv,         "port"sv,
                                       "interval_ms"sv,  "timeout_ms"sv,   "floor"sv,        "target_queue"sv,
                                       "kv_threshold"sv, "queue_weight"sv, "kv_weight"sv,    "smoothing"sv,
                                       "hysteresis"sv,   "aggregate"sv,    "ttft_metric"sv,  "tpot_metric"sv};
constexpr std::array kLatencyAwareKeys = {"enabled"sv, "signal"sv,    "sensitivity"sv, "tolerance_ms"sv,
                                          "floor"sv,   "smoothing"sv, "hysteresis"sv};

// One accepted spelling of an enum-valued key.
template <typename E>
struct EnumName {
    std::string_view text;
    E value;
};

constexpr std::array<EnumName<L4Proto>, 2> kProtocols = {{{"tcp", L4Proto::tcp}, {"udp", L4Proto::udp}}};
constexpr std::array<EnumName<ForwardMode>, 2> kModes = {{{"nat", ForwardMode::nat},
                                                          {"dnat", ForwardMode::dnat}}};
constexpr std::array<EnumName<SchedulerKind>, 4> kSchedulers = {
    {{"maglev", SchedulerKind::maglev},
     {"round_robin", SchedulerKind::round_robin},
     {"least_conn", SchedulerKind::least_conn},
     {"two_choices", SchedulerKind::two_choices}}};
constexpr std::array<EnumName<HashKey>, 2> kHashes = {{{"5-tuple", HashKey::five_tuple},
                                                       {"source-ip", HashKey::source_ip}}};
constexpr std::array<EnumName<HealthCheckKind>, 3> kHealthKinds = {{{"tcp", HealthCheckKind::tcp},
                                                                    {"http", HealthCheckKind::http},
                                                                    {"none", HealthCheckKind::none}}};
constexpr std::array<EnumName<DownFlowPolicy>, 2> kDownFlows = {{{"keep", DownFlowPolicy::keep},
                                                                 {"drop", DownFlowPolicy::drop}}};
constexpr std::array<EnumName<LoadMetricsFormat>, 3> kLoadFormats = {{{"vllm", LoadMetricsFormat::vllm},
                                                                      {"tgi", LoadMetricsFormat::tgi},
                                                                      {"triton", LoadMetricsFormat::triton}}};
constexpr std::array<EnumName<LatencySignal>, 4> kLatencySignals = {{{"connect", LatencySignal::connect},
                                                                      {"probe", LatencySignal::probe},
                                                                      {"ttft", LatencySignal::ttft},
                                                                      {"tpot", LatencySignal::tpot}}};
constexpr std::array<EnumName<LoadAggregate>, 2> kLoadAggregates = {{{"sum", LoadAggregate::sum},
                                                                     {"max", LoadAggregate::max}}};

constexpr long long kMaxTimeout = 604800;       // one week
constexpr long long kMaxIntervalMs = 3600000;   // one hour
constexpr std::size_t kIfNameMax = 15;          // IFNAMSIZ - 1
constexpr std::size_t kSunPathMax = 107;        // sizeof(sockaddr_un::sun_path) - 1
constexpr long long kMinTableSize = 13;
constexpr long long kMaxTableSize = 4194301;
constexpr long long kMaxSlowStart = 3600;       // one hour
constexpr long long kMinLoadIntervalMs = 100;   // a scrape parses a whole /metrics page
constexpr double kMaxTargetQueue = 1e6;

const char* type_name(Setting::Type t) {
    switch (t) {
    case Setting::TypeInt:
    case Setting::TypeInt64: return "an integer";
    case Setting::TypeFloat: return "a float";
    case Setting::TypeString: return "a string";
    case Setting::TypeBoolean: return "a boolean";
    case Setting::TypeGroup: return "a group";
    case Setting::TypeArray: return "an array";
    case Setting::TypeList: return "a list";
    case Setting::TypeNone: break;
    }
    return "empty";
}

bool is_prime(long long n) {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (long long d = 3; d * d <= n; d += 2)
        if (n % d == 0) return false;
    return true;
}

// A float bound or value as an operator would write it: "1000000" rather than "1e+06".
std::string number_text(double v) {
    char buf[64];
    if (std::isfinite(v) && v == std::trunc(v) && std::abs(v) < 1e15)
        std::snprintf(buf, sizeof(buf), "%.0f", v);
    else
        std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Reads a whole file, or says why it could not (with the OS's reason).
// Regular files only: ferryd's control thread checks files an operator names, and a FIFO would
// block it (O_NONBLOCK: opening one does not wait for a writer) and a device never end.
std::optional<std::string> read_whole_file(const std::string& path, std::string& why) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        why = std::string("cannot open: ") + std::strerror(errno);
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        why = "not a regular file";
        ::close(fd);
        return std::nullopt;
    }
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t got = ::read(fd, buf, sizeof(buf));
        if (got < 0) {
            if (errno == EINTR) continue;
            why = std::string("cannot read: ") + std::strerror(errno);
            ::close(fd);
            return std::nullopt;
        }
        if (got == 0) break;
        text.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fd);
    return text;
}

// Where libconfig found a file it reports by the name written in @include (or none for the main
// text); this turns that into a path an operator can open.
class SourceNames {
public:
    SourceNames(std::string label, std::string include_dir)
        : label_(std::move(label)), include_dir_(std::move(include_dir)) {}

    std::string path(const char* file) const {
        if (!file) return label_;
        if (include_dir_.empty() || file[0] == '/') return file;
        return include_dir_ + "/" + file;
    }
    const std::string& label() const { return label_; }

private:
    std::string label_;
    std::string include_dir_;
};

// libconfig opens @include files itself, with a blocking fopen: one that names a FIFO or a device
// would stall ferryd's control thread as the main file would. Every @include, followed into the
// files it names (libconfig's own depth limit is 10), must name a regular file; a missing one is
// left to libconfig to report.
void check_includes(const std::string& text, const std::string& file, const SourceNames& names, int depth,
                    std::vector<ConfigError>& errors) {
    if (depth > 10) return;
    size_t start = 0;
    for (int line = 1; start <= text.size(); ++line) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string_view l(text.data() + start, end - start);
        start = end + 1;
        const size_t at = l.find_first_not_of(" \t");
        if (at == std::string_view::npos || l.substr(at, 8) != "@include") continue;
        const size_t open = l.find('"', at + 8);
        const size_t close = open == std::string_view::npos ? open : l.find('"', open + 1);
        if (close == std::string_view::npos) continue;  // libconfig reports the syntax
        const std::string target = names.path(std::string(l.substr(open + 1, close - open - 1)).c_str());
        struct stat st {};
        if (::stat(target.c_str(), &st) != 0) continue;
        if (!S_ISREG(st.st_mode)) {
            errors.push_back({file, line, "@include \"" + target + "\": not a regular file"});
            continue;
        }
        std::string why;
        if (auto inner = read_whole_file(target, why)) check_includes(*inner, target, names, depth + 1, errors);
    }
}

// Plain integer literals libconfig wrapped, per source file; included files are scanned on demand.
class WideLiterals {
public:
    WideLiterals(std::string_view main_text, const SourceNames& names)
        : names_(names), main_(config_detail::find_wide_int_literals(main_text)) {}

    const config_detail::WideLiteral* find(const char* file, int line, std::string_view name) {
        const auto& list = file ? included(names_.path(file)) : main_;
        for (const auto& lit : list)
            if (lit.line == line && lit.name == name) return &lit;
        return nullptr;
    }

private:
    const std::vector<config_detail::WideLiteral>& included(const std::string& file) {
        auto it = files_.find(file);
        if (it == files_.end()) {
            std::string why;
            auto text = read_whole_file(file, why);
            it = files_.emplace(file, text ? config_detail::find_wide_int_literals(*text)
                                           : std::vector<config_detail::WideLiteral>{}).first;
        }
        return it->second;
    }

    const SourceNames& names_;
    std::vector<config_detail::WideLiteral> main_;
    std::map<std::string, std::vector<config_detail::WideLiteral>> files_;
};

// Walks the parsed libconfig tree once, filling a Config and collecting every problem on the way.
// Each typed getter either returns a valid value or records why not and returns nothing, so the
// callers read as a list of fields and never stop early.
class Loader {
public:
    Loader(const SourceNames& names, WideLiterals& wide)
        : names_(names), label_(names.label()), wide_(wide) {}

    ConfigLoadResult run(const Setting& root) {
        Config cfg;
        cfg.file = label_;
        check_keys(root, kTopKeys, "at the top level");

        if (const Setting* ports = opt(root, "ports"); !ports) {
            error_no_line("at least one port is required: 'ports' is missing");
        } else if (list_of_groups(*ports)) {
            if (ports->getLength() == 0) error(*ports, "at least one port is required: 'ports' is empty");
            for (int i = 0; i < ports->getLength(); ++i)
                if (entry_is_group((*ports)[i], "ports")) cfg.ports.push_back(parse_port((*ports)[i]));
            // Each port's address and each NAT address has a one-byte index in the data path.
            size_t local = cfg.ports.size();
            for (const auto& p : cfg.ports) local += p.nat_addresses.size();
            if (local > kMaxLocalAddresses)
                error(*ports, "the ports have " + std::to_string(local) + " addresses with their 'nat_addresses'; " +
                                  "at most " + std::to_string(kMaxLocalAddresses) + " in all");
        }
        if (const Setting* g = group(opt(root, "workers"))) cfg.workers = parse_workers(*g);
        if (const Setting* g = group(opt(root, "control"))) cfg.control = parse_control(*g);
        if (const Setting* vips = opt(root, "vips"); vips && list_of_groups(*vips)) {
            for (int i = 0; i < vips->getLength(); ++i)
                if (entry_is_group((*vips)[i], "vips")) cfg.vips.push_back(parse_vip((*vips)[i]));
        }

        ConfigLoadResult result;
        result.errors = std::move(errors_);
        sort_errors(result.errors);
        if (result.errors.empty()) result.config = std::make_shared<const Config>(std::move(cfg));
        return result;
    }

private:
    // ---- reporting ---------------------------------------------------------------------------

    SourceLoc loc(const Setting& s) const {
        return SourceLoc{names_.path(s.getSourceFile()), static_cast<int>(s.getSourceLine())};
    }

    void error(const Setting& s, std::string message) { error_at(loc(s), std::move(message)); }
    void error_at(const SourceLoc& at, std::string message) {
        errors_.push_back(ConfigError{at.file, at.line, std::move(message)});
    }
    void error_no_line(std::string message) { errors_.push_back(ConfigError{label_, 0, std::move(message)}); }

    // "line 12", or "other.conf:12" when the earlier item came from an included file.
    std::string where(const SourceLoc& first, const SourceLoc& here) const {
        if (first.file == here.file) return "line " + std::to_string(first.line);
        return first.file + ":" + std::to_string(first.line);
    }

    // Errors come out in file order (files in order of first mention), then by line.
    static void sort_errors(std::vector<ConfigError>& errors) {
        std::vector<std::string> files;
        for (const auto& e : errors)
            if (std::find(files.begin(), files.end(), e.file) == files.end()) files.push_back(e.file);
        auto rank = [&](const ConfigError& e) {
            return std::pair(std::find(files.begin(), files.end(), e.file) - files.begin(), e.line);
        };
        std::stable_sort(errors.begin(), errors.end(),
                         [&](const ConfigError& a, const ConfigError& b) { return rank(a) < rank(b); });
    }

    // ---- structure ---------------------------------------------------------------------------

    void check_keys(const Setting& g, std::span<const std::string_view> known, std::string_view context) {
        for (int i = 0; i < g.getLength(); ++i) {
            const Setting& child = g[i];
            const std::string_view name = child.getName() ? child.getName() : "";
            if (std::find(known.begin(), known.end(), name) != known.end()) continue;
            std::string msg = "unknown key '" + std::string(name) + "' " + std::string(context);
            const std::string_view guess = config_detail::closest_match(name, known);
            if (!guess.empty()) msg += " (did you mean '" + std::string(guess) + "'?)";
            error(child, std::move(msg));
        }
    }

    static const Setting* opt(const Setting& g, const char* key) { return g.exists(key) ? &g[key] : nullptr; }

    const Setting* req(const Setting& g, const char* key, std::string_view what) {
        const Setting* s = opt(g, key);
        if (!s) error(g, "missing required key '" + std::string(key) + "' in " + std::string(what));
        return s;
    }

    std::string key_of(const Setting& s) const { return s.getName() ? s.getName() : "value"; }

    void wrong_type(const Setting& s, std::string_view expected, std::string_view example) {
        std::string msg =
            "'" + key_of(s) + "' must be " + std::string(expected) + ", not " + type_name(s.getType());
        if (!example.empty()) msg += ": " + std::string(example);
        error(s, std::move(msg));
    }

    const Setting* group(const Setting* s) {
        if (!s) return nullptr;
        if (s->isGroup()) return s;
        wrong_type(*s, "a group", key_of(*s) + " = { ... };");
        return nullptr;
    }

    bool list_of_groups(const Setting& s) {
        if (s.isList()) return true;
        wrong_type(s, "a list of groups", key_of(s) + " = ( { ... }, { ... } );");
        return false;
    }

    bool entry_is_group(const Setting& s, std::string_view list) {
        if (s.isGroup()) return true;
        error(s, "each entry of '" + std::string(list) + "' must be a group { ... }, not " +
                     type_name(s.getType()));
        return false;
    }

    // ---- scalars -----------------------------------------------------------------------------

    std::optional<long long> integer(const Setting* s, long long lo, long long hi) {
        if (!s) return std::nullopt;
        long long v = 0;
        std::string written;
        if (s->getType() == Setting::TypeInt) {
            v = static_cast<int>(*s);
            // libconfig 1.5 wraps plain literals past 32 bits; check what was written instead. The
            // value libconfig kept must be the wrapped (or, past 64 bits, saturated) one, in case
            // two same-named keys share the line.
            const int line = static_cast<int>(s->getSourceLine());
            const auto* lit = wide_.find(s->getSourceFile(), line, key_of(*s));
            if (lit && !lit->value && (v == -1 || v == 0)) {
                out_of_range(*s, lit->text, lo, hi);
                return std::nullopt;
            }
            if (lit && lit->value && static_cast<int32_t>(static_cast<uint32_t>(*lit->value)) == v) {
                v = *lit->value;
                written = lit->text;
            }
        } else if (s->getType() == Setting::TypeInt64) {
            v = static_cast<long long>(*s);
        } else {
            const char* hint = "";
            if (s->getType() == Setting::TypeString && all_digits(static_cast<const char*>(*s)))
                hint = " (write the number without quotes)";
            else if (s->getType() == Setting::TypeFloat)
                hint = " (no decimal point)";
            error(*s, "'" + key_of(*s) + "' must be an integer, not " + type_name(s->getType()) + hint);
            return std::nullopt;
        }
        if (v < lo || v > hi) {
            out_of_range(*s, written.empty() ? std::to_string(v) : written, lo, hi);
            return std::nullopt;
        }
        return v;
    }

    void out_of_range(const Setting& s, const std::string& value, long long lo, long long hi) {
        error(s, "'" + key_of(s) + "' = " + value + " is out of range " + std::to_string(lo) + ".." +
                     std::to_string(hi));
    }

    template <typename T>
    void set_int(const Setting& g, const char* key, long long lo, long long hi, T& out) {
        if (auto v = integer(opt(g, key), lo, hi)) out = static_cast<T>(*v);
    }

    // Whether a floating-point key's bound is part of its range.
    enum class Bound : uint8_t { closed, open };

    // A number written as a float or an integer ("floor = 1;" is as good as "floor = 1.0;"), in the
    // range from lo to hi, each bound included or not.
    std::optional<double> real(const Setting* s, double lo, double hi, Bound lo_bound = Bound::closed,
                               Bound hi_bound = Bound::closed) {
        if (!s) return std::nullopt;
        double v = 0;
        std::string written;  // the literal as written, when libconfig wrapped it
        bool too_wide = false;  // an integer past 64 bits: out of any range
        if (s->getType() == Setting::TypeFloat) {
            v = static_cast<double>(*s);
        } else if (s->getType() == Setting::TypeInt64) {
            v = static_cast<double>(static_cast<long long>(*s));
        } else if (s->getType() == Setting::TypeInt) {
            long long i = static_cast<int>(*s);
            // The same wrapped-literal check as integer(): judge what was written.
            const int line = static_cast<int>(s->getSourceLine());
            const auto* lit = wide_.find(s->getSourceFile(), line, key_of(*s));
            if (lit && !lit->value && (i == -1 || i == 0)) {
                too_wide = true;
                written = lit->text;
            } else if (lit && lit->value && static_cast<int32_t>(static_cast<uint32_t>(*lit->value)) == i) {
                i = *lit->value;
                written = lit->text;
            }
            v = static_cast<double>(i);
        } else {
            const char* hint = "";
            if (s->getType() == Setting::TypeString) hint = " (write the number without quotes)";
            error(*s, "'" + key_of(*s) + "' must be a number, not " + type_name(s->getType()) + hint);
            return std::nullopt;
        }
        const bool lo_ok = lo_bound == Bound::closed ? v >= lo : v > lo;
        const bool hi_ok = hi_bound == Bound::closed ? v <= hi : v < hi;
        if (too_wide || !std::isfinite(v) || !lo_ok || !hi_ok) {
            std::string msg = "'" + key_of(*s) + "' = " + (written.empty() ? number_text(v) : written);
            if (lo_bound == Bound::closed && hi_bound == Bound::closed) {
                msg += " is out of range " + number_text(lo) + ".." + number_text(hi);
            } else {
                const char* above = lo_bound == Bound::closed ? "at least " : "greater than ";
                const char* below = hi_bound == Bound::closed ? "at most " : "less than ";
                msg += std::string(" must be ") + above + number_text(lo) + " and " + below + number_text(hi);
            }
            error(*s, std::move(msg));
            return std::nullopt;
        }
        return v;
    }

    template <typename... Bounds>
    void set_real(const Setting& g, const char* key, double lo, double hi, double& out, Bounds... bounds) {
        if (auto v = real(opt(g, key), lo, hi, bounds...)) out = *v;
    }

    std::optional<std::string> string(const Setting* s) {
        if (!s) return std::nullopt;
        if (s->getType() != Setting::TypeString) {
            wrong_type(*s, "a string", key_of(*s) + " = \"...\";");
            return std::nullopt;
        }
        return std::string(static_cast<const char*>(*s));
    }

    std::optional<std::string> nonempty_string(const Setting* s) {
        auto v = string(s);
        if (v && v->empty()) {
            error(*s, "'" + key_of(*s) + "' must not be empty");
            return std::nullopt;
        }
        return v;
    }

    std::optional<bool> boolean(const Setting* s) {
        if (!s) return std::nullopt;
        if (s->getType() != Setting::TypeBoolean) {
            const char* hint = "";
            if (s->getType() == Setting::TypeString) hint = " (write true or false without quotes)";
            error(*s, "'" + key_of(*s) + "' must be a boolean (true or false), not " +
                          type_name(s->getType()) + hint);
            return std::nullopt;
        }
        return static_cast<bool>(*s);
    }

    template <typename E, std::size_t N>
    std::optional<E> enumerated(const Setting* s, const std::array<EnumName<E>, N>& names) {
        auto text = string(s);
        if (!text) return std::nullopt;
        std::array<std::string_view, N> spellings;
        std::string choices;
        for (std::size_t i = 0; i < N; ++i) {
            if (names[i].text == *text) return names[i].value;
            spellings[i] = names[i].text;
            if (i > 0) choices += i + 1 == N ? " or " : ", ";
            choices += "\"" + std::string(names[i].text) + "\"";
        }
        std::string msg = "'" + key_of(*s) + "' = \"" + *text + "\" is not one of " + choices;
        const std::string_view guess = config_detail::closest_match(*text, spellings);
        if (!guess.empty()) msg += " (did you mean \"" + std::string(guess) + "\"?)";
        error(*s, std::move(msg));
        return std::nullopt;
    }

    // An IPv4 address; IPv6 parses but the data path cannot carry it yet.
    std::optional<IpAddr> address(const Setting* s) {
        auto text = string(s);
        if (!text) return std::nullopt;
        auto a = IpAddr::parse(*text);
        if (!a) {
            if (text->find('/') != std::string::npos)
                error(*s, "'" + key_of(*s) + "' = \"" + *text +
                              "\" must be a plain address without a prefix length");
            else
                error(*s, "'" + key_of(*s) + "' = \"" + *text + "\" is not a valid IPv4 address");
            return std::nullopt;
        }
        if (!a->is_v4()) {
            error(*s, "'" + key_of(*s) + "' = \"" + *text + "\": IPv6 is not supported by the data path yet");
            return std::nullopt;
        }
        return a;
    }

    std::optional<IpPrefix> prefix(const Setting* s) {
        auto text = string(s);
        if (!text) return std::nullopt;
        auto p = IpPrefix::parse(*text);
        const auto bare = text->find('/') == std::string::npos ? IpAddr::parse(*text) : std::nullopt;
        if ((p && !p->addr.is_v4()) || (bare && !bare->is_v4())) {
            error(*s, "'" + key_of(*s) + "' = \"" + *text + "\": IPv6 is not supported by the data path yet");
            return std::nullopt;
        }
        if (!p) {
            if (bare)
                error(*s, "'" + key_of(*s) + "' = \"" + *text + "\" needs a prefix length, e.g. \"" + *text +
                              "/24\"");
            else
                error(*s, "'" + key_of(*s) + "' = \"" + *text +
                              "\" is not an IPv4 address with prefix length (a.b.c.d/len)");
            return std::nullopt;
        }
        return p;
    }

    // ---- ports -------------------------------------------------------------------------------

    // Identity of an already-parsed port, for duplicate checks against the ones after it.
    struct SeenPort {
        std::string name;
        SourceLoc loc;
    };

    PortConfig parse_port(const Setting& g) {
        PortConfig p;
        p.loc = loc(g);
        check_keys(g, kPortKeys, "in port");

        const auto name = nonempty_string(req(g, "name", "port"));
        bool duplicate_name = false;
        if (name) {
            p.name = *name;
            if (auto it = port_names_.find(*name); it != port_names_.end()) {
                duplicate_name = true;
                error(*opt(g, "name"),
                      "duplicate port name '" + *name + "' (first at " + where(it->second, p.loc) + ")");
            } else {
                port_names_.emplace(*name, p.loc);
            }
        }

        if (auto device = nonempty_string(req(g, "device", "port"))) {
            p.device = *device;
            if (auto it = port_devices_.find(*device); it != port_devices_.end())
                error(*opt(g, "device"), "device '" + *device + "' is already used by port '" +
                                             it->second.name + "' (" + where(it->second.loc, p.loc) + ")");
            else
                port_devices_.emplace(*device, SeenPort{p.name, p.loc});
        }
        if (auto devargs = string(opt(g, "devargs"))) {
            p.devargs = *devargs;
            const std::string created = devargs->substr(0, devargs->find(','));
            if (created.empty())
                error(*opt(g, "devargs"),
                      "'devargs' must start with the device name, e.g. \"net_af_packet0,iface=eth1\"");
            else if (!p.device.empty() && created != p.device)
                error(*opt(g, "devargs"), "'devargs' creates device '" + created + "' but 'device' is '" +
                                              p.device + "'; they must name the same device");
        }

        const Setting* addr_setting = req(g, "address", "port");
        const auto addr = prefix(addr_setting);
        if (addr) {
            p.address = *addr;
            if (auto it = port_addresses_.find(addr->addr); it != port_addresses_.end())
                error(*addr_setting, "address " + addr->addr.to_string() + " is already used by port '" +
                                         it->second.name + "' (" + where(it->second.loc, p.loc) + ")");
            else if (auto nat = nat_addresses_.find(addr->addr); nat != nat_addresses_.end())
                error(*addr_setting, "address " + addr->addr.to_string() + " is a NAT address of port '" +
                                         nat->second.name + "' (" + where(nat->second.loc, p.loc) + ")");
            else
                port_addresses_.emplace(addr->addr, SeenPort{p.name, p.loc});
        }
        if (const Setting* nat = opt(g, "nat_addresses")) parse_nat_addresses(*nat, addr, p);

        if (const Setting* gw_setting = opt(g, "gateway")) {
            if (auto gw = address(gw_setting)) {
                if (addr && !addr->contains(*gw))
                    error(*gw_setting, "'gateway' " + gw->to_string() + " is not inside the port's subnet " +
                                           addr->to_string());
                else if (addr && addr->addr == *gw)
                    error(*gw_setting, "'gateway' " + gw->to_string() + " is the port's own address");
                else if (std::find(p.nat_addresses.begin(), p.nat_addresses.end(), *gw) != p.nat_addresses.end())
                    error(*gw_setting, "'gateway' " + gw->to_string() + " is one of the port's 'nat_addresses'");
                else
                    p.gateway = *gw;
            }
        }

        set_int(g, "mtu", 68, 9000, p.mtu);
        if (auto on = boolean(opt(g, "exception_path"))) p.exception_path = *on;

        const Setting* iface_setting = opt(g, "exception_iface");
        if (auto iface = string(iface_setting)) {
            p.exception_iface = *iface;
            check_iface_name(*iface_setting, *iface);
        } else if (!iface_setting && name) {
            p.exception_iface = "fe-" + *name;
            if (p.exception_path && p.exception_iface.size() > kIfNameMax)
                error(g, "the default 'exception_iface' \"" + p.exception_iface + "\" is longer than " +
                             std::to_string(kIfNameMax) +
                             " characters; set 'exception_iface' or shorten 'name'");
        }
        // A default interface of a repeated name would only echo the duplicate-name error.
        if (p.exception_path && !p.exception_iface.empty() && (iface_setting || !duplicate_name)) {
            if (auto it = port_ifaces_.find(p.exception_iface); it != port_ifaces_.end())
                error(iface_setting ? *iface_setting : g,
                      "exception interface '" + p.exception_iface + "' is already used by port '" +
                          it->second.name + "' (" + where(it->second.loc, p.loc) + ")");
            else
                port_ifaces_.emplace(p.exception_iface, SeenPort{p.name, p.loc});
        }
        return p;
    }

    // nat_addresses = [ "a.b.c.d", ... ]: more full-NAT source addresses of the port, each inside
    // its prefix and used by nothing else. Valid entries go to p.nat_addresses.
    void parse_nat_addresses(const Setting& s, const std::optional<IpPrefix>& port_addr, PortConfig& p) {
        if (!s.isArray() && !s.isList()) {
            wrong_type(s, "an array of IPv4 addresses", "nat_addresses = [ \"10.0.0.2\", \"10.0.0.3\" ];");
            return;
        }
        const auto n = static_cast<size_t>(s.getLength());
        if (n > kMaxNatAddressesPerPort) {
            error(s, "'nat_addresses' lists " + std::to_string(n) + " addresses; a port may have at most " +
                         std::to_string(kMaxNatAddressesPerPort));
            return;
        }
        for (size_t i = 0; i < n; ++i) {
            const Setting& e = s[static_cast<int>(i)];
            const Setting& at = e.getSourceLine() != 0 ? e : s;  // array elements may lack a line
            if (e.getType() != Setting::TypeString) {
                error(at, "each entry of 'nat_addresses' must be a string \"a.b.c.d\", not " +
                              std::string(type_name(e.getType())));
                continue;
            }
            const std::string text = static_cast<const char*>(e);
            const auto a = IpAddr::parse(text);
            if (!a) {
                error(at, "'nat_addresses' entry \"" + text + "\" is not a valid IPv4 address" +
                              (text.find('/') != std::string::npos ? " (write it without a prefix length)" : ""));
                continue;
            }
            const std::string shown = "NAT address " + a->to_string();
            if (!a->is_v4()) {
                error(at, shown + ": IPv6 is not supported by the data path yet");
                continue;
            }
            if (port_addr) {
                const uint32_t mask = port_addr->length == 0 ? 0 : ~uint32_t(0) << (32 - port_addr->length);
                const uint32_t host = a->v4_host() & ~mask;
                if (!port_addr->contains(*a)) {
                    error(at, shown + " is not inside the port's subnet " + port_addr->to_string());
                    continue;
                }
                if (port_addr->addr == *a) {
                    error(at, shown + " is the port's own 'address'");
                    continue;
                }
                if (port_addr->length <= 30 && (host == 0 || host == ~mask)) {
                    error(at, shown + " is the " + (host == 0 ? "network" : "broadcast") +
                                  " address of the port's subnet " + port_addr->to_string());
                    continue;
                }
            }
            if (auto it = port_addresses_.find(*a); it != port_addresses_.end()) {
                error(at, shown + " is the address of port '" + it->second.name + "' (" + where(it->second.loc, p.loc) +
                              ")");
                continue;
            }
            if (auto it = nat_addresses_.find(*a); it != nat_addresses_.end()) {
                error(at, shown + " is already a NAT address of port '" + it->second.name + "' (" +
                              where(it->second.loc, p.loc) + ")");
                continue;
            }
            nat_addresses_.emplace(*a, SeenPort{p.name, p.loc});
            p.nat_addresses.push_back(*a);
        }
    }

    void check_iface_name(const Setting& s, const std::string& iface) {
        if (iface.empty() || iface == "." || iface == "..")
            error(s, "'exception_iface' must be a kernel interface name, not \"" + iface + "\"");
        else if (iface.size() > kIfNameMax)
            error(s, "'exception_iface' \"" + iface + "\" is longer than " + std::to_string(kIfNameMax) +
                         " characters (the kernel's limit)");
        else if (iface.find_first_of("/: \t\n\r\f\v") != std::string::npos)
            error(s, "'exception_iface' \"" + iface + "\" must not contain '/', ':' or whitespace");
    }

    // ---- workers and control -----------------------------------------------------------------

    WorkerConfig parse_workers(const Setting& g) {
        WorkerConfig w;
        check_keys(g, kWorkerKeys, "in workers");
        set_int(g, "burst_size", 1, 512, w.burst_size);
        set_int(g, "flow_capacity", 1024, 64ll << 20, w.flow_capacity);
        set_int(g, "rx_descriptors", 64, 16384, w.rx_descriptors);
        set_int(g, "tx_descriptors", 64, 16384, w.tx_descriptors);
        set_int(g, "mbufs", 1023, 16ll << 20, w.mbufs);
        set_int(g, "idle_sleep_us", 0, 10000, w.idle_sleep_us);
        return w;
    }

    ControlConfig parse_control(const Setting& g) {
        ControlConfig c;
        check_keys(g, kControlKeys, "in control");
        if (auto socket = nonempty_string(opt(g, "socket"))) {
            if (socket->size() > kSunPathMax)
                error(g["socket"], "'socket' path is longer than " + std::to_string(kSunPathMax) +
                                       " characters (the limit of a unix socket address)");
            else
                c.socket_path = *socket;
        }
        if (auto grp = string(opt(g, "socket_group"))) c.socket_group = *grp;
        if (auto listen = string(opt(g, "metrics_listen"))) {
            if (listen->empty() || metrics_listen_ok(g["metrics_listen"], *listen))
                c.metrics_listen = *listen;
        }
        return c;
    }

    bool metrics_listen_ok(const Setting& s, const std::string& text) {
        const auto colon = text.rfind(':');
        const std::string host = colon == std::string::npos ? text : text.substr(0, colon);
        const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
        const auto a = IpAddr::parse(host);
        if (host.starts_with('[') || (a && !a->is_v4())) {
            error(s, "'metrics_listen' = \"" + text + "\": IPv6 is not supported yet; use an IPv4 address");
            return false;
        }
        if (!a || !all_digits(port) || port.size() > 5 || std::stol(port) < 1 || std::stol(port) > 65535) {
            error(s, "'metrics_listen' = \"" + text +
                         "\" must be \"a.b.c.d:port\" (port 1..65535) or \"\" for off");
            return false;
        }
        return true;
    }

    // ---- VIPs --------------------------------------------------------------------------------

    FlowTimeouts parse_timeouts(const Setting& g) {
        FlowTimeouts t;
        check_keys(g, kTimeoutKeys, "in timeouts");
        set_int(g, "tcp_syn", 1, kMaxTimeout, t.tcp_syn);
        set_int(g, "tcp_established", 1, kMaxTimeout, t.tcp_established);
        set_int(g, "tcp_closing", 1, kMaxTimeout, t.tcp_closing);
        set_int(g, "udp", 1, kMaxTimeout, t.udp);
        return t;
    }

    // Applies the keys present in `g` on top of `h` (the defaults, or the VIP's check for a backend).
    void parse_health(const Setting& g, HealthCheckConfig& h, std::string_view context) {
        check_keys(g, kHealthKeys, context);
        if (auto kind = enumerated(opt(g, "type"), kHealthKinds)) h.kind = *kind;
        set_int(g, "port", 0, 65535, h.port);
        if (auto path = url_path(opt(g, "path"))) h.path = *path;
        set_int(g, "expect_status", 100, 599, h.expect_status);
        const Setting* interval_setting = opt(g, "interval_ms");
        const Setting* timeout_setting = opt(g, "timeout_ms");
        const auto interval = integer(interval_setting, 50, kMaxIntervalMs);
        const auto timeout = integer(timeout_setting, 10, kMaxIntervalMs);
        // Only a group that sets one of the two can break the rule (an inherited pair was checked),
        // and a pair with a bad member has been reported already. A bad pair is not kept, so a
        // backend inheriting from this VIP is judged against the defaults, not against the mistake.
        const bool already_bad = (interval_setting && !interval) || (timeout_setting && !timeout);
        if (!already_bad && (interval || timeout)) {
            const auto new_interval = interval ? static_cast<uint32_t>(*interval) : h.interval_ms;
            const auto new_timeout = timeout ? static_cast<uint32_t>(*timeout) : h.timeout_ms;
            if (new_timeout > new_interval) {
                error(timeout_setting ? *timeout_setting : *interval_setting,
                      "health 'timeout_ms' (" + std::to_string(new_timeout) +
                          ") must not exceed 'interval_ms' (" + std::to_string(new_interval) + ")");
            } else {
                h.interval_ms = new_interval;
                h.timeout_ms = new_timeout;
            }
        }
        set_int(g, "rise", 1, 100, h.rise);
        set_int(g, "fall", 1, 100, h.fall);
    }

    // The path of an HTTP request: "/..." without spaces or control characters.
    std::optional<std::string> url_path(const Setting* s) {
        auto path = string(s);
        if (!path) return std::nullopt;
        if (!path->starts_with('/')) {
            error(*s, "'" + key_of(*s) + "' = \"" + *path + "\" must start with '/'");
            return std::nullopt;
        }
        if (std::any_of(path->begin(), path->end(), [](char c) { return c <= ' ' || c == 0x7f; })) {
            error(*s,
                  "'" + key_of(*s) + "' = \"" + *path + "\" must not contain spaces or control characters");
            return std::nullopt;
        }
        return path;
    }

    // A VIP's load_aware group. Writing the group turns the feature on unless it says enabled = false;
    // every key is checked either way.
    LoadAwareConfig parse_load_aware(const Setting& g) {
        LoadAwareConfig c;
        c.enabled = true;
        check_keys(g, kLoadAwareKeys, "in load_aware");
        if (auto on = boolean(opt(g, "enabled"))) c.enabled = *on;
        if (auto format = enumerated(opt(g, "format"), kLoadFormats)) c.format = *format;
        if (auto path = url_path(opt(g, "path"))) c.path = *path;
        set_int(g, "port", 0, 65535, c.port);
        const Setting* interval_setting = opt(g, "interval_ms");
        const Setting* timeout_setting = opt(g, "timeout_ms");
        const auto interval = integer(interval_setting, kMinLoadIntervalMs, kMaxIntervalMs);
        const auto timeout = integer(timeout_setting, 10, kMaxIntervalMs);
        if (interval) c.interval_ms = static_cast<uint32_t>(*interval);
        if (timeout) c.timeout_ms = static_cast<uint32_t>(*timeout);
        // A bad member has been reported already; judge the pair only when both are good.
        const bool already_bad = (interval_setting && !interval) || (timeout_setting && !timeout);
        if (!already_bad && c.timeout_ms > c.interval_ms)
            error(timeout_setting ? *timeout_setting : interval_setting ? *interval_setting : g,
                  "load_aware 'timeout_ms' (" + std::to_string(c.timeout_ms) +
                      ") must not exceed 'interval_ms' (" + std::to_string(c.interval_ms) + ")");
        set_real(g, "floor", 0.0, 1.0, c.floor);
        set_real(g, "target_queue", 0.0, kMaxTargetQueue, c.target_queue, Bound::open, Bound::closed);
        set_real(g, "kv_threshold", 0.0, 1.0, c.kv_threshold, Bound::closed, Bound::open);
        set_real(g, "queue_weight", 0.0, 1.0, c.queue_weight);
        set_real(g, "kv_weight", 0.0, 1.0, c.kv_weight);
        set_real(g, "smoothing", 0.0, 1.0, c.smoothing, Bound::open, Bound::closed);
        set_real(g, "hysteresis", 0.0, 1.0, c.hysteresis);
        if (auto agg = enumerated(opt(g, "aggregate"), kLoadAggregates)) c.aggregate = *agg;
        c.ttft_metric = metric_name(opt(g, "ttft_metric"));
        c.tpot_metric = metric_name(opt(g, "tpot_metric"));
        return c;
    }

    // A Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or "" for none.
    std::optional<std::string> metric_name(const Setting* s) {
        auto name = string(s);
        if (!name || name->empty()) return name;
        const auto ok = [](char c, bool first) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                   (!first && c >= '0' && c <= '9');
        };
        for (std::size_t i = 0; i < name->size(); ++i)
            if (!ok((*name)[i], i == 0)) {
                error(*s, "'" + key_of(*s) + "' = \"" + *name +
                              "\" is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*; \"\" for none)");
                return std::nullopt;
            }
        return name;
    }

    // A VIP's latency_aware group; like load_aware, writing it turns the feature on.
    LatencyAwareConfig parse_latency_aware(const Setting& g) {
        LatencyAwareConfig c;
        c.enabled = true;
        check_keys(g, kLatencyAwareKeys, "in latency_aware");
        if (auto on = boolean(opt(g, "enabled"))) c.enabled = *on;
        if (auto sig = enumerated(opt(g, "signal"), kLatencySignals)) c.signal = *sig;
        set_real(g, "sensitivity", 0.0, 10.0, c.sensitivity, Bound::open, Bound::closed);
        set_real(g, "tolerance_ms", 0.0, 60000.0, c.tolerance_ms);
        set_real(g, "floor", 0.0, 1.0, c.floor);
        set_real(g, "smoothing", 0.0, 1.0, c.smoothing, Bound::open, Bound::closed);
        set_real(g, "hysteresis", 0.0, 1.0, c.hysteresis);
        return c;
    }

    // The chosen latency signal must exist for this VIP.
    void check_latency_signal(const VipConfig& v, const Setting& g, const std::string& label) {
        const Setting* sig = opt(g, "signal");
        const Setting& at = sig ? *sig : g;
        const LatencySignal s = v.latency_aware.signal;
        if (s == LatencySignal::connect && v.proto != L4Proto::tcp)
            error(at, label + ": latency_aware signal \"connect\" needs a TCP VIP (it is the SYN to SYN-ACK time)");
        if (s == LatencySignal::probe) {
            bool any_probe = v.health.kind != HealthCheckKind::none;
            for (const auto& b : v.backends)
                if (b.health) any_probe = any_probe || b.health->kind != HealthCheckKind::none;
            if (!any_probe)
                error(at, label + ": latency_aware signal \"probe\" needs a health check of type \"tcp\" or \"http\"");
        }
        if (s == LatencySignal::ttft || s == LatencySignal::tpot) {
            const bool ttft = s == LatencySignal::ttft;
            const std::optional<std::string>& set = ttft ? v.load_aware.ttft_metric : v.load_aware.tpot_metric;
            const bool preset = v.load_aware.format == LoadMetricsFormat::vllm ||
                                (ttft ? v.load_aware.format == LoadMetricsFormat::triton
                                      : v.load_aware.format == LoadMetricsFormat::tgi);
            if (set ? set->empty() : !preset)
                error(at, label + ": latency_aware signal \"" + std::string(to_string(s)) +
                              "\" needs a histogram to read: set load_aware '" + (ttft ? "ttft_metric" : "tpot_metric") +
                              "' (this format has none)");
        }
    }

    std::optional<uint32_t> table_size(const Setting* s) {
        auto v = integer(s, kMinTableSize, kMaxTableSize);
        if (!v) return std::nullopt;
        if (!is_prime(*v)) {
            long long below = *v - 1, above = *v + 1;
            while (below > kMinTableSize && !is_prime(below)) --below;
            while (above < kMaxTableSize && !is_prime(above)) ++above;
            std::string nearest;
            if (below >= kMinTableSize && is_prime(below)) nearest = std::to_string(below);
            if (above <= kMaxTableSize && is_prime(above))
                nearest += (nearest.empty() ? "" : " or ") + std::to_string(above);
            error(*s, "'table_size' = " + std::to_string(*v) + " is not a prime (nearest: " + nearest + ")");
            return std::nullopt;
        }
        return static_cast<uint32_t>(*v);
    }

    VipConfig parse_vip(const Setting& g) {
        VipConfig v;
        v.loc = loc(g);
        check_keys(g, kVipKeys, "in VIP");

        const Setting* name_setting = opt(g, "name");
        const auto name = nonempty_string(name_setting);
        const auto addr = address(req(g, "address", "VIP"));
        const auto port = integer(req(g, "port", "VIP"), 1, 65535);
        if (auto proto = enumerated(opt(g, "protocol"), kProtocols)) v.proto = *proto;
        if (addr) v.endpoint.addr = *addr;
        if (port) v.endpoint.port = static_cast<uint16_t>(*port);
        const std::string id = v.endpoint.to_string() + "/" + ferry::to_string(v.proto);
        v.name = name ? *name : id;
        const std::string label = name || (addr && port) ? "VIP '" + v.name + "'" : "this VIP";

        if (addr) {
            if (auto it = port_addresses_.find(*addr); it != port_addresses_.end())
                error(g["address"], "VIP address " + addr->to_string() + " is the address of port '" +
                                        it->second.name + "'; a VIP needs an address of its own");
            else if (auto nat = nat_addresses_.find(*addr); nat != nat_addresses_.end())
                error(g["address"], "VIP address " + addr->to_string() + " is a NAT address of port '" +
                                        nat->second.name + "'; a VIP needs an address of its own");
        }
        bool duplicate_endpoint = false;
        if (addr && port) {
            if (auto it = vip_endpoints_.find(id); it != vip_endpoints_.end()) {
                duplicate_endpoint = true;
                error(g, "duplicate VIP " + id + " (first at " + where(it->second, v.loc) + ")");
            } else {
                vip_endpoints_.emplace(id, v.loc);
            }
        }
        // A repeated address:port/protocol already got its error; its default name would only echo it.
        if (name || (addr && port)) {
            if (auto it = vip_names_.find(v.name); it == vip_names_.end())
                vip_names_.emplace(v.name, v.loc);
            else if (!duplicate_endpoint)
                error(name_setting ? *name_setting : g,
                      "duplicate VIP name '" + v.name + "' (first at " + where(it->second, v.loc) + ")");
        }

        if (auto mode = enumerated(opt(g, "mode"), kModes)) v.mode = *mode;
        if (auto sched = enumerated(opt(g, "scheduler"), kSchedulers)) v.scheduler = *sched;
        if (auto hash = enumerated(opt(g, "hash"), kHashes)) v.hash = *hash;
        if (auto size = table_size(opt(g, "table_size"))) v.table_size = *size;
        if (const Setting* t = group(opt(g, "timeouts"))) v.timeouts = parse_timeouts(*t);
        if (const Setting* h = group(opt(g, "health"))) parse_health(*h, v.health, "in VIP health");
        if (auto down = enumerated(opt(g, "down_flows"), kDownFlows)) v.down_flows = *down;
        set_int(g, "drain_timeout", 0, 86400, v.drain_timeout_s);
        if (const Setting* la = group(opt(g, "load_aware"))) v.load_aware = parse_load_aware(*la);
        const Setting* lat = group(opt(g, "latency_aware"));
        if (lat) v.latency_aware = parse_latency_aware(*lat);
        set_int(g, "slow_start", 0, kMaxSlowStart, v.slow_start_s);

        const Setting* backends = opt(g, "backends");
        if (!backends) {
            error(g, label + " has no backends; add backends = ( { address = \"...\"; port = ...; } );");
        } else if (list_of_groups(*backends)) {
            if (backends->getLength() == 0)
                error(*backends, label + " has no backends; at least one is required");
            std::map<Endpoint, SourceLoc> seen;
            for (int i = 0; i < backends->getLength(); ++i) {
                const Setting& b = (*backends)[i];
                if (!entry_is_group(b, "backends")) continue;
                v.backends.push_back(parse_backend(b, label, v.health, addr, seen));
            }
        }
        if (lat && v.latency_aware.enabled) check_latency_signal(v, *lat, label);
        // Every scheduler: the Maglev table is built for each VIP (trace, dnat connections met
        // mid-stream), and it cannot hold more weighted backends than it has slots.
        if (v.backends.size() > v.table_size)
            error(g, label + " has " + std::to_string(v.backends.size()) +
                         " backends, more than its Maglev 'table_size' " + std::to_string(v.table_size));
        return v;
    }

    BackendConfig parse_backend(const Setting& g, const std::string& vip_label,
                                const HealthCheckConfig& vip_health, const std::optional<IpAddr>& vip_addr,
                                std::map<Endpoint, SourceLoc>& seen) {
        BackendConfig b;
        b.loc = loc(g);
        check_keys(g, kBackendKeys, "in backend");
        const auto addr = address(req(g, "address", "backend"));
        const auto port = integer(req(g, "port", "backend"), 1, 65535);
        if (addr) {
            b.endpoint.addr = *addr;
            if (auto it = port_addresses_.find(*addr); it != port_addresses_.end())
                error(g["address"], "backend address " + addr->to_string() +
                                        " is Ferry's own address on port '" + it->second.name + "'");
            else if (auto nat = nat_addresses_.find(*addr); nat != nat_addresses_.end())
                error(g["address"],
                      "backend address " + addr->to_string() + " is a NAT address of port '" + nat->second.name + "'");
            if (vip_addr && *vip_addr == *addr)
                error(g["address"], "backend address " + addr->to_string() + " is the VIP's own address");
        }
        if (port) b.endpoint.port = static_cast<uint16_t>(*port);
        if (addr && port) {
            if (auto it = seen.find(b.endpoint); it != seen.end())
                error(g, "duplicate backend " + b.endpoint.to_string() + " in " + vip_label + " (first at " +
                             where(it->second, b.loc) + ")");
            else
                seen.emplace(b.endpoint, b.loc);
        }
        set_int(g, "weight", 0, 65535, b.weight);
        if (const Setting* h = group(opt(g, "health"))) {
            HealthCheckConfig merged = vip_health;
            parse_health(*h, merged, "in backend health");
            b.health = merged;
        }
        return b;
    }

    const SourceNames& names_;
    std::string label_;
    WideLiterals& wide_;
    std::vector<ConfigError> errors_;
    std::map<std::string, SourceLoc> port_names_;
    std::map<std::string, SeenPort> port_devices_;
    std::map<IpAddr, SeenPort> port_addresses_;
    std::map<IpAddr, SeenPort> nat_addresses_;  // every port's nat_addresses
    std::map<std::string, SeenPort> port_ifaces_;
    std::map<std::string, SourceLoc> vip_endpoints_;
    std::map<std::string, SourceLoc> vip_names_;
};

ConfigLoadResult load(const std::string& text, const std::string& label, const std::string& include_dir) {
    ConfigLoadResult result;
    try {
        if (text.find('\0') != std::string::npos) {
            result.errors.push_back({label, 0, "contains a NUL byte; not a text file"});
            return result;
        }
        const SourceNames names(label, include_dir);
        check_includes(text, label, names, 1, result.errors);
        if (!result.errors.empty()) return result;
        libconfig::Config parsed;
        if (!include_dir.empty()) parsed.setIncludeDir(include_dir.c_str());
        try {
            parsed.readString(text);
        } catch (const libconfig::ParseException& e) {
            std::string reason = e.getError() ? e.getError() : "parse error";
            if (reason == "syntax error")
                reason += " (look for a missing ',' between list entries, or an unclosed {, ( or \", "
                          "on this line or just before it)";
            result.errors.push_back({names.path(e.getFile()), e.getLine(), reason});
            return result;
        }
        WideLiterals wide(text, names);
        return Loader(names, wide).run(parsed.getRoot());
    } catch (const std::exception& e) {
        result.config.reset();
        result.errors.push_back({label, 0, std::string("internal error while loading: ") + e.what()});
    } catch (...) {
        result.config.reset();
        result.errors.push_back({label, 0, "internal error while loading"});
    }
    return result;
}

}  // namespace

ConfigLoadResult load_config_file(const std::string& path) {
    try {
        std::string why;
        auto text = read_whole_file(path, why);
        if (!text) return ConfigLoadResult{nullptr, {ConfigError{path, 0, why}}};
        // @include paths are relative to the including file's directory.
        return load(*text, path, std::filesystem::path(path).parent_path().string());
    } catch (...) {
        return ConfigLoadResult{nullptr, {ConfigError{path, 0, "internal error while loading"}}};
    }
}

ConfigLoadResult load_config_text(const std::string& text, const std::string& file_label) {
    return load(text, file_label, "");
}

}  // namespace ferry
