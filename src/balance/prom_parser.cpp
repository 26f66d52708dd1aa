// Prometheus text parser: a single pass over the body, one line at a time, with
// a cursor that never moves past the end of the line. Every sample line is
// checked in full (so garbage is counted wherever it is), but only wanted
// names have their value folded in, into a small array indexed like the wanted
// list; `out` is written once at the end.
#include "balance/prom_parser.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>

namespace ferry::balance {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A position in one line; every read checks the end.
struct Cursor {
    std::string_view s;
    size_t i = 0;

    bool at_end() const { return i >= s.size(); }
    bool at(char c) const { return i < s.size() && s[i] == c; }
    void skip_blanks() {
        while (i < s.size() && is_blank(s[i])) ++i;
    }
    // The characters up to the next blank or the end.
    std::string_view token() {
        const size_t from = i;
        while (i < s.size() && !is_blank(s[i])) ++i;
        return s.substr(from, i - from);
    }
};

// Metric names may hold ':', label names may not.
std::string_view read_name(Cursor& c, bool metric) {
    const size_t from = c.i;
    if (c.at_end() || !(is_letter(c.s[c.i]) || (metric && c.s[c.i] == ':'))) return {};
    ++c.i;
    while (!c.at_end() && (is_letter(c.s[c.i]) || is_digit(c.s[c.i]) || (metric && c.s[c.i] == ':'))) ++c.i;
    return c.s.substr(from, c.i - from);
}

// At an opening quote: moves past the closing one. With `out`, stores the
// unescaped text (\n is a newline, any other \x is x). False if unterminated.
bool read_quoted(Cursor& c, std::string* out) {
    ++c.i;
    if (out != nullptr) out->clear();
    while (c.i < c.s.size()) {
        const char ch = c.s[c.i++];
        if (ch == '"') return true;
        if (ch == '\\') {
            if (c.i >= c.s.size()) return false;
            const char esc = c.s[c.i++];
            if (out != nullptr) out->push_back(esc == 'n' ? '\n' : esc);
        } else if (out != nullptr) {
            out->push_back(ch);
        }
    }
    return false;
}

// After '{' (or after the quoted name and its comma): label pairs up to and
// including '}'.
bool read_labels(Cursor& c) {
    for (;;) {
        c.skip_blanks();
        if (c.at_end()) return false;
        if (c.at('}')) {
            ++c.i;
            return true;
        }
        if (c.at('"')) {
            if (!read_quoted(c, nullptr)) return false;
        } else if (read_name(c, false).empty()) {
            return false;
        }
        c.skip_blanks();
        if (!c.at('=')) return false;
        ++c.i;
        c.skip_blanks();
        if (!c.at('"') || !read_quoted(c, nullptr)) return false;
        c.skip_blanks();
        if (c.at(',')) {
            ++c.i;
        } else if (c.at('}')) {
            ++c.i;
            return true;
        } else {
            return false;
        }
    }
}

// A Go-style float: optional sign, then decimal/scientific, Inf or NaN.
bool parse_number(std::string_view tok, double& v) {
    bool negative = false;
    if (!tok.empty() && (tok[0] == '+' || tok[0] == '-')) {
        negative = tok[0] == '-';
        tok.remove_prefix(1);
    }
    if (tok.empty() || tok[0] == '+' || tok[0] == '-') return false;
    const char* end = tok.data() + tok.size();
    const auto [ptr, ec] = std::from_chars(tok.data(), end, v, std::chars_format::general);
    if (ec != std::errc() || ptr != end) return false;
    if (negative) v = -v;
    return true;
}

enum class Fail : uint8_t { none, name, labels, value, timestamp, trailing };

const char* describe(Fail f) {
    switch (f) {
        case Fail::name: return "bad metric name";
        case Fail::labels: return "bad label set";
        case Fail::value: return "bad or missing value";
        case Fail::timestamp: return "bad timestamp";
        case Fail::trailing: return "unexpected text after the sample";
        case Fail::none: break;
    }
    return "ok";
}

// One sample line (not blank, not a comment). `name` may point into `scratch`.
Fail parse_sample(std::string_view line, std::string& scratch, std::string_view& name, double& value) {
    Cursor c{line};
    c.skip_blanks();
    if (c.at('{')) {
        // Quoted-name form: {"name", label="v", ...}
        ++c.i;
        c.skip_blanks();
        if (!c.at('"') || !read_quoted(c, &scratch) || scratch.empty()) return Fail::name;
        name = scratch;
        c.skip_blanks();
        if (c.at('}')) {
            ++c.i;
        } else if (c.at(',')) {
            ++c.i;
            if (!read_labels(c)) return Fail::labels;
        } else {
            return Fail::labels;
        }
    } else {
        name = read_name(c, true);
        if (name.empty()) return Fail::name;
        if (c.at('{')) {
            ++c.i;
            if (!read_labels(c)) return Fail::labels;
        } else if (!c.at_end() && !is_blank(c.s[c.i])) {
            return Fail::name;
        }
    }
    c.skip_blanks();
    if (c.at_end() || !parse_number(c.token(), value)) return Fail::value;
    c.skip_blanks();
    if (c.at_end() || c.at('#')) return Fail::none;  // '#': an OpenMetrics exemplar, ignored
    double timestamp = 0;
    if (!parse_number(c.token(), timestamp) || !std::isfinite(timestamp)) return Fail::timestamp;
    c.skip_blanks();
    if (c.at_end() || c.at('#')) return Fail::none;
    return Fail::trailing;
}

// The start of a bad line for the error text, with control characters replaced.
std::string excerpt(std::string_view line) {
    constexpr size_t kMax = 60;
    std::string s(line.substr(0, kMax));
    for (char& ch : s) {
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
    }
    if (line.size() > kMax) s += "...";
    return s;
}

// Per wanted metric: how to fold, and the fold so far.
struct Slot {
    std::string_view name;
    Aggregation agg;
    bool seen = false;
    double value = 0;
};

}  // namespace

ParseResult parse_prometheus(std::string_view body, const std::vector<WantedMetric>& wanted,
                             std::map<std::string, double>& out, size_t max_body) {
    ParseResult res;
    out.clear();
    if (body.size() > max_body) {
        res.ok = false;
        res.first_error = "body of " + std::to_string(body.size()) + " bytes is above the limit of " +
                          std::to_string(max_body) + " bytes";
        return res;
    }

    std::vector<Slot> slots;
    slots.reserve(wanted.size());
    for (const WantedMetric& w : wanted) {
        const bool dup =
            std::any_of(slots.begin(), slots.end(), [&](const Slot& s) { return s.name == w.name; });
        if (!dup) slots.push_back({w.name, w.agg});
    }

    std::string scratch;
    size_t pos = 0;
    uint32_t line_no = 0;
    while (pos < body.size()) {
        const char* nl = static_cast<const char*>(std::memchr(body.data() + pos, '\n', body.size() - pos));
        const size_t end = nl != nullptr ? static_cast<size_t>(nl - body.data()) : body.size();
        std::string_view line = body.substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

        size_t first = 0;
        while (first < line.size() && is_blank(line[first])) ++first;
        if (first == line.size()) continue;  // blank
        ++res.lines;
        if (line[first] == '#') continue;  // HELP, TYPE, EOF or a plain comment

        std::string_view name;
        double value = 0;
        const Fail fail = parse_sample(line, scratch, name, value);
        if (fail != Fail::none) {
            if (res.errors++ == 0) {
                res.first_error = "line " + std::to_string(line_no) + ": " + describe(fail) + ": \"" +
                                  excerpt(line) + "\"";
            }
            continue;
        }
        ++res.samples;
        for (Slot& s : slots) {
            if (s.name != name) continue;
            if (std::isnan(value)) break;
            ++res.matched;
            if (!s.seen) {
                s.value = value;
                s.seen = true;
            } else if (s.agg == Aggregation::sum) {
                s.value += value;
            } else {
                s.value = std::max(s.value, value);
            }
            break;
        }
    }

    for (const Slot& s : slots) {
        if (s.seen && !std::isnan(s.value)) out.emplace(std::string(s.name), s.value);
    }
    return res;
}

ParseResult parse_prometheus(std::string_view body, const std::vector<std::string>& wanted_names,
                             Aggregation agg, std::map<std::string, double>& out, size_t max_body) {
    std::vector<WantedMetric> wanted;
    wanted.reserve(wanted_names.size());
    for (const std::string& n : wanted_names) wanted.push_back({n, agg});
    return parse_prometheus(body, wanted, out, max_body);
}

std::vector<WantedMetric> MetricNames::wanted() const {
    std::vector<WantedMetric> w;
    for (const std::string& n : waiting) w.push_back({n, Aggregation::sum});
    for (const std::string& n : running) w.push_back({n, Aggregation::sum});
    for (const std::string& n : kv_cache) w.push_back({n, Aggregation::max});
    for (const std::string* h : {&ttft, &tpot}) {
        if (h->empty()) continue;
        w.push_back({*h + "_sum", Aggregation::sum});
        w.push_back({*h + "_count", Aggregation::sum});
    }
    return w;
}

MetricNames vllm_names() {
    MetricNames n;
    n.waiting = {"vllm:num_requests_waiting"};
    n.running = {"vllm:num_requests_running"};
    n.kv_cache = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"};
    n.ttft = "vllm:time_to_first_token_seconds";
    n.tpot = "vllm:time_per_output_token_seconds";
    return n;
}

MetricNames tgi_names() {
    MetricNames n;
    n.waiting = {"tgi_queue_size"};
    n.running = {"tgi_batch_current_size"};
    n.tpot = "tgi_request_mean_time_per_token_duration";
    return n;
}

MetricNames triton_names() {
    MetricNames n;
    n.waiting = {"nv_inference_pending_request_count"};
    n.ttft = "nv_inference_first_response_histogram_ms";
    n.seconds_per_unit = 0.001;
    return n;
}

namespace {

std::optional<double> first_present(const std::map<std::string, double>& parsed,
                                    const std::vector<std::string>& names) {
    for (const std::string& n : names) {
        const auto it = parsed.find(n);
        if (it != parsed.end()) return it->second;
    }
    return std::nullopt;
}

}  // namespace

LoadSignals extract_signals(const std::map<std::string, double>& parsed, const MetricNames& names) {
    LoadSignals s;
    s.waiting = first_present(parsed, names.waiting);
    s.running = first_present(parsed, names.running);
    s.kv_cache = first_present(parsed, names.kv_cache);
    // A histogram counts only with both totals; its sum is converted to seconds.
    const auto histogram = [&](const std::string& base, std::optional<double>& sum, std::optional<double>& count) {
        if (base.empty()) return;
        const auto su = parsed.find(base + "_sum");
        const auto co = parsed.find(base + "_count");
        if (su == parsed.end() || co == parsed.end()) return;
        sum = su->second * names.seconds_per_unit;
        count = co->second;
    };
    histogram(names.ttft, s.ttft_sum, s.ttft_count);
    histogram(names.tpot, s.tpot_sum, s.tpot_count);
    return s;
}

}  // namespace ferry::balance
