// Full and incremental Internet checksums (RFC 1071, RFC 1624).

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>

#include "packet/bytes.hpp"
#include "packet/csum_impl.hpp"
#include "packet/packet.hpp"

namespace ferry::packet {

namespace {

using detail::fold;
using detail::load_raw32;

constexpr size_t kIpv4CsumOffset = 10;
constexpr size_t kTcpCsumOffset = 16;
constexpr size_t kUdpCsumOffset = 6;

// Unfolded sum of the bytes as 16-bit words in memory order; an odd last byte
// is padded with a zero byte after it (RFC 1071). 32-bit loads are fine: the
// sum of 32-bit words folds to the same value as the sum of their halves
// because 2^16 == 1 (mod 0xffff).
uint64_t raw_sum(const uint8_t* p, size_t n) {
    uint64_t sum = 0;
    for (; n >= 4; p += 4, n -= 4) {
        sum += load_raw32(p);
    }
    if (n >= 2) {
        sum += detail::load_raw16(p);
        p += 2;
        n -= 2;
    }
    if (n == 1) {
        const uint8_t last[2] = {p[0], 0};
        sum += detail::load_raw16(last);
    }
    return sum;
}

// Sum of [p, p+n) with the 16-bit word at `skip` (even, the checksum field)
// taken as zero. `skip` past the end means nothing is skipped.
uint64_t raw_sum_skipping(const uint8_t* p, size_t n, size_t skip) {
    if (skip >= n || n - skip < 2) {
        return raw_sum(p, n);
    }
    return raw_sum(p, skip) + raw_sum(p + skip + 2, n - skip - 2);
}

}  // namespace

uint16_t csum_update16(uint16_t csum, uint16_t old_v, uint16_t new_v) {
    return detail::apply_delta(csum, detail::delta16(old_v, new_v));
}

uint16_t csum_update32(uint16_t csum, uint32_t old_v, uint32_t new_v) {
    return detail::apply_delta(csum, detail::delta32(old_v, new_v));
}

uint16_t ipv4_header_checksum(const uint8_t* ip_header, size_t ihl_bytes) {
    return static_cast<uint16_t>(~fold(raw_sum_skipping(ip_header, ihl_bytes, kIpv4CsumOffset)));
}

uint16_t icmp_checksum(const uint8_t* icmp, size_t len) {
    return static_cast<uint16_t>(~fold(raw_sum_skipping(icmp, len, 2)));
}

uint16_t l4_checksum_ipv4(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, const uint8_t* l4, size_t l4_len) {
    // Pseudo-header: source, destination, zero/protocol, L4 length (RFC 793/768).
    uint64_t sum =
        static_cast<uint64_t>(src_ip) + dst_ip + htons(proto) + htons(static_cast<uint16_t>(l4_len));
    size_t skip = SIZE_MAX;
    if (proto == IPPROTO_TCP) {
        skip = kTcpCsumOffset;
    } else if (proto == IPPROTO_UDP) {
        skip = kUdpCsumOffset;
    }
    sum += raw_sum_skipping(l4, l4_len, skip);
    const auto csum = static_cast<uint16_t>(~fold(sum));
    // RFC 768: a computed UDP checksum of zero is sent as all ones; zero means "none".
    if (proto == IPPROTO_UDP && csum == 0) {
        return 0xffff;
    }
    return csum;
}

}  // namespace ferry::packet
