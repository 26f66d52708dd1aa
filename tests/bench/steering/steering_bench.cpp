// What a worker spends on one packet once it is in memory, with the worker's
// own decision code (dataplane/steering.hpp) and no I/O: parse, hash, flow
// lookup or scheduler pick and new flow entries, header rewrite.
//
// Both run bursts of 32 frames through the worker's three passes (parse +
// hash + prefetch signature lines; prefetch entries; steer + rewrite).
//
//   BM_NewConnection/<mode>/<active flows>/<random_close>: bursts of SYNs from
//     fresh client ports, each opening a flow (Maglev pick over 32 backends,
//     full-NAT source port, forward and reply entries), while as many flows end
//     (as the sweep removes them) so the table holds a steady number of flows.
//     random_close 0: the oldest flows end, so each backend's ports come free
//     in the order its cursor hands them out (the easy case). 1: random flows
//     end, after a warm-up that takes every backend's cursor round twice, so
//     the cursor's next port is taken as often as ports are (active / 32 /
//     64,512: 48% at 1M, 68% at 1.4M) and picks go on to random ports.
//     items/s = new connections per second on one core, removal included.
//   BM_Established/<mode>/<flows>: bursts of packets of established flows in
//     a random order. items/s = packets per second.
//   BM_Churn/<active>/<closing_queue>: the pipeline's mix B without the I/O
//     (full NAT): each pick is a random one of `active` flows; every 10th
//     pick closes it (RST) and opens a new one in its place (SYN). Time is
//     simulated at 5 Mpps (as fast as ferryd's mix B has run), so ~500k
//     connections close per second and wait out tcp_closing = 1 s; the
//     worker's housekeeping runs as in its loop (closed flows due, every
//     burst; a sweep slice, every simulated ms). closing_queue 0: closed
//     flows wait for the sweep, as before the closing queue. items/s =
//     packets per second; "entries" = table entries at the end.
//
// Instruction counts (scripts/instructions.sh): FERRY_BENCH_ITERATIONS=n
// makes every benchmark run exactly n iterations, once, and each iteration's
// work is one call of measured_iteration(), which callgrind counts alone
// (--toggle-collect): setup and warm-up are left out.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "balance/maglev.hpp"
#include "dataplane/steering.hpp"
#include "packet/packet.hpp"

namespace ferry::dp {
namespace {

constexpr uint32_t kBackends = 32;
constexpr uint32_t kVip = 0x0a4d0164;  // 10.77.1.100
constexpr uint32_t kBurst = 32;

// A 54-byte TCP/IPv4 frame from a client to the VIP, written afresh for each
// packet as a NIC would deliver it (the previous rewrite changed it).
struct Frame {
    std::array<uint8_t, 64> b{};
    Frame() {
        b[12] = 0x08;
        uint8_t* ip = b.data() + 14;
        ip[0] = 0x45;
        const uint16_t total = htons(40);
        std::memcpy(ip + 2, &total, 2);
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        ip[32] = 5 << 4;
    }
    void set(uint32_t src_ip, uint16_t src_port, uint8_t flags) {
        uint8_t* ip = b.data() + 14;
        const uint32_t s = htonl(src_ip), d = htonl(kVip);
        const uint16_t sp = htons(src_port), dp = htons(80);
        std::memcpy(ip + 12, &s, 4);
        std::memcpy(ip + 16, &d, 4);
        std::memcpy(ip + 20, &sp, 2);
        std::memcpy(ip + 22, &dp, 2);
        ip[33] = flags;
    }
};

// One worker's steering over one VIP of kBackends backends (Maglev, M = 65537).
struct Rig {
    std::unique_ptr<flow::FlowTable> flows;
    std::vector<flow::NatPortAllocator> nat;
    WorkerCounters counters;
    std::vector<BackendCounters> backend_counters = std::vector<BackendCounters>(kMaxBackends);
    std::vector<VipCounters> vip_counters = std::vector<VipCounters>(kMaxVips);
    Snapshot snap;
    std::unique_ptr<Steering> steer;
    Drop last_drop = Drop::count_;

    Rig(ForwardMode mode, uint32_t capacity, bool closing_queue = true)
        : flows(std::make_unique<flow::FlowTable>(capacity, closing_queue)) {
        nat.emplace_back(flow::ports_for_worker(1024, 65535, 1, 0), 12345, kMaxBackends);  // as the worker
        VipEntry v;
        v.present = true;
        v.ip = htonl(kVip);
        v.port = htons(80);
        v.proto = IPPROTO_TCP;
        v.mode = mode;
        std::vector<balance::MaglevBackend> mb;
        for (uint32_t i = 0; i < kBackends; ++i) {
            BackendEntry be;
            be.ip = htonl(0x0a4d020b + i);
            be.port = htons(8000);
            be.nexthop_ip = be.ip;
            be.state = BackendState::up;
            be.known = true;
            snap.backends.push_back(be);
            v.backend_ids.push_back(i);
            mb.push_back({Endpoint{IpAddr::v4(0x0a4d020b + i), 8000}, 100});
        }
        v.table = balance::build_maglev_table(mb, balance::kDefaultTableSize);
        snap.vips.push_back(v);
        snap.build_index();
        SteeringParts x;
        x.flows = flows.get();
        x.nat_ports = &nat;
        x.counters = &counters;
        x.backend_counters = backend_counters.data();
        x.vip_counters = vip_counters.data();
        x.all_backend_counters = {backend_counters.data()};
        x.local_ips = {htonl(0x0a4d0201)};
        x.index_of_port = {0};
        steer = std::make_unique<Steering>(std::move(x));
    }

    // The worker's path for one packet: parse, hash, VIP, steer, rewrite.
    bool handle(uint8_t* data, size_t len, uint32_t now_ms) {
        packet::Parsed p;
        if (packet::parse(data, len, p) != packet::ParseResult::ok) return false;
        const flow::KeyV4 key = key_v4(p);
        return steer_parsed(data, p, key, flow::FlowTable::hash(key), now_ms).forward();
    }
    ToBackend steer_parsed(uint8_t* data, const packet::Parsed& p, const flow::KeyV4& key, uint32_t hash,
                           uint32_t now_ms, uint32_t hint = flow::kNoPeer) {
        const uint32_t vip = snap.find_vip(p.dst_ip, p.dst_port, p.proto);
        ToBackend to;
        to.drop = Drop::no_vip_port;
        if (vip != kNone) to = steer->to_backend(snap, vip, p, key, hash, 54, now_ms, hint);
        if (!to.forward()) {
            ++counters.drops[size_t(to.drop)];
            last_drop = to.drop;
            return to;
        }
        const BackendEntry& be = snap.backends[to.backend_id];
        if (to.nat_port != 0)
            packet::rewrite_src_dst(data, p, to.nat_ip, to.nat_port, be.ip, be.port);
        else
            packet::rewrite_dst(data, p, be.ip, be.port);
        return to;
    }
};

// Client i: address 10.128.0.0 + i / 64512, port 1024 + i % 64512.
void client(uint64_t i, uint32_t& ip, uint16_t& port) {
    ip = 0x0a800000 + uint32_t(i / 64512);
    port = uint16_t(1024 + i % 64512);
}

ForwardMode mode_of(int64_t arg) { return arg == 0 ? ForwardMode::nat : ForwardMode::dnat; }

// One timed iteration, never inlined: the unit callgrind counts.
template <class Step>
[[gnu::noinline]] void measured_iteration(Step& step) {
    step();
}

// FERRY_BENCH_ITERATIONS=n: a fixed number of iterations instead of as many
// as fill the minimum time (under callgrind, that would rerun slow setups).
void iterations_from_env(benchmark::internal::Benchmark* b) {
    const char* s = std::getenv("FERRY_BENCH_ITERATIONS");
    const long n = s ? std::strtol(s, nullptr, 10) : 0;
    if (n > 0) b->Iterations(n);
}

// The worker's passes over one burst of frames (see worker.cpp
// process_burst): parse + hash + prefetch home entries, check keys at home
// (else prefetch signature lines), prefetch the other entries,
// then steer + rewrite, at `now_ms`, for the first n <= kBurst frames.
// Returns how many were not forwarded.
uint32_t run_burst(Rig& r, std::array<Frame, kBurst>& burst, ToBackend* out, uint32_t n = kBurst,
                   uint32_t now_ms = 1000) {
    std::array<packet::Parsed, kBurst> parsed;
    std::array<flow::KeyV4, kBurst> key;
    std::array<uint32_t, kBurst> hash;
    std::array<uint32_t, kBurst> hint;
    for (uint32_t i = 0; i < n; ++i) {
        packet::parse(burst[i].b.data(), 54, parsed[i]);
        const packet::Parsed& p = parsed[i];
        key[i] = key_v4(p);
        hash[i] = flow::FlowTable::hash(key[i]);
        hint[i] = r.flows->prefetch_home(hash[i]);
        if (packet::opens_connection(p)) r.flows->prefetch(hash[i]);
    }
    for (uint32_t i = 0; i < n; ++i) hint[i] = r.flows->probe_home(key[i], hash[i], hint[i]);
    for (uint32_t i = 0; i < n; ++i)
        if (hint[i] == flow::kNoPeer) hint[i] = r.flows->prefetch_entry(hash[i]);
    uint32_t failed = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const ToBackend to = r.steer_parsed(burst[i].b.data(), parsed[i], key[i], hash[i], now_ms, hint[i]);
        failed += !to.forward();
        if (out) out[i] = to;
    }
    return failed;
}

void BM_NewConnection(benchmark::State& state) {
    const ForwardMode mode = mode_of(state.range(0));
    const auto active = uint32_t(state.range(1) + kBurst - 1) / kBurst * kBurst;
    const bool random_close = state.range(2) != 0;
    Rig r(mode, active * 2 * 5 / 4 + 4096);
    // The forward slots of the open flows, oldest first (a ring of `active`).
    std::vector<uint32_t> open_slots(active, flow::kNoPeer);
    uint32_t oldest = 0;
    uint64_t next = 0;
    uint64_t failed = 0;
    std::array<Frame, kBurst> burst;
    std::array<ToBackend, kBurst> to;
    auto open_burst = [&] {
        for (uint32_t i = 0; i < kBurst; ++i) {
            uint32_t ip;
            uint16_t port;
            client(next++, ip, port);
            burst[i].set(ip, port, packet::kTcpSyn);
        }
        failed += run_burst(r, burst, to.data());
    };
    for (uint32_t filled = 0; filled < active; filled += kBurst) {
        open_burst();
        for (uint32_t i = 0; i < kBurst; ++i) open_slots[filled + i] = to[i].slot;
    }
    std::mt19937 rng(11);
    std::array<uint32_t, kBurst> ending, ending_slot;
    // 32 flows end, as the sweep removes them, and 32 open in their place:
    // the oldest ones (each backend's ports come free in the order its cursor
    // hands them out) or random ones (ports come free anywhere). The ends are
    // loaded as the sweep loads them: it reads forward entries in slot order
    // (cheap) and prefetches a chunk's peers before removing any.
    auto churn = [&] {
        for (uint32_t i = 0; i < kBurst; ++i) {
            ending[i] = (oldest + i) % active;
            for (uint32_t tries = 0; random_close && tries < 16; ++tries) {
                ending[i] = uint32_t(rng() % active);
                if (open_slots[ending[i]] != flow::kNoPeer) break;  // not one already ended in this burst
            }
            ending_slot[i] = open_slots[ending[i]];
            open_slots[ending[i]] = flow::kNoPeer;
            r.flows->prefetch_slot(ending_slot[i]);
        }
        for (uint32_t i = 0; i < kBurst; ++i)
            if (ending_slot[i] != flow::kNoPeer) r.flows->prefetch_slot(r.flows->entry(ending_slot[i]).value.peer);
        for (uint32_t i = 0; i < kBurst; ++i)
            if (ending_slot[i] != flow::kNoPeer) r.steer->end_flow(ending_slot[i]);
        open_burst();
        for (uint32_t i = 0; i < kBurst; ++i) open_slots[ending[i]] = to[i].slot;
        if (!random_close) oldest = (oldest + kBurst) % active;
    };
    // Random ends: first let every backend's port cursor go round twice, so
    // the ports it offers next are as scattered as in a long-running worker
    // (taken ones among free ones), not fresh ones past the initial fill.
    if (random_close)
        for (uint64_t n = 0; n < 2ull * 64512 * kBackends; n += kBurst) churn();
    for (auto _ : state) measured_iteration(churn);
    state.SetItemsProcessed(int64_t(state.iterations()) * kBurst);
    state.counters["failed"] = double(failed);
    state.counters["nat_exhausted"] = double(r.counters.drops[size_t(Drop::nat_ports_exhausted)]);
    state.counters["table_full"] = double(r.flows->stats().insert_full);
    state.counters["flows"] = double(r.flows->size() / 2);
}
BENCHMARK(BM_NewConnection)
    ->ArgNames({"dnat", "active", "random_close"})
    ->Args({0, 1000, 0})
    ->Args({0, 100'000, 0})
    ->Args({0, 1'000'000, 0})
    ->Args({0, 1'000'000, 1})
    ->Args({0, 1'400'000, 1})
    ->Args({1, 1000, 0})
    ->Args({1, 1'000'000, 0})
    ->Apply(iterations_from_env);

void BM_Established(benchmark::State& state) {
    const ForwardMode mode = mode_of(state.range(0));
    const auto nflows = uint32_t(state.range(1));
    Rig r(mode, nflows * 2 * 5 / 4 + 4096);
    // The flows in a random order; each is opened by a SYN, then sends ACKs.
    std::vector<uint32_t> order(nflows);
    for (uint32_t i = 0; i < nflows; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    Frame syn;
    for (uint32_t i = 0; i < nflows; ++i) {
        uint32_t ip;
        uint16_t port;
        client(i, ip, port);
        syn.set(ip, port, packet::kTcpSyn);
        if (!r.handle(syn.b.data(), 54, 1000)) {
            const std::string why = "could not open flow " + std::to_string(i) + ": " + to_string(r.last_drop);
            state.SkipWithError(why.c_str());
            return;
        }
    }
    std::array<Frame, kBurst> burst;
    uint32_t at = 0;
    uint64_t failed = 0;
    auto step = [&] {
        for (uint32_t i = 0; i < kBurst; ++i) {
            uint32_t ip;
            uint16_t port;
            client(order[at], ip, port);
            if (++at == nflows) at = 0;
            burst[i].set(ip, port, packet::kTcpAck);
        }
        failed += run_burst(r, burst, nullptr);
    };
    for (auto _ : state) measured_iteration(step);
    state.SetItemsProcessed(int64_t(state.iterations()) * kBurst);
    state.counters["failed"] = double(failed);
}
BENCHMARK(BM_Established)
    ->ArgNames({"dnat", "flows"})
    ->Args({0, 1000})
    ->Args({0, 100'000})
    ->Args({0, 1'000'000})
    ->Args({1, 1000})
    ->Args({1, 1'000'000})
    ->Apply(iterations_from_env);

void BM_Churn(benchmark::State& state) {
    const auto active = uint32_t(state.range(0));
    constexpr uint32_t kPacketsPerMs = 5'000;  // simulated 5 Mpps
    constexpr uint32_t kPassMs = 5'000;        // the worker's sweep pacing (worker.cpp)
    // Room as scripts/bench.sh gives mix B: the open flows and 1M more, two entries each, +25%.
    Rig r(ForwardMode::nat, (active + 1'000'000) * 2 * 5 / 4, state.range(1) != 0);
    r.snap.vips[0].timeouts.closing_ms = 1'000;
    const uint32_t slice = std::max(256u, r.flows->slot_count() / kPassMs + 1);
    std::vector<uint64_t> flow_of(active);  // client number of each open flow
    uint64_t next = 0;
    uint64_t packets = 0, failed = 0;
    uint32_t now_ms = 1'000;
    std::mt19937 rng(5);
    std::array<Frame, kBurst> burst;
    auto send_burst = [&](uint32_t n) {
        failed += run_burst(r, burst, nullptr, n, now_ms);
        // The worker's loop after each burst: closed flows due, and once per ms a sweep slice.
        r.counters.flows_expired += r.steer->expire_closed(r.snap, now_ms);
        const uint64_t before = packets / kPacketsPerMs;
        packets += n;
        if (packets / kPacketsPerMs != before) {
            ++now_ms;
            r.counters.flows_expired += r.steer->sweep(r.snap, slice, now_ms);
        }
    };
    auto frame_of = [&](Frame& f, uint64_t client_n, uint8_t flags) {
        uint32_t ip;
        uint16_t port;
        client(client_n, ip, port);
        f.set(ip, port, flags);
    };
    for (uint32_t filled = 0; filled < active; filled += kBurst) {
        const uint32_t n = std::min(kBurst, active - filled);
        for (uint32_t i = 0; i < n; ++i) frame_of(burst[i], flow_of[filled + i] = next++, packet::kTcpSyn);
        send_burst(n);
    }
    // One burst: picks until 32 frames; a closing pick adds its RST and the new flow's SYN.
    auto churn = [&] {
        uint32_t n = 0;
        while (n < kBurst) {
            const uint32_t i = uint32_t(rng() % active);
            if (rng() % 10 == 0 && n + 2 <= kBurst) {
                frame_of(burst[n++], flow_of[i], packet::kTcpRst | packet::kTcpAck);
                frame_of(burst[n++], flow_of[i] = next++, packet::kTcpSyn);
            } else {
                frame_of(burst[n++], flow_of[i], packet::kTcpAck);
            }
        }
        send_burst(n);
    };
    // Two simulated seconds first: the closed flows reach their steady number.
    const uint64_t warm_until = packets + 2ull * 1'000 * kPacketsPerMs;
    while (packets < warm_until) churn();
    const uint64_t failed_before = failed;
    for (auto _ : state) measured_iteration(churn);
    state.SetItemsProcessed(int64_t(state.iterations()) * kBurst);
    state.counters["failed"] = double(failed - failed_before);
    state.counters["entries"] = double(r.flows->size());
    state.counters["closing_overflow"] = double(r.flows->stats().closing_overflow);
}
BENCHMARK(BM_Churn)
    ->ArgNames({"active", "closing_queue"})
    ->Args({1000, 1})
    ->Args({1000, 0})
    ->Args({1'000'000, 1})
    ->Args({1'000'000, 0})
    ->Apply(iterations_from_env);

}  // namespace
}  // namespace ferry::dp

BENCHMARK_MAIN();
