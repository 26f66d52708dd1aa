// Finds integer literals that libconfig 1.5 silently wraps.
//
// libconfig 1.5 (Debian 12) stores an integer written without an 'L' suffix in a 32-bit int and
// wraps anything larger without a word: "flow_capacity = 4295032832;" reads back as 65536, which
// is in range and would be accepted. This scan reads the source text the way libconfig's lexer
// does and records every plain integer literal outside the int32 range, so the loader can check
// the value the operator actually wrote.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::config_detail {

// One plain (no 'L') integer literal too wide for libconfig's 32-bit int.
struct WideLiteral {
    int line = 0;
    std::string name;                 // the setting name written last before it ("" if none)
    std::string text;                 // as written, e.g. "5000000000" or "0xFFFFFFFF"
    std::optional<long long> value;   // the intended value; empty if it does not fit in 64 bits
};

std::vector<WideLiteral> find_wide_int_literals(std::string_view text);

}  // namespace ferry::config_detail
