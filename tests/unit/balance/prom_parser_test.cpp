#include "balance/prom_parser.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace ferry::balance {
namespace {

// A trimmed /metrics of vLLM (V1 engine) with two data-parallel engines.
constexpr std::string_view kVllmBody = R"(# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12345.0
python_gc_objects_collected_total{generation="1"} 678.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 24.0
vllm:num_requests_running{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 31.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 3.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 9.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.71
vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.934
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 1.234567e+06
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="Qwen/Qwen2.5-7B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="Qwen/Qwen2.5-7B-Instruct"} 812.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Qwen/Qwen2.5-7B-Instruct"} 900.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 900.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 171.3
)";

constexpr std::string_view kTgiBody =
    "# HELP tgi_queue_size Current queue size\n"
    "# TYPE tgi_queue_size gauge\n"
    "tgi_queue_size 7\n"
    "# TYPE tgi_batch_current_size gauge\n"
    "tgi_batch_current_size 12\n"
    "# TYPE tgi_request_duration histogram\n"
    "tgi_request_duration_bucket{le=\"0.1\"} 3\n"
    "tgi_request_duration_bucket{le=\"+Inf\"} 40\n"
    "tgi_request_duration_sum 23.5\n"
    "tgi_request_duration_count 40\n";

constexpr std::string_view kTritonBody =
    "# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution\n"
    "# TYPE nv_inference_pending_request_count gauge\n"
    "nv_inference_pending_request_count{model=\"resnet50\",version=\"1\"} 2\n"
    "nv_inference_pending_request_count{model=\"bert\",version=\"3\"} 5\n"
    "nv_inference_exec_count{model=\"bert\",version=\"3\"} 1024\n";

std::map<std::string, double> parse(std::string_view body, const std::vector<std::string>& names,
                                    Aggregation agg = Aggregation::sum, ParseResult* res = nullptr) {
    std::map<std::string, double> out;
    const ParseResult r = parse_prometheus(body, names, agg, out);
    if (res != nullptr) *res = r;
    return out;
}

TEST(PromParser, VllmSumsEnginesAndTakesMaxKv) {
    std::map<std::string, double> out;
    const ParseResult r = parse_prometheus(kVllmBody, vllm_names().wanted(), out);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    EXPECT_EQ(r.samples, 14u);
    EXPECT_EQ(r.matched, 8u);   // the TTFT histogram's _sum and _count too
    EXPECT_EQ(out.size(), 5u);
    EXPECT_DOUBLE_EQ(out.at("vllm:num_requests_waiting"), 12.0);
    EXPECT_DOUBLE_EQ(out.at("vllm:num_requests_running"), 55.0);
    EXPECT_DOUBLE_EQ(out.at("vllm:kv_cache_usage_perc"), 0.934);
    EXPECT_EQ(out.count("vllm:gpu_cache_usage_perc"), 0u);  // not exported: absent

    const LoadSignals s = extract_signals(out, vllm_names());
    ASSERT_TRUE(s.waiting && s.running && s.kv_cache);
    EXPECT_DOUBLE_EQ(*s.waiting, 12.0);
    EXPECT_DOUBLE_EQ(*s.running, 55.0);
    EXPECT_DOUBLE_EQ(*s.kv_cache, 0.934);
}

TEST(PromParser, VllmOldKvNameIsTheFallback) {
    const std::string old_body =
        "vllm:num_requests_waiting{model_name=\"m\"} 1\n"
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\n";
    std::map<std::string, double> out;
    parse_prometheus(old_body, vllm_names().wanted(), out);
    LoadSignals s = extract_signals(out, vllm_names());
    ASSERT_TRUE(s.kv_cache);
    EXPECT_DOUBLE_EQ(*s.kv_cache, 0.5);
    EXPECT_FALSE(s.running);

    // Both exported: the new name wins.
    const std::string both = old_body + "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.25\n";
    parse_prometheus(both, vllm_names().wanted(), out);
    s = extract_signals(out, vllm_names());
    ASSERT_TRUE(s.kv_cache);
    EXPECT_DOUBLE_EQ(*s.kv_cache, 0.25);
}

TEST(PromParser, Tgi) {
    std::map<std::string, double> out;
    const ParseResult r = parse_prometheus(kTgiBody, tgi_names().wanted(), out);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    const LoadSignals s = extract_signals(out, tgi_names());
    ASSERT_TRUE(s.waiting && s.running);
    EXPECT_DOUBLE_EQ(*s.waiting, 7.0);
    EXPECT_DOUBLE_EQ(*s.running, 12.0);
    EXPECT_FALSE(s.kv_cache);
}

TEST(PromParser, Triton) {
    std::map<std::string, double> out;
    const ParseResult r = parse_prometheus(kTritonBody, triton_names().wanted(), out);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    const LoadSignals s = extract_signals(out, triton_names());
    ASSERT_TRUE(s.waiting);
    EXPECT_DOUBLE_EQ(*s.waiting, 7.0);
    EXPECT_FALSE(s.running);
    EXPECT_FALSE(s.kv_cache);
}

TEST(PromParser, WrongServerKindGivesNoSignals) {
    std::map<std::string, double> out;
    parse_prometheus(kTgiBody, vllm_names().wanted(), out);
    EXPECT_TRUE(out.empty());
    const LoadSignals s = extract_signals(out, vllm_names());
    EXPECT_FALSE(s.waiting || s.running || s.kv_cache);
}

TEST(PromParser, SumAndMax) {
    const std::string body = "a{x=\"1\"} 3\na{x=\"2\"} 10\na{x=\"3\"} -4\n";
    EXPECT_DOUBLE_EQ(parse(body, {"a"}, Aggregation::sum).at("a"), 9.0);
    EXPECT_DOUBLE_EQ(parse(body, {"a"}, Aggregation::max).at("a"), 10.0);
    EXPECT_DOUBLE_EQ(parse("a -7\na -2\n", {"a"}, Aggregation::max).at("a"), -2.0);
}

TEST(PromParser, ExactNamesOnly) {
    const std::string body =
        "vllm:num_requests_waiting_total 100\n"
        "vllm:num_requests_waitin 100\n"
        "xvllm:num_requests_waiting 100\n"
        "vllm:num_requests_waiting 2\n";
    ParseResult r;
    const auto out = parse(body, {"vllm:num_requests_waiting"}, Aggregation::sum, &r);
    EXPECT_DOUBLE_EQ(out.at("vllm:num_requests_waiting"), 2.0);
    EXPECT_EQ(r.samples, 4u);
    EXPECT_EQ(r.matched, 1u);
}

TEST(PromParser, NumberForms) {
    const std::string body =
        "a 1.5e3\n"
        "a 2E-2\n"
        "a +3\n"
        "a -0.0\n"
        "a .5\n"
        "a 7.\n"
        "b +Inf\n"
        "c -Inf\n"
        "d Inf\n"
        "e inf\n"
        "f 1e308\n";
    ParseResult r;
    const auto out = parse(body, {"a", "b", "c", "d", "e", "f"}, Aggregation::sum, &r);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    EXPECT_DOUBLE_EQ(out.at("a"), 1500 + 0.02 + 3 + 0.5 + 7);
    EXPECT_EQ(out.at("b"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(out.at("c"), -std::numeric_limits<double>::infinity());
    EXPECT_EQ(out.at("d"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(out.at("e"), std::numeric_limits<double>::infinity());
    EXPECT_DOUBLE_EQ(out.at("f"), 1e308);
}

TEST(PromParser, NanIsIgnoredPerSeries) {
    ParseResult r;
    auto out = parse("a{e=\"0\"} NaN\na{e=\"1\"} 4\na{e=\"2\"} nan\n", {"a"}, Aggregation::sum, &r);
    EXPECT_DOUBLE_EQ(out.at("a"), 4.0);
    EXPECT_EQ(r.matched, 1u);
    EXPECT_EQ(r.errors, 0u);
    EXPECT_DOUBLE_EQ(parse("a NaN\na 4\n", {"a"}, Aggregation::max).at("a"), 4.0);
    // Only NaN: absent.
    out = parse("a NaN\n", {"a"});
    EXPECT_EQ(out.count("a"), 0u);
    // +Inf plus -Inf is NaN: absent, not NaN.
    out = parse("a +Inf\na -Inf\n", {"a"});
    EXPECT_EQ(out.count("a"), 0u);
}

TEST(PromParser, EscapedAndAwkwardLabelValues) {
    const std::string body =
        "a{model_name=\"x\\\"y\\\\z\\nw\",engine=\"0\"} 1\n"     // \" \\ \n escapes
        "a{path=\"} b, c # d = e\"} 2\n"                         // }, comma, '#', '=' inside quotes
        "a{ k = \"v\" , k2=\"v2\", } 4\n"                        // blanks and a trailing comma
        "a{} 8\n"                                                 // empty label set
        "a{u=\"\xc3\xa9\xe2\x82\xac\"} 16\n"                     // UTF-8
        "a{x=\"\\q\"} 32\n";                                      // unknown escape: skipped, like Prometheus
    ParseResult r;
    const auto out = parse(body, {"a"}, Aggregation::sum, &r);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    EXPECT_DOUBLE_EQ(out.at("a"), 63.0);
}

TEST(PromParser, TimestampsExemplarsAndLineEndings) {
    const std::string body =
        "a 1 1700000000000\n"
        "a 2 -5\r\n"
        "  \ta\t4  \n"
        "a{le=\"0.5\"} 8 # {trace_id=\"abc\"} 0.4 1700000000.1\n"
        "\n"
        "   \n"
        "\r\n"
        "a 16";  // no final newline
    ParseResult r;
    const auto out = parse(body, {"a"}, Aggregation::sum, &r);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    EXPECT_EQ(r.lines, 5u);
    EXPECT_DOUBLE_EQ(out.at("a"), 31.0);
}

TEST(PromParser, QuotedNameForm) {
    const std::string body =
        "{\"vllm:num_requests_waiting\", engine=\"0\"} 4\n"
        "{\"vllm:num_requests_waiting\"} 1\n"
        "{\"dotted.name\", \"quoted.label\"=\"v\"} 2\n";
    ParseResult r;
    const auto out = parse(body, {"vllm:num_requests_waiting", "dotted.name"}, Aggregation::sum, &r);
    EXPECT_EQ(r.errors, 0u) << r.first_error;
    EXPECT_DOUBLE_EQ(out.at("vllm:num_requests_waiting"), 5.0);
    EXPECT_DOUBLE_EQ(out.at("dotted.name"), 2.0);
}

TEST(PromParser, GarbageLinesAreCountedAndSkipped) {
    const std::string body =
        "a 1\n"
        "this is not a metric\n"                       // 2: text after the value... "is" is not a number
        "a{engine=\"0\" 4\n"                            // 3: unterminated label set
        "a{engine=0} 4\n"                               // 4: unquoted label value
        "a{engine=\"0} 4\n"                             // 5: unterminated quote
        "a 1 2 3\n"                                     // 6: trailing text
        "a abc\n"                                       // 7: bad value
        "a\n"                                           // 8: no value
        "{\n"                                           // 9
        "9a 1\n"                                        // 10: bad name
        "a-b 1\n"                                       // 11: bad name
        "a 1 notatime\n"                                // 12: bad timestamp
        "a ++1\n"                                       // 13
        "a 0x10\n"                                      // 14: no hex
        "a{,} 1\n"                                      // 15
        "a{=\"v\"} 1\n"                                 // 16
        + std::string("\0\x01\x02 1\n", 6) +           // 17: control bytes
        "a 2\n";
    ParseResult r;
    const auto out = parse(body, {"a"}, Aggregation::sum, &r);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.errors, 16u);
    EXPECT_EQ(r.samples, 2u);
    EXPECT_DOUBLE_EQ(out.at("a"), 3.0);
    EXPECT_EQ(r.first_error.rfind("line 2: ", 0), 0u) << r.first_error;
}

TEST(PromParser, ControlBytesInErrorTextAreMasked) {
    ParseResult r;
    parse(std::string("\x01\x1b[31m 1\n", 9), {"a"}, Aggregation::sum, &r);
    EXPECT_EQ(r.errors, 1u);
    EXPECT_EQ(r.first_error.find('\x1b'), std::string::npos);
}

TEST(PromParser, EmptyAndCommentOnlyBodies) {
    ParseResult r;
    auto out = parse("", {"a"}, Aggregation::sum, &r);
    EXPECT_TRUE(r.ok);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(r.lines, 0u);
    out = parse("# HELP a x\n# TYPE a gauge\n# EOF\n", {"a"}, Aggregation::sum, &r);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(r.lines, 3u);
    EXPECT_EQ(r.errors, 0u);
}

TEST(PromParser, HugeBodyIsRefused) {
    std::string body;
    while (body.size() <= kDefaultMaxMetricsBody) body += "vllm:num_requests_waiting{engine=\"0\"} 1\n";
    std::map<std::string, double> out = {{"stale", 1.0}};
    const ParseResult r = parse_prometheus(body, vllm_names().wanted(), out);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(out.empty());
    EXPECT_NE(r.first_error.find("limit"), std::string::npos);

    // Exactly at a custom limit is fine, one byte over is not.
    const std::string small = "a 1\n";
    EXPECT_TRUE(parse_prometheus(small, std::vector<std::string>{"a"}, Aggregation::sum, out, 4).ok);
    EXPECT_FALSE(parse_prometheus(small, std::vector<std::string>{"a"}, Aggregation::sum, out, 3).ok);
}

TEST(PromParser, OutIsClearedAndDuplicatesFoldOnce) {
    std::map<std::string, double> out = {{"old", 1.0}};
    const std::vector<WantedMetric> wanted = {{"a", Aggregation::max}, {"a", Aggregation::sum}};
    const ParseResult r = parse_prometheus("a 1\na 5\n", wanted, out);
    EXPECT_EQ(out.size(), 1u);
    EXPECT_DOUBLE_EQ(out.at("a"), 5.0);  // the first entry's aggregation
    EXPECT_EQ(r.matched, 2u);
}

// Random damage to a real body must never crash or read out of bounds (run
// under ASan), and whatever is reported must be a real number or infinity.
TEST(PromParser, SurvivesMutatedBodies) {
    std::mt19937_64 rng(11);
    constexpr char kAlphabet[] = "{}\"\\=, \t\n\r#:._aZ09+-eEInfNa\x00\xff";
    const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);  // keeps the NUL
    for (int round = 0; round < 3000; ++round) {
        std::string body(kVllmBody);
        const int edits = 1 + int(rng() % 20);
        for (int e = 0; e < edits; ++e) {
            const size_t at = rng() % (body.size() + 1);
            switch (rng() % 3) {
                case 0: body.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
                case 1:
                    if (at < body.size()) body.erase(at, 1 + rng() % 8);
                    break;
                default:
                    if (at < body.size()) body[at] = char(rng());
                    break;
            }
        }
        if (round % 10 == 0) body.resize(rng() % (body.size() + 1));  // cut anywhere
        std::map<std::string, double> out;
        const ParseResult r = parse_prometheus(body, vllm_names().wanted(), out);
        EXPECT_TRUE(r.ok);
        for (const auto& [name, v] : out) EXPECT_FALSE(std::isnan(v)) << name;
    }
    // Pure noise.
    for (int round = 0; round < 500; ++round) {
        std::string body(rng() % 2000, '\0');
        for (char& ch : body) ch = char(rng());
        std::map<std::string, double> out;
        EXPECT_TRUE(parse_prometheus(body, vllm_names().wanted(), out).ok);
    }
}

TEST(MetricNames, WantedAggregations) {
    const auto w = vllm_names().wanted();
    ASSERT_EQ(w.size(), 8u);
    EXPECT_EQ(w[0].name, "vllm:num_requests_waiting");
    EXPECT_EQ(w[0].agg, Aggregation::sum);
    EXPECT_EQ(w[1].name, "vllm:num_requests_running");
    EXPECT_EQ(w[1].agg, Aggregation::sum);
    EXPECT_EQ(w[2].name, "vllm:kv_cache_usage_perc");
    EXPECT_EQ(w[2].agg, Aggregation::max);
    EXPECT_EQ(w[3].name, "vllm:gpu_cache_usage_perc");
    EXPECT_EQ(w[3].agg, Aggregation::max);
    // Latency histograms: their totals, summed over series.
    EXPECT_EQ(w[4].name, "vllm:time_to_first_token_seconds_sum");
    EXPECT_EQ(w[5].name, "vllm:time_to_first_token_seconds_count");
    EXPECT_EQ(w[6].name, "vllm:time_per_output_token_seconds_sum");
    EXPECT_EQ(w[7].name, "vllm:time_per_output_token_seconds_count");
    for (size_t i = 4; i < 8; ++i) EXPECT_EQ(w[i].agg, Aggregation::sum);
    EXPECT_EQ(tgi_names().wanted().size(), 4u);
    EXPECT_EQ(triton_names().wanted().size(), 3u);
}

TEST(MetricNames, LatencyHistogramsNeedBothTotals) {
    std::map<std::string, double> out;
    ASSERT_TRUE(parse_prometheus(kVllmBody, vllm_names().wanted(), out).ok);
    LoadSignals s = extract_signals(out, vllm_names());
    ASSERT_TRUE(s.ttft_sum && s.ttft_count);
    EXPECT_DOUBLE_EQ(*s.ttft_sum, 171.3);
    EXPECT_DOUBLE_EQ(*s.ttft_count, 900.0);
    EXPECT_FALSE(s.tpot_sum || s.tpot_count);  // not in the body
    // Only a _sum: no signal.
    out.erase("vllm:time_to_first_token_seconds_count");
    s = extract_signals(out, vllm_names());
    EXPECT_FALSE(s.ttft_sum || s.ttft_count);
    // Triton reports milliseconds: the sum is converted to seconds.
    std::map<std::string, double> t = {{"nv_inference_first_response_histogram_ms_sum", 2500.0},
                                       {"nv_inference_first_response_histogram_ms_count", 10.0}};
    s = extract_signals(t, triton_names());
    ASSERT_TRUE(s.ttft_sum && s.ttft_count);
    EXPECT_DOUBLE_EQ(*s.ttft_sum, 2.5);
    EXPECT_EQ(tgi_names().tpot, "tgi_request_mean_time_per_token_duration");
    EXPECT_TRUE(tgi_names().ttft.empty());
}

}  // namespace
}  // namespace ferry::balance
