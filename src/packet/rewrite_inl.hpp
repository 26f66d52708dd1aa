// In-place NAT rewrites of IPv4 addresses and L4 ports with incremental
// checksum updates (RFC 1624 eqn. 3). Hot path: no allocation, no calls, one
// fold per checksum however many fields change. Inline, as every forwarded
// packet is rewritten (a call cost ~10 instructions of ~70). Only included
// from packet/packet.hpp.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>

#include "packet/bytes.hpp"
#include "packet/csum_impl.hpp"

namespace ferry::packet {

namespace rewrite_detail {

using detail::apply_delta;
using detail::delta16;
using detail::delta32;
using detail::load_raw16;
using detail::load_raw32;
using detail::store_raw16;
using detail::store_raw32;

inline constexpr size_t kIpSrcOffset = 12;
inline constexpr size_t kIpDstOffset = 16;
inline constexpr size_t kIpCsumOffset = 10;
inline constexpr size_t kSrcPortOffset = 0;
inline constexpr size_t kDstPortOffset = 2;
inline constexpr size_t kTcpCsumOffset = 16;
inline constexpr size_t kUdpCsumOffset = 6;

// Which side(s) of the packet a rewrite touches; the compiler drops the unused
// half of rewrite() for each instantiation.
enum Side : unsigned { kSrc = 1, kDst = 2 };

// Replaces the 16-bit word at `p` and returns its checksum delta.
inline uint32_t replace16(uint8_t* p, uint16_t new_v) {
    const uint16_t old_v = load_raw16(p);
    store_raw16(p, new_v);
    return delta16(old_v, new_v);
}

// Replaces the 32-bit word at `p` and returns its checksum delta.
inline uint64_t replace32(uint8_t* p, uint32_t new_v) {
    const uint32_t old_v = load_raw32(p);
    store_raw32(p, new_v);
    return delta32(old_v, new_v);
}

inline void fix_csum(uint8_t* field, uint64_t delta) { store_raw16(field, apply_delta(load_raw16(field), delta)); }

// Always inline, as the three below: GCC otherwise keeps out-of-line copies
// for the worker's forward and reply paths, a call on every packet.
template <unsigned kSides>
__attribute__((always_inline)) inline void rewrite(uint8_t* data, const Parsed& p, uint32_t src_ip, uint16_t src_port,
                                                   uint32_t dst_ip, uint16_t dst_port) {
    uint8_t* ip = data + p.l3_offset;
    uint8_t* l4 = data + p.l4_offset;

    uint64_t addr_delta = 0;
    if constexpr ((kSides & kSrc) != 0) {
        addr_delta += replace32(ip + kIpSrcOffset, src_ip);
    }
    if constexpr ((kSides & kDst) != 0) {
        addr_delta += replace32(ip + kIpDstOffset, dst_ip);
    }
    fix_csum(ip + kIpCsumOffset, addr_delta);

    // The TCP/UDP checksum covers the pseudo-header (addresses) and the ports.
    size_t csum_offset = 0;
    switch (p.proto) {
        case IPPROTO_TCP: csum_offset = kTcpCsumOffset; break;
        case IPPROTO_UDP: csum_offset = kUdpCsumOffset; break;
        default: return;  // ICMP: its checksum does not cover the IP header; no ports.
    }

    uint64_t l4_delta = addr_delta;
    if constexpr (kSides == (kSrc | kDst)) {
        // The two ports are adjacent: one 32-bit field.
        uint8_t ports[4];
        store_raw16(ports, src_port);
        store_raw16(ports + 2, dst_port);
        l4_delta += replace32(l4 + kSrcPortOffset, load_raw32(ports));
    } else if constexpr ((kSides & kSrc) != 0) {
        l4_delta += replace16(l4 + kSrcPortOffset, src_port);
    } else {
        l4_delta += replace16(l4 + kDstPortOffset, dst_port);
    }
    uint8_t* csum_field = l4 + csum_offset;
    const uint16_t old_csum = load_raw16(csum_field);
    if (p.proto == IPPROTO_UDP) {
        if (old_csum == 0) {
            return;  // RFC 768: no checksum; keep it that way.
        }
        const uint16_t csum = apply_delta(old_csum, l4_delta);
        store_raw16(csum_field, csum == 0 ? uint16_t{0xffff} : csum);  // 0 would mean "none"
        return;
    }
    store_raw16(csum_field, apply_delta(old_csum, l4_delta));
}

}  // namespace rewrite_detail

__attribute__((always_inline)) inline void rewrite_dst(uint8_t* data, const Parsed& p, uint32_t new_ip,
                                                       uint16_t new_port) {
    using namespace rewrite_detail;
    rewrite<kDst>(data, p, 0, 0, new_ip, new_port);
}

__attribute__((always_inline)) inline void rewrite_src(uint8_t* data, const Parsed& p, uint32_t new_ip,
                                                       uint16_t new_port) {
    using namespace rewrite_detail;
    rewrite<kSrc>(data, p, new_ip, new_port, 0, 0);
}

__attribute__((always_inline)) inline void rewrite_src_dst(uint8_t* data, const Parsed& p, uint32_t new_src_ip,
                                                           uint16_t new_src_port, uint32_t new_dst_ip,
                                                           uint16_t new_dst_port) {
    using namespace rewrite_detail;
    rewrite<kSrc | kDst>(data, p, new_src_ip, new_src_port, new_dst_ip, new_dst_port);
}

}  // namespace ferry::packet
