#include "common/ip_address.hpp"

#include <gtest/gtest.h>

namespace ferry {

TEST(IpAddr, ParsesV4AndKeepsNetworkOrder) {
    auto a = IpAddr::parse("10.1.2.3");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->is_v4());
    EXPECT_EQ(a->v4_host(), 0x0a010203u);
    EXPECT_EQ(a->bytes[0], 10);
    EXPECT_EQ(a->to_string(), "10.1.2.3");
    EXPECT_EQ(IpAddr::v4(0x0a010203u), *a);
}

TEST(IpAddr, ParsesV6) {
    auto a = IpAddr::parse("2001:db8::1");
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->is_v4());
    EXPECT_EQ(a->to_string(), "2001:db8::1");
}

TEST(IpAddr, RejectsGarbage) {
    EXPECT_FALSE(IpAddr::parse(""));
    EXPECT_FALSE(IpAddr::parse("10.0.0"));
    EXPECT_FALSE(IpAddr::parse("10.0.0.256"));
    EXPECT_FALSE(IpAddr::parse("hello"));
}

TEST(IpPrefix, ParsesAndContains) {
    auto p = IpPrefix::parse("10.0.0.1/24");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->length, 24);
    EXPECT_TRUE(p->contains(*IpAddr::parse("10.0.0.200")));
    EXPECT_FALSE(p->contains(*IpAddr::parse("10.0.1.1")));
    EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0")->contains(*IpAddr::parse("1.2.3.4")));
    EXPECT_FALSE(IpPrefix::parse("10.0.0.1/33"));
    EXPECT_FALSE(IpPrefix::parse("10.0.0.1/"));
    EXPECT_FALSE(IpPrefix::parse("10.0.0.1"));
    EXPECT_FALSE(IpPrefix::parse("10.0.0.1/2x"));
}

TEST(Endpoint, Formats) {
    Endpoint e{*IpAddr::parse("10.0.0.1"), 8000};
    EXPECT_EQ(e.to_string(), "10.0.0.1:8000");
    Endpoint e6{*IpAddr::parse("::1"), 80};
    EXPECT_EQ(e6.to_string(), "[::1]:80");
}

}  // namespace ferry
