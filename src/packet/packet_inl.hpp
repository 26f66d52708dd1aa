// parse()'s shortcut, inline: it runs on every packet. Only included from
// packet/packet.hpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "packet/bytes.hpp"

namespace ferry::packet {

inline ParseResult parse(const uint8_t* data, size_t len, Parsed& out) {
    // Nearly every frame a load balancer steers is untagged IPv4 without
    // options, not a fragment, TCP or UDP with its whole header present. That
    // shape is recognised with a few loads and compares and its fields stored
    // at once; every other frame, good or bad, takes the general parser, which
    // gives the same result for this shape too (tests/unit/packet compares
    // the two on mutated frames of every kind).
    constexpr size_t kEth = 14, kIp = 20, kTcp = 20, kUdp = 8;
    constexpr uint16_t kIpv4 = 0x0800, kFragmentBits = 0x3fff;  // MF and the offset
    constexpr uint8_t kTcpProto = 6, kUdpProto = 17;
    if (len >= kEth + kIp + kUdp) {
        const uint8_t* ip = data + kEth;
        const uint16_t total_len = detail::load_be16(ip + 2);
        const uint8_t proto = ip[9];
        const bool plain_ipv4 = detail::load_be16(data + 12) == kIpv4 && ip[0] == 0x45 &&
                                (detail::load_be16(ip + 6) & kFragmentBits) == 0 && total_len <= len - kEth;
        const uint8_t* l4 = ip + kIp;
        bool whole_l4 = false;
        uint8_t tcp_flags = 0;
        if (plain_ipv4 && proto == kTcpProto && total_len >= kIp + kTcp) {
            const size_t data_offset = static_cast<size_t>(l4[12] >> 4) * 4;
            whole_l4 = data_offset >= kTcp && data_offset <= size_t(total_len) - kIp;
            tcp_flags = l4[13];
        } else if (plain_ipv4 && proto == kUdpProto) {
            const uint16_t udp_len = detail::load_be16(l4 + 4);
            whole_l4 = total_len >= kIp + kUdp && udp_len >= kUdp && udp_len <= total_len - kIp;
        }
        if (whole_l4) {
            out = Parsed{uint16_t(kEth),
                         uint16_t(kEth + kIp),
                         total_len,
                         0,
                         false,
                         false,
                         proto,
                         tcp_flags,
                         detail::load_raw32(ip + 12),
                         detail::load_raw32(ip + 16),
                         detail::load_raw16(l4),
                         detail::load_raw16(l4 + 2),
                         0};
            return ParseResult::ok;
        }
    }
    return detail::parse_general(data, len, out);
}

}  // namespace ferry::packet
