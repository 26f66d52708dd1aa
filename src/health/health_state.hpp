// The rise/fall state machine of one health-check target: pure code, no
// sockets, no clock, so every sequence of results is unit-tested on its own.
//
// Rules (one call to apply() per probe result or passive failure):
//  * ok:    consecutive_ok += 1, consecutive_fail = 0.
//           unknown -> up at once (it was already treated as up);
//           draining or down -> up after `rise` consecutive oks.
//  * fail:  consecutive_fail += 1, consecutive_ok = 0 (refused, timeout,
//           unexpected status, passive failure).
//           Any state -> down once consecutive_fail >= `fall`; otherwise the
//           state stays as it is (up stays up, draining stays draining).
//  * drain: HTTP 503 from an AI server (vLLM/TGI answer it while draining or
//           overloaded). Counts like a failure for `fall` (consecutive_fail
//           += 1, consecutive_ok = 0), but moves unknown or up to draining at
//           once: one 503 is enough. A 503 never makes a target down on its
//           own, so 503, 503, 503 stays draining however long it lasts, while
//           503, timeout, timeout (fall 3) is down. A down target stays down
//           on a 503: down is left only by `rise` consecutive oks.
//
// Initial state is unknown, which the load balancer treats like up: after a
// restart every backend keeps taking traffic until probes prove it down, so
// a restart never blackholes a healthy fleet.
#pragma once

#include <cstdint>

namespace ferry::health {

// What the checker believes about a target.
enum class State : uint8_t {
    unknown = 0,  // no result yet; takes new flows like up
    up,           // takes new flows
    draining,     // answered HTTP 503: no new flows, existing flows continue
    down,         // `fall` consecutive failures: no new flows
};
const char* to_string(State s);

// True for the states that take new flows: unknown and up.
constexpr bool takes_new_flows(State s) { return s == State::unknown || s == State::up; }

// One probe's verdict, as the state machine needs it.
enum class Outcome : uint8_t {
    ok,     // connected (tcp) or answered the expected status (http)
    fail,   // refused, unreachable, timeout, unexpected status, passive failure
    drain,  // answered HTTP 503 (and 503 was not the expected status)
};
const char* to_string(Outcome o);

// Rise/fall counting for one target; see the rules at the top of this file.
class HealthState {
public:
    // rise and fall of 0 are treated as 1.
    HealthState(uint32_t rise, uint32_t fall, State initial = State::unknown);

    // Applies one result; returns true when the state changed.
    bool apply(Outcome o);

    State state() const { return state_; }
    uint32_t consecutive_ok() const { return ok_; }
    uint32_t consecutive_fail() const { return fail_; }
    uint32_t rise() const { return rise_; }
    uint32_t fall() const { return fall_; }

private:
    uint32_t rise_;
    uint32_t fall_;
    State state_;
    uint32_t ok_ = 0;
    uint32_t fail_ = 0;
};

}  // namespace ferry::health
