// Smooth weighted round robin: an immutable sequence of backend indices built
// on the control thread, which workers walk with a private cursor.
//
// The sequence is one full cycle: backend i appears exactly w_i times (after
// the weights are reduced, see reduce_swrr_weights), and the appearances are
// spread out. Precisely: after the first m entries of the cycle, starting at
// any position and wrapping around, backend i has appeared within one of
// m * w_i / W times (strictly), W the sum of the weights. So in any window of
// k consecutive entries (wrapping included) it appears at most
// ceil(k * w_i / W) + 1 times and at least floor(k * w_i / W) - 1 times: no
// bursts to one backend and no long gaps, wherever a worker starts.
//
// Why not nginx's algorithm. nginx's smooth weighted round robin (add each
// weight to a running "current" value, pick the largest, subtract the total)
// is smooth for a few backends but not in general: with weights
// {1 x 9, 500, 750} it puts the 750 backend 198 times into a window of 329,
// where the bound above is 197; with a few heavy and many light backends it
// reaches 2.3 entries above the fair count. The builder here is WF2Q-style
// sequencing instead: entry j of backend i is eligible from fluid time
// j * W / w_i on, and each position takes the eligible backend whose next
// entry finishes first (fluid time (j + 1) * W / w_i). Bennett and Zhang's
// WF2Q bound then gives the "within one" property above. Exact integer
// arithmetic, O(W log n) to build.
#pragma once

#include <cstdint>
#include <vector>

#include "balance/least_load.hpp"  // kNoPick, shared by all pickers

namespace ferry::balance {

inline constexpr uint32_t kDefaultSwrrMaxLen = 65536;

// The weights the sequence is built from: all non-zero weights divided by their
// greatest common divisor; then, if their sum is still above max_len, scaled to
// sum exactly max_len (largest remainder rounding), every non-zero weight kept
// at >= 1 (those whose share is under one entry get exactly 1, the others
// share the rest), and divided by their GCD again. A weight of 0 stays 0. If
// more than max_len weights are non-zero, each gets 1 (the cycle is then
// longer than max_len). Throws std::invalid_argument when max_len is 0.
std::vector<uint32_t> reduce_swrr_weights(const std::vector<uint32_t>& weights,
                                          uint32_t max_len = kDefaultSwrrMaxLen);

// One cycle of the smooth weighted sequence: indices into `weights`, length the
// sum of reduce_swrr_weights(weights, max_len). Weight 0 never appears; an
// empty or all-zero list gives an empty sequence. Deterministic: the same
// weights give the same sequence on every instance. Control path (allocates);
// throws std::invalid_argument when max_len is 0.
std::vector<uint32_t> build_swrr_sequence(const std::vector<uint32_t>& weights,
                                          uint32_t max_len = kDefaultSwrrMaxLen);

// Where worker `worker` of `workers` starts in a sequence of length `len`:
// evenly spaced, so the workers together stay as smooth as one walker.
inline uint32_t swrr_start_offset(uint32_t worker, uint32_t workers, uint32_t len) noexcept {
    if (workers == 0 || len == 0) return 0;
    return static_cast<uint32_t>(uint64_t(len) * (worker % workers) / workers);
}

// A worker's read position in a shared SWRR sequence: the sequence is immutable
// and shared by all workers, so the only per-worker state is this cursor. The
// cursor does not own the entries: re-seat it when the table is replaced.
class SwrrCursor {
public:
    SwrrCursor() noexcept = default;
    SwrrCursor(const uint32_t* seq, uint32_t len, uint32_t start) noexcept
        : seq_(len == 0 ? nullptr : seq),
          len_(seq == nullptr ? 0 : len),
          pos_(len_ == 0 ? 0 : start % len_) {}
    SwrrCursor(const std::vector<uint32_t>& seq, uint32_t start) noexcept
        : SwrrCursor(seq.data(), static_cast<uint32_t>(seq.size()), start) {}

    // The next backend index, or kNoPick when the sequence is empty. No
    // allocation, no division.
    uint32_t next() noexcept {
        if (len_ == 0) return kNoPick;
        const uint32_t v = seq_[pos_];
        pos_ = pos_ + 1 == len_ ? 0 : pos_ + 1;
        return v;
    }

    uint32_t position() const noexcept { return pos_; }
    uint32_t size() const noexcept { return len_; }
    bool empty() const noexcept { return len_ == 0; }

private:
    const uint32_t* seq_ = nullptr;
    uint32_t len_ = 0;
    uint32_t pos_ = 0;
};

}  // namespace ferry::balance
