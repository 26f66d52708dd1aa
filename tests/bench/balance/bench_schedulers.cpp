// Scheduler micro-benchmarks: the per-new-flow pickers (least connections, two
// random choices, smooth round robin cursor) and the control-path work behind
// them (building an SWRR sequence, parsing a vLLM /metrics body).
//
// items_per_second is per pick (per body for the parser); ns per item =
// 1e9 / items_per_second. The random generator in the loops is a xorshift64,
// as a worker would use; its cost (~1 ns) is included.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "balance/least_load.hpp"
#include "balance/prom_parser.hpp"
#include "balance/round_robin.hpp"

namespace ferry::balance {
namespace {

struct XorShift {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
};

// n backends of weight 50..150 with 0..999 active flows each.
struct Fleet {
    std::vector<uint32_t> weights;
    std::vector<int64_t> active;
    std::vector<uint32_t> cumulative;

    explicit Fleet(uint32_t n) {
        std::mt19937_64 rng(n);
        for (uint32_t i = 0; i < n; ++i) {
            weights.push_back(50 + uint32_t(rng() % 101));
            active.push_back(int64_t(rng() % 1000));
        }
        cumulative = build_cumulative_weights(weights);
    }
};

void BM_PickLeastConn(benchmark::State& state) {
    Fleet f(uint32_t(state.range(0)));
    XorShift rng;
    const auto n = uint32_t(f.weights.size());
    for (auto _ : state) {
        const uint32_t b = pick_least_conn(f.weights.data(), f.active.data(), n, uint32_t(rng.next()));
        benchmark::DoNotOptimize(b);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PickLeastConn)->Arg(16)->Arg(256);

// Picks feed back into the counts, as on a worker (keeps the branch pattern honest).
void BM_PickTwoChoices(benchmark::State& state) {
    Fleet f(uint32_t(state.range(0)));
    XorShift rng;
    const auto n = uint32_t(f.weights.size());
    for (auto _ : state) {
        const uint32_t b =
            pick_two_choices(f.cumulative.data(), f.weights.data(), f.active.data(), n, rng.next());
        ++f.active[b];
        --f.active[rng.next() % n];
        benchmark::DoNotOptimize(b);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PickTwoChoices)->Arg(1000);

void BM_SwrrNext(benchmark::State& state) {
    std::vector<uint32_t> w;
    std::mt19937_64 rng(3);
    for (int i = 0; i < 100; ++i) w.push_back(1 + uint32_t(rng() % 1000));
    const auto seq = build_swrr_sequence(w);
    SwrrCursor cur(seq, swrr_start_offset(1, 4, uint32_t(seq.size())));
    for (auto _ : state) benchmark::DoNotOptimize(cur.next());
    state.SetItemsProcessed(state.iterations());
    state.counters["seq_len"] = double(seq.size());
}
BENCHMARK(BM_SwrrNext);

// Control path: rebuild after a weight change, n backends of weight 1..1000
// (the cycle is scaled to the 65536 entry limit).
void BM_BuildSwrrSequence(benchmark::State& state) {
    std::vector<uint32_t> w;
    std::mt19937_64 rng(4);
    for (int64_t i = 0; i < state.range(0); ++i) w.push_back(1 + uint32_t(rng() % 1000));
    for (auto _ : state) benchmark::DoNotOptimize(build_swrr_sequence(w));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildSwrrSequence)->Arg(16)->Arg(1000)->Unit(benchmark::kMicrosecond);

// A 200-line vLLM /metrics body: HELP/TYPE pairs, gauges for two engines,
// counters and histogram buckets, as vLLM V1 emits them.
std::string vllm_body_200_lines() {
    const std::string labels = "engine=\"%E\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"";
    std::string body;
    int lines = 0;
    const auto line = [&](const std::string& s) {
        body += s;
        body += '\n';
        ++lines;
    };
    const auto series = [&](const std::string& name, int engine, const std::string& extra,
                            const std::string& v) {
        std::string l = labels;
        l.replace(l.find("%E"), 2, std::to_string(engine));
        line(name + "{" + (extra.empty() ? "" : extra + ",") + l + "} " + v);
    };
    const char* gauges[] = {"vllm:num_requests_running",  "vllm:num_requests_waiting",
                            "vllm:kv_cache_usage_perc",   "vllm:num_preemptions_total",
                            "vllm:prompt_tokens_total",   "vllm:generation_tokens_total"};
    for (const char* g : gauges) {
        line(std::string("# HELP ") + g + " Some help text for this metric.");
        line(std::string("# TYPE ") + g + " gauge");
        series(g, 0, "", "17.0");
        series(g, 1, "", "4.0");
    }
    const char* hists[] = {"vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
                           "vllm:request_prompt_tokens", "vllm:request_generation_tokens"};
    const char* les[] = {"0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5",
                         "0.75", "1.0", "2.5", "5.0", "7.5", "10.0", "20.0", "+Inf"};
    for (const char* h : hists) {
        line(std::string("# HELP ") + h + " Histogram of something.");
        line(std::string("# TYPE ") + h + " histogram");
        for (int e = 0; e < 2; ++e) {
            for (const char* le : les) {
                series(std::string(h) + "_bucket", e, std::string("le=\"") + le + "\"", "812.0");
            }
            series(std::string(h) + "_count", e, "", "900.0");
            series(std::string(h) + "_sum", e, "", "1.713e+02");
        }
    }
    while (lines < 200) {
        line("python_gc_objects_collected_total{generation=\"" + std::to_string(lines) + "\"} 1.2e4");
    }
    return body;
}

void BM_ParseVllm200Lines(benchmark::State& state) {
    const std::string body = vllm_body_200_lines();
    const auto wanted = vllm_names().wanted();
    std::map<std::string, double> out;
    for (auto _ : state) {
        const ParseResult r = parse_prometheus(body, wanted, out);
        benchmark::DoNotOptimize(r.matched);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(body.size()));
    state.counters["body_bytes"] = double(body.size());
}
BENCHMARK(BM_ParseVllm200Lines)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ferry::balance

BENCHMARK_MAIN();
