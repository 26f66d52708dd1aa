#include <array>
#include <string_view>

#include <gtest/gtest.h>

#include "config/int_literals.hpp"
#include "config/key_match.hpp"

namespace ferry::config_detail {
namespace {

using std::string_view_literals::operator""sv;

TEST(EditDistance, CountsInsertDeleteSubstituteAndSwap) {
    EXPECT_EQ(edit_distance("weight", "weight"), 0u);
    EXPECT_EQ(edit_distance("wieght", "weight"), 1u);  // adjacent swap counts once
    EXPECT_EQ(edit_distance("weigt", "weight"), 1u);
    EXPECT_EQ(edit_distance("weightt", "weight"), 1u);
    EXPECT_EQ(edit_distance("waight", "weight"), 1u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
    EXPECT_EQ(edit_distance("abc", ""), 3u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(ClosestMatch, SuggestsWithinTwoEditsOnly) {
    constexpr std::array keys = {"address"sv, "port"sv, "weight"sv, "health"sv};
    EXPECT_EQ(closest_match("wieght", keys), "weight");
    EXPECT_EQ(closest_match("adress", keys), "address");
    EXPECT_EQ(closest_match("prot", keys), "port");
    EXPECT_EQ(closest_match("helth", keys), "health");
    EXPECT_EQ(closest_match("completely_else", keys), "");
    EXPECT_EQ(closest_match("x", keys), "");
}

TEST(ClosestMatch, ShortWordsNeedMostlyRightLetters) {
    constexpr std::array keys = {"tcp_syn"sv, "udp"sv};
    EXPECT_EQ(closest_match("tcp", keys), "");  // 2 of 3 letters changed is not a typo
    EXPECT_EQ(closest_match("upd", keys), "udp");
}

TEST(WideLiterals, FindsPlainIntegersPast32Bits) {
    const auto found = find_wide_int_literals(
        "a = 1;\n"
        "flow_capacity = 4295032832;\n"
        "b = 2147483647; c = -2147483648;\n"   // the int32 limits themselves are fine
        "d = 2147483648; e = -2147483649;\n"
        "f = 5000000000L; g = 1.5e10; h = 0x7fffffff;\n"
        "i = 0xFFFFFFFF;\n"
        "j = 99999999999999999999999;\n");
    ASSERT_EQ(found.size(), 5u);
    EXPECT_EQ(found[0].line, 2);
    EXPECT_EQ(found[0].name, "flow_capacity");
    EXPECT_EQ(found[0].text, "4295032832");
    EXPECT_EQ(found[0].value, 4295032832LL);
    EXPECT_EQ(found[1].name, "d");
    EXPECT_EQ(found[1].value, 2147483648LL);
    EXPECT_EQ(found[2].name, "e");
    EXPECT_EQ(found[2].value, -2147483649LL);
    EXPECT_EQ(found[3].name, "i");
    EXPECT_EQ(found[3].line, 6);
    EXPECT_EQ(found[3].value, 0xFFFFFFFFLL);
    EXPECT_EQ(found[4].name, "j");
    EXPECT_FALSE(found[4].value.has_value());
}

TEST(WideLiterals, SkipsStringsCommentsAndNames) {
    const auto found = find_wide_int_literals(
        "# x = 5000000000;\n"
        "// y = 5000000000;\n"
        "/* z = 5000000000;\n"
        "   w = 5000000000; */\n"
        "s = \"5000000000 \\\" 6000000000\";\n"
        "net_af_packet5000000000 = 1;\n"
        "k = 5000000000;\n");
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].line, 7);
    EXPECT_EQ(found[0].name, "k");
}

}  // namespace
}  // namespace ferry::config_detail
