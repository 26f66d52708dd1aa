// Control-path helpers of the load-based pickers; the pickers themselves are
// inline in the header.
#include "balance/least_load.hpp"

#include <stdexcept>
#include <string>

namespace ferry::balance {

std::vector<uint32_t> build_cumulative_weights(const std::vector<uint32_t>& weights) {
    std::vector<uint32_t> out;
    out.reserve(weights.size());
    uint64_t sum = 0;
    for (const uint32_t w : weights) {
        sum += w;
        if (sum > 0xffffffffu) {
            throw std::overflow_error("cumulative weights: total above 2^32 - 1 after " +
                                      std::to_string(out.size() + 1) + " backends");
        }
        out.push_back(static_cast<uint32_t>(sum));
    }
    return out;
}

}  // namespace ferry::balance
