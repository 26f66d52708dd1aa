#include "health/health_state.hpp"

#include <algorithm>

namespace ferry::health {

const char* to_string(State s) {
    switch (s) {
    case State::unknown: return "unknown";
    case State::up: return "up";
    case State::draining: return "draining";
    case State::down: return "down";
    }
    return "?";
}

const char* to_string(Outcome o) {
    switch (o) {
    case Outcome::ok: return "ok";
    case Outcome::fail: return "fail";
    case Outcome::drain: return "drain";
    }
    return "?";
}

HealthState::HealthState(uint32_t rise, uint32_t fall, State initial)
    : rise_(std::max(rise, 1u)), fall_(std::max(fall, 1u)), state_(initial) {}

bool HealthState::apply(Outcome o) {
    const State before = state_;
    // Saturating: a target probed forever must not wrap back to zero.
    auto bump = [](uint32_t& n) {
        if (n != UINT32_MAX) ++n;
    };
    switch (o) {
    case Outcome::ok:
        bump(ok_);
        fail_ = 0;
        if (state_ == State::unknown || ok_ >= rise_) state_ = State::up;
        break;
    case Outcome::fail:
        bump(fail_);
        ok_ = 0;
        if (fail_ >= fall_) state_ = State::down;
        break;
    case Outcome::drain:
        bump(fail_);
        ok_ = 0;
        if (state_ == State::unknown || state_ == State::up) state_ = State::draining;
        break;
    }
    return state_ != before;
}

}  // namespace ferry::health
