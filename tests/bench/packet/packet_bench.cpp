// Per-packet cost of the packet library on a 64-byte TCP/IPv4 frame:
// parse alone, parse + full NAT (src and dst), parse + DNAT (dst only).
// Google Benchmark reports time per iteration = ns per packet.

#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "packet/packet.hpp"

namespace ferry::packet {
namespace {

// A 64-byte Ethernet frame (without FCS): TCP ACK with 10 bytes of payload and
// valid checksums, built once.
std::array<uint8_t, 64> make_tcp_frame() {
    std::array<uint8_t, 64> f{};
    uint8_t* d = f.data();
    const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
    std::memcpy(d, macs, sizeof macs);
    d[12] = 0x08;
    uint8_t* ip = d + 14;
    ip[0] = 0x45;
    const uint16_t total = htons(20 + 20 + 10);
    std::memcpy(ip + 2, &total, 2);
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    const uint32_t src = htonl(0xc6336401), dst = htonl(0x0a000064);
    std::memcpy(ip + 12, &src, 4);
    std::memcpy(ip + 16, &dst, 4);
    const uint16_t ip_csum = ipv4_header_checksum(ip, 20);
    std::memcpy(ip + 10, &ip_csum, 2);
    uint8_t* tcp = ip + 20;
    const uint16_t sport = htons(40000), dport = htons(443);
    std::memcpy(tcp, &sport, 2);
    std::memcpy(tcp + 2, &dport, 2);
    tcp[12] = 0x50;
    tcp[13] = kTcpAck;
    tcp[14] = 0xff;
    for (int i = 0; i < 10; ++i) {
        tcp[20 + i] = static_cast<uint8_t>(i * 17);
    }
    const uint16_t tcp_csum = l4_checksum_ipv4(src, dst, IPPROTO_TCP, tcp, 30);
    std::memcpy(tcp + 16, &tcp_csum, 2);
    return f;
}

void BM_Parse(benchmark::State& state) {
    const auto frame = make_tcp_frame();
    for (auto _ : state) {
        Parsed p;
        benchmark::DoNotOptimize(parse(frame.data(), frame.size(), p));
        benchmark::DoNotOptimize(p);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Parse);

// Full NAT: client -> VIP becomes local address -> backend.
void BM_ParseRewriteSrcDst(benchmark::State& state) {
    auto frame = make_tcp_frame();
    uint16_t port = 1024;
    for (auto _ : state) {
        Parsed p;
        if (parse(frame.data(), frame.size(), p) == ParseResult::ok) {
            rewrite_src_dst(frame.data(), p, htonl(0x0a000a01), htons(port), htonl(0x0a001402), htons(8443));
        }
        ++port;  // a different flow each time, as on a busy port
        benchmark::DoNotOptimize(frame.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRewriteSrcDst);

// DNAT: only the destination moves to the backend.
void BM_ParseRewriteDst(benchmark::State& state) {
    auto frame = make_tcp_frame();
    uint32_t backend = 0x0a001400;
    for (auto _ : state) {
        Parsed p;
        if (parse(frame.data(), frame.size(), p) == ParseResult::ok) {
            rewrite_dst(frame.data(), p, htonl(backend), htons(8443));
        }
        backend = 0x0a001400 | ((backend + 1) & 0xff);
        benchmark::DoNotOptimize(frame.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRewriteDst);

}  // namespace
}  // namespace ferry::packet

BENCHMARK_MAIN();
