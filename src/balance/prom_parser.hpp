// Prometheus text exposition parser for scraping AI servers' /metrics, and the
// load signals Ferry reads from vLLM, TGI and Triton.
//
// Accepted (Prometheus text format 0.0.4, plus the bits of OpenMetrics and
// Prometheus 3 that servers emit):
//  * '#' comment lines (HELP, TYPE, EOF, anything) and blank lines; "\r\n" ends;
//  * samples: name [ "{" labels "}" ] value [ timestamp ] [ "#" exemplar ];
//    names match [a-zA-Z_:][a-zA-Z0-9_:]* (so "vllm:num_requests_waiting");
//  * labels: name="value" pairs separated by commas, trailing comma allowed;
//    values may hold \\, \" and \n escapes (any backslash pair is skipped);
//    the quoted-name form {"metric.name", label="v"} and quoted label names;
//  * values: decimal and scientific notation, optional sign, Inf / +Inf / -Inf
//    and NaN in any case; timestamps: any number (ignored).
// A line that does not fit is counted in ParseResult::errors and skipped; the
// parser never reads outside `body` and never throws on input (it may throw
// std::bad_alloc). Labels are ignored: every series of a wanted metric is
// folded into one value (sum or max). A NaN sample is skipped; an aggregate
// that ends NaN (+Inf plus -Inf) is not reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::balance {

// Bodies above this are refused: a sane /metrics is tens of KiB; a huge one is
// a misconfigured target and parsing it would stall the control thread.
inline constexpr size_t kDefaultMaxMetricsBody = size_t{4} << 20;  // 4 MiB

enum class Aggregation : uint8_t { sum, max };

// A metric to collect and how to fold its series (per-name aggregation: queue
// lengths add up across engines, a cache usage should take the fullest).
struct WantedMetric {
    std::string name;
    Aggregation agg = Aggregation::sum;
};

// What a parse saw, for logs and counters.
struct ParseResult {
    bool ok = true;           // false: body refused (too large), nothing parsed, out left empty
    uint32_t lines = 0;       // non-blank lines, comments included
    uint32_t samples = 0;     // well-formed sample lines, wanted or not
    uint32_t matched = 0;     // samples of wanted metrics folded into out (NaN samples excluded)
    uint32_t errors = 0;      // malformed lines, skipped
    std::string first_error;  // "line 7: ...", or the refusal reason; empty if none
};

// Parses `body` and writes, for each wanted name that has at least one non-NaN
// sample, the sum or max of its samples into `out` (cleared first; a wanted
// metric that is absent stays absent). Duplicate wanted names: the first
// entry's aggregation applies.
ParseResult parse_prometheus(std::string_view body, const std::vector<WantedMetric>& wanted,
                             std::map<std::string, double>& out, size_t max_body = kDefaultMaxMetricsBody);

// The same with one aggregation for every name.
ParseResult parse_prometheus(std::string_view body, const std::vector<std::string>& wanted_names,
                             Aggregation agg, std::map<std::string, double>& out,
                             size_t max_body = kDefaultMaxMetricsBody);

// The load of one AI server as its metrics report it; a signal the server does
// not export (or the scrape lacked) is empty.
struct LoadSignals {
    std::optional<double> waiting;   // requests queued, not yet scheduled
    std::optional<double> running;   // requests in the running batch
    std::optional<double> kv_cache;  // KV cache usage, 0..1
    // Server-reported latency histograms, as cumulative totals (_sum in the
    // histogram's unit, _count observations), summed over series.
    std::optional<double> ttft_sum, ttft_count;  // time to first token
    std::optional<double> tpot_sum, tpot_count;  // time per output token
};

// Which metric names carry each signal for one kind of server. Each list is in
// priority order: the first name present in a scrape is used.
struct MetricNames {
    std::vector<std::string> waiting;
    std::vector<std::string> running;
    std::vector<std::string> kv_cache;
    // Histograms of the time to first token and per output token: base names
    // (`<name>_sum` and `<name>_count` are read); empty = the server has none.
    std::string ttft;
    std::string tpot;
    double seconds_per_unit = 1.0;  // the histograms' unit (Triton's are in ms: 0.001)

    // Everything to ask parse_prometheus for: queue and batch counts summed
    // over series (engines, models), KV usage by max (the fullest engine).
    std::vector<WantedMetric> wanted() const;
};

// vLLM: vllm:num_requests_waiting, vllm:num_requests_running, and
// vllm:kv_cache_usage_perc or else (older releases) vllm:gpu_cache_usage_perc;
// latency: vllm:time_to_first_token_seconds, vllm:time_per_output_token_seconds.
MetricNames vllm_names();
// Text Generation Inference: tgi_queue_size, tgi_batch_current_size; latency:
// tgi_request_mean_time_per_token_duration (per output token; TGI has no TTFT
// histogram).
MetricNames tgi_names();
// Triton: nv_inference_pending_request_count (waiting only); latency:
// nv_inference_first_response_histogram_ms (first response of decoupled
// models, in ms).
MetricNames triton_names();

LoadSignals extract_signals(const std::map<std::string, double>& parsed, const MetricNames& names);

}  // namespace ferry::balance
