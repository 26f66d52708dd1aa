#include "ops/idle_backoff.hpp"

#include <gtest/gtest.h>

namespace ferry::ops {
namespace {

TEST(IdleBackoff, ShortAfterWorkDoublingToTheCapWhileIdle) {
    IdleBackoff b;
    EXPECT_EQ(b.next(true), IdleBackoff::kMinUs);
    EXPECT_EQ(b.next(false), 400u);
    EXPECT_EQ(b.next(false), 800u);
    EXPECT_EQ(b.next(false), 1'600u);
    EXPECT_EQ(b.next(false), IdleBackoff::kMaxUs);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(b.next(false), IdleBackoff::kMaxUs) << "capped";
    EXPECT_EQ(b.next(true), IdleBackoff::kMinUs) << "work: short sleeps again";
    EXPECT_EQ(b.next(false), 400u);
}

}  // namespace
}  // namespace ferry::ops
