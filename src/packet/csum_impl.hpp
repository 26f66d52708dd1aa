// Inline one's complement arithmetic shared by the checksum and rewrite code.
// Private to the packet library (included by its inline rewrites, rewrite_inl.hpp).
//
// All 16-bit words are taken in memory order (memcpy into a uint16_t), never
// swapped: the Internet checksum is byte-order independent (RFC 1071 sec. 2B),
// so a sum of raw words, complemented and stored back raw, yields the right
// bytes on little- and big-endian hosts alike.
#pragma once

#include <bit>
#include <cstdint>

namespace ferry::packet::detail {

// Folds a wide sum of 16-bit words to 16 bits with end-around carry. The
// result is 0x0000 only if the sum was 0; any other multiple of 0xffff folds to
// 0xffff (one's complement "-0"), which is what both RFC 1071 and RFC 1624
// eqn. 3 expect. Two steps of about four instructions each (add with carry,
// then add-the-rotation), where halving 16 bits at a time took twelve: every
// forwarded packet folds twice.
inline uint16_t fold(uint64_t sum) {
    // 64 -> 32 bits: high half plus low half, the carry out added back
    // (2^32 is 1 modulo 0xffff). Cannot carry again: lo + hi - 2^32 + 1 < 2^32.
    const auto lo = static_cast<uint32_t>(sum);
    uint32_t s = lo + static_cast<uint32_t>(sum >> 32);
    s += s < lo ? 1u : 0u;
    // 32 -> 16 bits: s + rotr(s, 16) holds H + L in its high half, plus the
    // carry out of L + H in its low half: the end-around carry.
    s += std::rotr(s, 16);
    return static_cast<uint16_t>(s >> 16);
}

// Terms that replace 16-bit word `old_v` with `new_v` in a sum: ~m + m'.
inline uint32_t delta16(uint16_t old_v, uint16_t new_v) {
    return static_cast<uint32_t>(static_cast<uint16_t>(~old_v)) + new_v;
}
// The same for a 32-bit field, as one 32-bit term of a 64-bit sum: 2^16 is 1
// modulo 0xffff, so a 32-bit word adds what its two 16-bit words add, once
// folded (and in memory order on either endianness, as above). Fewer
// instructions than two delta16() on the packet path.
inline uint64_t delta32(uint32_t old_v, uint32_t new_v) { return uint64_t(~old_v) + new_v; }

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with `delta` the sum of ~m + m'
// terms (any number of them that fits a uint64_t).
inline uint16_t apply_delta(uint16_t csum, uint64_t delta) {
    return static_cast<uint16_t>(~fold(static_cast<uint64_t>(static_cast<uint16_t>(~csum)) + delta));
}

}  // namespace ferry::packet::detail
