// Test helpers: builds Ethernet/IPv4 frames byte by byte from a spec and
// computes checksums with a deliberately naive reference implementation
// (big-endian words, no tricks), independent of the library under test.
#pragma once

#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace ferry::packet::testing {

using Mac = std::array<uint8_t, 6>;

// Everything a test may want to vary in a frame; values in host order. The
// defaults give a valid untagged TCP SYN without options or payload.
struct FrameSpec {
    Mac dst_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    Mac src_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    bool vlan = false;
    uint16_t vlan_tci = 0x2064;  // PCP 1, VID 100
    uint16_t ethertype = 0x0800;

    uint8_t ihl_words = 5;   // > 5 adds NOP options
    uint16_t frag = 0x4000;  // DF
    uint8_t ttl = 64;
    uint8_t proto = IPPROTO_TCP;
    uint32_t src_ip = 0x0a000001;
    uint32_t dst_ip = 0x0a000002;

    uint16_t src_port = 40000;
    uint16_t dst_port = 80;
    uint8_t tcp_doff_words = 5;  // > 5 adds NOP options
    uint8_t tcp_flags = 0x02;
    bool udp_no_checksum = false;

    uint8_t icmp_type = 8;
    uint8_t icmp_code = 0;
    uint16_t icmp_id = 0x1234;
    uint16_t icmp_seq = 7;

    size_t payload_len = 0;
    uint8_t payload_seed = 1;
    size_t trailing_pad = 0;  // Ethernet padding after the IPv4 datagram
};

inline void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// Reference one's complement sum of big-endian words; odd tail padded with 0.
inline uint32_t ref_sum(const uint8_t* p, size_t n, uint32_t sum = 0) {
    for (size_t i = 0; i < n; i += 2) {
        const uint32_t hi = p[i];
        const uint32_t lo = i + 1 < n ? p[i + 1] : 0;
        sum += (hi << 8) | lo;
    }
    return sum;
}
inline uint16_t ref_fold(uint32_t sum) {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(sum);
}
// Pseudo-header sum (host-order addresses).
inline uint32_t ref_pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t l4_len) {
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto +
           static_cast<uint32_t>(l4_len);
}

// Offsets of a built frame.
struct Layout {
    size_t l3 = 0;
    size_t l4 = 0;
    size_t l3_len = 0;
};

inline Layout layout_of(const FrameSpec& s) {
    Layout l;
    l.l3 = s.vlan ? 18 : 14;
    l.l4 = l.l3 + s.ihl_words * 4u;
    size_t l4_len = 0;
    switch (s.proto) {
        case IPPROTO_TCP: l4_len = s.tcp_doff_words * 4u; break;
        case IPPROTO_UDP:
        case IPPROTO_ICMP: l4_len = 8; break;
        default: break;
    }
    l.l3_len = s.ihl_words * 4u + l4_len + s.payload_len;
    return l;
}

inline std::vector<uint8_t> build_frame(const FrameSpec& s) {
    const Layout l = layout_of(s);
    std::vector<uint8_t> f(l.l3 + l.l3_len + s.trailing_pad, 0);
    uint8_t* d = f.data();

    std::memcpy(d, s.dst_mac.data(), 6);
    std::memcpy(d + 6, s.src_mac.data(), 6);
    if (s.vlan) {
        put16(d + 12, 0x8100);
        put16(d + 14, s.vlan_tci);
        put16(d + 16, s.ethertype);
    } else {
        put16(d + 12, s.ethertype);
    }

    uint8_t* ip = d + l.l3;
    ip[0] = static_cast<uint8_t>(0x40 | s.ihl_words);
    put16(ip + 2, static_cast<uint16_t>(l.l3_len));
    put16(ip + 4, 0xbeef);
    put16(ip + 6, s.frag);
    ip[8] = s.ttl;
    ip[9] = s.proto;
    put32(ip + 12, s.src_ip);
    put32(ip + 16, s.dst_ip);
    std::memset(ip + 20, 0x01, s.ihl_words * 4u - 20u);  // NOP options
    put16(ip + 10, static_cast<uint16_t>(~ref_fold(ref_sum(ip, s.ihl_words * 4u))));

    uint8_t* l4 = d + l.l4;
    const size_t l4_len = l.l3_len - s.ihl_words * 4u;
    size_t hdr = 0;
    switch (s.proto) {
        case IPPROTO_TCP:
            hdr = s.tcp_doff_words * 4u;
            put16(l4, s.src_port);
            put16(l4 + 2, s.dst_port);
            put32(l4 + 4, 0x11223344);
            put32(l4 + 8, 0x55667788);
            l4[12] = static_cast<uint8_t>(s.tcp_doff_words << 4);
            l4[13] = s.tcp_flags;
            put16(l4 + 14, 0xffff);
            std::memset(l4 + 20, 0x01, hdr - 20);
            break;
        case IPPROTO_UDP:
            hdr = 8;
            put16(l4, s.src_port);
            put16(l4 + 2, s.dst_port);
            put16(l4 + 4, static_cast<uint16_t>(l4_len));
            break;
        case IPPROTO_ICMP:
            hdr = 8;
            l4[0] = s.icmp_type;
            l4[1] = s.icmp_code;
            put16(l4 + 4, s.icmp_id);
            put16(l4 + 6, s.icmp_seq);
            break;
        default: break;
    }
    for (size_t i = 0; i < s.payload_len; ++i) {
        l4[hdr + i] = static_cast<uint8_t>(s.payload_seed + i * 31);
    }
    const uint16_t l4_csum = static_cast<uint16_t>(
        ~ref_fold(ref_sum(l4, l4_len, ref_pseudo(s.src_ip, s.dst_ip, s.proto, l4_len))));
    switch (s.proto) {
        case IPPROTO_TCP: put16(l4 + 16, l4_csum); break;
        case IPPROTO_UDP: put16(l4 + 6, s.udp_no_checksum ? 0 : (l4_csum == 0 ? 0xffff : l4_csum)); break;
        case IPPROTO_ICMP: put16(l4 + 2, static_cast<uint16_t>(~ref_fold(ref_sum(l4, l4_len)))); break;
        default: break;
    }
    return f;
}

// True when the IPv4 header checksum of a built/rewritten frame verifies.
inline bool ref_ipv4_ok(const uint8_t* ip) { return ref_fold(ref_sum(ip, (ip[0] & 0x0f) * 4u)) == 0xffff; }

// True when the TCP/UDP (pseudo-header) or ICMP checksum verifies.
inline bool ref_l4_ok(const uint8_t* ip) {
    const size_t ihl = (ip[0] & 0x0f) * 4u;
    const size_t l4_len = get16(ip + 2) - ihl;
    const uint8_t* l4 = ip + ihl;
    const uint8_t proto = ip[9];
    if (proto == IPPROTO_ICMP) {
        return ref_fold(ref_sum(l4, l4_len)) == 0xffff;
    }
    const uint32_t src = (static_cast<uint32_t>(get16(ip + 12)) << 16) | get16(ip + 14);
    const uint32_t dst = (static_cast<uint32_t>(get16(ip + 16)) << 16) | get16(ip + 18);
    return ref_fold(ref_sum(l4, l4_len, ref_pseudo(src, dst, proto, l4_len))) == 0xffff;
}

// A heap copy of the first `len` bytes with nothing after it, so AddressSanitizer
// reports any read past the end (zeros where `len` goes past f). Not inlined:
// GCC 12 inlined into a loop over lengths warns of a memcpy of 2^63 bytes.
[[gnu::noinline]] inline std::unique_ptr<uint8_t[]> exact_copy(const std::vector<uint8_t>& f, size_t len) {
    auto p = std::make_unique<uint8_t[]>(len);
    std::copy_n(f.begin(), std::min(len, f.size()), p.get());
    return p;
}

}  // namespace ferry::packet::testing
