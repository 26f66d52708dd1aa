// NAT rewrites: the incrementally updated frame must equal, byte for byte, a
// frame built from scratch with the new addresses and ports, and its checksums
// must equal the library's full recomputation.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "packet/packet.hpp"
#include "packet_builder.hpp"

namespace ferry::packet {
namespace {

using testing::build_frame;
using testing::FrameSpec;
using testing::get16;
using testing::layout_of;
using testing::put16;
using testing::ref_fold;
using testing::ref_pseudo;
using testing::ref_sum;

enum class Op { src, dst, both };

// Applies `op` to a parsed copy of `before`, and the same change to the spec.
std::vector<uint8_t> apply(const FrameSpec& before, FrameSpec& after, Op op, uint32_t ip_a, uint16_t port_a,
                           uint32_t ip_b, uint16_t port_b) {
    auto f = build_frame(before);
    Parsed p;
    EXPECT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    after = before;
    const bool ports = before.proto != IPPROTO_ICMP;
    switch (op) {
        case Op::src:
            rewrite_src(f.data(), p, htonl(ip_a), htons(port_a));
            after.src_ip = ip_a;
            after.src_port = ports ? port_a : before.src_port;
            break;
        case Op::dst:
            rewrite_dst(f.data(), p, htonl(ip_a), htons(port_a));
            after.dst_ip = ip_a;
            after.dst_port = ports ? port_a : before.dst_port;
            break;
        case Op::both:
            rewrite_src_dst(f.data(), p, htonl(ip_a), htons(port_a), htonl(ip_b), htons(port_b));
            after.src_ip = ip_a;
            after.src_port = ports ? port_a : before.src_port;
            after.dst_ip = ip_b;
            after.dst_port = ports ? port_b : before.dst_port;
            break;
    }
    return f;
}

// Full recomputation with the library's own functions, compared byte for byte
// with what the incremental update left in the frame.
void expect_full_checksums_match(const std::vector<uint8_t>& f) {
    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    const uint8_t* ip = f.data() + p.l3_offset;
    const uint8_t* l4 = f.data() + p.l4_offset;
    const uint16_t ip_csum = ipv4_header_checksum(ip, p.l4_offset - p.l3_offset);
    EXPECT_EQ(std::memcmp(&ip_csum, ip + 10, 2), 0);
    EXPECT_TRUE(testing::ref_ipv4_ok(ip));
    const size_t l4_len = p.l3_len - (p.l4_offset - p.l3_offset);
    if (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) {
        const uint8_t* field = l4 + (p.proto == IPPROTO_TCP ? 16 : 6);
        if (p.proto == IPPROTO_UDP && get16(field) == 0) {
            return;
        }
        const uint16_t l4_csum = l4_checksum_ipv4(p.src_ip, p.dst_ip, p.proto, l4, l4_len);
        EXPECT_EQ(std::memcmp(&l4_csum, field, 2), 0);
    }
    EXPECT_TRUE(testing::ref_l4_ok(ip));
}

class RandomRewrite : public ::testing::TestWithParam<uint8_t> {};

TEST_P(RandomRewrite, MatchesFrameBuiltFromScratch) {
    const uint8_t proto = GetParam();
    std::mt19937 rng(20240601u + proto);
    auto ip = [&]() -> uint32_t {
        switch (rng() % 8) {
            case 0: return 0;
            case 1: return 0xffffffff;
            case 2: return 0x0000ffff;
            default: return static_cast<uint32_t>(rng());
        }
    };
    auto port = [&]() -> uint16_t {
        switch (rng() % 8) {
            case 0: return 0;
            case 1: return 0xffff;
            default: return static_cast<uint16_t>(rng());
        }
    };
    for (int iter = 0; iter < 3000; ++iter) {
        FrameSpec s;
        s.proto = proto;
        s.vlan = rng() % 3 == 0;
        s.ihl_words = rng() % 4 == 0 ? static_cast<uint8_t>(6 + rng() % 10) : 5;
        s.tcp_doff_words = rng() % 2 == 0 ? static_cast<uint8_t>(5 + rng() % 11) : 5;
        s.src_ip = ip();
        s.dst_ip = ip();
        s.src_port = port();
        s.dst_port = port();
        s.ttl = static_cast<uint8_t>(rng());
        s.payload_len = rng() % 2 == 0 ? rng() % 64 : rng() % 1400;  // odd and even lengths
        s.payload_seed = static_cast<uint8_t>(rng());
        s.trailing_pad = rng() % 4 == 0 ? rng() % 20 : 0;
        const Op op = static_cast<Op>(iter % 3);
        FrameSpec after;
        const uint32_t ip_a = ip();
        const uint16_t port_a = port();
        const uint32_t ip_b = ip();
        const uint16_t port_b = port();
        const auto f = apply(s, after, op, ip_a, port_a, ip_b, port_b);
        ASSERT_EQ(f, build_frame(after)) << "iter " << iter << " payload " << s.payload_len;
        expect_full_checksums_match(f);
    }
}

INSTANTIATE_TEST_SUITE_P(Protocols, RandomRewrite,
                         ::testing::Values(uint8_t{IPPROTO_TCP}, uint8_t{IPPROTO_UDP}, uint8_t{IPPROTO_ICMP}),
                         [](const ::testing::TestParamInfo<uint8_t>& param_info) {
                             switch (param_info.param) {
                                 case IPPROTO_TCP: return "tcp";
                                 case IPPROTO_UDP: return "udp";
                                 default: return "icmp";
                             }
                         });

TEST(Rewrite, ParsedFieldsFollow) {
    FrameSpec s;
    s.vlan = true;
    auto f = build_frame(s);
    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    rewrite_src_dst(f.data(), p, htonl(0xc0a80101), htons(1024), htonl(0xc0a80202), htons(8080));
    Parsed q;
    ASSERT_EQ(parse(f.data(), f.size(), q), ParseResult::ok);
    EXPECT_EQ(q.src_ip, htonl(0xc0a80101));
    EXPECT_EQ(q.src_port, htons(1024));
    EXPECT_EQ(q.dst_ip, htonl(0xc0a80202));
    EXPECT_EQ(q.dst_port, htons(8080));
    EXPECT_EQ(q.vlan_tci, s.vlan_tci);
}

TEST(Rewrite, UdpZeroChecksumStaysZero) {
    std::mt19937 rng(768);
    for (int iter = 0; iter < 300; ++iter) {
        FrameSpec s;
        s.proto = IPPROTO_UDP;
        s.udp_no_checksum = true;
        s.payload_len = rng() % 50;
        s.src_ip = static_cast<uint32_t>(rng());
        FrameSpec after;
        const auto f =
            apply(s, after, static_cast<Op>(iter % 3), static_cast<uint32_t>(rng()),
                  static_cast<uint16_t>(rng()), static_cast<uint32_t>(rng()), static_cast<uint16_t>(rng()));
        EXPECT_EQ(get16(f.data() + 34 + 6), 0);
        EXPECT_EQ(f, build_frame(after));
        EXPECT_TRUE(testing::ref_ipv4_ok(f.data() + 14));
    }
}

// Destination port that makes the TCP/UDP sum of `s` one's complement -0 (so
// the computed checksum is 0x0000: kept for TCP, sent as 0xffff for UDP).
uint16_t port_for_zero_checksum(FrameSpec s) {
    s.dst_port = 0;
    auto f = build_frame(s);
    const auto l = layout_of(s);
    uint8_t* l4 = f.data() + l.l4;
    const size_t l4_len = l.l3_len - s.ihl_words * 4u;
    put16(l4 + (s.proto == IPPROTO_TCP ? 16 : 6), 0);
    const uint16_t sum = ref_fold(ref_sum(l4, l4_len, ref_pseudo(s.src_ip, s.dst_ip, s.proto, l4_len)));
    return static_cast<uint16_t>(0xffff - sum);
}

// Destination address whose low half makes the IPv4 header checksum 0x0000.
uint32_t ip_for_zero_header_checksum(FrameSpec s) {
    s.dst_ip &= 0xffff0000;
    auto f = build_frame(s);
    uint8_t* ip = f.data() + layout_of(s).l3;
    put16(ip + 10, 0);
    const uint16_t sum = ref_fold(ref_sum(ip, s.ihl_words * 4u));
    return s.dst_ip | static_cast<uint16_t>(0xffff - sum);
}

TEST(Rewrite, ChecksumCornersIntoAndOutOf) {
    std::mt19937 rng(1071);
    for (const uint8_t proto : {uint8_t{IPPROTO_TCP}, uint8_t{IPPROTO_UDP}}) {
        for (int iter = 0; iter < 200; ++iter) {
            FrameSpec s;
            s.proto = proto;
            s.src_ip = static_cast<uint32_t>(rng());
            s.dst_ip = static_cast<uint32_t>(rng());
            s.payload_len = rng() % 40;
            s.payload_seed = static_cast<uint8_t>(rng());

            // Into the corner: L4 checksum 0x0000 (TCP) / 0xffff (UDP), IPv4 0x0000.
            FrameSpec target = s;
            target.dst_ip = ip_for_zero_header_checksum(s);
            target.dst_port = port_for_zero_checksum(target);
            FrameSpec after;
            auto f = apply(s, after, Op::dst, target.dst_ip, target.dst_port, 0, 0);
            ASSERT_EQ(f, build_frame(after));
            const auto l = layout_of(after);
            EXPECT_EQ(get16(f.data() + l.l3 + 10), 0x0000);
            EXPECT_EQ(get16(f.data() + l.l4 + (proto == IPPROTO_TCP ? 16 : 6)),
                      proto == IPPROTO_TCP ? 0x0000 : 0xffff);
            expect_full_checksums_match(f);

            // And out of it again, from the corner frame.
            FrameSpec back;
            f = apply(after, back, static_cast<Op>(iter % 3), static_cast<uint32_t>(rng()),
                      static_cast<uint16_t>(rng()), static_cast<uint32_t>(rng()),
                      static_cast<uint16_t>(rng()));
            ASSERT_EQ(f, build_frame(back));
            expect_full_checksums_match(f);
        }
    }
}

TEST(Rewrite, IcmpOnlyAddressesChange) {
    FrameSpec s;
    s.proto = IPPROTO_ICMP;
    s.payload_len = 21;
    auto f = build_frame(s);
    const auto icmp_before = std::vector<uint8_t>(f.begin() + 34, f.end());
    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    rewrite_src_dst(f.data(), p, htonl(0x01020304), htons(1), htonl(0x05060708), htons(2));
    EXPECT_EQ(std::vector<uint8_t>(f.begin() + 34, f.end()), icmp_before);
    EXPECT_TRUE(testing::ref_ipv4_ok(f.data() + 14));
    EXPECT_TRUE(testing::ref_l4_ok(f.data() + 14));
}

}  // namespace
}  // namespace ferry::packet
