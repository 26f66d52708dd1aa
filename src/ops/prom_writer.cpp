#include "ops/prom_writer.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace ferry::ops {

namespace {

bool is_alpha_(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool PromWriter::valid_metric_name(std::string_view name) {
    if (name.empty() || !(is_alpha_(name[0]) || name[0] == ':')) return false;
    for (char c : name)
        if (!(is_alpha_(c) || is_digit(c) || c == ':')) return false;
    return true;
}

bool PromWriter::valid_label_name(std::string_view name) {
    if (name.empty() || !is_alpha_(name[0])) return false;
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;  // reserved for Prometheus
    for (char c : name)
        if (!(is_alpha_(c) || is_digit(c))) return false;
    return true;
}

std::string PromWriter::escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

std::string PromWriter::escape_help(std::string_view help) {
    std::string out;
    out.reserve(help.size());
    for (char c : help) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

std::string PromWriter::format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    if (ec != std::errc()) return "NaN";
    return std::string(buf, end);
}

std::string PromWriter::counter_name(std::string_view name) {
    constexpr std::string_view suffix = "_total";
    std::string n(name);
    if (n.size() < suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
        n += suffix;
    return n;
}

void PromWriter::negative_counter(std::string_view name) {
    throw std::invalid_argument("PromWriter: counter " + std::string(name) + " is negative");
}

PromWriter::Family& PromWriter::family(Type type, const std::string& name, std::string_view help) {
    auto it = index_.find(name);
    if (it != index_.end()) {
        Family& f = families_[it->second];
        if (f.type != type)
            throw std::invalid_argument("PromWriter: metric " + name + " used both as a counter and a gauge");
        return f;  // the first help text wins
    }
    if (!valid_metric_name(name))
        throw std::invalid_argument("PromWriter: invalid metric name '" + name + "'");
    index_.emplace(name, families_.size());
    families_.push_back(Family{name, type, escape_help(help), {}});
    return families_.back();
}

PromWriter& PromWriter::add(Type type, const std::string& name, std::string_view help,
                            const std::string& value, const Labels& labels) {
    // Validate everything before touching the page, so a throw leaves it intact.
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!valid_label_name(labels[i].first))
            throw std::invalid_argument("PromWriter: invalid label name '" + labels[i].first + "' on " +
                                        name);
        for (std::size_t j = 0; j < i; ++j)
            if (labels[j].first == labels[i].first)
                throw std::invalid_argument("PromWriter: label '" + labels[i].first + "' repeated on " +
                                            name);
    }
    Family& f = family(type, name, help);
    std::string& s = f.samples;
    s += name;
    if (!labels.empty()) {
        s += '{';
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (i) s += ',';
            s += labels[i].first;
            s += "=\"";
            s += escape_label_value(labels[i].second);
            s += '"';
        }
        s += '}';
    }
    s += ' ';
    s += value;
    s += '\n';
    return *this;
}

PromWriter& PromWriter::declare_counter(std::string_view name, std::string_view help) {
    family(Type::counter, counter_name(name), help);
    return *this;
}

PromWriter& PromWriter::declare_gauge(std::string_view name, std::string_view help) {
    family(Type::gauge, std::string(name), help);
    return *this;
}

std::string PromWriter::str() const {
    std::string out;
    for (const Family& f : families_) {
        if (!f.help.empty()) out += "# HELP " + f.name + ' ' + f.help + '\n';
        out += "# TYPE " + f.name + (f.type == Type::counter ? " counter\n" : " gauge\n");
        out += f.samples;
    }
    return out;
}

}  // namespace ferry::ops
