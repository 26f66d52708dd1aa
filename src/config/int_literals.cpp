#include "config/int_literals.hpp"

#include <cstdint>
#include <limits>

namespace ferry::config_detail {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_name_char(char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '*'; }

int hex_digit(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Magnitude of a digit string, or empty past 2^64-1.
std::optional<uint64_t> magnitude(std::string_view digits, unsigned base) {
    uint64_t v = 0;
    for (char c : digits) {
        const auto d = static_cast<uint64_t>(hex_digit(c));
        if (v > (std::numeric_limits<uint64_t>::max() - d) / base) return std::nullopt;
        v = v * base + d;
    }
    return v;
}

}  // namespace

std::vector<WideLiteral> find_wide_int_literals(std::string_view text) {
    std::vector<WideLiteral> out;
    std::string last_name;
    int line = 1;
    std::size_t i = 0;
    const std::size_t n = text.size();
    auto at = [&](std::size_t k) { return k < n ? text[k] : '\0'; };

    while (i < n) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (c == '#' || (c == '/' && at(i + 1) == '/')) {
            while (i < n && text[i] != '\n') ++i;
        } else if (c == '/' && at(i + 1) == '*') {
            i += 2;
            while (i < n && !(text[i] == '*' && at(i + 1) == '/')) {
                if (text[i] == '\n') ++line;
                ++i;
            }
            i += 2;
        } else if (c == '"') {
            ++i;
            while (i < n && text[i] != '"') {
                if (text[i] == '\\') ++i;
                if (i < n && text[i] == '\n') ++line;
                ++i;
            }
            ++i;
        } else if (is_alpha(c) || c == '*') {
            const std::size_t start = i;
            while (i < n && is_name_char(text[i])) ++i;
            last_name = std::string(text.substr(start, i - start));
        } else if (is_digit(c) || ((c == '-' || c == '+') && (is_digit(at(i + 1)) || at(i + 1) == '.'))) {
            const std::size_t start = i;
            const bool negative = c == '-';
            if (c == '-' || c == '+') ++i;
            bool hex = false;
            std::size_t digits_start = i;
            if (text[i] == '0' && (at(i + 1) == 'x' || at(i + 1) == 'X')) {
                hex = true;
                i += 2;
                digits_start = i;
                while (i < n && hex_digit(text[i]) >= 0) ++i;
            } else {
                while (i < n && is_digit(text[i])) ++i;
            }
            const std::string_view digits = text.substr(digits_start, i - digits_start);
            bool is_float = false;
            if (!hex && (at(i) == '.' || at(i) == 'e' || at(i) == 'E')) {
                is_float = true;
                while (i < n &&
                       (is_digit(text[i]) || text[i] == '.' || text[i] == 'e' || text[i] == 'E' ||
                        ((text[i] == '-' || text[i] == '+') && (at(i - 1) == 'e' || at(i - 1) == 'E'))))
                    ++i;
            }
            bool is64 = false;
            while (at(i) == 'L') {
                is64 = true;
                ++i;
            }
            if (is_float || is64 || digits.empty()) continue;
            const auto mag = magnitude(digits, hex ? 16 : 10);
            // libconfig reads hex as unsigned 32-bit bits, so 0x80000000.. already comes out negative.
            const uint64_t limit = negative ? uint64_t{1} << 31 : (uint64_t{1} << 31) - 1;
            if (mag && *mag <= limit) continue;
            WideLiteral lit;
            lit.line = line;
            lit.name = last_name;
            lit.text = std::string(text.substr(start, i - start));
            if (mag && *mag <= uint64_t(std::numeric_limits<long long>::max()))
                lit.value = negative ? -static_cast<long long>(*mag) : static_cast<long long>(*mag);
            out.push_back(std::move(lit));
        } else {
            ++i;
        }
    }
    return out;
}

}  // namespace ferry::config_detail
