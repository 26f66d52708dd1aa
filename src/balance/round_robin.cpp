// Smooth weighted round robin: weight reduction and the WF2Q-style sequence
// builder. The header states the contract and why it is not nginx's algorithm.
//
// Sequencing. Think of the cycle as W unit slots served to backends at rates
// w_i / W (the fluid schedule: backend i's j-th entry runs from j * W / w_i to
// (j + 1) * W / w_i). Slot t goes to the backend, among those whose next entry
// has already started in the fluid schedule (j * W / w_i <= t), whose next entry
// finishes first. At least one backend is always eligible (the counts sum to t,
// so some backend has j_i * W <= t * w_i), and by the WF2Q bound every entry is
// placed no earlier than its fluid start and no later than its fluid finish;
// hence the count of backend i after m slots is strictly within 1 of
// m * w_i / W. At m = W every count is then exactly w_i, the state is the start
// state again, and the cycle repeats seamlessly, so the property also holds for
// windows that wrap around.
//
// Times are compared as exact rationals by cross-multiplication in 128 bits;
// ties go to the lower index, which keeps the result deterministic.
#include "balance/round_robin.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace ferry::balance {

namespace {

__extension__ using Wide = unsigned __int128;

uint64_t gcd_of_nonzero(const std::vector<uint64_t>& w) {
    uint64_t g = 0;
    for (const uint64_t x : w) {
        if (x != 0) g = std::gcd(g, x);
    }
    return g;
}

void divide_by_gcd(std::vector<uint64_t>& w) {
    const uint64_t g = gcd_of_nonzero(w);
    if (g > 1) {
        for (uint64_t& x : w) x /= g;
    }
}

// Scales non-zero weights summing to `sum` > max_len down to sum exactly
// max_len, each kept >= 1. Requires fewer than max_len non-zero weights.
void scale_down(std::vector<uint64_t>& w, uint64_t sum, uint64_t max_len) {
    std::vector<uint32_t> order;
    for (uint32_t i = 0; i < w.size(); ++i) {
        if (w[i] != 0) order.push_back(i);
    }
    // Smallest first: the weights whose share is under one entry form a prefix.
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return w[a] < w[b]; });

    // Lift the prefix to 1 each. After lifting p of them the others share
    // `room` = max_len - p entries in proportion to their weights (sum `rest`);
    // the next one is lifted if its share of that is under 1.
    uint64_t room = max_len;
    uint64_t rest = sum;
    size_t p = 0;
    while (p < order.size() && Wide(w[order[p]]) * room < rest) {
        rest -= w[order[p]];
        w[order[p]] = 1;
        --room;
        ++p;
    }

    // Largest remainder apportionment of `room` among the others: each gets
    // floor(w * room / rest) >= 1, the leftover goes one each to the largest
    // remainders (ties: lower index).
    struct Share {
        uint32_t index;
        uint64_t remainder;
    };
    std::vector<Share> shares;
    shares.reserve(order.size() - p);
    uint64_t given = 0;
    for (size_t k = p; k < order.size(); ++k) {
        const uint32_t i = order[k];
        const Wide exact = Wide(w[i]) * room;
        w[i] = static_cast<uint64_t>(exact / rest);
        given += w[i];
        shares.push_back({i, static_cast<uint64_t>(exact % rest)});
    }
    std::sort(shares.begin(), shares.end(), [](const Share& a, const Share& b) {
        return a.remainder != b.remainder ? a.remainder > b.remainder : a.index < b.index;
    });
    for (size_t k = 0; given < room && k < shares.size(); ++k, ++given) ++w[shares[k].index];
}

std::vector<uint64_t> reduce(const std::vector<uint32_t>& weights, uint32_t max_len) {
    if (max_len == 0) throw std::invalid_argument("swrr: max_len must be at least 1");
    std::vector<uint64_t> w(weights.begin(), weights.end());
    divide_by_gcd(w);
    uint64_t sum = 0;
    uint64_t nonzero = 0;
    for (const uint64_t x : w) {
        sum += x;
        nonzero += x != 0;
    }
    if (sum <= max_len) return w;
    if (nonzero >= max_len) {
        for (uint64_t& x : w) x = x != 0 ? 1 : 0;
        return w;
    }
    scale_down(w, sum, max_len);
    divide_by_gcd(w);
    return w;
}

}  // namespace

std::vector<uint32_t> reduce_swrr_weights(const std::vector<uint32_t>& weights, uint32_t max_len) {
    const std::vector<uint64_t> w = reduce(weights, max_len);
    std::vector<uint32_t> out(w.size());
    // Every reduced weight is <= its input weight, so it fits.
    for (size_t i = 0; i < w.size(); ++i) out[i] = static_cast<uint32_t>(w[i]);
    return out;
}

std::vector<uint32_t> build_swrr_sequence(const std::vector<uint32_t>& weights, uint32_t max_len) {
    const std::vector<uint64_t> w = reduce(weights, max_len);
    uint64_t total = 0;
    for (const uint64_t x : w) total += x;
    std::vector<uint32_t> seq;
    if (total == 0) return seq;
    seq.reserve(total);

    std::vector<uint64_t> count(w.size(), 0);  // entries placed so far, per backend
    // Heap orders ("a after b"), as std heaps keep the greatest at the front.
    // Fluid start of the next entry: count * total / w; finish: (count + 1) * total / w.
    const auto starts_later = [&](uint32_t a, uint32_t b) {
        const Wide l = Wide(count[a]) * w[b];
        const Wide r = Wide(count[b]) * w[a];
        return l != r ? l > r : a > b;
    };
    const auto finishes_later = [&](uint32_t a, uint32_t b) {
        const Wide l = Wide(count[a] + 1) * w[b];
        const Wide r = Wide(count[b] + 1) * w[a];
        return l != r ? l > r : a > b;
    };
    std::vector<uint32_t> waiting;   // next entry not yet started, by start
    std::vector<uint32_t> eligible;  // next entry started, by finish
    waiting.reserve(w.size());
    eligible.reserve(w.size());
    for (uint32_t i = 0; i < w.size(); ++i) {
        if (w[i] != 0) waiting.push_back(i);
    }
    std::make_heap(waiting.begin(), waiting.end(), starts_later);

    for (uint64_t t = 0; t < total; ++t) {
        while (!waiting.empty()) {
            const uint32_t i = waiting.front();
            if (Wide(count[i]) * total > Wide(t) * w[i]) break;
            std::pop_heap(waiting.begin(), waiting.end(), starts_later);
            waiting.pop_back();
            eligible.push_back(i);
            std::push_heap(eligible.begin(), eligible.end(), finishes_later);
        }
        // Never empty (see the file comment); the check keeps a bug from being UB.
        if (eligible.empty()) throw std::logic_error("swrr: no eligible backend");
        std::pop_heap(eligible.begin(), eligible.end(), finishes_later);
        const uint32_t i = eligible.back();
        eligible.pop_back();
        seq.push_back(i);
        ++count[i];
        waiting.push_back(i);
        std::push_heap(waiting.begin(), waiting.end(), starts_later);
    }
    return seq;
}

}  // namespace ferry::balance
