#include "balance/maglev_stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace ferry::balance {

std::vector<uint32_t> count_slots(const std::vector<uint32_t>& table, size_t backends) {
    std::vector<uint32_t> counts(backends, 0);
    for (uint32_t owner : table) {
        if (owner == kNoBackend) continue;
        if (owner >= backends) throw std::out_of_range("count_slots: table entry past the backend list");
        ++counts[owner];
    }
    return counts;
}

ShareError share_error(const std::vector<MaglevBackend>& backends, const std::vector<uint32_t>& table) {
    const std::vector<uint32_t> counts = count_slots(table, backends.size());
    uint64_t total_weight = 0;
    uint32_t live = 0;
    uint32_t max_count = 0;
    for (size_t i = 0; i < backends.size(); ++i) {
        if (backends[i].weight == 0) continue;
        total_weight += backends[i].weight;
        ++live;
        max_count = std::max(max_count, counts[i]);
    }
    ShareError e;
    if (live == 0 || table.empty()) return e;
    const double size = double(table.size());
    e.max_over_mean = max_count / (size / live);
    for (size_t i = 0; i < backends.size(); ++i) {
        if (backends[i].weight == 0) continue;
        const double owed = double(backends[i].weight) / double(total_weight);
        const double share = counts[i] / size;
        e.max_relative = std::max(e.max_relative, std::abs(share - owed) / owed);
        e.max_slots_off = std::max(e.max_slots_off, std::abs(counts[i] - size * owed));
    }
    return e;
}

namespace {

// Identities of both lists, sorted, so that an owner can be named the same way
// on both sides.
struct Names {
    std::vector<Endpoint> ids;

    uint32_t find(const Endpoint& e) const {
        return uint32_t(std::lower_bound(ids.begin(), ids.end(), e) - ids.begin());
    }
};

}  // namespace

TableDiff diff_tables(const std::vector<MaglevBackend>& before, const std::vector<uint32_t>& before_table,
                      const std::vector<MaglevBackend>& after, const std::vector<uint32_t>& after_table) {
    if (before_table.size() != after_table.size()) throw std::invalid_argument("diff_tables: sizes differ");
    Names names;
    for (const auto& b : before) names.ids.push_back(b.id);
    for (const auto& b : after) names.ids.push_back(b.id);
    std::sort(names.ids.begin(), names.ids.end());
    names.ids.erase(std::unique(names.ids.begin(), names.ids.end()), names.ids.end());
    const uint32_t none = uint32_t(names.ids.size());

    std::vector<uint32_t> before_name(before.size()), after_name(after.size());
    for (size_t i = 0; i < before.size(); ++i) before_name[i] = names.find(before[i].id);
    for (size_t i = 0; i < after.size(); ++i) after_name[i] = names.find(after[i].id);

    // Unaffected: same weight on both sides (weight 0 counts as absent).
    std::vector<uint32_t> weight_before(names.ids.size() + 1, 0), weight_after(names.ids.size() + 1, 0);
    for (size_t i = 0; i < before.size(); ++i) weight_before[before_name[i]] = before[i].weight;
    for (size_t i = 0; i < after.size(); ++i) weight_after[after_name[i]] = after[i].weight;

    std::vector<int64_t> balance(names.ids.size() + 1, 0);
    TableDiff d;
    d.size = uint32_t(before_table.size());
    for (size_t s = 0; s < before_table.size(); ++s) {
        const uint32_t from = before_table[s] == kNoBackend ? none : before_name[before_table[s]];
        const uint32_t to = after_table[s] == kNoBackend ? none : after_name[after_table[s]];
        --balance[from];
        ++balance[to];
        if (from == to) continue;
        ++d.moved;
        const bool from_same = from != none && weight_before[from] == weight_after[from];
        const bool to_same = to != none && weight_before[to] == weight_after[to];
        if (from_same && to_same) ++d.collateral;
    }
    for (int64_t b : balance) {
        if (b > 0) d.minimum += uint32_t(b);
    }
    return d;
}

}  // namespace ferry::balance
