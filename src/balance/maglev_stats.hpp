// Measurements of Maglev tables: how evenly they split and how much of a table
// moves between two builds. For tests, benchmarks and operator tools; the data
// plane never needs them.
#pragma once

#include <cstdint>
#include <vector>

#include "balance/maglev.hpp"

namespace ferry::balance {

// Slots held by each backend: result[i] counts the entries equal to i.
std::vector<uint32_t> count_slots(const std::vector<uint32_t>& table, size_t backends);

// Share of the table each backend holds, against the share its weight is
// owed (weight / sum of weights). Backends of weight 0 are left out.
struct ShareError {
    double max_over_mean = 0;      // largest slot count / mean count (meaningful for equal weights)
    double max_relative = 0;       // max over backends of |share - owed| / owed
    double max_slots_off = 0;      // max over backends of |slots - size * owed|: below 1 by design
};
ShareError share_error(const std::vector<MaglevBackend>& backends, const std::vector<uint32_t>& table);

// What changed between a table built from `before` and one built from
// `after`, slot by slot, comparing owners by identity. A backend is
// unaffected when it is in both lists with the same weight.
struct TableDiff {
    uint32_t size = 0;
    uint32_t moved = 0;       // slots whose owner changed
    uint32_t minimum = 0;     // the fewest moves that produce the new slot counts: sum of the losses
    uint32_t collateral = 0;  // moved from one unaffected backend to another

    double moved_share() const { return size ? double(moved) / size : 0.0; }
    double minimum_share() const { return size ? double(minimum) / size : 0.0; }
    double collateral_share() const { return size ? double(collateral) / size : 0.0; }
    // moved / minimum: 1.0 is the best any table could do.
    double ratio() const { return minimum ? double(moved) / minimum : (moved ? 1e9 : 1.0); }
};
TableDiff diff_tables(const std::vector<MaglevBackend>& before, const std::vector<uint32_t>& before_table,
                      const std::vector<MaglevBackend>& after, const std::vector<uint32_t>& after_table);

}  // namespace ferry::balance
