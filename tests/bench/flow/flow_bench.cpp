// Flow table and NAT port pool micro-benchmarks: steady state at 1M flows.
//
// items_per_second is per key (lookups, insert+remove pairs, port cycles);
// ns per item = 1e9 / items_per_second.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "flow/flow_table.hpp"

namespace ferry::flow {
namespace {

constexpr uint32_t kFlows = 1u << 20;  // 1M

std::vector<FlowKey> random_keys(uint32_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<FlowKey> keys;
    keys.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        const uint64_t r = rng();
        const uint64_t r2 = rng();
        keys.push_back(FlowKey::v4(uint32_t(r), uint32_t(r >> 32), uint16_t(r2), uint16_t(r2 >> 16), 6));
    }
    return keys;
}

// A table pre-filled to its 1M capacity, shared by the benchmarks (built once).
struct Steady {
    FlowTable table{kFlows};
    std::vector<FlowKey> present = random_keys(kFlows, 1);
    std::vector<FlowKey> absent = random_keys(kFlows, 2);
    std::vector<FlowKey> spare = random_keys(kFlows, 3);  // churn alternates present[i] / spare[i]
    std::vector<uint32_t> slot = std::vector<uint32_t>(kFlows, kNoPeer);
    std::vector<uint8_t> using_spare = std::vector<uint8_t>(kFlows, 0);
    uint32_t fill_refused = 0;

    Steady() {
        for (uint32_t i = 0; i < kFlows; ++i) {
            FlowValue v;
            v.backend_id = i;
            slot[i] = table.insert(present[i], v);
            fill_refused += slot[i] == kNoPeer;
        }
    }
    static Steady& get() {
        static Steady s;
        return s;
    }
};

void BM_Hash(benchmark::State& state) {
    const std::vector<FlowKey> keys = random_keys(4096, 7);
    uint32_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(FlowTable::hash(keys[i]));
        i = (i + 1) & 4095;
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_Hash);

void BM_LookupHit1M(benchmark::State& state) {
    Steady& s = Steady::get();
    uint32_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(s.table.lookup(s.present[i]));
        i = (i + 1) & (kFlows - 1);
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["size"] = double(s.table.size());
    state.counters["fill_refused"] = double(s.fill_refused);
}
BENCHMARK(BM_LookupHit1M);

void BM_LookupMiss1M(benchmark::State& state) {
    Steady& s = Steady::get();
    uint32_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(s.table.lookup(s.absent[i]));
        i = (i + 1) & (kFlows - 1);
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_LookupMiss1M);

// Burst of 32 keys, as the data plane sees them; arg = percent of hits.
void BM_LookupBulk32_1M(benchmark::State& state) {
    Steady& s = Steady::get();
    const auto hit_pct = uint32_t(state.range(0));
    constexpr uint32_t kBurst = 32;
    std::vector<const FlowKey*> ptrs(kFlows);
    std::mt19937 rng(4);
    for (uint32_t i = 0; i < kFlows; ++i) ptrs[i] = rng() % 100 < hit_pct ? &s.present[i] : &s.absent[i];
    uint32_t out[kBurst];
    uint32_t i = 0;
    for (auto _ : state) {
        s.table.lookup_bulk(&ptrs[i], kBurst, out);
        benchmark::DoNotOptimize(out);
        i = (i + kBurst) & (kFlows - 1);
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * kBurst);
}
BENCHMARK(BM_LookupBulk32_1M)->Arg(100)->Arg(50)->Arg(0);

// Steady churn at full capacity: remove one flow, insert a new one.
void BM_InsertRemoveChurn1M(benchmark::State& state) {
    Steady& s = Steady::get();
    uint32_t i = 0;
    uint64_t refused = 0;
    const uint64_t full_before = s.table.stats().insert_full;
    for (auto _ : state) {
        s.table.remove(s.slot[i]);  // kNoPeer (refused earlier) is a no-op
        s.using_spare[i] ^= 1;
        const FlowKey& k = s.using_spare[i] ? s.spare[i] : s.present[i];
        FlowValue v;
        v.backend_id = i;
        s.slot[i] = s.table.insert(k, v);
        i = (i + 1) & (kFlows - 1);
    }
    refused = s.table.stats().insert_full - full_before;
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["refused_pct"] = 100.0 * double(refused) / double(state.iterations());
    state.counters["size"] = double(s.table.size());
}
BENCHMARK(BM_InsertRemoveChurn1M);

// A sweep pass over live, non-expired flows (the common case): cost per slot.
void BM_SweepNothingExpired1M(benchmark::State& state) {
    Steady& s = Steady::get();
    const Timeouts to;
    constexpr uint32_t kBudget = 1024;
    for (auto _ : state) {
        benchmark::DoNotOptimize(s.table.sweep(kBudget, 0, [&](uint16_t) -> const Timeouts& { return to; },
                                               [](const FlowEntry&) {}));
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * kBudget);
}
BENCHMARK(BM_SweepNothingExpired1M);

// A sweep pass under churn: 512k flows of two entries each (forward and reply,
// at unrelated places, as full NAT makes them), every one expired. Each
// iteration refills the table (not timed) and sweeps all of it: items/s =
// flows removed per second, each one a forward entry and its peer.
void BM_SweepAllExpired512kFlows(benchmark::State& state) {
    constexpr uint32_t kPairs = 512u << 10;
    FlowTable table(kPairs * 2 + kPairs / 2);
    const std::vector<FlowKey> fwd = random_keys(kPairs, 4), rev = random_keys(kPairs, 5);
    const Timeouts to;
    uint64_t removed = 0;
    for (auto _ : state) {
        state.PauseTiming();
        for (uint32_t i = 0; i < kPairs; ++i) {
            FlowValue v;
            v.last_seen = 0;  // idle since 0: expired at now = 1,000 s
            const uint32_t f = table.insert(fwd[i], v);
            v.is_reply = 1;
            v.peer = f;
            const uint32_t r = f == kNoPeer ? kNoPeer : table.insert(rev[i], v);
            if (r != kNoPeer) table.entry(f).value.peer = r;
        }
        state.ResumeTiming();
        removed += table.sweep(table.slot_count(), 1'000'000, [&](uint16_t) -> const Timeouts& { return to; },
                               [](const FlowEntry&) {});
    }
    state.SetItemsProcessed(int64_t(removed));
    state.counters["left"] = double(table.size());
}
BENCHMARK(BM_SweepAllExpired512kFlows)->Iterations(5)->Unit(benchmark::kMillisecond);

// Memory of an empty table (allocation touches every page); bytes per flow of capacity.
void BM_Memory(benchmark::State& state) {
    const auto cap = uint32_t(state.range(0));
    size_t bytes = 0;
    uint32_t slots = 0;
    for (auto _ : state) {
        auto t = std::make_unique<FlowTable>(cap);
        bytes = t->memory_bytes();
        slots = t->slot_count();
        benchmark::DoNotOptimize(t.get());
    }
    state.counters["bytes_per_entry"] = double(bytes) / cap;
    state.counters["total_MiB"] = double(bytes) / (1024.0 * 1024.0);
    state.counters["slots"] = double(slots);
}
BENCHMARK(BM_Memory)->Arg(1'000'000)->Arg(8'000'000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ferry::flow

BENCHMARK_MAIN();
