#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "packet/packet.hpp"
#include "packet_builder.hpp"

namespace ferry::packet {
namespace {

using testing::build_frame;
using testing::FrameSpec;
using testing::get16;
using testing::put16;
using testing::ref_fold;
using testing::ref_ipv4_ok;
using testing::ref_l4_ok;
using testing::ref_sum;

constexpr uint32_t kRouter = 0xc6336401, kVip = 0x0a4d0164, kClient = 0xc0a80105, kBackend = 0x0a4d020b,
                   kNatIp = 0x0a4d0201;
constexpr uint16_t kVipPort = 80, kClientPort = 40000, kBackendPort = 8000, kNatPort = 1500;

// What Ferry sent to the client: VIP -> client, `payload` bytes of data.
FrameSpec sent(uint8_t proto, size_t payload) {
    FrameSpec s;
    s.proto = proto;
    s.src_ip = kVip;
    s.dst_ip = kClient;
    s.src_port = kVipPort;
    s.dst_port = kClientPort;
    s.tcp_flags = 0x18;
    s.payload_len = payload;
    return s;
}

// A router's "fragmentation needed" about `quoted`, quoting its first `quote_len` bytes.
std::vector<uint8_t> error_about(const std::vector<uint8_t>& quoted, size_t quote_len, uint8_t type = 3) {
    FrameSpec e;
    e.proto = IPPROTO_ICMP;
    e.icmp_type = type;
    e.icmp_code = 4;
    e.icmp_id = 0;
    e.icmp_seq = 1400;  // next-hop MTU
    e.src_ip = kRouter;
    e.dst_ip = kVip;
    e.payload_len = quote_len;
    auto f = build_frame(e);
    uint8_t* icmp = f.data() + 34;
    std::memcpy(icmp + 8, quoted.data() + 14, quote_len);
    put16(icmp + 2, 0);
    put16(icmp + 2, static_cast<uint16_t>(~ref_fold(ref_sum(icmp, 8 + quote_len))));
    return f;
}

// An error about a datagram Ferry sent to a client becomes one about the
// backend's packet of that flow, sent to the backend, every checksum right.
TEST(IcmpError, QuotedDatagramFoundAndRewrittenForTheBackend) {
    for (const uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP)}) {
        for (const bool full_nat : {false, true}) {
            SCOPED_TRACE(std::string(proto == IPPROTO_TCP ? "tcp" : "udp") + (full_nat ? " nat" : " dnat"));
            const auto original = build_frame(sent(proto, 40));
            const size_t whole = original.size() - 14;
            auto f = error_about(original, whole);
            Parsed p;
            ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
            IcmpQuote q;
            ASSERT_TRUE(parse_icmp_error(f.data(), f.size(), p, q));
            EXPECT_EQ(q.proto, proto);
            EXPECT_EQ(q.src_ip, htonl(kVip));
            EXPECT_EQ(q.dst_ip, htonl(kClient));
            EXPECT_EQ(q.src_port, htons(kVipPort));
            EXPECT_EQ(q.dst_port, htons(kClientPort));

            // The backend sent that datagram to its peer: the client (dnat) or Ferry's NAT source.
            const uint32_t peer = full_nat ? kNatIp : kClient;
            const uint16_t peer_port = full_nat ? kNatPort : kClientPort;
            // Full NAT: from Ferry's NAT address too (a source the backend has a route back to).
            rewrite_icmp_error(f.data(), p, q, full_nat ? htonl(kNatIp) : 0, htonl(kBackend), htonl(kBackend),
                               htons(kBackendPort), htonl(peer), htons(peer_port));
            const uint8_t* ip = f.data() + 14;
            EXPECT_EQ(get16(ip + 16), kBackend >> 16);
            EXPECT_EQ(get16(ip + 18), kBackend & 0xffff);
            const uint32_t from = full_nat ? kNatIp : kRouter;
            EXPECT_EQ(get16(ip + 12), from >> 16);
            EXPECT_EQ(get16(ip + 14), from & 0xffff);
            EXPECT_TRUE(ref_ipv4_ok(ip));
            EXPECT_TRUE(ref_l4_ok(ip));  // the ICMP checksum

            FrameSpec b = sent(proto, 40);
            b.src_ip = kBackend;
            b.src_port = kBackendPort;
            b.dst_ip = peer;
            b.dst_port = peer_port;
            const auto backends = build_frame(b);
            const uint8_t* quote = f.data() + 34 + 8;
            EXPECT_TRUE(ref_ipv4_ok(quote));
            // The quoted header and L4 header are the backend's own packet's, checksum included.
            const size_t compare = proto == IPPROTO_UDP ? 20 + 8 : 20 + 20;
            EXPECT_EQ(std::vector<uint8_t>(quote, quote + compare),
                      std::vector<uint8_t>(backends.begin() + 14, backends.begin() + 14 + compare));
        }
    }
}

TEST(IcmpError, UdpWithoutChecksumKeepsNone) {
    FrameSpec s = sent(IPPROTO_UDP, 8);
    s.udp_no_checksum = true;
    auto f = error_about(build_frame(s), 28);
    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    IcmpQuote q;
    ASSERT_TRUE(parse_icmp_error(f.data(), f.size(), p, q));
    rewrite_icmp_error(f.data(), p, q, 0, htonl(kBackend), htonl(kBackend), htons(kBackendPort), htonl(kClient),
                       htons(kClientPort));
    EXPECT_EQ(get16(f.data() + 34 + 8 + 20 + 6), 0);
    EXPECT_TRUE(ref_l4_ok(f.data() + 14));
}

TEST(IcmpError, OnlyErrorsQuotingAWholeTcpOrUdpHeaderStart) {
    const auto original = build_frame(sent(IPPROTO_TCP, 0));
    Parsed p;
    IcmpQuote q;
    // Time exceeded is an error too.
    auto f = error_about(original, 28, 11);
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_TRUE(parse_icmp_error(f.data(), f.size(), p, q));
    // Fewer than 20 + 8 quoted bytes.
    for (size_t n = 0; n < 28; ++n) {
        f = error_about(original, n);
        ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok) << n;
        EXPECT_FALSE(parse_icmp_error(f.data(), f.size(), p, q)) << n;
    }
    // An echo request, and an error about ICMP or about a later fragment.
    FrameSpec echo;
    echo.proto = IPPROTO_ICMP;
    f = build_frame(echo);
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(parse_icmp_error(f.data(), f.size(), p, q));
    FrameSpec icmp = sent(IPPROTO_ICMP, 0);
    f = error_about(build_frame(icmp), 28);
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(parse_icmp_error(f.data(), f.size(), p, q));
    FrameSpec later = sent(IPPROTO_UDP, 16);
    later.frag = 0x0002;
    f = error_about(build_frame(later), 28);
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(parse_icmp_error(f.data(), f.size(), p, q));
    // A quoted header that is not IPv4, or claims more than was quoted.
    f = error_about(original, 28);
    f[34 + 8] = 0x65;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(parse_icmp_error(f.data(), f.size(), p, q));
    f[34 + 8] = 0x47;  // IHL 28 bytes: its 8 L4 bytes would lie past the quote
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(parse_icmp_error(f.data(), f.size(), p, q));
    // `p` not from this buffer's length.
    f = error_about(original, 28);
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(parse_icmp_error(f.data(), f.size() - 1, p, q));
}

}  // namespace
}  // namespace ferry::packet
