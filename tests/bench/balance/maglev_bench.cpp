// Maglev table build time and per-packet lookup cost, plus the table quality
// figures (evenness, disruption against the ideal and against classic Maglev),
// printed before the benchmarks run. `--no-figures` skips the figures.
//
// Build: BM_Build/N/M, equal weights; BM_BuildMixed/N/max_weight, random
// weights 1..max_weight at M = 65537 (cost grows with the number of distinct
// weights: one heap entry each). Lookup: XXH64 of a 13-byte 5-tuple and one
// table read, per packet.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "balance/maglev.hpp"
#include "balance/maglev_stats.hpp"

namespace ferry::balance {
namespace {

Endpoint endpoint(uint32_t i) { return Endpoint{IpAddr::v4(0x0a000000u + i), uint16_t(8000 + i % 7)}; }

std::vector<MaglevBackend> equal_backends(uint32_t n, uint32_t weight = 1, uint32_t first = 0) {
    std::vector<MaglevBackend> v;
    for (uint32_t i = 0; i < n; ++i) v.push_back({endpoint(first + i), weight});
    return v;
}

std::vector<MaglevBackend> random_backends(uint32_t n, uint32_t max_weight, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<uint32_t> weight(1, max_weight);
    std::vector<MaglevBackend> v;
    for (uint32_t i = 0; i < n; ++i) v.push_back({endpoint(1000 * seed + i), weight(rng)});
    return v;
}

void BM_Build(benchmark::State& state) {
    const auto v = equal_backends(uint32_t(state.range(0)));
    const auto size = uint32_t(state.range(1));
    for (auto _ : state) benchmark::DoNotOptimize(build_maglev_table(v, size));
}
BENCHMARK(BM_Build)
    ->ArgsProduct({{10, 100, 1000}, {kDefaultTableSize, kLargeTableSize}})
    ->Unit(benchmark::kMillisecond);

void BM_BuildMixed(benchmark::State& state) {
    const auto v = random_backends(uint32_t(state.range(0)), uint32_t(state.range(1)), 1);
    for (auto _ : state) benchmark::DoNotOptimize(build_maglev_table(v, kDefaultTableSize));
}
BENCHMARK(BM_BuildMixed)->ArgsProduct({{100, 1000}, {10, kMaxWeight}})->Unit(benchmark::kMillisecond);

// 5-tuples of the kind the data plane hashes: 13 bytes, network order.
std::vector<std::array<uint8_t, 13>> make_tuples(size_t n) {
    std::mt19937 rng(5);
    std::vector<std::array<uint8_t, 13>> out(n);
    for (auto& t : out) {
        for (auto& b : t) b = uint8_t(rng());
        t[12] = 6;
    }
    return out;
}

// Per new flow: hash the tuple, index the table (table_slot: multiply-shift,
// as the workers do), read the backend.
void BM_Lookup(benchmark::State& state) {
    const auto table = build_maglev_table(equal_backends(100), uint32_t(state.range(0)));
    const auto tuples = make_tuples(4096);
    const auto size = uint32_t(table.size());
    size_t i = 0;
    for (auto _ : state) {
        const auto& t = tuples[i++ & 4095];
        benchmark::DoNotOptimize(table[table_slot(hash_bytes(t.data(), t.size(), 0x5eed), size)]);
    }
}
BENCHMARK(BM_Lookup)->Arg(kDefaultTableSize)->Arg(kLargeTableSize);

// The same with hash % size, which the workers used before: a 64-bit division.
void BM_LookupModulo(benchmark::State& state) {
    const auto table = build_maglev_table(equal_backends(100), uint32_t(state.range(0)));
    const auto tuples = make_tuples(4096);
    size_t i = 0;
    for (auto _ : state) {
        const auto& t = tuples[i++ & 4095];
        const uint64_t h = hash_bytes(t.data(), t.size(), 0x5eed);
        benchmark::DoNotOptimize(table[h % table.size()]);
    }
}
BENCHMARK(BM_LookupModulo)->Arg(kDefaultTableSize)->Arg(kLargeTableSize);

void BM_HashOnly(benchmark::State& state) {
    const auto tuples = make_tuples(4096);
    size_t i = 0;
    for (auto _ : state) {
        const auto& t = tuples[i++ & 4095];
        benchmark::DoNotOptimize(hash_bytes(t.data(), t.size(), 0x5eed));
    }
}
BENCHMARK(BM_HashOnly);

// Classic Maglev for comparison: the same exact quotas, but a backend's turn
// walks its permutation past taken slots until it takes one, and turns go
// round robin in identity order (weighted: turn j of backend b at time
// (j + 1/2) / w). Its own permutation seeds: only the statistics compare.
std::vector<uint32_t> classic_maglev(const std::vector<MaglevBackend>& backends, uint32_t size) {
    // One backend's walk through its permutation.
    struct Walker {
        uint32_t next, skip, quota, claimed, index, weight;
    };
    std::vector<uint32_t> order(backends.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return backends[a].id < backends[b].id; });
    uint64_t total = 0;
    for (const auto& b : backends) total += b.weight;
    std::vector<Walker> walkers;
    std::vector<std::pair<uint64_t, uint32_t>> remainders;
    uint32_t assigned = 0;
    for (uint32_t i : order) {
        const auto& b = backends[i];
        if (b.weight == 0) continue;
        uint8_t key[19] = {};
        std::memcpy(key, b.id.addr.bytes.data(), 16);
        key[16] = uint8_t(b.id.addr.family);
        key[17] = uint8_t(b.id.port >> 8);
        key[18] = uint8_t(b.id.port);
        const uint64_t owed = uint64_t(size) * b.weight;
        const auto offset = uint32_t(hash_bytes(key, sizeof key, 1) % size);
        const auto skip = uint32_t(hash_bytes(key, sizeof key, 2) % (size - 1)) + 1;
        walkers.push_back({offset, skip, uint32_t(owed / total), 0, i, b.weight});
        assigned += walkers.back().quota;
        remainders.push_back({owed % total, uint32_t(walkers.size() - 1)});
    }
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (uint32_t i = 0; assigned < size; ++i, ++assigned) ++walkers[remainders[i].second].quota;

    std::vector<uint32_t> table(size, kNoBackend);
    // Turns by exact time (2 claimed + 1) / (2 weight), ties by identity order.
    auto later = [&](uint32_t a, uint32_t b) {
        const uint64_t ta = (2 * uint64_t(walkers[a].claimed) + 1) * walkers[b].weight;
        const uint64_t tb = (2 * uint64_t(walkers[b].claimed) + 1) * walkers[a].weight;
        return ta != tb ? ta > tb : a > b;
    };
    std::vector<uint32_t> heap;
    for (uint32_t i = 0; i < walkers.size(); ++i) {
        if (walkers[i].quota > 0) heap.push_back(i);
    }
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later);
        Walker& w = walkers[heap.back()];
        while (table[w.next] != kNoBackend) {
            w.next += w.skip;
            if (w.next >= size) w.next -= size;
        }
        table[w.next] = w.index;
        ++w.claimed;
        if (w.claimed < w.quota) {
            std::push_heap(heap.begin(), heap.end(), later);
        } else {
            heap.pop_back();
        }
    }
    return table;
}

// One disruption scenario over several backend sets.
struct Scenario {
    const char* name;
    uint32_t size;
    // Fills `before` and `after` for backend set number `seed`.
    void (*make)(uint32_t seed, std::vector<MaglevBackend>& before, std::vector<MaglevBackend>& after);
};

void print_disruption(const Scenario& s, int sets) {
    double ideal = 0, moved = 0, collateral = 0, classic = 0, worst = 0, classic_worst = 0;
    for (int seed = 0; seed < sets; ++seed) {
        std::vector<MaglevBackend> before, after;
        s.make(uint32_t(seed), before, after);
        const auto d =
            diff_tables(before, build_maglev_table(before, s.size), after, build_maglev_table(after, s.size));
        const auto c =
            diff_tables(before, classic_maglev(before, s.size), after, classic_maglev(after, s.size));
        ideal += d.minimum_share();
        moved += d.moved_share();
        collateral += d.collateral_share();
        classic += c.ratio();
        worst = std::max(worst, d.ratio());
        classic_worst = std::max(classic_worst, c.ratio());
    }
    std::printf("  %-34s %8u %7.3f%% %7.3f%% %6.2fx %6.2fx %9.3f%% %8.2fx %6.2fx\n", s.name, s.size,
                100 * ideal / sets, 100 * moved / sets, moved / ideal, worst, 100 * collateral / sets,
                classic / sets, classic_worst);
}

void print_figures() {
    std::printf("Maglev table quality (bench_balance)\n\nEvenness\n");
    for (uint32_t size : {kDefaultTableSize, kLargeTableSize}) {
        const auto v = equal_backends(1000);
        const auto t = build_maglev_table(v, size);
        const auto counts = count_slots(t, v.size());
        const double mean = double(size) / 1000;
        std::printf("  N=1000 equal weights, M=%-7u  max/mean %.4f  min/mean %.4f\n", size,
                    *std::max_element(counts.begin(), counts.end()) / mean,
                    *std::min_element(counts.begin(), counts.end()) / mean);
    }
    // A random-weight backend set to measure.
    struct Mixed {
        uint32_t n, max_weight;
    };
    std::printf("  Random weights, M=65537, worst of 5 sets. A backend owed s slots can be within 1%% only\n"
                "  if s >= 100: the builder keeps every backend within one slot of its share.\n");
    for (Mixed m : {Mixed{100, 10}, Mixed{1000, 10}, Mixed{100, 100}, Mixed{1000, kMaxWeight}}) {
        double rel = 0, slots = 0, smallest = 1e18;
        for (uint32_t seed = 1; seed <= 5; ++seed) {
            const auto v = random_backends(m.n, m.max_weight, seed);
            const auto e = share_error(v, build_maglev_table(v, kDefaultTableSize));
            rel = std::max(rel, e.max_relative);
            slots = std::max(slots, e.max_slots_off);
            uint64_t total = 0;
            uint32_t lightest = kMaxWeight;
            for (const auto& b : v) {
                total += b.weight;
                lightest = std::min(lightest, b.weight);
            }
            smallest = std::min(smallest, double(kDefaultTableSize) * lightest / double(total));
        }
        std::printf("  N=%-4u weights 1..%-5u  smallest owed %8.2f slots  max |share-owed|/owed %8.4f%%"
                    "  max |slots-owed| %.3f\n",
                    m.n, m.max_weight, smallest, 100 * rel, slots);
    }

    std::printf("\nDisruption: share of slots whose backend changed, mean over 5 backend sets\n");
    std::printf("  (ideal = fewest moves that reach the new slot counts; collateral = moved between two\n"
                "   unchanged backends; classic = Maglev with the same quotas, walking past taken slots)\n");
    std::printf("  %-34s %8s %8s %8s %7s %7s %10s %9s %7s\n", "scenario", "M", "ideal", "moved", "ratio",
                "worst", "collateral", "classic", "worst");
    const Scenario scenarios[] = {
        {"1 of 100 leaves", kDefaultTableSize,
         [](uint32_t seed, auto& before, auto& after) {
             before = equal_backends(100, 1, 1000 * seed);
             after = before;
             after.erase(after.begin() + 37);
         }},
        {"10 of 1000 leave", kDefaultTableSize,
         [](uint32_t seed, auto& before, auto& after) {
             before = equal_backends(1000, 1, 10000 * seed);
             after.clear();
             for (size_t i = 0; i < before.size(); ++i) {
                 if (i % 100 != 13) after.push_back(before[i]);
             }
         }},
        {"10 of 1000 leave", kLargeTableSize,
         [](uint32_t seed, auto& before, auto& after) {
             before = equal_backends(1000, 1, 10000 * seed);
             after.clear();
             for (size_t i = 0; i < before.size(); ++i) {
                 if (i % 100 != 13) after.push_back(before[i]);
             }
         }},
        {"one weight of 100 halves (2 -> 1)", kDefaultTableSize,
         [](uint32_t seed, auto& before, auto& after) {
             before = equal_backends(100, 2, 1000 * seed);
             after = before;
             after[11].weight = 1;
         }},
        {"1 joins 100", kDefaultTableSize,
         [](uint32_t seed, auto& before, auto& after) {
             before = equal_backends(100, 1, 1000 * seed);
             after = equal_backends(101, 1, 1000 * seed);
         }},
        {"1 of 100 leaves, weights 1..10", kDefaultTableSize,
         [](uint32_t seed, auto& before, auto& after) {
             before = random_backends(100, 10, seed + 1);
             after = before;
             after.erase(after.begin() + 50);
         }},
    };
    for (const Scenario& s : scenarios) print_disruption(s, 5);
    std::printf("\n");
    std::fflush(stdout);
}

}  // namespace
}  // namespace ferry::balance

// BENCHMARK_MAIN() plus the figures.
int main(int argc, char** argv) {
    bool figures = true;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--no-figures") {
            figures = false;
        } else {
            argv[kept++] = argv[i];
        }
    }
    argc = kept;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (figures) ferry::balance::print_figures();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
