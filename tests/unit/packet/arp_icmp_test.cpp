// ARP request/reply helpers and ICMP echo replies.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <vector>

#include "packet/packet.hpp"
#include "packet_builder.hpp"

namespace ferry::packet {
namespace {

using testing::build_frame;
using testing::exact_copy;
using testing::FrameSpec;
using testing::get16;
using testing::Mac;

const Mac kRequesterMac{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01};
const Mac kMyMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
const uint32_t kRequesterIp = htonl(0x0a000101);
const uint32_t kVipIp = htonl(0x0a000164);

std::vector<uint8_t> arp_request() {
    std::vector<uint8_t> f(42, 0xee);
    EXPECT_EQ(build_arp_request(f.data(), kRequesterMac.data(), kRequesterIp, kVipIp), 42u);
    return f;
}

// The same request behind an 802.1Q tag.
std::vector<uint8_t> tagged(const std::vector<uint8_t>& f, uint16_t tci) {
    std::vector<uint8_t> t(f.begin(), f.begin() + 12);
    const uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)};
    t.insert(t.end(), tag, tag + 4);
    t.insert(t.end(), f.begin() + 12, f.end());
    return t;
}

TEST(Arp, BuildRequest) {
    const auto f = arp_request();
    const std::vector<uint8_t> expected = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x08, 0x06,  // Ethernet
        0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01,                                      // htype..op
        0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01, 10,   0,    1,    1,                             // sender
        0,    0,    0,    0,    0,    0,    10,   0,    1,    100,                           // target
    };
    EXPECT_EQ(f, expected);

    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::arp);
    Arp a;
    ASSERT_TRUE(parse_arp(f.data(), f.size(), p.l3_offset, a));
    EXPECT_EQ(a.op, kArpRequest);
    EXPECT_EQ(Mac(std::to_array(a.sender_mac)), kRequesterMac);
    EXPECT_EQ(a.sender_ip, kRequesterIp);
    EXPECT_EQ(Mac(std::to_array(a.target_mac)), Mac{});
    EXPECT_EQ(a.target_ip, kVipIp);
}

void expect_reply(const std::vector<uint8_t>& f, uint16_t l3_offset) {
    EXPECT_EQ(Mac(std::to_array({f[0], f[1], f[2], f[3], f[4], f[5]})), kRequesterMac);
    EXPECT_EQ(Mac(std::to_array({f[6], f[7], f[8], f[9], f[10], f[11]})), kMyMac);
    EXPECT_EQ(get16(f.data() + l3_offset - 2), 0x0806);
    Arp a;
    ASSERT_TRUE(parse_arp(f.data(), f.size(), l3_offset, a));
    EXPECT_EQ(a.op, kArpReply);
    EXPECT_EQ(Mac(std::to_array(a.sender_mac)), kMyMac);
    EXPECT_EQ(a.sender_ip, kVipIp);
    EXPECT_EQ(Mac(std::to_array(a.target_mac)), kRequesterMac);
    EXPECT_EQ(a.target_ip, kRequesterIp);
}

TEST(Arp, RequestToReply) {
    auto f = arp_request();
    make_arp_reply(f.data(), 14, kMyMac.data());
    expect_reply(f, 14);
}

TEST(Arp, TaggedRequestToReplyKeepsTag) {
    auto f = tagged(arp_request(), 0x0064);
    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::arp);
    ASSERT_EQ(p.l3_offset, 18);
    make_arp_reply(f.data(), p.l3_offset, kMyMac.data());
    expect_reply(f, 18);
    EXPECT_EQ(get16(f.data() + 12), 0x8100);
    EXPECT_EQ(get16(f.data() + 14), 0x0064);
}

TEST(Arp, ReplyFromFrameWithPadding) {
    auto f = arp_request();
    f.resize(60, 0);  // minimum Ethernet frame
    make_arp_reply(f.data(), 14, kMyMac.data());
    expect_reply(f, 14);
}

TEST(Arp, RejectsShortAndForeign) {
    const auto f = arp_request();
    for (size_t len = 0; len < f.size(); ++len) {
        const auto copy = exact_copy(f, len);
        Arp a;
        EXPECT_FALSE(parse_arp(copy.get(), len, 14, a)) << len;
    }
    Arp a;
    EXPECT_FALSE(parse_arp(f.data(), 10, 14, a));  // offset past the end
    struct Mutation {
        size_t offset;
        uint8_t value;
    };
    for (const Mutation m : {Mutation{15, 6}, Mutation{16, 0x86}, Mutation{18, 8}, Mutation{19, 16}}) {
        auto g = f;
        g[m.offset] = m.value;
        EXPECT_FALSE(parse_arp(g.data(), g.size(), 14, a)) << m.offset;
    }
}

FrameSpec echo_spec() {
    FrameSpec s;
    s.dst_mac = kMyMac;
    s.src_mac = kRequesterMac;
    s.src_ip = ntohl(kRequesterIp);
    s.dst_ip = ntohl(kVipIp);
    s.proto = IPPROTO_ICMP;
    s.icmp_type = 8;
    s.icmp_id = 0x4242;
    s.icmp_seq = 3;
    s.ttl = 7;
    return s;
}

TEST(IcmpEcho, RequestToReply) {
    for (const size_t payload : {size_t{0}, size_t{1}, size_t{37}, size_t{56}, size_t{1472}}) {
        for (const bool vlan : {false, true}) {
            FrameSpec s = echo_spec();
            s.payload_len = payload;
            s.vlan = vlan;
            auto f = build_frame(s);
            Parsed p;
            ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
            ASSERT_TRUE(make_icmp_echo_reply(f.data(), f.size(), p, kMyMac.data()));

            FrameSpec r = s;
            std::swap(r.src_mac, r.dst_mac);
            std::swap(r.src_ip, r.dst_ip);
            r.icmp_type = 0;
            r.ttl = 64;
            EXPECT_EQ(f, build_frame(r)) << payload;  // checksums computed from scratch by the builder
            const uint8_t* ip = f.data() + p.l3_offset;
            EXPECT_TRUE(testing::ref_ipv4_ok(ip));
            EXPECT_TRUE(testing::ref_l4_ok(ip));
            const uint16_t ip_csum = ipv4_header_checksum(ip, 20);
            EXPECT_EQ(std::memcmp(&ip_csum, ip + 10, 2), 0);
        }
    }
}

// A request sent to a broadcast or multicast MAC is answered from our own MAC:
// a group address is never a frame's source.
TEST(IcmpEcho, ReplyComesFromOurMacWhateverTheRequestWasSentTo) {
    for (const std::array<uint8_t, 6> to : {std::array<uint8_t, 6>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
                                            std::array<uint8_t, 6>{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}}) {
        FrameSpec s = echo_spec();
        s.dst_mac = to;
        auto f = build_frame(s);
        Parsed p;
        ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
        ASSERT_TRUE(make_icmp_echo_reply(f.data(), f.size(), p, kMyMac.data()));
        EXPECT_EQ(std::memcmp(f.data(), kRequesterMac.data(), 6), 0);
        EXPECT_EQ(std::memcmp(f.data() + 6, kMyMac.data(), 6), 0);
    }
}

TEST(IcmpEcho, RejectsOthers) {
    FrameSpec s = echo_spec();
    s.icmp_type = 0;  // already a reply
    auto f = build_frame(s);
    Parsed p;
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    const auto before = f;
    EXPECT_FALSE(make_icmp_echo_reply(f.data(), f.size(), p, kMyMac.data()));
    EXPECT_EQ(f, before);

    f = build_frame(FrameSpec{});  // TCP
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(make_icmp_echo_reply(f.data(), f.size(), p, kMyMac.data()));

    f = build_frame(echo_spec());
    ASSERT_EQ(parse(f.data(), f.size(), p), ParseResult::ok);
    EXPECT_FALSE(make_icmp_echo_reply(f.data(), f.size() - 1, p, kMyMac.data()));  // `p` is not from this length
}

}  // namespace
}  // namespace ferry::packet
