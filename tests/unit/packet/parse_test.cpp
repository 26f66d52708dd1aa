// parse(): every ParseResult reached by a crafted frame, and no read past the
// end at any truncation (run under ASan in CI).

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "packet/packet.hpp"
#include "packet_builder.hpp"

namespace ferry::packet {
namespace {

using testing::build_frame;
using testing::exact_copy;
using testing::FrameSpec;
using testing::layout_of;
using testing::put16;

ParseResult parse_vec(const std::vector<uint8_t>& f, Parsed& p) { return parse(f.data(), f.size(), p); }
ParseResult parse_vec(const std::vector<uint8_t>& f) {
    Parsed p;
    return parse_vec(f, p);
}

FrameSpec udp_spec() {
    FrameSpec s;
    s.proto = IPPROTO_UDP;
    s.src_port = 5353;
    s.dst_port = 53;
    s.payload_len = 11;
    return s;
}

FrameSpec icmp_spec() {
    FrameSpec s;
    s.proto = IPPROTO_ICMP;
    s.payload_len = 56;
    return s;
}

TEST(ParseResultNames, AreDistinctAndKnown) {
    std::set<std::string> names;
    for (int i = 0; i < static_cast<int>(ParseResult::count_); ++i) {
        const std::string name = to_string(static_cast<ParseResult>(i));
        EXPECT_NE(name, "unknown") << i;
        names.insert(name);
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(ParseResult::count_));
    EXPECT_STREQ(to_string(ParseResult::ok), "ok");
    EXPECT_STREQ(to_string(ParseResult::bad_total_length), "bad_total_length");
}

TEST(Parse, TcpFields) {
    FrameSpec s;
    s.tcp_flags = kTcpSyn | kTcpAck;
    s.payload_len = 100;
    const auto f = build_frame(s);
    Parsed p;
    ASSERT_EQ(parse_vec(f, p), ParseResult::ok);
    EXPECT_EQ(p.l3_offset, 14);
    EXPECT_EQ(p.l4_offset, 34);
    EXPECT_EQ(p.l3_len, 140);
    EXPECT_FALSE(p.has_vlan);
    EXPECT_EQ(p.vlan_tci, 0);
    EXPECT_FALSE(p.has_ip_options);
    EXPECT_EQ(p.proto, IPPROTO_TCP);
    EXPECT_EQ(p.tcp_flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(p.src_ip, htonl(0x0a000001));
    EXPECT_EQ(p.dst_ip, htonl(0x0a000002));
    EXPECT_EQ(p.src_port, htons(40000));
    EXPECT_EQ(p.dst_port, htons(80));
}

TEST(Parse, TcpWithOptions) {
    FrameSpec s;
    s.tcp_doff_words = 15;  // 40 bytes of options
    Parsed p;
    ASSERT_EQ(parse_vec(build_frame(s), p), ParseResult::ok);
    EXPECT_EQ(p.l3_len, 20 + 60);
}

TEST(Parse, UdpFields) {
    Parsed p;
    ASSERT_EQ(parse_vec(build_frame(udp_spec()), p), ParseResult::ok);
    EXPECT_EQ(p.proto, IPPROTO_UDP);
    EXPECT_EQ(p.src_port, htons(5353));
    EXPECT_EQ(p.dst_port, htons(53));
    EXPECT_EQ(p.tcp_flags, 0);
}

// opens_connection() and the worker's FIN/RST test read tcp_flags without
// checking the protocol: both parsers must leave it 0 for UDP and ICMP,
// whatever byte sits where a TCP header's flags would be.
TEST(Parse, TcpFlagsStayZeroForOtherProtocols) {
    for (const bool vlan : {false, true}) {  // the shortcut parser, then the general one
        for (FrameSpec s : {udp_spec(), icmp_spec()}) {
            s.vlan = vlan;
            s.payload_len = 40;
            std::vector<uint8_t> f = build_frame(s);
            const size_t l4 = (vlan ? 18 : 14) + 20;
            for (size_t i = l4 + 8; i < f.size(); ++i) f[i] = 0xff;  // every "flag" set past the header
            Parsed p;
            ASSERT_EQ(parse_vec(f, p), ParseResult::ok);
            EXPECT_EQ(p.tcp_flags, 0) << int(s.proto) << " vlan " << vlan;
            EXPECT_FALSE(opens_connection(p));
        }
    }
}

TEST(Parse, IcmpEchoCarriesIdentifier) {
    Parsed p;
    ASSERT_EQ(parse_vec(build_frame(icmp_spec()), p), ParseResult::ok);
    EXPECT_EQ(p.proto, IPPROTO_ICMP);
    EXPECT_EQ(p.icmp_type, 8);
    EXPECT_EQ(p.src_port, htons(0x1234));
    EXPECT_EQ(p.dst_port, 0);

    FrameSpec reply = icmp_spec();
    reply.icmp_type = 0;
    ASSERT_EQ(parse_vec(build_frame(reply), p), ParseResult::ok);
    EXPECT_EQ(p.src_port, htons(0x1234));
}

TEST(Parse, IcmpErrorHasNoIdentifier) {
    FrameSpec s = icmp_spec();
    s.icmp_type = 3;  // destination unreachable
    s.icmp_code = 4;
    Parsed p;
    ASSERT_EQ(parse_vec(build_frame(s), p), ParseResult::ok);
    EXPECT_EQ(p.icmp_type, 3);
    EXPECT_EQ(p.src_port, 0);
    EXPECT_EQ(p.dst_port, 0);
}

TEST(Parse, Vlan) {
    FrameSpec s;
    s.vlan = true;
    s.vlan_tci = 0xa07b;  // PCP 5, VID 123
    Parsed p;
    ASSERT_EQ(parse_vec(build_frame(s), p), ParseResult::ok);
    EXPECT_TRUE(p.has_vlan);
    EXPECT_EQ(p.vlan_tci, 0xa07b);
    EXPECT_EQ(p.l3_offset, 18);
    EXPECT_EQ(p.l4_offset, 38);
    EXPECT_EQ(p.dst_port, htons(80));
}

TEST(Parse, PriorityTaggedVlanZero) {
    FrameSpec s;
    s.vlan = true;
    s.vlan_tci = 0;
    Parsed p;
    ASSERT_EQ(parse_vec(build_frame(s), p), ParseResult::ok);
    EXPECT_TRUE(p.has_vlan);
    EXPECT_EQ(p.l3_offset, 18);
}

TEST(Parse, StackedVlanIsOtherEthertype) {
    for (const uint16_t inner : {uint16_t{0x8100}, uint16_t{0x88a8}}) {
        FrameSpec s;
        s.vlan = true;
        s.ethertype = inner;
        Parsed p;
        EXPECT_EQ(parse_vec(build_frame(s), p), ParseResult::other_ethertype) << std::hex << inner;
        EXPECT_TRUE(p.has_vlan);
        EXPECT_EQ(p.l3_offset, 18);
    }
    // An outer 802.1ad S-tag is not the single 802.1Q tag we handle either.
    FrameSpec s;
    s.ethertype = 0x88a8;
    EXPECT_EQ(parse_vec(build_frame(s)), ParseResult::other_ethertype);
}

TEST(Parse, Ethertypes) {
    FrameSpec s;
    s.ethertype = 0x0806;
    Parsed p;
    EXPECT_EQ(parse_vec(build_frame(s), p), ParseResult::arp);
    EXPECT_EQ(p.l3_offset, 14);
    s.vlan = true;
    EXPECT_EQ(parse_vec(build_frame(s), p), ParseResult::arp);
    EXPECT_EQ(p.l3_offset, 18);
    s.vlan = false;
    s.ethertype = 0x86dd;
    EXPECT_EQ(parse_vec(build_frame(s)), ParseResult::ipv6);
    s.ethertype = 0x88cc;  // LLDP
    EXPECT_EQ(parse_vec(build_frame(s)), ParseResult::other_ethertype);
}

TEST(Parse, TruncatedL2) {
    const auto f = build_frame(FrameSpec{});
    for (size_t len = 0; len < 14; ++len) {
        Parsed p;
        EXPECT_EQ(parse(f.data(), len, p), ParseResult::truncated_l2) << len;
    }
    FrameSpec s;
    s.vlan = true;
    const auto v = build_frame(s);
    for (size_t len = 0; len < 18; ++len) {
        Parsed p;
        EXPECT_EQ(parse(v.data(), len, p), ParseResult::truncated_l2) << len;
    }
    Parsed p;
    EXPECT_EQ(parse(nullptr, 0, p), ParseResult::truncated_l2);
}

TEST(Parse, TruncatedL3) {
    const auto f = build_frame(FrameSpec{});
    for (size_t len = 14; len < 34; ++len) {
        Parsed p;
        EXPECT_EQ(parse(f.data(), len, p), ParseResult::truncated_l3) << len;
        EXPECT_EQ(p.l3_offset, 14);
    }
    // 20 bytes present but IHL says 24.
    FrameSpec s;
    s.ihl_words = 6;
    const auto o = build_frame(s);
    Parsed p;
    EXPECT_EQ(parse(o.data(), 14 + 20, p), ParseResult::truncated_l3);
    EXPECT_EQ(parse(o.data(), 14 + 23, p), ParseResult::truncated_l3);
    EXPECT_EQ(parse(o.data(), 14 + 24, p), ParseResult::bad_total_length);
}

TEST(Parse, BadVersion) {
    auto f = build_frame(FrameSpec{});
    for (const uint8_t version : {0, 5, 6, 15}) {
        f[14] = static_cast<uint8_t>((version << 4) | 5);
        EXPECT_EQ(parse_vec(f), ParseResult::bad_ip_version) << int{version};
    }
}

TEST(Parse, BadIhl) {
    auto f = build_frame(FrameSpec{});
    for (uint8_t ihl = 0; ihl < 5; ++ihl) {
        f[14] = static_cast<uint8_t>(0x40 | ihl);
        EXPECT_EQ(parse_vec(f), ParseResult::bad_ihl) << int{ihl};
    }
}

TEST(Parse, IpOptions) {
    for (uint8_t words = 6; words <= 15; ++words) {
        FrameSpec s = udp_spec();
        s.ihl_words = words;
        s.vlan = words % 2 == 0;
        Parsed p;
        ASSERT_EQ(parse_vec(build_frame(s), p), ParseResult::ok) << int{words};
        EXPECT_TRUE(p.has_ip_options);
        EXPECT_EQ(p.l4_offset, p.l3_offset + words * 4);
        EXPECT_EQ(p.dst_port, htons(53));
    }
}

TEST(Parse, BadTotalLength) {
    FrameSpec s;
    s.ihl_words = 6;
    auto f = build_frame(s);
    uint8_t* tot = f.data() + 14 + 2;
    put16(tot, 23);  // < IHL*4
    EXPECT_EQ(parse_vec(f), ParseResult::bad_total_length);
    put16(tot, 0);
    EXPECT_EQ(parse_vec(f), ParseResult::bad_total_length);
    put16(tot, static_cast<uint16_t>(f.size() - 14 + 1));  // one byte more than present
    EXPECT_EQ(parse_vec(f), ParseResult::bad_total_length);
    put16(tot, 0xffff);
    EXPECT_EQ(parse_vec(f), ParseResult::bad_total_length);
    put16(tot, static_cast<uint16_t>(f.size() - 14));
    EXPECT_EQ(parse_vec(f), ParseResult::ok);
}

TEST(Parse, TrailingPaddingIgnored) {
    // A minimum-size Ethernet frame: 28-byte UDP datagram padded to 60 bytes.
    FrameSpec s = udp_spec();
    s.payload_len = 0;
    s.trailing_pad = 60 - 42;
    const auto f = build_frame(s);
    ASSERT_EQ(f.size(), 60u);
    Parsed p;
    ASSERT_EQ(parse_vec(f, p), ParseResult::ok);
    EXPECT_EQ(p.l3_len, 28);
}

TEST(Parse, L4ChecksUseTotalLengthNotFrameLength) {
    // TCP header cut to 12 bytes by the IPv4 total length, while the Ethernet
    // padding would make 20 bytes appear to be there.
    auto f = build_frame(FrameSpec{});
    put16(f.data() + 14 + 2, 20 + 12);
    EXPECT_EQ(parse_vec(f), ParseResult::truncated_l4);
    // Same for TCP options the data offset promises beyond the datagram.
    FrameSpec s;
    s.tcp_doff_words = 8;
    f = build_frame(s);
    put16(f.data() + 14 + 2, 20 + 28);
    EXPECT_EQ(parse_vec(f), ParseResult::truncated_l4);
    put16(f.data() + 14 + 2, 20 + 32);
    EXPECT_EQ(parse_vec(f), ParseResult::ok);
}

TEST(Parse, Fragments) {
    for (const uint16_t frag : {uint16_t{0x2000}, uint16_t{0x0001}, uint16_t{0x1fff}, uint16_t{0x2010},
                                uint16_t{0x6000}, uint16_t{0x4001}}) {
        FrameSpec s = udp_spec();
        s.frag = frag;
        Parsed p;
        EXPECT_EQ(parse_vec(build_frame(s), p), ParseResult::fragment) << std::hex << frag;
        EXPECT_EQ(p.proto, IPPROTO_UDP);
        EXPECT_EQ(p.l3_len, layout_of(s).l3_len);
    }
    // A non-first fragment carries no L4 header: fragment, not truncated_l4.
    FrameSpec s = udp_spec();
    s.payload_len = 0;
    auto f = build_frame(s);
    put16(f.data() + 14 + 6, 0x0003);
    put16(f.data() + 14 + 2, 20 + 4);
    EXPECT_EQ(parse_vec(f), ParseResult::fragment);
    // DF alone (and no flags at all) is a whole datagram.
    for (const uint16_t frag : {uint16_t{0x4000}, uint16_t{0x0000}}) {
        s.frag = frag;
        EXPECT_EQ(parse_vec(build_frame(s)), ParseResult::ok);
    }
}

TEST(Parse, TruncatedL4) {
    // TCP data offset < 5.
    for (uint8_t doff = 0; doff < 5; ++doff) {
        auto f = build_frame(FrameSpec{});
        f[34 + 12] = static_cast<uint8_t>(doff << 4);
        EXPECT_EQ(parse_vec(f), ParseResult::truncated_l4) << int{doff};
    }
    // Headers shorter than their minimum inside a consistent datagram.
    struct Case {
        uint8_t proto;
        size_t min;
    };
    for (const Case c : {Case{IPPROTO_TCP, 20}, Case{IPPROTO_UDP, 8}, Case{IPPROTO_ICMP, 8}}) {
        FrameSpec s;
        s.proto = c.proto;
        const auto full = build_frame(s);
        for (size_t l4_len = 0; l4_len < c.min; ++l4_len) {
            std::vector<uint8_t> f(full.begin(), full.begin() + static_cast<ptrdiff_t>(34 + l4_len));
            put16(f.data() + 14 + 2, static_cast<uint16_t>(20 + l4_len));
            EXPECT_EQ(parse_vec(f), ParseResult::truncated_l4) << int{c.proto} << " " << l4_len;
        }
    }
}

// A UDP length shorter than the header or reaching past the IP payload is a
// broken datagram (counted as truncated_l4), not a flow to open; one shorter
// than the payload leaves trailing bytes, which is allowed.
TEST(Parse, UdpLengthMustFitTheDatagram) {
    FrameSpec s;
    s.proto = IPPROTO_UDP;
    s.payload_len = 10;                        // UDP length 18 in a 38-byte IP datagram
    for (const bool tagged : {false, true}) {  // the shortcut, then the general parser
        s.vlan = tagged;
        auto f = build_frame(s);
        const size_t udp_len_at = (tagged ? 18u : 14u) + 20u + 4u;
        for (const uint16_t udp_len : {0, 1, 7, 19, 200, 0xffff}) {
            put16(f.data() + udp_len_at, udp_len);
            EXPECT_EQ(parse_vec(f), ParseResult::truncated_l4) << udp_len << " tagged " << tagged;
        }
        for (const uint16_t udp_len : {8, 9, 18}) {
            put16(f.data() + udp_len_at, udp_len);
            EXPECT_EQ(parse_vec(f), ParseResult::ok) << udp_len << " tagged " << tagged;
        }
    }
}

TEST(Parse, OtherL4) {
    for (const uint8_t proto : {uint8_t{47}, uint8_t{50}, uint8_t{132}, uint8_t{0}}) {
        FrameSpec s;
        s.proto = proto;
        s.payload_len = 24;
        Parsed p;
        EXPECT_EQ(parse_vec(build_frame(s), p), ParseResult::other_l4) << int{proto};
        EXPECT_EQ(p.proto, proto);
        EXPECT_EQ(p.l4_offset, 34);
    }
}

TEST(Parse, EveryResultIsReachable) {
    std::vector<std::pair<ParseResult, std::vector<uint8_t>>> cases;
    auto add = [&](ParseResult r, std::vector<uint8_t> f) { cases.emplace_back(r, std::move(f)); };

    add(ParseResult::ok, build_frame(FrameSpec{}));
    add(ParseResult::truncated_l2, std::vector<uint8_t>(13, 0));
    FrameSpec s;
    s.ethertype = 0x0806;
    add(ParseResult::arp, build_frame(s));
    s.ethertype = 0x86dd;
    add(ParseResult::ipv6, build_frame(s));
    s.ethertype = 0x88cc;
    add(ParseResult::other_ethertype, build_frame(s));
    auto f = build_frame(FrameSpec{});
    f.resize(30);
    add(ParseResult::truncated_l3, f);
    f = build_frame(FrameSpec{});
    f[14] = 0x65;
    add(ParseResult::bad_ip_version, f);
    f = build_frame(FrameSpec{});
    f[14] = 0x44;
    add(ParseResult::bad_ihl, f);
    f = build_frame(FrameSpec{});
    put16(f.data() + 16, 1500);
    add(ParseResult::bad_total_length, f);
    s = FrameSpec{};
    s.frag = 0x2000;
    add(ParseResult::fragment, build_frame(s));
    f = build_frame(FrameSpec{});
    f[34 + 12] = 0x40;
    add(ParseResult::truncated_l4, f);
    s = FrameSpec{};
    s.proto = 47;
    add(ParseResult::other_l4, build_frame(s));

    std::set<ParseResult> reached;
    for (const auto& [want, frame] : cases) {
        const auto copy = exact_copy(frame, frame.size());
        Parsed p;
        EXPECT_EQ(parse(copy.get(), frame.size(), p), want) << to_string(want);
        reached.insert(want);
    }
    EXPECT_EQ(reached.size(), static_cast<size_t>(ParseResult::count_));
}

// Every prefix of a valid frame must be rejected (never ok, never a read past
// the end) until the whole datagram is there.
TEST(Parse, EveryTruncationIsRejectedSafely) {
    std::vector<FrameSpec> specs;
    specs.push_back(FrameSpec{});
    FrameSpec s;
    s.tcp_doff_words = 11;
    s.ihl_words = 9;
    s.vlan = true;
    s.payload_len = 33;
    specs.push_back(s);
    specs.push_back(udp_spec());
    s = udp_spec();
    s.vlan = true;
    s.ihl_words = 15;
    s.payload_len = 0;
    specs.push_back(s);
    specs.push_back(icmp_spec());
    s = icmp_spec();
    s.payload_len = 0;
    s.ihl_words = 7;
    specs.push_back(s);

    for (const FrameSpec& spec : specs) {
        const auto f = build_frame(spec);
        for (size_t len = 0; len < f.size(); ++len) {
            const auto copy = exact_copy(f, len);
            Parsed p;
            EXPECT_NE(parse(copy.get(), len, p), ParseResult::ok) << "len " << len << " of " << f.size();
        }
        const auto copy = exact_copy(f, f.size());
        Parsed p;
        EXPECT_EQ(parse(copy.get(), f.size(), p), ParseResult::ok);
    }
}

// With Ethernet padding, the frame parses once the datagram itself is complete.
TEST(Parse, TruncationWithPadding) {
    FrameSpec s = udp_spec();
    s.payload_len = 3;
    s.trailing_pad = 15;
    const auto f = build_frame(s);
    const size_t datagram_end = 14 + layout_of(s).l3_len;
    for (size_t len = 0; len <= f.size(); ++len) {
        const auto copy = exact_copy(f, len);
        Parsed p;
        const ParseResult r = parse(copy.get(), len, p);
        if (len < datagram_end) {
            EXPECT_NE(r, ParseResult::ok) << len;
        } else {
            EXPECT_EQ(r, ParseResult::ok) << len;
        }
    }
}

// Random bytes after a valid Ethernet/IPv4 prefix: whatever comes back, no crash.
TEST(Parse, GarbageNeverCrashes) {
    uint32_t x = 12345;
    auto next = [&x] {
        x = x * 1664525u + 1013904223u;
        return static_cast<uint8_t>(x >> 24);
    };
    std::array<int, static_cast<size_t>(ParseResult::count_)> seen{};
    for (int iter = 0; iter < 20000; ++iter) {
        const size_t len = next() % 96;
        std::vector<uint8_t> f(len);
        for (auto& b : f) {
            b = next();
        }
        // Mostly plausible IPv4 (untagged or tagged) so the deeper checks run.
        if (len >= 19 && iter % 4 != 3) {
            const bool tagged = iter % 2 == 1;
            put16(f.data() + 12, tagged ? 0x8100 : 0x0800);
            put16(f.data() + 16, 0x0800);
            const size_t l3 = tagged ? 18 : 14;
            f[l3] = static_cast<uint8_t>(0x40 | (next() & 0x0f));
            if (len >= l3 + 4 && iter % 3 != 0) {
                put16(f.data() + l3 + 2, static_cast<uint16_t>(len - l3 - (next() % 4)));
            }
            if (len >= l3 + 10) {
                put16(f.data() + l3 + 6, 0);  // not a fragment
                const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};
                f[l3 + 9] = protos[next() % 3];
            }
        }
        const auto copy = exact_copy(f, len);
        Parsed p;
        const ParseResult r = parse(copy.get(), len, p);
        ASSERT_LT(static_cast<int>(r), static_cast<int>(ParseResult::count_));
        ++seen[static_cast<size_t>(r)];
        if (r == ParseResult::ok) {
            EXPECT_LE(static_cast<size_t>(p.l3_offset) + p.l3_len, len);
            EXPECT_LT(p.l4_offset, p.l3_offset + p.l3_len);
        }
    }
    // The generator is meant to get deep: make sure it does.
    for (const ParseResult r : {ParseResult::ok, ParseResult::bad_total_length, ParseResult::truncated_l4}) {
        EXPECT_GT(seen[static_cast<size_t>(r)], 0) << to_string(r);
    }
}

// parse()'s shortcut for the common frame must agree with the general parser
// on every input: valid frames of every shape, then the same frames with the
// bytes the shortcut checks (ethertype, version/IHL, total length, fragment
// bits, protocol, TCP data offset) set to values at and around each limit,
// other bytes set at random, and the frame cut short or padded.
// Every field of a Parsed, to compare two at once (gtest prints both on a mismatch).
auto fields_of(const Parsed& p) {
    return std::make_tuple(p.l3_offset, p.l4_offset, p.l3_len, p.vlan_tci, p.has_vlan, p.has_ip_options, p.proto,
                           p.tcp_flags, p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.icmp_type);
}

void expect_same_parse(const uint8_t* data, size_t len, const std::string& what) {
    Parsed fast, general;
    const ParseResult rf = parse(data, len, fast);
    const ParseResult rg = detail::parse_general(data, len, general);
    ASSERT_EQ(to_string(rf), std::string(to_string(rg))) << what;
    EXPECT_EQ(fields_of(fast), fields_of(general)) << what;
}

TEST(Parse, ShortcutAgreesWithGeneralParser) {
    std::vector<FrameSpec> shapes;
    FrameSpec tcp;
    tcp.tcp_flags = kTcpAck | kTcpFin;
    tcp.payload_len = 9;
    shapes.push_back(tcp);
    FrameSpec tcp_opts = tcp;
    tcp_opts.tcp_doff_words = 8;
    shapes.push_back(tcp_opts);
    shapes.push_back(udp_spec());
    FrameSpec udp_short = udp_spec();
    udp_short.payload_len = 0;  // 42 bytes: the shortest frame the shortcut takes
    shapes.push_back(udp_short);
    shapes.push_back(icmp_spec());
    FrameSpec tagged = tcp;
    tagged.vlan = true;
    shapes.push_back(tagged);
    FrameSpec options = tcp;
    options.ihl_words = 6;
    shapes.push_back(options);
    FrameSpec fragment = udp_spec();
    fragment.frag = 0x2000;
    shapes.push_back(fragment);
    FrameSpec padded = udp_spec();
    padded.payload_len = 0;
    padded.trailing_pad = 18;
    shapes.push_back(padded);

    // Offsets in an untagged frame and the values worth trying at each.
    struct Probe {
        size_t offset;
        std::vector<uint8_t> values;
    };
    const std::vector<Probe> probes = {
        {12, {0x08, 0x81, 0x86, 0x00}},                              // ethertype, high byte
        {13, {0x00, 0x06, 0xdd, 0x01}},                              // ethertype, low byte
        {14, {0x45, 0x44, 0x46, 0x4f, 0x55, 0x05}},                  // version and IHL
        {16, {0x00, 0x01, 0xff}},                                    // total length, high byte
        {17, {0, 19, 20, 27, 28, 39, 40, 41, 50, 51, 52, 60, 255}},  // total length, low byte
        {20, {0x00, 0x20, 0x40, 0x60, 0x01, 0x9f}},                  // flags and fragment offset
        {21, {0x00, 0x01, 0xff}},                                    // fragment offset, low byte
        {23, {6, 17, 1, 0, 47}},                                     // protocol
        {46, {0x50, 0x40, 0x00, 0x60, 0x80, 0xf0}},                  // TCP data offset
        {47, {0x02, 0x12, 0x11, 0x04}},                              // TCP flags
        {38, {0x00, 0x01}},                                          // UDP length, high byte
        {39, {0, 7, 8, 9, 17, 18, 26, 27}},                          // UDP length, low byte
    };
    uint32_t x = 777;
    auto next = [&x] {
        x = x * 1664525u + 1013904223u;
        return x >> 8;
    };
    int cases = 0, fast_ok = 0;
    for (size_t si = 0; si < shapes.size(); ++si) {
        const std::vector<uint8_t> base = build_frame(shapes[si]);
        for (int iter = 0; iter < 4000; ++iter) {
            std::vector<uint8_t> f = base;
            f.resize(base.size() + 24, 0);  // room for lengths past the datagram
            const int changes = iter == 0 ? 0 : 1 + int(next() % 3);
            for (int c = 0; c < changes; ++c) {
                if (next() % 4 == 0) {
                    f[next() % 60] = uint8_t(next());
                } else {
                    const Probe& pr = probes[next() % probes.size()];
                    f[pr.offset] = pr.values[next() % pr.values.size()];
                }
            }
            // The frame as built, a few bytes longer, or cut anywhere.
            const uint32_t pick = next() % 8;
            const size_t len = pick < 5 ? base.size() : pick == 5 ? base.size() + next() % 24 : next() % base.size();
            const auto copy = exact_copy(f, len);  // ASan sees any read past len
            expect_same_parse(copy.get(), len, "shape " + std::to_string(si) + " iteration " + std::to_string(iter));
            Parsed p;
            fast_ok += parse(copy.get(), len, p) == ParseResult::ok && p.l4_offset == 34 && !p.has_vlan;
            ++cases;
            if (::testing::Test::HasFailure()) return;
        }
    }
    // The shortcut's frames and the others were both tried in numbers.
    EXPECT_GT(fast_ok, cases / 10);
    EXPECT_LT(fast_ok, cases * 9 / 10);
}

}  // namespace
}  // namespace ferry::packet
