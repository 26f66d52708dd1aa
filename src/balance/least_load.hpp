// Load-based pickers for new flows: weighted least connections and weighted
// power of two random choices.
//
// Both compare backends by (active + 1) / weight, "how loaded would it be if it
// took this flow", in exact integer arithmetic: a / w < b / v is tested as
// a * v < b * w in 128 bits, so there is no floating point and no division.
// A negative active count (a racy decrement) counts as 0. Weight 0 is never
// picked.
//
// The pickers are inline: they run per new flow on the workers. They allocate
// nothing and throw nothing. The caller owns the arrays (weights and active
// counts indexed by backend) and the randomness (e.g. a per-worker xorshift);
// the arrays may be read while other lcores update the counts, the pick is
// then merely approximate.
#pragma once

#include <cstdint>
#include <vector>

namespace ferry::balance {

// "No backend can be picked": empty set, or every weight 0.
inline constexpr uint32_t kNoPick = 0xffffffffu;

namespace detail {

__extension__ using Wide = unsigned __int128;

// active + 1, with negative counts read as 0. Never 0, never overflows.
inline uint64_t load_plus_one(int64_t active) noexcept {
    return (active > 0 ? static_cast<uint64_t>(active) : 0) + 1;
}

// Maps a 32-bit random value onto [0, n) without a division (multiply-shift).
inline uint32_t scale32(uint32_t random, uint32_t n) noexcept {
    return static_cast<uint32_t>((uint64_t(random) * n) >> 32);
}

// First index i in [0, n) with cumulative[i] > target; requires n >= 1 and
// target < cumulative[n - 1]. Zero-weight entries repeat the previous sum, so
// they are never the first to exceed it. Branch-light binary search.
inline uint32_t weighted_index(const uint32_t* cumulative, uint32_t n, uint32_t target) noexcept {
    uint32_t lo = 0;
    uint32_t len = n;  // the answer is in [lo, lo + len)
    while (len > 1) {
        const uint32_t half = len / 2;
        lo = cumulative[lo + half - 1] <= target ? lo + half : lo;
        len -= half;
    }
    return lo;
}

}  // namespace detail

// Weighted least connections: the index minimizing (active[i] + 1) / weights[i]
// over the non-zero weights, or kNoPick if there is none. Ties go to the first
// tied index at or after a start index drawn from `random` (walking with
// wrap-around), so equal backends share new flows evenly. O(n).
inline uint32_t pick_least_conn(const uint32_t* weights, const int64_t* active, uint32_t n,
                                uint32_t random) noexcept {
    if (n == 0) return kNoPick;
    // Sentinel "best" of load UINT64_MAX over weight 1: any backend of non-zero
    // weight beats it, and a zero weight never beats anything (x * 0 = 0).
    uint32_t best = kNoPick;
    uint64_t best_load = ~uint64_t{0};
    uint64_t best_weight = 1;
    const auto consider = [&](uint32_t i) noexcept {
        const uint64_t load = detail::load_plus_one(active[i]);
        const uint32_t weight = weights[i];
        if (detail::Wide(load) * best_weight < detail::Wide(best_load) * weight) {
            best = i;
            best_load = load;
            best_weight = weight;
        }
    };
    const uint32_t start = detail::scale32(random, n);
    for (uint32_t i = start; i < n; ++i) consider(i);
    for (uint32_t i = 0; i < start; ++i) consider(i);
    return best;
}

// Power of two random choices, weighted: draws two indices with probability
// proportional to weight (the low and high 32 bits of `random` each pick one,
// by binary search in `cumulative_weights`, see build_cumulative_weights) and
// returns the one with the lower (active + 1) / weight; the first draw on a
// tie. Both draws may land on the same index. kNoPick if n is 0 or all
// weights are 0. O(log n).
inline uint32_t pick_two_choices(const uint32_t* cumulative_weights, const uint32_t* weights,
                                 const int64_t* active, uint32_t n, uint64_t random) noexcept {
    if (n == 0) return kNoPick;
    const uint32_t total = cumulative_weights[n - 1];
    if (total == 0) return kNoPick;
    const uint32_t a = detail::weighted_index(cumulative_weights, n,
                                              detail::scale32(static_cast<uint32_t>(random), total));
    const uint32_t b = detail::weighted_index(cumulative_weights, n,
                                              detail::scale32(static_cast<uint32_t>(random >> 32), total));
    // b is lighter when (active_b + 1) * w_a < (active_a + 1) * w_b.
    const bool b_lighter = detail::Wide(detail::load_plus_one(active[b])) * weights[a] <
                           detail::Wide(detail::load_plus_one(active[a])) * weights[b];
    return b_lighter ? b : a;
}

// Running sums for pick_two_choices: out[i] = weights[0] + ... + weights[i].
// Build once per table (control path). Throws std::overflow_error when the
// total exceeds 2^32 - 1 (65538 backends of weight 65535 would).
std::vector<uint32_t> build_cumulative_weights(const std::vector<uint32_t>& weights);

}  // namespace ferry::balance
