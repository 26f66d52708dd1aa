// Full checksums against known vectors and the naive reference; RFC 1624
// incremental updates against full recomputation, including 0x0000/0xffff.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "packet/csum_impl.hpp"
#include "packet/packet.hpp"
#include "packet_builder.hpp"

namespace ferry::packet {
namespace {

using testing::build_frame;
using testing::FrameSpec;
using testing::put16;
using testing::ref_fold;
using testing::ref_sum;

TEST(Checksum, Ipv4KnownVector) {
    // The classic example header: 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
    const uint8_t hdr[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                             0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(ntohs(ipv4_header_checksum(hdr, sizeof hdr)), 0xb861);  // field in the buffer is ignored
    uint8_t zeroed[20];
    std::memcpy(zeroed, hdr, sizeof hdr);
    zeroed[10] = zeroed[11] = 0;
    EXPECT_EQ(ntohs(ipv4_header_checksum(zeroed, sizeof zeroed)), 0xb861);
}

TEST(Checksum, FullChecksumsMatchReference) {
    std::mt19937 rng(7);
    for (int iter = 0; iter < 500; ++iter) {
        FrameSpec s;
        s.proto = iter % 2 == 0 ? IPPROTO_TCP : IPPROTO_UDP;
        s.ihl_words = static_cast<uint8_t>(5 + rng() % 11);
        s.tcp_doff_words = static_cast<uint8_t>(5 + rng() % 11);
        s.src_ip = static_cast<uint32_t>(rng());
        s.dst_ip = static_cast<uint32_t>(rng());
        s.src_port = static_cast<uint16_t>(rng());
        s.dst_port = static_cast<uint16_t>(rng());
        s.payload_len = rng() % 1500;
        s.payload_seed = static_cast<uint8_t>(rng());
        const auto f = build_frame(s);
        const uint8_t* ip = f.data() + 14;
        const size_t ihl = s.ihl_words * 4u;
        const uint16_t ip_csum = ipv4_header_checksum(ip, ihl);
        EXPECT_EQ(std::memcmp(&ip_csum, ip + 10, 2), 0);
        const size_t l4_len = f.size() - 14 - ihl;
        const uint16_t l4_csum =
            l4_checksum_ipv4(htonl(s.src_ip), htonl(s.dst_ip), s.proto, ip + ihl, l4_len);
        EXPECT_EQ(std::memcmp(&l4_csum, ip + ihl + (s.proto == IPPROTO_TCP ? 16 : 6), 2), 0)
            << "payload " << s.payload_len;
    }
}

TEST(Checksum, UdpComputedZeroIsSentAsAllOnes) {
    // Pick the destination port so the UDP sum becomes one's complement -0.
    FrameSpec s;
    s.proto = IPPROTO_UDP;
    s.dst_port = 0;
    s.payload_len = 5;
    auto f = build_frame(s);
    uint8_t* udp = f.data() + 34;
    put16(udp + 6, 0);
    const uint16_t sum = ref_fold(ref_sum(udp, 13, testing::ref_pseudo(s.src_ip, s.dst_ip, IPPROTO_UDP, 13)));
    put16(udp + 2, static_cast<uint16_t>(0xffff - sum));
    EXPECT_EQ(l4_checksum_ipv4(htonl(s.src_ip), htonl(s.dst_ip), IPPROTO_UDP, udp, 13), 0xffff);
    // TCP has no such rule: a computed zero is zero.
    FrameSpec t;
    t.dst_port = 0;
    f = build_frame(t);
    uint8_t* tcp = f.data() + 34;
    put16(tcp + 16, 0);
    const uint16_t tsum =
        ref_fold(ref_sum(tcp, 20, testing::ref_pseudo(t.src_ip, t.dst_ip, IPPROTO_TCP, 20)));
    put16(tcp + 2, static_cast<uint16_t>(0xffff - tsum));
    EXPECT_EQ(l4_checksum_ipv4(htonl(t.src_ip), htonl(t.dst_ip), IPPROTO_TCP, tcp, 20), 0x0000);
}

TEST(Checksum, Rfc1624Example) {
    // RFC 1624 section 4: sum of the other words 0xCD7A, m = 0x5555 -> m' = 0x3285.
    // HC = ~(0xCD7A + 0x5555) = 0xDD2F; the right answer is 0x0000 (eqn. 2 gives 0xFFFF).
    EXPECT_EQ(csum_update16(htons(0xdd2f), htons(0x5555), htons(0x3285)), 0x0000);
    // And back again.
    EXPECT_EQ(ntohs(csum_update16(0x0000, htons(0x3285), htons(0x5555))), 0xdd2f);
}

// Changes one word (or a 32-bit pair) of a random buffer and compares the
// incremental update with the full recomputation, steering into the corners.
TEST(Checksum, IncrementalMatchesFull) {
    std::mt19937 rng(1624);
    const uint16_t specials[] = {0x0000, 0xffff, 0x0001, 0xfffe, 0x8000, 0x7fff};
    auto word = [&]() -> uint16_t {
        return rng() % 4 == 0 ? specials[rng() % 6] : static_cast<uint16_t>(rng());
    };
    int zero_results = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        std::vector<uint16_t> w(8);  // host-order words; w[0] is never all-zero data
        for (auto& x : w) {
            x = word();
        }
        w[0] |= 1;
        auto full = [&w] {
            uint32_t sum = 0;
            for (const uint16_t x : w) {
                sum += x;
            }
            return static_cast<uint16_t>(~ref_fold(sum));
        };
        const uint16_t before = full();
        const size_t i = 1 + rng() % 6;
        if (iter % 3 == 2) {
            // Force the new sum to -0 so the correct checksum is 0x0000.
            const uint16_t others =
                ref_fold(static_cast<uint32_t>(0xffff - before) + static_cast<uint16_t>(~w[i]));
            const uint16_t old_v = w[i];
            w[i] = static_cast<uint16_t>(0xffff - others);
            const uint16_t got = ntohs(csum_update16(htons(before), htons(old_v), htons(w[i])));
            ASSERT_EQ(got, full()) << iter;
            zero_results += got == 0;
        } else if (iter % 3 == 1) {
            const uint16_t old_v = w[i];
            w[i] = word();
            ASSERT_EQ(ntohs(csum_update16(htons(before), htons(old_v), htons(w[i]))), full()) << iter;
        } else {
            const uint32_t old_v = (static_cast<uint32_t>(w[i]) << 16) | w[i + 1];
            w[i] = word();
            w[i + 1] = word();
            const uint32_t new_v = (static_cast<uint32_t>(w[i]) << 16) | w[i + 1];
            ASSERT_EQ(ntohs(csum_update32(htons(before), htonl(old_v), htonl(new_v))), full()) << iter;
        }
    }
    EXPECT_GT(zero_results, 1000);
}

// The fold every rewrite ends with, against folding 16 bits at a time, for
// the sums where an end-around carry happens (or must not), and random ones.
TEST(Checksum, FoldMatchesFoldingSixteenBitsAtATime) {
    auto reference = [](uint64_t sum) {
        while (sum >> 16) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return static_cast<uint16_t>(sum);
    };
    std::vector<uint64_t> sums = {0,
                                  1,
                                  0xffff,
                                  0x10000,
                                  0x1fffe,
                                  0xfffeffff,
                                  0xffff0000,
                                  0xffffffff,
                                  0x100000000,
                                  0x1ffffffff,
                                  0xffffffffffffffff,
                                  0xfffffffe00000001,
                                  0x0000ffff0000ffff};
    std::mt19937_64 rng(1071);
    for (int i = 0; i < 200000; ++i) {
        const uint64_t r = rng();
        sums.push_back(i % 2 == 0 ? r : r >> (r % 64));  // small sums too
    }
    for (const uint64_t sum : sums) {
        ASSERT_EQ(detail::fold(sum), reference(sum)) << std::hex << sum;
    }
}

TEST(Checksum, UnchangedFieldKeepsChecksum) {
    for (const uint16_t csum : {uint16_t{0x0000}, uint16_t{0x1234}, uint16_t{0xfffe}}) {
        for (const uint16_t v : {uint16_t{0x0000}, uint16_t{0xffff}, uint16_t{0xabcd}}) {
            EXPECT_EQ(csum_update16(csum, v, v), csum);
            EXPECT_EQ(csum_update32(csum, v * 0x10001u, v * 0x10001u), csum);
        }
    }
}

TEST(Checksum, OddLengthPadsWithZero) {
    const uint8_t odd[3] = {0x12, 0x34, 0x56};
    const uint8_t even[4] = {0x12, 0x34, 0x56, 0x00};
    // Protocol 99: nothing skipped, so the two sums must agree except for the
    // length in the pseudo-header (3 vs 4).
    const uint16_t a = l4_checksum_ipv4(0, 0, 99, odd, 3);
    const uint16_t b = l4_checksum_ipv4(0, 0, 99, even, 4);
    EXPECT_EQ(ntohs(a), static_cast<uint16_t>(~ref_fold(0x1234 + 0x5600 + 99 + 3)));
    EXPECT_EQ(ntohs(b), static_cast<uint16_t>(~ref_fold(0x1234 + 0x5600 + 99 + 4)));
}

}  // namespace
}  // namespace ferry::packet
