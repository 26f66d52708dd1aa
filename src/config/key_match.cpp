#include "config/key_match.hpp"

#include <algorithm>
#include <vector>

namespace ferry::config_detail {

std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size(), m = b.size();
    // Three rolling rows: the swap rule looks two rows back.
    std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
    for (std::size_t j = 0; j <= m; ++j) prev[j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                cur[j] = std::min(cur[j], prev2[j - 2] + 1);
        }
        std::swap(prev2, prev);
        std::swap(prev, cur);
    }
    return prev[m];
}

std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates) {
    std::string_view best;
    std::size_t best_distance = 3;  // suggest only within 2 edits
    for (std::string_view c : candidates) {
        const std::size_t d = edit_distance(word, c);
        if (d < best_distance && 2 * d <= word.size()) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

}  // namespace ferry::config_detail
