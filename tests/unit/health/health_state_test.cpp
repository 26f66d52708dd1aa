#include "health/health_state.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::health {

namespace {

// Applies results written as a string: o = ok, f = fail, d = drain (HTTP 503).
State run(HealthState& s, const std::string& seq) {
    for (char c : seq) s.apply(c == 'o' ? Outcome::ok : c == 'f' ? Outcome::fail : Outcome::drain);
    return s.state();
}

}  // namespace

TEST(HealthState, StartsUnknownWhichTakesFlows) {
    HealthState s(2, 3);
    EXPECT_EQ(s.state(), State::unknown);
    EXPECT_TRUE(takes_new_flows(State::unknown));
    EXPECT_TRUE(takes_new_flows(State::up));
    EXPECT_FALSE(takes_new_flows(State::draining));
    EXPECT_FALSE(takes_new_flows(State::down));
}

TEST(HealthState, FirstOkMakesUnknownUp) {
    HealthState s(3, 3);
    EXPECT_TRUE(s.apply(Outcome::ok));
    EXPECT_EQ(s.state(), State::up);
    EXPECT_EQ(s.consecutive_ok(), 1u);
}

TEST(HealthState, DownAfterFallConsecutiveFailures) {
    HealthState s(2, 3);
    EXPECT_FALSE(s.apply(Outcome::fail));
    EXPECT_FALSE(s.apply(Outcome::fail));
    EXPECT_EQ(s.state(), State::unknown);
    EXPECT_EQ(s.consecutive_fail(), 2u);
    EXPECT_TRUE(s.apply(Outcome::fail));
    EXPECT_EQ(s.state(), State::down);
    EXPECT_FALSE(s.apply(Outcome::fail));  // no change, no event
    EXPECT_EQ(s.consecutive_fail(), 4u);
}

TEST(HealthState, UpToleratesFewerThanFallFailures) {
    HealthState s(2, 3);
    EXPECT_EQ(run(s, "offoffo"), State::up);
    EXPECT_EQ(run(s, "fff"), State::down);
}

TEST(HealthState, RecoveryNeedsRiseConsecutiveOks) {
    HealthState s(3, 2);
    ASSERT_EQ(run(s, "ff"), State::down);
    EXPECT_EQ(run(s, "oo"), State::down);
    EXPECT_EQ(run(s, "f"), State::down);  // the count starts over
    EXPECT_EQ(s.consecutive_ok(), 0u);
    EXPECT_EQ(run(s, "oo"), State::down);
    EXPECT_TRUE(s.apply(Outcome::ok));
    EXPECT_EQ(s.state(), State::up);
}

TEST(HealthState, OneHttp503Drains) {
    HealthState from_unknown(2, 3);
    EXPECT_TRUE(from_unknown.apply(Outcome::drain));
    EXPECT_EQ(from_unknown.state(), State::draining);

    HealthState from_up(2, 3);
    ASSERT_EQ(run(from_up, "o"), State::up);
    EXPECT_TRUE(from_up.apply(Outcome::drain));
    EXPECT_EQ(from_up.state(), State::draining);
    EXPECT_EQ(from_up.consecutive_fail(), 1u);
    EXPECT_EQ(from_up.consecutive_ok(), 0u);
}

TEST(HealthState, Repeated503StaysDrainingNotDown) {
    HealthState s(2, 3);
    EXPECT_EQ(run(s, "dddddddddd"), State::draining);
    EXPECT_EQ(s.consecutive_fail(), 10u);
}

TEST(HealthState, Http503CountsTowardFall) {
    HealthState s(2, 3);
    EXPECT_EQ(run(s, "dff"), State::down);  // three consecutive failures, one of them a 503
    HealthState t(2, 3);
    EXPECT_EQ(run(t, "df"), State::draining);
    EXPECT_EQ(run(t, "o"), State::draining);  // breaks the streak, not yet recovered
    EXPECT_EQ(run(t, "ff"), State::draining);
    EXPECT_EQ(run(t, "f"), State::down);
}

TEST(HealthState, DrainingRecoversAfterRiseOks) {
    HealthState s(2, 3);
    ASSERT_EQ(run(s, "od"), State::draining);
    EXPECT_EQ(run(s, "o"), State::draining);
    EXPECT_EQ(run(s, "o"), State::up);
}

TEST(HealthState, DownStaysDownOn503) {
    HealthState s(2, 2);
    ASSERT_EQ(run(s, "ff"), State::down);
    EXPECT_FALSE(s.apply(Outcome::drain));
    EXPECT_EQ(s.state(), State::down);
    EXPECT_EQ(run(s, "oo"), State::up);
}

TEST(HealthState, ZeroRiseAndFallActAsOne) {
    HealthState s(0, 0);
    EXPECT_EQ(s.rise(), 1u);
    EXPECT_EQ(s.fall(), 1u);
    EXPECT_EQ(run(s, "f"), State::down);
    EXPECT_EQ(run(s, "o"), State::up);
}

TEST(HealthState, InitialStateCanBeGiven) {
    HealthState s(2, 2, State::down);
    EXPECT_EQ(run(s, "o"), State::down);
    EXPECT_EQ(run(s, "o"), State::up);
}

TEST(HealthState, Names) {
    EXPECT_STREQ(to_string(State::unknown), "unknown");
    EXPECT_STREQ(to_string(State::up), "up");
    EXPECT_STREQ(to_string(State::draining), "draining");
    EXPECT_STREQ(to_string(State::down), "down");
    EXPECT_STREQ(to_string(Outcome::drain), "drain");
}

}  // namespace ferry::health
