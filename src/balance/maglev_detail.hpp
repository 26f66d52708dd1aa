// Internals of the Maglev builder that the tests reach for; not for the data plane.
#pragma once

#include <cstdint>
#include <vector>

#include "balance/maglev.hpp"

namespace ferry::balance::detail {

// The builder switches from walking permutations to computing where walkers
// meet the free slots once this many slots are free. It changes the speed,
// never the table: the tests compare builds with 0 (walk to the end) and the
// default.
uint32_t default_endgame_slots(uint32_t size);

std::vector<uint32_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size,
                                         uint32_t endgame_slots);

}  // namespace ferry::balance::detail
