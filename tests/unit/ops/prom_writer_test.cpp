#include "ops/prom_writer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace ferry::ops {
namespace {

// One parsed sample line.
struct Sample {
    std::string name;
    std::vector<std::pair<std::string, std::string>> labels;  // unescaped
    std::string value;
};

// A strict reader of the text exposition format (0.0.4), enough to check what
// PromWriter produces: returns "" if valid, else the first problem.

std::string parse_exposition(const std::string& page, std::vector<Sample>* samples = nullptr,
                             std::map<std::string, std::string>* helps = nullptr) {
    if (!page.empty() && page.back() != '\n') return "page does not end with a newline";
    std::istringstream in(page);
    std::string line;
    std::map<std::string, std::string> types;
    std::set<std::string> closed;  // families whose samples are finished
    std::string current;           // family of the previous line
    auto family_of = [&](const std::string& name) {
        for (const char* suffix : {"_total", "_sum", "_count", "_bucket"}) {
            std::string s = suffix;
            if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
                types.count(name) == 0 && types.count(name.substr(0, name.size() - s.size())))
                return name.substr(0, name.size() - s.size());
        }
        return name;
    };
    auto enter = [&](const std::string& fam) -> std::string {
        if (fam != current) {
            if (closed.count(fam)) return "family " + fam + " is split";
            if (!current.empty()) closed.insert(current);
            current = fam;
        }
        return "";
    };
    while (std::getline(in, line)) {
        if (line.empty()) return "empty line";
        if (line[0] == '#') {
            std::istringstream ls(line);
            std::string hash, kind, name;
            ls >> hash >> kind >> name;
            if (kind != "HELP" && kind != "TYPE") continue;  // plain comment
            if (!PromWriter::valid_metric_name(name)) return "bad name in: " + line;
            if (auto e = enter(name); !e.empty()) return e;
            std::string rest;
            std::getline(ls, rest);
            if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
            if (kind == "TYPE") {
                if (types.count(name)) return "second TYPE for " + name;
                if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
                    rest != "untyped")
                    return "bad type: " + line;
                types[name] = rest;
            } else {
                if (helps && helps->count(name)) return "second HELP for " + name;
                for (std::size_t i = 0; i < rest.size(); ++i) {
                    if (rest[i] != '\\') continue;
                    if (i + 1 >= rest.size() || (rest[i + 1] != '\\' && rest[i + 1] != 'n'))
                        return "bad escape in HELP: " + line;
                    ++i;
                }
                if (helps) (*helps)[name] = rest;
            }
            continue;
        }
        Sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
        if (!PromWriter::valid_metric_name(s.name)) return "bad sample name: " + line;
        std::string fam = family_of(s.name);
        if (!types.count(fam)) return "sample before its TYPE: " + line;
        if (types[fam] == "counter" &&
            (s.name.size() <= 6 || s.name.compare(s.name.size() - 6, 6, "_total") != 0))
            return "counter without _total: " + line;
        if (auto e = enter(fam); !e.empty()) return e;
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                std::string lname, lvalue;
                while (i < line.size() && line[i] != '=') lname += line[i++];
                if (!PromWriter::valid_label_name(lname)) return "bad label name: " + line;
                if (++i >= line.size() || line[i] != '"') return "label value not quoted: " + line;
                ++i;
                for (;;) {
                    if (i >= line.size()) return "unterminated label value: " + line;
                    char c = line[i++];
                    if (c == '"') break;
                    if (c == '\\') {
                        if (i >= line.size()) return "dangling escape: " + line;
                        char e = line[i++];
                        if (e == '\\')
                            lvalue += '\\';
                        else if (e == '"')
                            lvalue += '"';
                        else if (e == 'n')
                            lvalue += '\n';
                        else
                            return "bad escape: " + line;
                    } else {
                        lvalue += c;
                    }
                }
                s.labels.emplace_back(lname, lvalue);
                if (i < line.size() && line[i] == ',') ++i;
            }
            if (i >= line.size()) return "unterminated labels: " + line;
            ++i;
        }
        if (i >= line.size() || line[i] != ' ') return "no value: " + line;
        s.value = line.substr(i + 1);
        if (s.value != "NaN" && s.value != "+Inf" && s.value != "-Inf") {
            char* end = nullptr;
            std::strtod(s.value.c_str(), &end);
            if (s.value.empty() || *end != '\0') return "bad value: " + line;
        }
        if (samples) samples->push_back(std::move(s));
    }
    return "";
}

TEST(PromWriter, CountersGetTotalAndFamiliesStayTogether) {
    PromWriter w;
    w.counter("ferry_rx_packets", "Packets received.", 10u, {{"port", "client"}});
    w.gauge("ferry_active_flows", "Flows in the tables.", 3, {{"vip", "web"}});
    w.counter("ferry_rx_packets_total", "ignored, first help wins", 20u, {{"port", "server"}});
    w.gauge("ferry_active_flows", "", 4, {{"vip", "api"}});
    std::string page = w.str();
    EXPECT_EQ(page,
              "# HELP ferry_rx_packets_total Packets received.\n"
              "# TYPE ferry_rx_packets_total counter\n"
              "ferry_rx_packets_total{port=\"client\"} 10\n"
              "ferry_rx_packets_total{port=\"server\"} 20\n"
              "# HELP ferry_active_flows Flows in the tables.\n"
              "# TYPE ferry_active_flows gauge\n"
              "ferry_active_flows{vip=\"web\"} 3\n"
              "ferry_active_flows{vip=\"api\"} 4\n");
    EXPECT_EQ(parse_exposition(page), "");
}

TEST(PromWriter, LabelValuesAreEscapedAndRoundTrip) {
    const std::string nasty = "a\\b \"quoted\"\nnext line {},=";
    PromWriter w;
    w.gauge("ferry_backend_state", "State.", 1, {{"vip", nasty}, {"backend", "10.0.0.2:8000"}});
    std::string page = w.str();
    EXPECT_NE(page.find(R"(vip="a\\b \"quoted\"\nnext line {},=")"), std::string::npos) << page;
    std::vector<Sample> samples;
    ASSERT_EQ(parse_exposition(page, &samples), "");
    ASSERT_EQ(samples.size(), 1u);
    EXPECT_EQ(samples[0].labels[0].second, nasty);
    EXPECT_EQ(samples[0].labels[1].second, "10.0.0.2:8000");
}

TEST(PromWriter, HelpIsEscaped) {
    PromWriter w;
    w.counter("ferry_x", "back\\slash and\nnewline \"quotes stay\"", 1);
    std::map<std::string, std::string> helps;
    ASSERT_EQ(parse_exposition(w.str(), nullptr, &helps), "");
    EXPECT_EQ(helps["ferry_x_total"], "back\\\\slash and\\nnewline \"quotes stay\"");
}

TEST(PromWriter, Values) {
    EXPECT_EQ(PromWriter::format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(PromWriter::format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(PromWriter::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(PromWriter::format_value(0.25), "0.25");
    EXPECT_EQ(PromWriter::format_value(1e21), "1e+21");
    EXPECT_EQ(PromWriter::format_value(uint64_t(18446744073709551615ull)), "18446744073709551615");
    EXPECT_EQ(PromWriter::format_value(-5), "-5");
    EXPECT_EQ(PromWriter::format_value(true), "1");
    PromWriter w;
    w.gauge("ferry_rtt_seconds", "RTT.", 0.0015).gauge("ferry_nan", "x", std::nan(""));
    w.counter("ferry_big", "x", std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(parse_exposition(w.str()), "");
}

TEST(PromWriter, MisuseThrows) {
    PromWriter w;
    EXPECT_THROW(w.gauge("1bad", "x", 1), std::invalid_argument);
    EXPECT_THROW(w.gauge("bad-name", "x", 1), std::invalid_argument);
    EXPECT_THROW(w.gauge("ok_name", "x", 1, {{"bad-label", "v"}}), std::invalid_argument);
    EXPECT_THROW(w.gauge("ok_name", "x", 1, {{"__reserved", "v"}}), std::invalid_argument);
    EXPECT_THROW(w.gauge("ok_name", "x", 1, {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
    EXPECT_THROW(w.counter("neg", "x", -1), std::invalid_argument);
    EXPECT_THROW(w.counter("negd", "x", -0.5), std::invalid_argument);
    w.gauge("ferry_thing", "x", 1);
    EXPECT_THROW(w.counter("ferry_thing_total", "x", 1).gauge("ferry_thing_total", "x", 1),
                 std::invalid_argument);
    // Failed calls left nothing half-written.
    EXPECT_EQ(parse_exposition(w.str()), "");
    EXPECT_EQ(w.str().find("ok_name"), std::string::npos);
}

TEST(PromWriter, DeclaredFamiliesWithoutSamples) {
    PromWriter w;
    w.declare_counter("ferry_new_flows", "New flows by VIP.").declare_gauge("ferry_backends", "Backends.");
    std::string page = w.str();
    EXPECT_NE(page.find("# TYPE ferry_new_flows_total counter\n"), std::string::npos);
    EXPECT_NE(page.find("# TYPE ferry_backends gauge\n"), std::string::npos);
    EXPECT_EQ(parse_exposition(page), "");
}

TEST(PromWriter, ParserCatchesBrokenPages) {
    // The checker itself must reject what PromWriter must never produce.
    EXPECT_NE(parse_exposition("x 1\n"), "");
    EXPECT_NE(parse_exposition("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n"), "");
    EXPECT_NE(parse_exposition("# TYPE a gauge\na{l=\"x\\q\"} 1\n"), "");
    EXPECT_NE(parse_exposition("# TYPE a gauge\n# TYPE a gauge\na 1\n"), "");
    EXPECT_NE(parse_exposition("# TYPE a gauge\na one\n"), "");
}

}  // namespace
}  // namespace ferry::ops
