// Fuzzy matching of config words, so a typo gets a "did you mean" instead of a bare refusal.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace ferry::config_detail {

// Optimal string alignment distance: Levenshtein plus swaps of adjacent characters, so the
// commonest typo ("wieght" for "weight") costs 1 rather than 2.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is at most 2 edits away and those edits change at most
// half of the word (so "tcp" does not suggest "udp"); empty when nothing is that close. Ties go
// to the earlier candidate.
std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace ferry::config_detail
