// ICMP errors about load-balanced flows: find the quoted datagram, and turn the
// error into one about the backend's leg of the flow.

#include <netinet/in.h>

#include "packet/bytes.hpp"
#include "packet/csum_impl.hpp"
#include "packet/packet.hpp"

namespace ferry::packet {

namespace {

using detail::load_raw16;
using detail::load_raw32;
using detail::store_raw16;
using detail::store_raw32;

constexpr size_t kIcmpHdrLen = 8;
constexpr size_t kIpv4MinHdrLen = 20;
constexpr size_t kQuotedL4Len = 8;  // what RFC 792 promises at least
constexpr uint8_t kIcmpUnreachable = 3;
constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr size_t kIpCsumOffset = 10;
constexpr size_t kIcmpCsumOffset = 2;
constexpr size_t kUdpCsumOffset = 6;
constexpr size_t kTcpCsumOffset = 16;

}  // namespace

bool parse_icmp_error(const uint8_t* data, size_t len, const Parsed& p, IcmpQuote& q) {
    if (p.proto != IPPROTO_ICMP || (p.icmp_type != kIcmpUnreachable && p.icmp_type != kIcmpTimeExceeded)) {
        return false;
    }
    const size_t end = static_cast<size_t>(p.l3_offset) + p.l3_len;  // the datagram, not the frame's padding
    const size_t ip = static_cast<size_t>(p.l4_offset) + kIcmpHdrLen;
    if (end > len || ip + kIpv4MinHdrLen > end) {
        return false;
    }
    const uint8_t* qip = data + ip;
    const size_t ihl = static_cast<size_t>(qip[0] & 0x0f) * 4;
    if ((qip[0] >> 4) != 4 || ihl < kIpv4MinHdrLen || ip + ihl + kQuotedL4Len > end) {
        return false;
    }
    const uint8_t proto = qip[9];
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
        return false;
    }
    if ((detail::load_be16(qip + 6) & 0x1fff) != 0) {
        return false;  // a later fragment quotes no ports
    }
    const uint8_t* l4 = qip + ihl;
    q.ip_offset = static_cast<uint16_t>(ip);
    q.l4_offset = static_cast<uint16_t>(ip + ihl);
    q.proto = proto;
    q.src_ip = load_raw32(qip + 12);
    q.dst_ip = load_raw32(qip + 16);
    q.src_port = load_raw16(l4);
    q.dst_port = load_raw16(l4 + 2);
    return true;
}

void rewrite_icmp_error(uint8_t* data, const Parsed& p, const IcmpQuote& q, uint32_t from_ip, uint32_t to_ip,
                        uint32_t qsrc_ip, uint16_t qsrc_port, uint32_t qdst_ip, uint16_t qdst_port) {
    uint8_t* ip = data + p.l3_offset;
    uint64_t outer = detail::delta32(load_raw32(ip + 16), to_ip);
    store_raw32(ip + 16, to_ip);
    if (from_ip != 0) {
        outer += detail::delta32(load_raw32(ip + 12), from_ip);
        store_raw32(ip + 12, from_ip);
    }
    store_raw16(ip + kIpCsumOffset, detail::apply_delta(load_raw16(ip + kIpCsumOffset), outer));

    uint8_t* qip = data + q.ip_offset;
    uint8_t* l4 = data + q.l4_offset;
    // The quoted L4 checksum covers the pseudo-header's addresses and the ports: UDP's lies in
    // the 8 bytes every error quotes, TCP's when the router quoted 18 or more (most quote more).
    const size_t end = static_cast<size_t>(p.l3_offset) + p.l3_len;
    const size_t csum_at = q.proto == IPPROTO_UDP ? kUdpCsumOffset : kTcpCsumOffset;
    const bool udp_none = q.proto == IPPROTO_UDP && load_raw16(l4 + kUdpCsumOffset) == 0;
    if (q.l4_offset + csum_at + 2 <= end && !udp_none) {
        const uint64_t delta = detail::delta32(load_raw32(qip + 12), qsrc_ip) +
                               detail::delta32(load_raw32(qip + 16), qdst_ip) +
                               detail::delta32(load_raw32(l4), uint32_t(qsrc_port) | uint32_t(qdst_port) << 16);
        uint16_t c = detail::apply_delta(load_raw16(l4 + csum_at), delta);
        if (q.proto == IPPROTO_UDP && c == 0) c = 0xffff;
        store_raw16(l4 + csum_at, c);
    }
    store_raw32(qip + 12, qsrc_ip);
    store_raw32(qip + 16, qdst_ip);
    store_raw16(l4, qsrc_port);
    store_raw16(l4 + 2, qdst_port);
    const size_t qihl = static_cast<size_t>(q.l4_offset) - q.ip_offset;
    store_raw16(qip + kIpCsumOffset, ipv4_header_checksum(qip, qihl));

    uint8_t* icmp = data + p.l4_offset;
    const size_t icmp_len = static_cast<size_t>(p.l3_offset) + p.l3_len - p.l4_offset;
    store_raw16(icmp + kIcmpCsumOffset, icmp_checksum(icmp, icmp_len));
}

}  // namespace ferry::packet
