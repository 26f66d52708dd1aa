// XXH64, the 64-bit xxHash of Yann Collet, written out here so that every Ferry
// instance computes bit-identical values on every machine and build: the
// Maglev permutations and the per-packet table index both depend on it, and
// two instances that disagree would send one flow to two backends.
//
// It is inline because the data plane hashes a short key of constant length
// (a 13-byte 5-tuple, a 4- or 16-byte address) per packet: inlined, the
// compiler drops the length branches. Bytes are read little-endian whatever
// the host, so the values match the reference XXH64 everywhere.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ferry::balance::xxh64 {

inline constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
inline constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
inline constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
inline constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
inline constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ULL;

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof(v));
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    return v;
}

inline uint64_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
    return v;
}

inline uint64_t mix_round(uint64_t acc, uint64_t input) {
    acc += input * kPrime2;
    acc = std::rotl(acc, 31);
    return acc * kPrime1;
}

inline uint64_t merge_round(uint64_t acc, uint64_t val) {
    acc ^= mix_round(0, val);
    return acc * kPrime1 + kPrime4;
}

inline uint64_t avalanche(uint64_t h) {
    h ^= h >> 33;
    h *= kPrime2;
    h ^= h >> 29;
    h *= kPrime3;
    h ^= h >> 32;
    return h;
}

inline uint64_t hash(const void* data, size_t len, uint64_t seed) {
    const auto* p = static_cast<const uint8_t*>(data);
    const uint8_t* const end = p + len;
    uint64_t h;
    if (len >= 32) {
        const uint8_t* const limit = end - 32;
        uint64_t v1 = seed + kPrime1 + kPrime2;
        uint64_t v2 = seed + kPrime2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - kPrime1;
        do {
            v1 = mix_round(v1, load64(p));
            v2 = mix_round(v2, load64(p + 8));
            v3 = mix_round(v3, load64(p + 16));
            v4 = mix_round(v4, load64(p + 24));
            p += 32;
        } while (p <= limit);
        h = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed + kPrime5;
    }
    h += static_cast<uint64_t>(len);
    while (end - p >= 8) {
        h ^= mix_round(0, load64(p));
        h = std::rotl(h, 27) * kPrime1 + kPrime4;
        p += 8;
    }
    if (end - p >= 4) {
        h ^= load32(p) * kPrime1;
        h = std::rotl(h, 23) * kPrime2 + kPrime3;
        p += 4;
    }
    while (p < end) {
        h ^= static_cast<uint64_t>(*p) * kPrime5;
        h = std::rotl(h, 11) * kPrime1;
        ++p;
    }
    return avalanche(h);
}

// hash() of the 13-byte IPv4 5-tuple key {src, dst, src_port, dst_port,
// proto} (addresses and ports in network order, as in the packet), computed
// from the fields in registers. Building the key in memory with 4-, 2- and
// 1-byte stores and reading it back as an 8-byte word stalls on store
// forwarding, once per new flow.
inline uint64_t hash_5tuple_v4(uint32_t src, uint32_t dst, uint16_t src_port, uint16_t dst_port, uint8_t proto,
                               uint64_t seed) {
    static_assert(std::endian::native == std::endian::little, "the field order below is the little-endian load");
    uint64_t h = seed + kPrime5 + 13;
    h ^= mix_round(0, uint64_t(src) | uint64_t(dst) << 32);
    h = std::rotl(h, 27) * kPrime1 + kPrime4;
    h ^= (uint64_t(src_port) | uint64_t(dst_port) << 16) * kPrime1;
    h = std::rotl(h, 23) * kPrime2 + kPrime3;
    h ^= uint64_t(proto) * kPrime5;
    h = std::rotl(h, 11) * kPrime1;
    return avalanche(h);
}

}  // namespace ferry::balance::xxh64
