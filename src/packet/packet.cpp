// Bounds-checked Ethernet/802.1Q/IPv4/L4 parsing.

#include "packet/packet.hpp"

#include <netinet/in.h>

#include "packet/bytes.hpp"

namespace ferry::packet {

namespace {

using detail::load_be16;
using detail::load_raw16;
using detail::load_raw32;

constexpr size_t kEthHdrLen = 14;
constexpr size_t kVlanTagLen = 4;
constexpr size_t kIpv4MinHdrLen = 20;
constexpr size_t kTcpMinHdrLen = 20;
constexpr size_t kUdpHdrLen = 8;
constexpr size_t kIcmpHdrLen = 8;

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;  // 802.1Q C-tag
constexpr uint16_t kEtherQinQ = 0x88a8;  // 802.1ad S-tag

constexpr uint16_t kIpMoreFragments = 0x2000;
constexpr uint16_t kIpOffsetMask = 0x1fff;

constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpEchoRequest = 8;

// L4 part of parse(): `l4` holds `l4_len` bytes (bounded by the IPv4 total
// length, so trailing Ethernet padding is never taken for L4 data).
ParseResult parse_l4(const uint8_t* l4, size_t l4_len, Parsed& out) {
    switch (out.proto) {
        case IPPROTO_TCP: {
            if (l4_len < kTcpMinHdrLen) {
                return ParseResult::truncated_l4;
            }
            const size_t data_offset = static_cast<size_t>(l4[12] >> 4) * 4;
            if (data_offset < kTcpMinHdrLen || data_offset > l4_len) {
                return ParseResult::truncated_l4;
            }
            out.src_port = load_raw16(l4);
            out.dst_port = load_raw16(l4 + 2);
            out.tcp_flags = l4[13];
            return ParseResult::ok;
        }
        case IPPROTO_UDP: {
            if (l4_len < kUdpHdrLen) {
                return ParseResult::truncated_l4;
            }
            // The UDP length covers header and data within the IP payload (trailing
            // bytes past it are allowed, as past the IP total length).
            const uint16_t udp_len = load_be16(l4 + 4);
            if (udp_len < kUdpHdrLen || udp_len > l4_len) {
                return ParseResult::truncated_l4;
            }
            out.src_port = load_raw16(l4);
            out.dst_port = load_raw16(l4 + 2);
            return ParseResult::ok;
        }
        case IPPROTO_ICMP:
            if (l4_len < kIcmpHdrLen) {
                return ParseResult::truncated_l4;
            }
            out.icmp_type = l4[0];
            if (out.icmp_type == kIcmpEchoRequest || out.icmp_type == kIcmpEchoReply) {
                out.src_port = load_raw16(l4 + 4);  // identifier
            }
            return ParseResult::ok;
        default: return ParseResult::other_l4;
    }
}

}  // namespace

const char* to_string(ParseResult r) {
    switch (r) {
        case ParseResult::ok: return "ok";
        case ParseResult::truncated_l2: return "truncated_l2";
        case ParseResult::arp: return "arp";
        case ParseResult::ipv6: return "ipv6";
        case ParseResult::other_ethertype: return "other_ethertype";
        case ParseResult::truncated_l3: return "truncated_l3";
        case ParseResult::bad_ip_version: return "bad_ip_version";
        case ParseResult::bad_ihl: return "bad_ihl";
        case ParseResult::bad_total_length: return "bad_total_length";
        case ParseResult::fragment: return "fragment";
        case ParseResult::truncated_l4: return "truncated_l4";
        case ParseResult::other_l4: return "other_l4";
        case ParseResult::count_: break;
    }
    return "unknown";
}

namespace detail {

ParseResult parse_general(const uint8_t* data, size_t len, Parsed& out) {
    out = Parsed{};

    // --- Ethernet, at most one 802.1Q tag.
    if (len < kEthHdrLen) {
        return ParseResult::truncated_l2;
    }
    uint16_t ethertype = load_be16(data + 12);
    size_t l3 = kEthHdrLen;
    if (ethertype == kEtherVlan) {
        if (len < kEthHdrLen + kVlanTagLen) {
            return ParseResult::truncated_l2;
        }
        out.has_vlan = true;
        out.vlan_tci = load_be16(data + 14);
        ethertype = load_be16(data + 16);
        l3 += kVlanTagLen;
    }
    out.l3_offset = static_cast<uint16_t>(l3);
    switch (ethertype) {
        case kEtherIpv4: break;
        case kEtherArp: return ParseResult::arp;
        case kEtherIpv6: return ParseResult::ipv6;
        case kEtherVlan:  // stacked tags (or a lone S-tag): not ours
        case kEtherQinQ:
        default: return ParseResult::other_ethertype;
    }

    // --- IPv4.
    const uint8_t* ip = data + l3;
    const size_t l3_avail = len - l3;
    if (l3_avail < kIpv4MinHdrLen) {
        return ParseResult::truncated_l3;
    }
    if ((ip[0] >> 4) != 4) {
        return ParseResult::bad_ip_version;
    }
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if (ihl < kIpv4MinHdrLen) {
        return ParseResult::bad_ihl;
    }
    if (ihl > l3_avail) {
        return ParseResult::truncated_l3;
    }
    const uint16_t total_len = load_be16(ip + 2);
    if (total_len < ihl || total_len > l3_avail) {
        return ParseResult::bad_total_length;
    }
    out.l3_len = total_len;
    out.l4_offset = static_cast<uint16_t>(l3 + ihl);
    out.has_ip_options = ihl > kIpv4MinHdrLen;
    out.proto = ip[9];
    out.src_ip = load_raw32(ip + 12);
    out.dst_ip = load_raw32(ip + 16);
    if ((load_be16(ip + 6) & (kIpMoreFragments | kIpOffsetMask)) != 0) {
        return ParseResult::fragment;
    }

    // --- L4, bounded by the IPv4 total length rather than the frame length.
    return parse_l4(ip + ihl, total_len - ihl, out);
}

}  // namespace detail

}  // namespace ferry::packet
