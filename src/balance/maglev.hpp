// Weighted Maglev lookup tables: a pure function from (backends, size) to a
// table of backend indices, in the style of Katran's ring builder.
//
// Determinism: each backend's permutation comes from a hash of its identity
// (address, port) with fixed seeds, and backends are sorted by identity before
// filling, so every Ferry instance builds the same table from the same set,
// whatever order the config lists it in.
//
// How the table is filled (see maglev.cpp for the reasoning and the figures):
//  * Exact quotas. With W the sum of the weights, a backend of weight w is owed
//    size * w / W slots. It gets the floor of that, or the floor plus one: the
//    size - sum(floors) leftover slots go to backends with a fractional part,
//    one each, in the order the fill below reaches them. So every backend is
//    within one slot of its exact share (weight 3 gets 3x the slots of weight
//    1, to +-1 slot), and a backend whose exact share is under one slot may get
//    none.
//  * Maglev preference order: backend b walks its own permutation of the slots,
//    offset(b) + k * skip(b) mod size for k = 0, 1, 2, ...
//  * Time order: backend b looks at its k-th preferred slot at time
//    (k + 1/2) / weight(b), so heavier backends walk faster. A backend takes the
//    slot it looks at if the slot is free and it is still under its quota; if
//    the slot is taken, that look is spent (unlike classic Maglev, which skips
//    taken slots within one turn). So a backend looks at a given slot at a
//    time that depends on nothing but its own identity and weight, and a change
//    to one backend moves few slots of the others. With M = 65537: 1.3x the
//    ideal when 1 of 100 backends leaves (classic Maglev: 1.6x), 2.0x when 10
//    of 1000 leave (classic: 3.3x; 1.3x at M = 655373), 1.4x when one weight
//    halves (classic: 1.9x).
//  * Only weight ratios matter: multiplying every weight by the same factor
//    gives the same table.
//
// A build of 1000 backends at M = 65537 takes ~1.5 ms of CPU (more with many
// distinct weights: ~15 ms when all 1000 differ); at M = 655373, ~20 ms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "balance/hash.hpp"
#include "common/ip_address.hpp"

namespace ferry::balance {

// One candidate as the builder sees it.
struct MaglevBackend {
    Endpoint id;          // identity: hashed for the permutation and used for ordering
    uint32_t weight = 0;  // 0..65535; 0 = gets no slots
};

inline constexpr uint32_t kDefaultTableSize = 65537;
inline constexpr uint32_t kLargeTableSize = 655373;
// Largest table accepted: the largest prime below 2^24 (64 MiB of entries).
// Keeping size < 2^24 bounds the builder's exact time keys to 58 bits.
inline constexpr uint32_t kMaxTableSize = 16777213;
inline constexpr uint32_t kMaxWeight = 65535;
inline constexpr uint32_t kNoBackend = 0xffffffffu;

bool is_prime(uint32_t n);

// Table of `size` entries. Entry i is an index into `backends` (the caller's
// order), or kNoBackend for every entry when all weights are 0 or the list is
// empty. Each backend with weight w > 0 gets floor(size * w / sum(w)) or that
// plus one slots (never more than one slot off its exact share); weight 0 gets
// none.
//
// Throws std::invalid_argument when:
//  * size is not prime, or is above kMaxTableSize;
//  * more backends have a non-zero weight than the table has slots;
//  * a weight is above kMaxWeight;
//  * two backends share an identity (address and port), whatever their weights.
std::vector<uint32_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size);

// 64-bit hash of a 5-tuple or a source address, used to index the table.
// Stable across machines and builds (not std::hash): it is XXH64 (see hash.hpp),
// inline so that a constant-length key costs a few nanoseconds.
inline uint64_t hash_bytes(const void* data, size_t len, uint64_t seed) {
    return xxh64::hash(data, len, seed);
}

// Maps a 64-bit hash onto [0, size) without a division: the high half of
// hash * size (Lemire's multiply-shift range reduction). Uniform to within
// size / 2^64. The workers' per-new-flow lookup (and ferryctl's "which backend")
// index the table with it; instances that must agree on a pick (several
// balancers behind one router) must all run it.
inline uint32_t table_slot(uint64_t hash, uint32_t size) {
    __extension__ using Wide = unsigned __int128;
    return static_cast<uint32_t>((static_cast<Wide>(hash) * size) >> 64);
}

}  // namespace ferry::balance
