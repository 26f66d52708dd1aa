#include "ferryctl/format.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

namespace ferry::ctl {

using json = nlohmann::json;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_duration_key(std::string_view key) { return ends_with(key, "_s"); }
bool is_time_key(std::string_view key) { return ends_with(key, "_at"); }

// Display width of UTF-8 text: one column per code point.
std::size_t width_of(std::string_view s) {
    std::size_t w = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++w;
    return w;
}

std::string pad(std::string_view s, std::size_t width, bool right) {
    std::size_t w = width_of(s);
    std::string fill(width > w ? width - w : 0, ' ');
    return right ? fill + std::string(s) : std::string(s) + fill;
}

std::string indent(const std::string& text, std::string_view by) {
    std::string out;
    bool at_line_start = true;
    for (char c : text) {
        if (at_line_start && c != '\n') out += by;
        out += c;
        at_line_start = c == '\n';
    }
    return out;
}

std::string format_number(const json& v) {
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    double d = v.get<double>();
    if (!std::isfinite(d)) return std::isnan(d) ? "NaN" : (d > 0 ? "Inf" : "-Inf");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", d);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
    }
    return s == "-0" ? "0" : s;
}

std::string format_time(double unix_s) {
    std::time_t t = std::time_t(unix_s);
    std::tm tm{};
    if (!localtime_r(&t, &tm)) return format_number(json(unix_s));
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

bool is_scalar(const json& v) { return v.is_null() || v.is_primitive(); }

bool is_table(const json& v) {
    return v.is_array() && std::any_of(v.begin(), v.end(), [](const json& e) { return e.is_object(); });
}

// Keys of `obj` in display order: `preferred` first, then the rest alphabetically.
std::vector<std::string> key_order(const json& obj, const std::vector<std::string>& preferred,
                                   const std::vector<std::string>& skip) {
    std::vector<std::string> keys;
    auto skipped = [&](const std::string& k) {
        return k == "ok" || std::find(skip.begin(), skip.end(), k) != skip.end();
    };
    for (const auto& k : preferred)
        if (obj.contains(k) && !skipped(k)) keys.push_back(k);
    for (const auto& [k, v] : obj.items())
        if (!skipped(k) && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    return keys;
}

}  // namespace

std::string header_of(std::string_view key) {
    if (is_duration_key(key)) key.remove_suffix(2);
    std::string h;
    for (char c : key) h += c == '_' ? ' ' : char(std::toupper(static_cast<unsigned char>(c)));
    return h;
}

std::string label_of(std::string_view key) {
    static const char* const acronyms[] = {"vip", "vips", "ip",   "id",  "mac", "mtu",
                                           "rtt", "nat",  "dnat", "pid", "cpu", "ttft", "tpot"};
    if (is_duration_key(key)) key.remove_suffix(2);
    std::string l;
    while (!key.empty()) {
        std::size_t end = std::min(key.find('_'), key.size());
        std::string word(key.substr(0, end));
        bool acronym =
            std::any_of(std::begin(acronyms), std::end(acronyms), [&](const char* a) { return word == a; });
        if (acronym)
            for (char& c : word) c = char(std::toupper(static_cast<unsigned char>(c)));
        else if (l.empty() && !word.empty())
            word[0] = char(std::toupper(static_cast<unsigned char>(word[0])));
        if (!l.empty()) l += ' ';
        l += word;
        key.remove_prefix(std::min(end + 1, key.size()));
    }
    return l;
}

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "-";
    char buf[48];
    if (s < 10 && s != std::floor(s)) {
        std::snprintf(buf, sizeof buf, "%.1fs", s);
        return buf;
    }
    auto t = static_cast<unsigned long long>(s);
    if (t < 60)
        std::snprintf(buf, sizeof buf, "%llus", t);
    else if (t < 3600)
        std::snprintf(buf, sizeof buf, "%llum%02llus", t / 60, t % 60);
    else if (t < 86400)
        std::snprintf(buf, sizeof buf, "%lluh%02llum", t / 3600, t % 3600 / 60);
    else
        std::snprintf(buf, sizeof buf, "%llud%02lluh", t / 86400, t % 86400 / 3600);
    return buf;
}

std::string format_rate(double r) {
    if (!std::isfinite(r) || r < 0) return "-";
    char buf[48];
    if (r == 0)
        return "0";
    else if (r < 10)
        std::snprintf(buf, sizeof buf, "%.1f", r);
    else
        std::snprintf(buf, sizeof buf, "%.0f", r);
    return buf;
}

std::string cell_text(std::string_view key, const json& v) {
    if (v.is_null()) return "-";
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_number()) {
        if (is_duration_key(key)) return format_duration(v.get<double>());
        if (is_time_key(key)) return format_time(v.get<double>());
        return format_number(v);
    }
    if (v.is_string()) {
        std::string s = v.get<std::string>();
        if (s.empty()) return "-";
        for (char& c : s)
            if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        return s;
    }
    if (v.is_array()) {
        if (v.empty()) return "-";
        std::string s;
        for (const auto& e : v) {
            if (!s.empty()) s += ", ";
            s += cell_text(key, e);
        }
        return s;
    }
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<std::string> column_order(const json& rows, const std::vector<std::string>& preferred) {
    std::vector<std::string> cols;
    auto present = [&](const std::string& k) {
        return std::any_of(rows.begin(), rows.end(),
                           [&](const json& r) { return r.is_object() && r.contains(k); });
    };
    for (const auto& k : preferred)
        if (present(k) && std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
    std::vector<std::string> rest;
    for (const auto& r : rows)
        if (r.is_object())
            for (const auto& [k, v] : r.items())
                if (std::find(cols.begin(), cols.end(), k) == cols.end() &&
                    std::find(rest.begin(), rest.end(), k) == rest.end())
                    rest.push_back(k);
    std::sort(rest.begin(), rest.end());
    cols.insert(cols.end(), rest.begin(), rest.end());
    return cols;
}

namespace {

const std::map<std::string, std::vector<std::string>, std::less<>>& known_lists() {
    static const std::map<std::string, std::vector<std::string>, std::less<>> known = {
        {"ports", {"name", "device", "address", "nat_addresses", "mac"}},
        {"vips",
         {"name", "address", "port", "proto", "mode", "scheduler", "backends", "active_flows", "new_flows"}},
        {"backends",
         {"vip", "address", "state", "weight", "effective_weight", "active_flows", "new_flows", "rtt_ms",
          "connect_ms", "ttft_ms", "tpot_ms", "load_factor", "latency_factor", "reason"}},
        {"flows", {"client", "vip", "backend", "state", "local", "age_s", "idle_s", "worker"}},
        {"workers", {"id", "worker", "lcore", "socket"}},
    };
    return known;
}

bool is_known_list(std::string_view key) { return known_lists().count(key) != 0; }

}  // namespace

const std::vector<std::string>& preferred_columns(std::string_view list_key) {
    static const std::vector<std::string> generic = {"name", "id", "vip", "address"};
    auto it = known_lists().find(list_key);
    return it == known_lists().end() ? generic : it->second;
}

std::string render_table(const json& rows, const std::vector<std::string>& preferred) {
    if (!rows.is_array() || rows.empty()) return "(none)\n";
    if (!is_table(rows)) {
        std::string out;
        for (const auto& r : rows) out += cell_text("", r) + "\n";
        return out;
    }
    std::vector<std::string> cols = column_order(rows, preferred);
    std::vector<std::vector<std::string>> cells;
    std::vector<std::size_t> widths(cols.size());
    std::vector<bool> numeric(cols.size(), true);
    for (std::size_t c = 0; c < cols.size(); ++c) widths[c] = width_of(header_of(cols[c]));
    for (const auto& r : rows) {
        std::vector<std::string> line;
        for (std::size_t c = 0; c < cols.size(); ++c) {
            const json* v = nullptr;
            if (r.is_object()) {
                auto it = r.find(cols[c]);
                if (it != r.end()) v = &*it;
            }
            std::string t = v ? cell_text(cols[c], *v) : "-";
            if (v && !v->is_null() && !v->is_number()) numeric[c] = false;
            widths[c] = std::max(widths[c], width_of(t));
            line.push_back(std::move(t));
        }
        cells.push_back(std::move(line));
    }
    auto emit = [&](const std::vector<std::string>& line) {
        std::string s;
        for (std::size_t c = 0; c < cols.size(); ++c) {
            bool last = c + 1 == cols.size();
            s += pad(line[c], widths[c], numeric[c]);
            if (!last) s += "  ";
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();  // no trailing blanks
        return s + "\n";
    };
    std::vector<std::string> headers;
    for (const auto& k : cols) headers.push_back(header_of(k));
    std::string out = emit(headers);
    for (const auto& line : cells) out += emit(line);
    return out;
}

std::string render_counters(const json& values, std::string_view name_header, std::string_view value_header,
                            const json* previous, double elapsed_s) {
    if (!values.is_object() || values.empty()) return "(none)\n";
    bool rates = previous != nullptr;
    json rows = json::array();
    for (const auto& [k, v] : values.items()) {
        json row = json::object();
        row["name"] = k;
        row["value"] = v;
        if (rates) {
            json rate = nullptr;
            auto p = previous->find(k);
            if (p != previous->end() && p->is_number() && v.is_number() && elapsed_s > 0) {
                double d = (v.get<double>() - p->get<double>()) / elapsed_s;
                if (d >= 0) rate = d;
            }
            row["rate"] = rate;
        }
        rows.push_back(std::move(row));
    }
    // Render through render_table with fixed headers.
    std::vector<std::string> cols = {"name", "value"};
    if (rates) cols.push_back("rate");
    std::vector<std::string> headers = {std::string(name_header), std::string(value_header), "RATE/S"};
    std::vector<std::size_t> widths;
    std::vector<std::vector<std::string>> cells;
    for (std::size_t c = 0; c < cols.size(); ++c) widths.push_back(width_of(headers[c]));
    for (const auto& r : rows) {
        std::vector<std::string> line = {r["name"].get<std::string>(),
                                         cell_text(r["name"].get<std::string>(), r["value"])};
        if (rates) line.push_back(r["rate"].is_null() ? "-" : format_rate(r["rate"].get<double>()));
        for (std::size_t c = 0; c < line.size(); ++c) widths[c] = std::max(widths[c], width_of(line[c]));
        cells.push_back(std::move(line));
    }
    auto emit = [&](const std::vector<std::string>& line) {
        std::string s = pad(line[0], widths[0], false);
        for (std::size_t c = 1; c < cols.size(); ++c) s += "  " + pad(line[c], widths[c], true);
        return s + "\n";
    };
    std::string out = emit(headers);
    for (const auto& line : cells) out += emit(line);
    return out;
}

std::string render_object(const json& obj, const std::vector<std::string>& preferred,
                          const std::vector<std::string>& skip) {
    if (!obj.is_object()) return cell_text("", obj) + "\n";
    std::vector<std::string> keys = key_order(obj, preferred, skip);
    std::vector<std::pair<std::string, std::string>> fields;  // label, value
    std::vector<std::string> sections;                        // keys rendered as blocks
    for (const auto& k : keys) {
        const json& v = obj[k];
        if (is_table(v) || (v.is_object() && !v.empty()))
            sections.push_back(k);
        else if (v.is_array() && v.empty() && is_known_list(k))
            sections.push_back(k);  // an empty known list: say "(none)" under its title
        else
            fields.emplace_back(label_of(k), cell_text(k, v));
    }
    std::string out;
    std::size_t label_w = 0;
    for (const auto& [l, v] : fields) label_w = std::max(label_w, width_of(l) + 1);
    for (const auto& [l, v] : fields) out += pad(l + ":", label_w, false) + "  " + v + "\n";
    bool titled = !(fields.empty() && sections.size() == 1);
    for (const auto& k : sections) {
        const json& v = obj[k];
        std::string body;
        if (v.is_array()) {
            body = render_table(v, preferred_columns(k));
        } else if (std::all_of(v.begin(), v.end(), is_scalar)) {
            std::string name_h = k == "counters" ? "COUNTER" : k == "drops" ? "REASON" : "NAME";
            std::string value_h = k == "counters" ? "TOTAL" : k == "drops" ? "COUNT" : "VALUE";
            body = render_counters(v, name_h, value_h);
        } else {
            body = indent(render_object(v), "  ");
        }
        if (!titled) {
            out += body;
            continue;
        }
        if (!out.empty()) out += "\n";
        out += header_of(k) + "\n" + body;
    }
    return out;
}

}  // namespace ferry::ctl
