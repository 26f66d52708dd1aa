// Weighted Maglev lookup tables: a pure function from (backends, size) to a
// table of backend indices, in the style of Katran's ring builder.
//
// Determinism: each backend's permutation comes from a hash of its identity
// (address, port) with fixed seeds, and backends are sorted by identity before
// filling, so every Ferry instance builds the same table from the same set,
// whatever order the config lists it in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/ip_address.hpp"

namespace ferry::balance {

// One candidate as the builder sees it.
struct MaglevBackend {
    Endpoint id;          // identity: hashed for the permutation and used for ordering
    uint32_t weight = 0;  // 0..65535; 0 = gets no slots
};

inline constexpr uint32_t kDefaultTableSize = 65537;
inline constexpr uint32_t kLargeTableSize = 655373;
inline constexpr uint32_t kNoBackend = 0xffffffffu;

bool is_prime(uint32_t n);

// Table of `size` entries (size must be prime; throws std::invalid_argument
// otherwise). Entry i is an index into `backends` (the caller's order), or
// kNoBackend for every entry when all weights are 0 or the list is empty.
// Each backend with weight w > 0 gets round(size * w / sum(w)) slots, +-1.
std::vector<uint32_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size);

// 64-bit hash of a 5-tuple or a source address, used to index the table.
// Stable across machines and builds (not std::hash).
uint64_t hash_bytes(const void* data, size_t len, uint64_t seed);

}  // namespace ferry::balance
